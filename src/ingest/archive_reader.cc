#include "ingest/archive_reader.h"

#include <archive.h>
#include <archive_entry.h>

#include <memory>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>

#include "ingest/archive_source.h"

namespace strata::ingest {
namespace {

// Reads one member's data, counting every byte against the limits. Shared by the sink (through
// SequentialFile) and by the drain that consumes what the sink left unread, so skipped bytes
// count too: a sink that ignores content must not turn the limits off.
class MemberReader final : public SequentialFile {
 public:
  MemberReader(archive* a, const ArchiveSource& source, const std::string& archive_name, const ArchiveLimits& limits,
               uint64_t* total)
      : a_(a), source_(source), archive_name_(archive_name), limits_(limits), total_(total) {}

  void Start(std::string where_path) {
    path_ = std::move(where_path);
    entry_bytes_ = 0;
    eof_ = false;
  }
  const Status& failure() const { return failure_; }

  Status Read(size_t n, uint8_t* dst, size_t* got) override {
    *got = 0;
    if (!failure_.ok()) return failure_;
    size_t done = 0;
    while (done < n && !eof_) {
      la_ssize_t r = archive_read_data(a_, dst + done, n - done);
      if (r < 0) {
        const char* why = archive_error_string(a_);
        failure_ = Status::Corruption(fmt::format("archive {}: member '{}' is damaged or truncated: {}",
                                                  archive_name_, path_, why ? why : "read failed"));
        return failure_;
      }
      if (r == 0) {
        eof_ = true;
        break;
      }
      done += static_cast<size_t>(r);
      entry_bytes_ += static_cast<uint64_t>(r);
      *total_ += static_cast<uint64_t>(r);
      failure_ = CheckLimits();
      if (!failure_.ok()) return failure_;
    }
    *got = done;
    return Status::OK();
  }

  // Reads and discards the rest of the member.
  Status Drain() {
    std::vector<uint8_t> scratch(64 << 10);
    size_t got = 0;
    do {
      STRATA_RETURN_IF_ERROR(Read(scratch.size(), scratch.data(), &got));
    } while (got > 0);
    return Status::OK();
  }

 private:
  Status CheckLimits() const {
    if (entry_bytes_ > limits_.max_entry_bytes) {
      return Status::InvalidArgument(fmt::format(
          "archive {}: member '{}' expands past the per-member limit of {} bytes (max_entry_bytes)",
          archive_name_, path_, limits_.max_entry_bytes));
    }
    if (*total_ > limits_.max_total_bytes) {
      return Status::InvalidArgument(fmt::format(
          "archive {}: members expand past the total limit of {} bytes (max_total_bytes), at '{}'",
          archive_name_, limits_.max_total_bytes, path_));
    }
    if (*total_ > limits_.ratio_grace_bytes) {
      uint64_t read = source_.consumed();
      double ratio = static_cast<double>(*total_) / static_cast<double>(read > 0 ? read : 1);
      if (ratio > limits_.max_ratio) {
        return Status::InvalidArgument(fmt::format(
            "archive {}: {} bytes expanded from {} archive bytes, a ratio of {:.0f} over the limit "
            "of {:.0f} (max_ratio): a likely archive bomb, at '{}'",
            archive_name_, *total_, read, ratio, limits_.max_ratio, path_));
      }
    }
    return Status::OK();
  }

  archive* a_;
  const ArchiveSource& source_;
  const std::string& archive_name_;
  const ArchiveLimits& limits_;
  uint64_t* total_;
  std::string path_;
  uint64_t entry_bytes_ = 0;
  bool eof_ = false;
  Status failure_;
};

Status Walk(archive* a, ArchiveSource& source, const std::string& name, const ArchiveLimits& limits,
            ItemSink* sink) {
  uint64_t total = 0, entries = 0;
  MemberReader reader(a, source, name, limits, &total);
  std::unordered_set<std::string> seen;
  std::string previous;
  for (;;) {
    archive_entry* entry = nullptr;
    int r = archive_read_next_header(a, &entry);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      if (!source.failure().ok()) return source.failure();
      const char* why = archive_error_string(a);
      if (entries == 0) {
        return Status::InvalidArgument(fmt::format("{} is not a readable tar or zip archive: {}", name,
                                                   why ? why : "unrecognised format"));
      }
      return Status::Corruption(fmt::format("archive {}: damaged or truncated after member '{}': {}", name,
                                            previous, why ? why : "bad header"));
    }
    if (++entries > limits.max_entries) {
      return Status::InvalidArgument(
          fmt::format("archive {}: more than {} members (max_entries)", name, limits.max_entries));
    }
    const char* raw = archive_entry_pathname(entry);
    if (raw == nullptr) raw = archive_entry_pathname_utf8(entry);
    std::string raw_name = raw ? raw : "";
    previous = PrintableName(raw_name);
    std::string where = fmt::format("{}:{}", name, previous);
    if (raw == nullptr) {
      sink->Reject(where, "path-encoding", "member name cannot be decoded");
      continue;
    }
    unsigned type = archive_entry_filetype(entry);
    if (archive_entry_hardlink(entry) != nullptr) {
      sink->Reject(where, "hardlink",
                   fmt::format("hard link to '{}' is not followed", PrintableName(archive_entry_hardlink(entry))));
      continue;
    }
    PathCheck check = CheckItemPath(raw_name, limits.max_path_bytes);
    if (!check.ok) {
      sink->Reject(where, check.rule, check.reason);
      continue;
    }
    if (type == AE_IFDIR) continue;
    if (type == AE_IFLNK) {
      const char* target = archive_entry_symlink(entry);
      sink->Reject(where, "symlink",
                   fmt::format("symbolic link to '{}' is not followed", PrintableName(target ? target : "")));
      continue;
    }
    if (type != AE_IFREG) {
      sink->Reject(where, "special-file", "device, fifo or socket entries are not stored");
      continue;
    }
    if (archive_entry_is_encrypted(entry)) {
      sink->Reject(where, "encrypted", "encrypted members are not supported");
      continue;
    }
    if (!seen.insert(check.path).second) {
      sink->Reject(where, "duplicate-path", fmt::format("a member named '{}' came earlier", check.path));
      continue;
    }
    FileItem item;
    item.path = std::move(check.path);
    item.size_exact = archive_entry_size_is_set(entry) != 0;
    int64_t declared = item.size_exact ? archive_entry_size(entry) : 0;
    item.size = declared > 0 ? static_cast<uint64_t>(declared) : 0;
    if (item.size > limits.max_entry_bytes) {
      return Status::InvalidArgument(fmt::format(
          "archive {}: member '{}' declares {} bytes, over the per-member limit of {} (max_entry_bytes)",
          name, item.path, item.size, limits.max_entry_bytes));
    }
    if (archive_entry_mtime_is_set(entry)) {
      item.mtime_ns = static_cast<int64_t>(archive_entry_mtime(entry)) * 1'000'000'000 +
                      archive_entry_mtime_nsec(entry);
    }
    item.mode = archive_entry_perm(entry) & 0777;
    reader.Start(item.path);
    Status added = sink->AddFile(item, &reader);
    if (!reader.failure().ok()) return reader.failure();
    STRATA_RETURN_IF_ERROR(added);
    STRATA_RETURN_IF_ERROR(reader.Drain());
  }
  STRATA_RETURN_IF_ERROR(source.failure());
  return source.ReadToEnd();
}

// The archive named `name`, read from `file`. `block`: the bytes read at a time (small ones
// measure the compression ratio closely as the archive is consumed).
Status ReadArchiveFile(RandomAccessFile* file, const std::string& name, const ArchiveLimits& limits, size_t block,
                       ItemSink* sink) {
  STRATA_ASSIGN_OR_RETURN(auto size, file->Size());
  ArchiveHandle handle = NewArchiveReader(ArchiveKind::kArchive);
  ArchiveSource source(file, size, name, block);
  Status opened = source.Open(handle.get());
  if (!opened.ok()) {
    if (!source.failure().ok()) return opened;
    const char* why = archive_error_string(handle.get());
    return Status::InvalidArgument(
        fmt::format("{} is not a readable tar or zip archive: {}", name, why ? why : "unrecognised format"));
  }
  return Walk(handle.get(), source, name, limits, sink);
}

}  // namespace

Status ReadArchive(Env* env, const std::string& path, const ArchiveOptions& options, ItemSink* sink) {
  STRATA_ASSIGN_OR_RETURN(auto file, env->NewRandomAccessFile(path));
  return ReadArchiveFile(file.get(), options.name.empty() ? path : options.name, options.limits, 256 << 10, sink);
}

Status ReadArchiveFromMemory(std::string_view bytes, const ArchiveOptions& options, ItemSink* sink) {
  auto file = NewMemoryFile(bytes);
  return ReadArchiveFile(file.get(), options.name.empty() ? "<memory>" : options.name, options.limits, 64 << 10, sink);
}

}  // namespace strata::ingest
