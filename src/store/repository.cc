#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <cstring>
#include <ctime>
#include <unordered_set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/endian.h"
#include "base/sysinfo.h"
#include "base/thread_pool.h"
#include "store/index_cache.h"
#include "store/key_cache.h"
#include "store/lock.h"
#include "store/repository_impl.h"
#include "store/tree_pages.h"

namespace strata::store {

namespace {


std::string RootAd(const std::string& name) { return "strata-root-v1:" + name; }

// Splits "a/b/c" into components, ignoring empty ones and "." ("a//b/" == "a/b").
Result<std::vector<std::string>> SplitPath(std::string_view path) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view part = path.substr(i, j - i);
    if (!part.empty() && part != ".") {
      if (part == "..") return Status::InvalidArgument(fmt::format("path '{}' may not contain '..'", path));
      parts.emplace_back(part);
    }
    i = j + 1;
  }
  return parts;
}

EntryInfo::Type ToInfoType(EntryType t) {
  switch (t) {
    case EntryType::kDirectory: return EntryInfo::Type::kDirectory;
    case EntryType::kSymlink: return EntryInfo::Type::kSymlink;
    default: return EntryInfo::Type::kFile;
  }
}

// Reads a file's chunks in order, keeping the last chunk decoded.
class ChunkedReader : public BlobReader {
 public:
  ChunkedReader(RepositoryImpl* repo, std::vector<ChunkRef> chunks) : repo_(repo), chunks_(std::move(chunks)) {
    starts_.reserve(chunks_.size() + 1);
    uint64_t off = 0;
    for (const auto& c : chunks_) {
      starts_.push_back(off);
      off += c.size;
    }
    starts_.push_back(off);
  }
  uint64_t size() const override { return starts_.back(); }

  Status ReadAt(uint64_t offset, size_t n, uint8_t* dst, size_t* got) override {
    *got = 0;
    while (n > 0 && offset < size()) {
      size_t i = std::upper_bound(starts_.begin(), starts_.end(), offset) - starts_.begin() - 1;
      if (i != cached_ && offset == starts_[i] && n >= chunks_[i].size) {
        // The whole chunk is wanted: decrypted straight into `dst`, no copy kept.
        STRATA_RETURN_IF_ERROR(repo_->ReadObjectInto(chunks_[i].id, ObjectKind::kData, {dst, chunks_[i].size}));
        dst += chunks_[i].size;
        n -= chunks_[i].size;
        offset += chunks_[i].size;
        *got += chunks_[i].size;
        continue;
      }
      if (i != cached_) {
        STRATA_ASSIGN_OR_RETURN(cache_, repo_->ReadObject(chunks_[i].id, ObjectKind::kData));
        if (cache_.size() != chunks_[i].size) {
          return Status::Corruption(fmt::format("chunk {} has {} bytes, its file expects {}",
                                                chunks_[i].id.Short(), cache_.size(), chunks_[i].size));
        }
        cached_ = i;
      }
      size_t in_chunk = offset - starts_[i];
      size_t take = std::min<uint64_t>(n, cache_.size() - in_chunk);
      std::memcpy(dst, cache_.data() + in_chunk, take);
      dst += take;
      n -= take;
      offset += take;
      *got += take;
    }
    return Status::OK();
  }

 private:
  RepositoryImpl* repo_;
  std::vector<ChunkRef> chunks_;
  std::vector<uint64_t> starts_;
  size_t cached_ = SIZE_MAX;
  std::string cache_;
};

Result<std::unique_ptr<crypto::KeySlot>> FindKeySlot(volume::Backend* backend, std::string_view passphrase,
                                                     crypto::MasterKeys* keys) {
  STRATA_ASSIGN_OR_RETURN(auto names, backend->List(volume::ObjectType::kKeySlot));
  if (names.empty()) return Status::Corruption("repository has no key slots: it cannot be opened");
  std::sort(names.begin(), names.end());
  Status last;
  for (const auto& name : names) {
    auto bytes = backend->Get(volume::ObjectType::kKeySlot, name);
    if (!bytes.ok()) { last = bytes.status(); continue; }
    auto slot = crypto::ParseKeySlot(*bytes);
    if (!slot.ok()) { last = slot.status().WithContext("key slot " + name); continue; }
    auto unwrapped = crypto::UnwrapMasterKeys(*slot, passphrase);
    if (unwrapped.ok()) {
      *keys = *unwrapped;
      return std::make_unique<crypto::KeySlot>(std::move(*slot));
    }
    if (unwrapped.status().code() != StatusCode::kUnauthenticated) last = unwrapped.status();
  }
  if (!last.ok() && last.code() != StatusCode::kUnauthenticated) {
    return Status::Unauthenticated("wrong passphrase: no key slot opens with it (a slot was also unreadable: " +
                                   last.ToString() + ")");
  }
  return Status::Unauthenticated("wrong passphrase: no key slot of this repository opens with it");
}

}  // namespace

RepositoryImpl::RepositoryImpl(const OpenOptions& options, std::unique_ptr<volume::Backend> backend,
                               RepositoryConfig config, crypto::MasterKeys keys, crypto::KeySlot slot)
    : options_(options),
      backend_(std::move(backend)),
      config_(std::move(config)),
      keys_(keys),
      slot_(std::move(slot)),
      aead_(keys.encryption),
      mac_(keys.mac),
      chunker_(config_.chunker, DeriveGearTable(keys.chunker)) {
  // A key of its own for the audit chain, so the MAC key itself never leaves the store.
  ObjectId derived = mac_.Hash(std::string_view("strata-audit-key-v1"));
  std::copy(derived.bytes.begin(), derived.bytes.end(), audit_key_.begin());
  ObjectId seed = mac_.Hash(std::string_view("strata-tree-pages-v1"));
  std::memcpy(&tree_seed_, seed.bytes.data(), sizeof(tree_seed_));
}

std::string RepositoryImpl::local_state_dir() {
  std::string dir = JoinPath(backend_->url(), "catalog");
  if (!options_.env->FileExists(dir)) (void)options_.env->CreateDirs(dir);
  return dir;
}

namespace {
std::string RecordAd(const std::string& name) { return "strata-record-v1:" + name; }
}  // namespace

Status RepositoryImpl::AppendRecord(std::string_view json, std::string_view key, bool name_may_be_lost) {
  if (key.size() > 64 || !std::all_of(key.begin(), key.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z');
      })) {
    return Status::InvalidArgument(fmt::format("record key '{}' is not 1-64 of [0-9a-z]", key));
  }
  std::string name = key.empty() ? NewRandomName() : fmt::format("{}-{}", key, NewRandomName());
  return backend_->Put(volume::ObjectType::kRecord, name, aead_.Seal(json, RecordAd(name)),
                       name_may_be_lost ? volume::Durability::kNameMayBeLost : volume::Durability::kDurable);
}

Result<std::vector<std::string>> RepositoryImpl::RecordNames() { return backend_->List(volume::ObjectType::kRecord); }

Result<std::string> RepositoryImpl::ReadRecord(const std::string& name) {
  STRATA_ASSIGN_OR_RETURN(std::string sealed, backend_->Get(volume::ObjectType::kRecord, name));
  auto plain = aead_.Open(sealed, RecordAd(name));
  if (!plain.ok()) return Status::Corruption(fmt::format("record {} failed authentication", name));
  return std::move(*plain);
}

Status RepositoryImpl::DeleteRecords(const std::vector<std::string>& names) {
  return backend_->DeleteAll(volume::ObjectType::kRecord, names);
}

Result<std::vector<std::string>> RepositoryImpl::Records() {
  for (int pass = 0;; ++pass) {
    STRATA_ASSIGN_OR_RETURN(auto names, backend_->List(volume::ObjectType::kRecord));
    std::vector<std::string> out;
    out.reserve(names.size());
    bool relist = false;
    for (const auto& name : names) {
      auto plain = ReadRecord(name);
      // Merged into a segment since the listing (which is then listed too): list again.
      if (!plain.ok() && plain.status().IsNotFound() && pass < kRelistPasses) {
        relist = true;
        break;
      }
      if (!plain.ok()) return plain.status();
      out.push_back(std::move(*plain));
    }
    if (!relist) return out;
  }
}

std::string RepositoryImpl::IndexCachePath() { return JoinPath(local_state_dir(), "index.cache"); }

Status RepositoryImpl::WriteIndexFiles(const std::vector<PackListing>& listings, std::vector<std::string>* names) {
  // Several files of bounded size rather than one: whoever loads, rewrites or garbage-collects
  // them holds one file at a time. A pack's listing is never split (loaders keep the first
  // listing of a pack).
  size_t i = 0;
  while (i < listings.size()) {
    std::vector<PackListing> part;
    uint64_t bytes = 8;
    while (i < listings.size()) {
      uint64_t more = 6 + listings[i].pack.size() + listings[i].entries.size() * kPackEntryRecordSize;
      if (!part.empty() && bytes + more > kMaxIndexFilePlain) break;
      bytes += more;
      part.push_back(listings[i++]);
    }
    std::string name = NewRandomName();
    STRATA_RETURN_IF_ERROR(backend_->Put(volume::ObjectType::kIndex, name, SerializeIndexFile(aead_, name, part)));
    if (names != nullptr) names->push_back(std::move(name));
  }
  return Status::OK();
}

Result<std::vector<std::string>> RepositoryImpl::CompactIndexFiles(const std::vector<std::string>& files,
                                                                   const std::vector<PackListing>& listings) {
  STRATA_ASSIGN_OR_RETURN(auto lock, RepositoryLock::Acquire(backend_.get(), /*exclusive=*/false));
  // A gc that ran since `files` were read may have removed packs they list: then leave them.
  STRATA_ASSIGN_OR_RETURN(auto present, backend_->List(volume::ObjectType::kIndex));
  std::sort(present.begin(), present.end());
  for (const auto& f : files) {
    if (!std::binary_search(present.begin(), present.end(), f)) {
      return Status::Aborted(fmt::format("index file {} was removed meanwhile", f));
    }
  }
  std::vector<std::string> written;
  STRATA_RETURN_IF_ERROR(WriteIndexFiles(listings, &written));
  STRATA_RETURN_IF_ERROR(backend_->DeleteAll(volume::ObjectType::kIndex, files).WithContext("removing compacted index files"));
  return written;
}

Status RepositoryImpl::LoadIndex(bool fold_all, bool trust_cache) {
  const uint64_t fold_entries = options_.index_cache_fold_entries;
  const std::string path = IndexCachePath();
  // Untrusted mode builds a cache of its own from the index files under a private name, maps
  // it, and only then publishes it: nothing another process writes meanwhile is used.
  const std::string write_path = trust_cache ? path : fmt::format("{}.new-{}", path, NewRandomName().substr(0, 12));
  bool no_write = false;
  for (int pass = 0;; ++pass) {
    STRATA_ASSIGN_OR_RETURN(auto names, backend_->List(volume::ObjectType::kIndex));
    std::sort(names.begin(), names.end());
    std::shared_ptr<const IndexCache> base;
    if (trust_cache && !no_write) {
      auto cache = IndexCache::Open(options_.env, path);
      // A cache that names an index file that is gone (gc, repair) is stale: rebuilt below.
      if (cache.ok() && std::includes(names.begin(), names.end(), (*cache)->index_files().begin(),
                                      (*cache)->index_files().end())) {
        base = std::move(*cache);
      }
    }
    std::vector<std::string> covered = base ? base->index_files() : std::vector<std::string>{};
    std::vector<std::string> uncovered;
    std::set_difference(names.begin(), names.end(), covered.begin(), covered.end(), std::back_inserter(uncovered));
    // Written (folded) on the first pass only, and never when disabled or after a failure.
    bool may_write = pass == 0 && !no_write && (fold_entries > 0 || fold_all || !trust_cache);
    std::vector<PackListing> delta;
    std::vector<std::string> delta_files;
    uint64_t delta_entries = 0;
    bool wrote = false;
    // Sorted runs of at most kIndexCacheBuildGroup entries, written while many index files
    // are read (bounded memory), then merged with the base and the rest in one pass.
    std::vector<std::unique_ptr<IndexCache>> runs;
    std::vector<std::string> run_paths, run_files;
    auto drop_runs = [&] {
      runs.clear();
      for (const auto& p : run_paths) (void)options_.env->DeleteFile(p);
      run_paths.clear();
    };
    auto write_run = [&]() -> bool {
      std::string run_path = fmt::format("{}.run-{}", write_path, NewRandomName().substr(0, 12));
      Status s = WriteIndexCache(options_.env, run_path, nullptr, delta, {});
      auto run = s.ok() ? IndexCache::Open(options_.env, run_path) : Result<std::unique_ptr<IndexCache>>(s);
      if (s.ok()) run_paths.push_back(run_path);
      if (!run.ok()) return false;
      runs.push_back(std::move(*run));
      run_files.insert(run_files.end(), delta_files.begin(), delta_files.end());
      delta.clear();
      delta_files.clear();
      delta_entries = 0;
      return true;
    };
    auto fold = [&]() -> bool {
      std::vector<const IndexCache*> sources;
      if (base) sources.push_back(base.get());
      for (const auto& r : runs) sources.push_back(r.get());
      std::vector<std::string> all = covered;
      all.insert(all.end(), run_files.begin(), run_files.end());
      all.insert(all.end(), delta_files.begin(), delta_files.end());
      Status s = WriteIndexCache(options_.env, write_path, sources, delta, std::move(all));
      auto reopened = s.ok() ? IndexCache::Open(options_.env, write_path) : Result<std::unique_ptr<IndexCache>>(s);
      drop_runs();
      if (!reopened.ok()) return false;
      wrote = true;
      base = std::move(*reopened);
      covered = base->index_files();
      run_files.clear();
      delta.clear();
      delta_files.clear();
      delta_entries = 0;
      return true;
    };
    bool failed = false;
    bool relist = false;
    for (const auto& name : uncovered) {
      auto bytes = backend_->Get(volume::ObjectType::kIndex, name);
      // Compacted (or replaced by gc) since the listing: list again.
      if (!bytes.ok() && bytes.status().IsNotFound() && pass < kRelistPasses) {
        relist = true;
        break;
      }
      if (!bytes.ok()) {
        drop_runs();
        return bytes.status();
      }
      auto packs = ParseIndexFile(aead_, name, *bytes);
      if (!packs.ok()) {
        drop_runs();
        return packs.status().WithContext("loading the chunk index (run `strata repair index` to rebuild it from the packs)");
      }
      for (auto& p : *packs) {
        delta_entries += p.entries.size();
        delta.push_back(std::move(p));
      }
      delta_files.push_back(name);
      if (may_write && delta_entries >= kIndexCacheBuildGroup && !write_run()) {
        failed = true;
        break;
      }
    }
    if (relist) {
      drop_runs();
      continue;
    }
    uint64_t base_size = base ? base->size() : 0;
    if (!failed && may_write && (!runs.empty() || !delta_files.empty()) &&
        (!runs.empty() || fold_all || !trust_cache || delta_entries >= std::max<uint64_t>(fold_entries, base_size / 8) ||
         delta_files.size() >= kIndexCacheFoldFiles)) {
      // Many small index files (one per put or commit): compacted into one, so that later
      // opens list fewer. Best effort: the cache below covers whichever files hold the entries.
      if (trust_cache && runs.empty() && delta_files.size() >= kIndexCacheFoldFiles) {
        auto compacted = CompactIndexFiles(delta_files, delta);
        if (compacted.ok()) delta_files = std::move(*compacted);
      }
      failed = !fold();
    }
    if (failed) {
      // Read-only state directory, disk full: load everything into memory instead.
      drop_runs();
      no_write = true;
      continue;
    }
    if (!trust_cache) {
      // Publish what was built (the mapping stays on this file whatever replaces it later).
      if (wrote && !options_.env->RenameFile(write_path, path).ok()) (void)options_.env->DeleteFile(write_path);
    } else if (wrote && !std::equal(covered.begin(), covered.end(), names.begin(), names.end())) {
      // Another process added index files while this one merged: look again.
      continue;
    }
    index_.Reset(std::move(base), delta);
    return Status::OK();
  }
}

Status RepositoryImpl::DistrustIndexCache() {
  if (cache_distrusted_.exchange(true)) return Status::Corruption("the index cache was already rebuilt");
  return LoadIndex(/*fold_all=*/false, /*trust_cache=*/false);
}

std::optional<Location> RepositoryImpl::Locate(const ObjectId& id, bool* cached) {
  auto loc = index_.Find(id);
  // An id absent from a damaged cache looks missing: rebuild it from the index files once.
  if (!loc && index_.base() && DistrustIndexCache().ok()) loc = index_.Find(id);
  if (loc && cached) *cached = loc->cached;
  return loc;
}

Result<std::string> RepositoryImpl::ReadObject(const ObjectId& id, ObjectKind kind) {
  std::string plain;
  STRATA_RETURN_IF_ERROR(ReadObjectInto(id, kind, [&](const PackEntry& e) -> Result<std::span<uint8_t>> {
    plain.resize(e.raw_size);  // bounded by the index parsers (kMaxObjectSize)
    return std::span<uint8_t>(reinterpret_cast<uint8_t*>(plain.data()), plain.size());
  }));
  return plain;
}

Status RepositoryImpl::ReadObjectInto(const ObjectId& id, ObjectKind kind, std::span<uint8_t> dst) {
  return ReadObjectInto(id, kind, [&](const PackEntry& e) -> Result<std::span<uint8_t>> {
    if (e.raw_size != dst.size()) {
      return Status::Corruption(fmt::format("object {} has {} bytes, {} were expected", id.Short(), e.raw_size, dst.size()));
    }
    return dst;
  });
}

Status RepositoryImpl::ReadObjectInto(const ObjectId& id, ObjectKind kind, const DestinationFn& dst) {
  bool cached = false;
  Status s = ReadObjectAt(id, kind, dst, &cached);
  // The location came from the index cache, which is not authenticated: a wrong one fails here.
  // Rebuild the cache from the index files once and try again.
  if (!s.ok() && cached && DistrustIndexCache().ok()) return ReadObjectAt(id, kind, dst, &cached);
  return s;
}

Status RepositoryImpl::ReadObjectAt(const ObjectId& id, ObjectKind kind, const DestinationFn& dst, bool* cached) {
  *cached = false;
  auto loc = Locate(id, cached);
  if (!loc) return Status::NotFound(fmt::format("object {} is not in the repository", id.Short()));
  if (loc->entry.kind != kind) {
    return Status::InvalidArgument(fmt::format("object {} is not a {}", id.Short(),
                                               ObjectKindName(kind)));
  }
  STRATA_ASSIGN_OR_RETURN(std::span<uint8_t> out, dst(loc->entry));
  thread_local std::string sealed;  // capacity reused from object to object
  sealed.resize(loc->entry.stored_size);
  STRATA_RETURN_IF_ERROR(backend_->ReadAt(volume::ObjectType::kPack, loc->pack, loc->entry.offset, sealed.size(),
                                          reinterpret_cast<uint8_t*>(sealed.data())));
  return OpenObject(aead_, loc->entry, loc->pack, AsBytes(sealed), out);
}

Result<Tree> RepositoryImpl::ReadTree(const ObjectId& id) {
  return ReadTreePaged(id, [this](const ObjectId& page) { return ReadObject(page, ObjectKind::kTree); });
}

Result<std::shared_ptr<const TreePage>> RepositoryImpl::ReadTreePageCached(const ObjectId& id) {
  {
    std::lock_guard<std::mutex> l(page_cache_mu_);
    auto it = page_cache_.find(id);
    if (it != page_cache_.end()) return it->second;
  }
  STRATA_ASSIGN_OR_RETURN(std::string bytes, ReadObject(id, ObjectKind::kTree));
  auto parsed = ParseTreePage(AsBytes(bytes));
  if (!parsed.ok()) return parsed.status().WithContext("tree " + id.Short());
  auto page = std::make_shared<const TreePage>(std::move(*parsed));
  std::lock_guard<std::mutex> l(page_cache_mu_);
  if (page_cache_order_.size() >= kPageCacheEntries) {
    page_cache_.erase(page_cache_order_.front());
    page_cache_order_.pop_front();
  }
  if (page_cache_.emplace(id, page).second) page_cache_order_.push_back(id);
  return page;
}

void RepositoryImpl::DropCachedPages() {
  std::lock_guard<std::mutex> l(page_cache_mu_);
  page_cache_.clear();
  page_cache_order_.clear();
}

Result<TreeEntry> RepositoryImpl::Lookup(const ObjectId& root, std::string_view path) {
  STRATA_ASSIGN_OR_RETURN(auto parts, SplitPath(path));
  TreeEntry entry;
  entry.type = EntryType::kDirectory;
  entry.subtree = root;
  entry.mode = 0755;
  std::string walked;
  for (const auto& part : parts) {
    if (entry.type != EntryType::kDirectory) {
      return Status::NotFound(fmt::format("'{}' is not a directory", walked));
    }
    STRATA_ASSIGN_OR_RETURN(auto next, FindEntryPaged(entry.subtree, part, [this](const ObjectId& page) {
                              return ReadTreePageCached(page);
                            }));
    walked += (walked.empty() ? "" : "/") + part;
    if (!next) return Status::NotFound(fmt::format("no '{}' in {}", walked, root.Short()));
    entry = std::move(*next);
  }
  return entry;
}

Result<std::unique_ptr<BlobReader>> RepositoryImpl::OpenFile(const ObjectId& id, std::string_view path) {
  auto loc = Locate(id, nullptr);
  if (!loc) return Status::NotFound(fmt::format("object {} is not in the repository", id.Short()));
  if (loc->entry.kind == ObjectKind::kChunkList) {
    if (!path.empty()) return Status::InvalidArgument(fmt::format("{} is a stream, not a tree: it has no paths", id.Short()));
    STRATA_ASSIGN_OR_RETURN(std::string bytes, ReadObject(id, ObjectKind::kChunkList));
    STRATA_ASSIGN_OR_RETURN(auto chunks, ParseChunkList(AsBytes(bytes)));
    return std::unique_ptr<BlobReader>(new ChunkedReader(this, std::move(chunks)));
  }
  STRATA_ASSIGN_OR_RETURN(TreeEntry e, Lookup(id, path));
  if (e.type != EntryType::kFile) {
    return Status::InvalidArgument(fmt::format("'{}' is not a file", path.empty() ? id.Short() : std::string(path)));
  }
  return std::unique_ptr<BlobReader>(new ChunkedReader(this, std::move(e.chunks)));
}

Result<std::vector<EntryInfo>> RepositoryImpl::List(const ObjectId& root, std::string_view path, bool recursive) {
  STRATA_ASSIGN_OR_RETURN(TreeEntry start, Lookup(root, path));
  std::vector<EntryInfo> out;
  auto info_of = [](const TreeEntry& e, std::string p) {
    EntryInfo i;
    i.path = std::move(p);
    i.type = ToInfoType(e.type);
    i.size = e.size;
    i.mode = e.mode;
    i.mtime_ns = e.mtime_ns;
    i.target = e.target;
    i.chunks = e.chunks.size();
    return i;
  };
  if (start.type != EntryType::kDirectory) {
    STRATA_ASSIGN_OR_RETURN(auto parts, SplitPath(path));
    out.push_back(info_of(start, parts.back()));
    return out;
  }
  std::function<Status(const ObjectId&, const std::string&)> walk = [&](const ObjectId& id, const std::string& prefix) -> Status {
    STRATA_ASSIGN_OR_RETURN(Tree tree, ReadTree(id));
    for (const auto& e : tree.entries) {
      std::string p = prefix.empty() ? e.name : prefix + "/" + e.name;
      out.push_back(info_of(e, p));
      if (recursive && e.type == EntryType::kDirectory) STRATA_RETURN_IF_ERROR(walk(e.subtree, p));
    }
    return Status::OK();
  };
  STRATA_RETURN_IF_ERROR(walk(start.subtree, ""));
  return out;
}

namespace {

// Restores one entry as `path` (which must not exist as anything but a directory we reuse).
// The walk, directories and symlinks stay on the calling thread; files are written by a pool, so
// a tree of many small files is not bound by one core's system calls (file creation is most of
// a checkout's cost). A directory's mode and mtime are set after everything inside it is
// written (Finish), since creating its entries changes its mtime.
class Restorer {
 public:
  Restorer(RepositoryImpl* repo, Env* env)
      : repo_(repo), env_(env), pool_(std::clamp<size_t>(std::thread::hardware_concurrency(), 2, 16), 256) {}

  Status Entry(const TreeEntry& e, const std::string& path) {
    if (failed_.load(std::memory_order_relaxed)) return Status::OK();  // Finish reports it
    switch (e.type) {
      case EntryType::kDirectory: {
        auto st = env_->Stat(path);
        if (st.ok() && st->type != FileType::kDirectory) {
          return Status::AlreadyExists(fmt::format("cannot restore directory '{}': a non-directory is in the way", path));
        }
        if (!st.ok()) STRATA_RETURN_IF_ERROR(env_->CreateDir(path));
        STRATA_ASSIGN_OR_RETURN(Tree tree, repo_->ReadTree(e.subtree));
        Batch batch;
        for (auto& child : tree.entries) {
          if (child.type != EntryType::kFile) {
            STRATA_RETURN_IF_ERROR(Entry(child, JoinPath(path, child.name)));
            continue;
          }
          batch.bytes += child.size;
          batch.files.emplace_back(std::move(child), JoinPath(path, child.name));
          if (batch.bytes >= kBatchBytes) Submit(std::exchange(batch, {}));
        }
        if (!batch.files.empty()) Submit(std::move(batch));
        dirs_.push_back({path, e.mode, e.mtime_ns});  // children first: post-order
        return Status::OK();
      }
      case EntryType::kSymlink: {
        if (env_->FileExists(path)) STRATA_RETURN_IF_ERROR(env_->DeleteFile(path));
        STRATA_RETURN_IF_ERROR(env_->CreateSymlink(e.target, path));
        return env_->SetMtime(path, e.mtime_ns);
      }
      case EntryType::kFile: {
        Batch batch;
        batch.files.emplace_back(e, path);
        Submit(std::move(batch));
        return Status::OK();
      }
    }
    return Status::Internal("unknown entry type");
  }

  // Waits for the files, then sets the directories' modes and mtimes; the first error of all.
  Status Finish(Status walk) {
    pool_.Wait();
    if (failed_) return error_;
    STRATA_RETURN_IF_ERROR(walk);
    for (const auto& d : dirs_) {
      STRATA_RETURN_IF_ERROR(env_->SetMode(d.path, d.mode));
      STRATA_RETURN_IF_ERROR(env_->SetMtime(d.path, d.mtime_ns));
    }
    return Status::OK();
  }

  uint64_t bytes() const { return bytes_.load(); }

 private:
  // Files of one directory, written by one task: tasks in different directories do not
  // contend for a directory's lock, which costs more than it gains for small files. A batch
  // closes at kBatchBytes, so large files still spread over the pool.
  static constexpr uint64_t kBatchBytes = 4u << 20;
  struct Batch {
    std::vector<std::pair<TreeEntry, std::string>> files;
    uint64_t bytes = 0;
  };

  void Submit(Batch batch) {
    pool_.Submit([this, batch = std::move(batch)] {
      for (const auto& [e, path] : batch.files) {
        if (failed_.load(std::memory_order_relaxed)) return;
        Status s = WriteFile(e, path);
        if (!s.ok()) {
          std::lock_guard<std::mutex> l(mu_);
          if (!failed_.exchange(true)) error_ = s.WithContext(fmt::format("restoring '{}'", path));
          return;
        }
        bytes_.fetch_add(e.size, std::memory_order_relaxed);
      }
    });
  }

  // A pending file: an interrupted restore never leaves a partial file under the real name.
  Status WriteFile(const TreeEntry& e, const std::string& path) {
    STRATA_ASSIGN_OR_RETURN(auto out, env_->NewPendingFile(path));
    ChunkedReader reader(repo_, e.chunks);
    std::string buf;
    uint64_t off = 0;
    for (const auto& c : e.chunks) {
      buf.resize(c.size);
      size_t got = 0;
      STRATA_RETURN_IF_ERROR(reader.ReadAt(off, c.size, reinterpret_cast<uint8_t*>(buf.data()), &got));
      if (got != c.size) return Status::Corruption("short read");
      STRATA_RETURN_IF_ERROR(out->Append(AsBytes(buf)));
      off += c.size;
    }
    return out->Publish(e.mode, e.mtime_ns);
  }

  struct Dir {
    std::string path;
    uint32_t mode;
    int64_t mtime_ns;
  };
  RepositoryImpl* repo_;
  Env* env_;
  std::vector<Dir> dirs_;
  std::atomic<uint64_t> bytes_{0};
  std::atomic<bool> failed_{false};
  std::mutex mu_;
  Status error_;
  ThreadPool pool_;  // last: destroyed (joined) first, while the members its tasks use live
};

}  // namespace

Status RepositoryImpl::Restore(const ObjectId& tree, std::string_view path, const std::string& dest,
                               uint64_t* bytes_written) {
  STRATA_ASSIGN_OR_RETURN(TreeEntry e, Lookup(tree, path));
  Env* env = options_.env;
  if (!env->FileExists(dest)) STRATA_RETURN_IF_ERROR(env->CreateDirs(dest));
  Restorer r(this, env);
  Status s;
  if (path.empty() || e.type == EntryType::kDirectory) {
    // `get ID DEST` fills DEST with the tree's entries; `get ID:dir DEST` creates DEST/dir.
    std::string target = dest;
    if (!path.empty()) {
      STRATA_ASSIGN_OR_RETURN(auto parts, SplitPath(path));
      if (!parts.empty()) target = JoinPath(dest, parts.back());
    }
    s = r.Entry(e, target);
  } else {
    STRATA_ASSIGN_OR_RETURN(auto parts, SplitPath(path));
    s = r.Entry(e, JoinPath(dest, parts.back()));
  }
  s = r.Finish(std::move(s));
  if (bytes_written) *bytes_written = r.bytes();
  return s;
}

Result<ObjectId> RepositoryImpl::ResolveId(std::string_view text) {
  if (text.size() == 2 * ObjectId::kSize) {
    STRATA_ASSIGN_OR_RETURN(ObjectId id, ObjectId::FromHex(text));
    if (!index_.Contains(id)) return Status::NotFound(fmt::format("no object {} in this repository", text));
    return id;
  }
  if (text.size() < 4) return Status::InvalidArgument(fmt::format("id prefix '{}' is too short (4 hex digits at least)", text));
  for (char c : text) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return Status::InvalidArgument(fmt::format("'{}' is not a hex id", text));
  }
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
  std::vector<ObjectId> found;
  for (const auto& id : index_.FindByPrefix(lower, SIZE_MAX)) {
    auto loc = index_.Find(id);
    if (loc && loc->entry.kind != ObjectKind::kData) found.push_back(id);
  }
  if (found.empty()) return Status::NotFound(fmt::format("no tree or stream with an id starting with '{}'", text));
  if (found.size() > 1) {
    return Status::InvalidArgument(fmt::format("id prefix '{}' is ambiguous ({} matches); give more digits", text, found.size()));
  }
  return found[0];
}

Status RepositoryImpl::WriteRoot(const RootInfo& root) {
  nlohmann::json j = {{"id", root.id.ToHex()}, {"stream", root.is_stream}, {"time", root.time_unix},
                      {"host", root.host}, {"paths", root.paths}, {"bytes", root.bytes}, {"files", root.files}};
  return backend_->Put(volume::ObjectType::kRoot, root.name, aead_.Seal(j.dump(), RootAd(root.name)));
}

Result<std::vector<RootInfo>> RepositoryImpl::Roots() {
  STRATA_ASSIGN_OR_RETURN(auto names, backend_->List(volume::ObjectType::kRoot));
  std::vector<RootInfo> roots;
  for (const auto& name : names) {
    STRATA_ASSIGN_OR_RETURN(std::string sealed, backend_->Get(volume::ObjectType::kRoot, name));
    auto plain = aead_.Open(sealed, RootAd(name));
    if (!plain.ok()) return Status::Corruption(fmt::format("root {} failed authentication", name));
    auto j = nlohmann::json::parse(*plain, nullptr, false);
    try {
      RootInfo r;
      r.name = name;
      STRATA_ASSIGN_OR_RETURN(r.id, ObjectId::FromHex(j.at("id").get<std::string>()));
      r.is_stream = j.at("stream").get<bool>();
      r.time_unix = j.at("time").get<int64_t>();
      r.host = j.at("host").get<std::string>();
      r.paths = j.at("paths").get<std::vector<std::string>>();
      r.bytes = j.at("bytes").get<uint64_t>();
      r.files = j.at("files").get<uint64_t>();
      roots.push_back(std::move(r));
    } catch (const nlohmann::json::exception&) {
      return Status::Corruption(fmt::format("root {} is malformed", name));
    }
  }
  std::sort(roots.begin(), roots.end(), [](const RootInfo& a, const RootInfo& b) {
    return std::tie(a.time_unix, a.name) < std::tie(b.time_unix, b.name);
  });
  return roots;
}

Result<RepositoryStats> RepositoryImpl::Stats() {
  RepositoryStats st;
  // Puts running side by side may each store the same object: count every object once.
  std::unordered_set<ObjectId, ObjectIdHash> seen;
  for (const auto& p : index_.Packs()) {
    ++st.packs;
    for (const auto& e : p.entries) {
      if (!seen.insert(e.id).second) continue;
      ++st.objects;
      if (e.kind == ObjectKind::kData) {
        ++st.data_chunks;
        st.unique_bytes += e.raw_size;
      }
      if (e.kind == ObjectKind::kTree) ++st.trees;
    }
    STRATA_ASSIGN_OR_RETURN(auto info, backend_->Stat(volume::ObjectType::kPack, p.pack));
    st.stored_bytes += info.size;
  }
  STRATA_ASSIGN_OR_RETURN(auto index_files, backend_->List(volume::ObjectType::kIndex));
  st.index_files = index_files.size();
  STRATA_ASSIGN_OR_RETURN(auto roots, Roots());
  st.roots = roots.size();
  for (const auto& r : roots) st.logical_bytes += r.bytes;
  return st;
}

Result<std::vector<KeySlotInfo>> RepositoryImpl::ListKeys() {
  STRATA_ASSIGN_OR_RETURN(auto names, backend_->List(volume::ObjectType::kKeySlot));
  std::vector<KeySlotInfo> out;
  std::lock_guard<std::mutex> l(keys_mu_);
  for (const auto& name : names) {
    STRATA_ASSIGN_OR_RETURN(std::string bytes, backend_->Get(volume::ObjectType::kKeySlot, name));
    STRATA_ASSIGN_OR_RETURN(crypto::KeySlot slot, crypto::ParseKeySlot(bytes));
    out.push_back({slot.id, slot.label, slot.created_unix, slot.id == slot_.id});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.created_unix < b.created_unix; });
  return out;
}

Result<std::string> RepositoryImpl::AddKey(std::string_view passphrase, std::string label) {
  if (passphrase.empty()) return Status::InvalidArgument("the new passphrase is empty");
  crypto::KdfParams kdf;
  {
    std::lock_guard<std::mutex> l(keys_mu_);
    kdf = slot_.kdf;
  }
  STRATA_ASSIGN_OR_RETURN(crypto::KeySlot slot,
                          crypto::WrapMasterKeys(keys_, passphrase, kdf, label.empty() ? UserAtHost() : label));
  STRATA_RETURN_IF_ERROR(backend_->Put(volume::ObjectType::kKeySlot, slot.id, crypto::SerializeKeySlot(slot)));
  return slot.id;
}

Status RepositoryImpl::RemoveKey(std::string_view slot_id, bool allow_current) {
  STRATA_ASSIGN_OR_RETURN(auto names, backend_->List(volume::ObjectType::kKeySlot));
  if (std::find(names.begin(), names.end(), slot_id) == names.end()) {
    return Status::NotFound(fmt::format("no key slot '{}'", slot_id));
  }
  if (names.size() == 1) return Status::FailedPrecondition("refusing to remove the last key slot: the repository would become unreadable");
  {
    std::lock_guard<std::mutex> l(keys_mu_);
    if (slot_id == slot_.id && !allow_current) {
      return Status::FailedPrecondition("refusing to remove the key slot in use; open the repository with another passphrase to remove it");
    }
  }
  STRATA_RETURN_IF_ERROR(backend_->Delete(volume::ObjectType::kKeySlot, std::string(slot_id)));
  // Entries made with that slot are refused anyway (OpenUnlocked checks the slot); remove ours.
  return RemoveCachedKeys(config_.id);
}

Status RepositoryImpl::Unlock(int64_t seconds) {
  if (seconds <= 0) return Status::InvalidArgument("the unlock duration must be positive");
  CachedKeys k;
  k.repo_id = config_.id;
  {
    std::lock_guard<std::mutex> l(keys_mu_);
    k.slot_id = slot_.id;
  }
  k.expires_unix = static_cast<int64_t>(std::time(nullptr)) + seconds;
  k.keys = keys_;
  return SaveCachedKeys(k);
}

Status RepositoryImpl::ChangePassphrase(std::string_view new_passphrase) {
  if (new_passphrase.empty()) return Status::InvalidArgument("the new passphrase is empty");
  crypto::KeySlot old;
  {
    std::lock_guard<std::mutex> l(keys_mu_);
    old = slot_;
  }
  STRATA_ASSIGN_OR_RETURN(crypto::KeySlot slot, crypto::WrapMasterKeys(keys_, new_passphrase, old.kdf, old.label));
  // The new slot is durable before the old one goes: a crash in between leaves both usable.
  STRATA_RETURN_IF_ERROR(backend_->Put(volume::ObjectType::kKeySlot, slot.id, crypto::SerializeKeySlot(slot)));
  STRATA_RETURN_IF_ERROR(backend_->Delete(volume::ObjectType::kKeySlot, old.id));
  std::lock_guard<std::mutex> l(keys_mu_);
  slot_ = std::move(slot);
  return RemoveCachedKeys(config_.id);
}

}  // namespace strata::store

namespace strata {

Result<std::unique_ptr<Repository>> Repository::Create(const std::string& url, std::string_view passphrase,
                                                       const InitOptions& init, const OpenOptions& options) {
  using namespace store;
  if (passphrase.empty()) return Status::InvalidArgument("the passphrase is empty");
  RepositoryConfig config;
  config.chunker.min_size = init.chunk_min;
  config.chunker.avg_size = init.chunk_avg;
  config.chunker.max_size = init.chunk_max;
  STRATA_RETURN_IF_ERROR(config.chunker.Validate());
  if (init.compression_level < 0 || init.compression_level > 22) {
    return Status::InvalidArgument("compression level must be 0 (off) to 22");
  }
  if (init.pack_size < (1u << 20) || init.pack_size > (1u << 30)) {
    return Status::InvalidArgument("pack size must be between 1 MiB and 1 GiB");
  }
  config.compression_level = init.compression_level;
  config.pack_size = init.pack_size;
  config.id = NewRandomName();
  config.created_unix = static_cast<int64_t>(std::time(nullptr));
  crypto::KdfParams kdf{init.kdf_ops, init.kdf_mem};
  crypto::MasterKeys keys = crypto::MasterKeys::Generate();
  STRATA_ASSIGN_OR_RETURN(crypto::KeySlot slot,
                          crypto::WrapMasterKeys(keys, passphrase, kdf, init.key_label.empty() ? UserAtHost() : init.key_label));

  STRATA_ASSIGN_OR_RETURN(auto backend, volume::CreateLocalBackend(options.env, url));
  STRATA_RETURN_IF_ERROR(backend->Put(volume::ObjectType::kKeySlot, slot.id, crypto::SerializeKeySlot(slot)));
  crypto::KeyedHash mac(keys.mac);
  // The config is written last: a directory without one is not (yet) a repository.
  STRATA_RETURN_IF_ERROR(backend->Put(volume::ObjectType::kConfig, "config", SerializeConfig(config, mac)));
  return std::unique_ptr<Repository>(new RepositoryImpl(options, std::move(backend), config, keys, std::move(slot)));
}

Result<std::unique_ptr<Repository>> Repository::Open(const std::string& url, std::string_view passphrase,
                                                     const OpenOptions& options) {
  using namespace store;
  STRATA_ASSIGN_OR_RETURN(auto backend, volume::OpenLocalBackend(options.env, url));
  STRATA_ASSIGN_OR_RETURN(std::string config_bytes, backend->Get(volume::ObjectType::kConfig, "config"));
  auto parsed = ParseConfig(config_bytes);
  if (!parsed.ok()) return parsed.status().WithContext(fmt::format("repository '{}'", url));
  crypto::MasterKeys keys;
  STRATA_ASSIGN_OR_RETURN(auto slot, FindKeySlot(backend.get(), passphrase, &keys));
  crypto::KeyedHash mac(keys.mac);
  STRATA_RETURN_IF_ERROR(CheckConfigMac(*parsed, mac).WithContext(fmt::format("repository '{}'", url)));
  // Packs spread over volumes are read and written through the redundancy layer; a
  // repository without volumes keeps the local backend alone.
  if (parsed->config.has_volumes()) {
    backend = std::make_unique<volume::RedundantBackend>(options.env, std::move(backend), parsed->config.layout());
  }
  auto repo = std::make_unique<RepositoryImpl>(options, std::move(backend), parsed->config, keys, std::move(*slot));
  STRATA_RETURN_IF_ERROR(repo->LoadIndex());
  return std::unique_ptr<Repository>(std::move(repo));
}

Result<std::unique_ptr<Repository>> Repository::OpenUnlocked(const std::string& url, const OpenOptions& options) {
  using namespace store;
  STRATA_ASSIGN_OR_RETURN(auto backend, volume::OpenLocalBackend(options.env, url));
  STRATA_ASSIGN_OR_RETURN(std::string config_bytes, backend->Get(volume::ObjectType::kConfig, "config"));
  auto parsed = ParseConfig(config_bytes);
  if (!parsed.ok()) return parsed.status().WithContext(fmt::format("repository '{}'", url));
  STRATA_ASSIGN_OR_RETURN(CachedKeys cached, LoadCachedKeys(parsed->config.id, static_cast<int64_t>(std::time(nullptr))));
  // Honoured only while the slot that was opened still exists: removing a key slot (or changing
  // its passphrase, which replaces it) revokes the cache entries made with it.
  auto slot_bytes = backend->Get(volume::ObjectType::kKeySlot, cached.slot_id);
  if (!slot_bytes.ok()) {
    (void)RemoveCachedKeys(parsed->config.id);
    return Status::NotFound("the unlocked keys were made with a key slot that no longer exists");
  }
  STRATA_ASSIGN_OR_RETURN(crypto::KeySlot slot, crypto::ParseKeySlot(*slot_bytes));
  crypto::KeyedHash mac(cached.keys.mac);
  // Keys that do not authenticate the config are not this repository's (or were altered).
  if (!CheckConfigMac(*parsed, mac).ok()) {
    return Status::NotFound("the unlocked keys do not open this repository");
  }
  if (parsed->config.has_volumes()) {
    backend = std::make_unique<volume::RedundantBackend>(options.env, std::move(backend), parsed->config.layout());
  }
  auto repo = std::make_unique<RepositoryImpl>(options, std::move(backend), parsed->config, cached.keys, std::move(slot));
  STRATA_RETURN_IF_ERROR(repo->LoadIndex());
  return std::unique_ptr<Repository>(std::move(repo));
}

Status Repository::Lock(const std::string& url, const OpenOptions& options) {
  using namespace store;
  STRATA_ASSIGN_OR_RETURN(auto backend, volume::OpenLocalBackend(options.env, url));
  STRATA_ASSIGN_OR_RETURN(std::string config_bytes, backend->Get(volume::ObjectType::kConfig, "config"));
  auto parsed = ParseConfig(config_bytes);
  if (!parsed.ok()) return parsed.status().WithContext(fmt::format("repository '{}'", url));
  return RemoveCachedKeys(parsed->config.id);
}

}  // namespace strata
