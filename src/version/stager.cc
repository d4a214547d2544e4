#include "version/stager.h"

#include <chrono>
#include <cstring>
#include <deque>
#include <optional>

#include <fmt/format.h>

#include "base/endian.h"
#include "version/record_table.h"
#include "version/tree_edit.h"

namespace strata::version {

using store::ChunkRef;
using store::EntryType;
using store::TreeEntry;

namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class StringFile : public SequentialFile {
 public:
  explicit StringFile(std::string_view data) : data_(data) {}
  Status Read(size_t n, uint8_t* dst, size_t* got) override {
    *got = std::min(n, data_.size());
    std::memcpy(dst, data_.data(), *got);
    data_.remove_prefix(*got);
    return Status::OK();
  }

 private:
  std::string_view data_;
};

bool Below(std::string_view path, std::string_view dir) {
  return path == dir || (path.size() > dir.size() && path.substr(0, dir.size()) == dir && path[dir.size()] == '/');
}

class Stager final : public StagedCommit {
 public:
  Stager(store::ObjectStore* objects, std::unique_ptr<store::WriteBatch> batch, const ObjectId& base_tree,
         StageCommitFn commit)
      : objects_(objects), batch_(std::move(batch)), base_tree_(base_tree), commit_(std::move(commit)) {}
  // The batch's workers write chunk ids into chunks_ until its session is gone (its destructor
  // waits for them), so the batch goes first: a stage dropped after a failed add (an ingest
  // that stops at a broken source) must not leave them writing into freed memory.
  ~Stager() override { batch_.reset(); }

  Status AddFile(std::string_view path, SequentialFile* content, const FileAttrs& attrs) override {
    STRATA_ASSIGN_OR_RETURN(std::string norm, CheckPath(path));
    Edit edit;
    edit.path = std::move(norm);
    edit.entry.emplace();
    edit.entry->type = EntryType::kFile;
    edit.entry->mode = attrs.mode & 07777;
    edit.entry->mtime_ns = attrs.mtime_ns ? attrs.mtime_ns : NowNs();
    edit.streamed = true;
    edit.first_chunk = chunks_.size();
    auto size = batch_->PutStream(content, &chunks_);
    edit.chunk_count = chunks_.size() - edit.first_chunk;
    if (!size.ok()) {
      // Its chunks are stored anyway (the workers own them now); the edit is dropped.
      return size.status().WithContext(fmt::format("adding '{}'", edit.path));
    }
    edit.entry->size = *size;
    ++files_;
    bytes_ += *size;
    edits_.push_back(std::move(edit));
    return Status::OK();
  }

  Status AddBytes(std::string_view path, std::string_view content, const FileAttrs& attrs) override {
    StringFile in(content);
    return AddFile(path, &in, attrs);
  }

  Status Remove(std::string_view path) override {
    STRATA_ASSIGN_OR_RETURN(std::string norm, CheckPath(path));
    edits_.push_back(Edit{norm, std::nullopt});
    STRATA_RETURN_IF_ERROR(LoadRecords());
    for (auto it = rows_.lower_bound(norm); it != rows_.end() && Below(it->first, norm);) {
      it = rows_.erase(it);
      records_dirty_ = true;
    }
    return Status::OK();
  }

  Status Move(std::string_view from, std::string_view to) override {
    STRATA_ASSIGN_OR_RETURN(std::string src, CheckPath(from));
    STRATA_ASSIGN_OR_RETURN(std::string dst, CheckPath(to));
    std::optional<TreeEntry> entry;
    if (!base_tree_.IsZero()) {
      STRATA_ASSIGN_OR_RETURN(entry, LookupEntry(objects_, base_tree_, src));
    }
    if (!entry) return Status::NotFound(fmt::format("cannot move '{}': not in the starting tree", src));
    edits_.push_back(Edit{src, std::nullopt});
    edits_.push_back(Edit{dst, std::move(entry)});
    STRATA_RETURN_IF_ERROR(LoadRecords());
    std::vector<std::pair<std::string, RecordMeta>> moved;
    for (auto it = rows_.lower_bound(src); it != rows_.end() && Below(it->first, src);) {
      moved.emplace_back(dst + it->first.substr(src.size()), std::move(it->second));
      it = rows_.erase(it);
    }
    for (auto& [key, row] : moved) rows_[key] = std::move(row);
    records_dirty_ = records_dirty_ || !moved.empty();
    return Status::OK();
  }

  Status SetRecord(std::string_view key, const RecordMeta& columns) override {
    STRATA_RETURN_IF_ERROR(Usable());
    STRATA_RETURN_IF_ERROR(ValidateRecord(key, columns));
    STRATA_RETURN_IF_ERROR(LoadRecords());
    auto it = rows_.find(key);
    if (it == rows_.end()) it = rows_.emplace(std::string(key), RecordMeta{}).first;
    for (const auto& [name, value] : columns) {
      if (std::holds_alternative<std::monostate>(value)) it->second.erase(name);
      else it->second[name] = value;
    }
    records_dirty_ = true;
    return Status::OK();
  }

  Status RemoveRecord(std::string_view key) override {
    STRATA_RETURN_IF_ERROR(Usable());
    STRATA_RETURN_IF_ERROR(LoadRecords());
    auto it = rows_.find(key);
    if (it != rows_.end()) {
      rows_.erase(it);
      records_dirty_ = true;
    }
    return Status::OK();
  }

  Status Checkpoint() override {
    STRATA_RETURN_IF_ERROR(Usable());
    return batch_->Commit();
  }

  Result<CommitResult> Commit(const CommitOptions& options) override {
    STRATA_RETURN_IF_ERROR(Usable());
    done_ = true;
    STRATA_RETURN_IF_ERROR(batch_->Flush());
    std::vector<TreeEdit> edits;
    edits.reserve(edits_.size() + 1);
    for (auto& e : edits_) {
      if (e.streamed) {
        auto first = chunks_.begin() + static_cast<ptrdiff_t>(e.first_chunk);
        e.entry->chunks.assign(first, first + static_cast<ptrdiff_t>(e.chunk_count));
      }
      edits.push_back(TreeEdit{std::move(e.path), std::move(e.entry)});
    }
    edits_.clear();
    chunks_.clear();
    if (records_dirty_) {
      if (rows_.empty()) {
        if (had_records_file_) edits.push_back(TreeEdit{std::string(kRecordsPath), std::nullopt});
      } else if (std::string text = SerializeRecordsFile(rows_); objects_->Hash(text) != base_records_hash_) {
        StringFile in(text);
        TreeEntry e;
        e.type = EntryType::kFile;
        e.mode = 0644;
        // Dated like the base's records file (the epoch for a new one), not now: the same
        // edits then give the same tree, so re-running an ingest or a curation is a no-op.
        e.mtime_ns = base_records_mtime_;
        std::deque<ChunkRef> chunks;
        auto size = batch_->PutStream(&in, &chunks);
        Status flushed = batch_->Flush();  // the workers fill `chunks` in, even after a failure
        STRATA_RETURN_IF_ERROR(size.status());
        STRATA_RETURN_IF_ERROR(flushed);
        e.size = *size;
        e.chunks.assign(chunks.begin(), chunks.end());
        edits.push_back(TreeEdit{std::string(kRecordsPath), std::move(e)});
      }
    }
    uint64_t trees = 0;
    STRATA_ASSIGN_OR_RETURN(ObjectId tree, ApplyEdits(objects_, batch_.get(), base_tree_, edits, &trees));
    if (tree.IsZero()) tree = batch_->PutTree(store::Tree{});
    STRATA_ASSIGN_OR_RETURN(CommitResult res, commit_(std::move(batch_), tree, options));
    res.trees_written += trees;
    return res;
  }

  uint64_t files_added() const override { return files_; }
  uint64_t bytes_added() const override { return bytes_; }

 private:
  struct Edit {
    std::string path;
    std::optional<TreeEntry> entry;  // nullopt: a removal
    size_t first_chunk = 0, chunk_count = 0;
    bool streamed = false;  // its chunks are [first_chunk, +chunk_count) of chunks_
  };

  Status Usable() const {
    return done_ ? Status::FailedPrecondition("this staged commit was already committed") : Status::OK();
  }

  Result<std::string> CheckPath(std::string_view path) {
    STRATA_RETURN_IF_ERROR(Usable());
    STRATA_ASSIGN_OR_RETURN(auto parts, SplitPath(path));
    if (parts.empty()) return Status::InvalidArgument("a path inside the dataset is needed, not its root");
    std::string out;
    for (const auto& p : parts) out += (out.empty() ? "" : "/") + p;
    if (out == kRecordsPath || out == ".strata") {
      return Status::InvalidArgument(
          fmt::format("'{}' is reserved for the dataset's records: set them with SetRecord", path));
    }
    return out;
  }

  // The base tree's rows, read once, on the first metadata change.
  Status LoadRecords() {
    if (records_loaded_) return Status::OK();
    records_loaded_ = true;
    if (base_tree_.IsZero()) return Status::OK();
    STRATA_ASSIGN_OR_RETURN(auto entry, LookupEntry(objects_, base_tree_, kRecordsPath));
    if (!entry || entry->type != EntryType::kFile) return Status::OK();
    had_records_file_ = true;
    base_records_mtime_ = entry->mtime_ns;
    std::string text;
    STRATA_ASSIGN_OR_RETURN(rows_, ReadRecordsFile(objects_, *entry, &text));
    base_records_hash_ = objects_->Hash(text);
    return Status::OK();
  }

  store::ObjectStore* objects_;
  std::unique_ptr<store::WriteBatch> batch_;
  ObjectId base_tree_;
  StageCommitFn commit_;
  // One deque for the chunks of every file: an element per chunk, stable while workers fill in ids.
  std::deque<ChunkRef> chunks_;
  std::vector<Edit> edits_;
  RecordRows rows_;
  ObjectId base_records_hash_;
  int64_t base_records_mtime_ = 0;  // of the base's records file: an equal one is not rewritten
  bool records_loaded_ = false, records_dirty_ = false, had_records_file_ = false, done_ = false;
  uint64_t files_ = 0, bytes_ = 0;
};

}  // namespace

std::unique_ptr<StagedCommit> NewStagedCommit(store::ObjectStore* objects, std::unique_ptr<store::WriteBatch> batch,
                                              const ObjectId& base_tree, StageCommitFn commit) {
  return std::make_unique<Stager>(objects, std::move(batch), base_tree, std::move(commit));
}

}  // namespace strata::version
