// The write path: chunk -> keyed hash -> dedup -> compress -> encrypt -> pack.
//
// One thread reads and chunks; a pool hashes, compresses, encrypts and appends to packs, each
// worker to a pack of its own so appends never wait on each other. Memory is bounded by the
// pool's queue (a few chunks per worker). Visibility follows durability: packs are committed
// (fsync + rename + dir fsync) first, then the index files naming them (parts of at most 64 MiB),
// then the root record.
// A crash before the root leaves only unreferenced packs, which verify reports as leftovers.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <functional>
#include <list>
#include <mutex>
#include <thread>
#include <unordered_set>

#include <fmt/format.h>

#include "base/endian.h"
#include "base/logging.h"
#include "base/sysinfo.h"
#include "base/progress.h"
#include "base/thread_pool.h"
#include "store/lock.h"
#include "store/repository_impl.h"
#include "store/tree_pages.h"

namespace strata::store {

namespace {

// Stores objects for one put, deduplicated against the index and against itself.
class PutSession {
 public:
  // `pack_suffix`: the redundancy class of its packs (volume/backend.h, PackClass).
  PutSession(RepositoryImpl* repo, size_t threads, std::string pack_suffix = {})
      : repo_(repo),
        pack_suffix_(std::move(pack_suffix)),
        threads_(ThreadsOrCores(threads)),
        pool_(threads_, /*max_queued=*/2 * std::max<size_t>(threads_, 2)) {}
  // A session dropped without Commit (a failed put, an abandoned batch) may still have chunks
  // queued: they are skipped, and the tasks finish before the members they use are destroyed.
  ~PutSession() {
    failed_ = true;
    pool_.Wait();
    sealers_.Wait();
  }

  size_t threads() const { return threads_; }

  // Hashes and stores `data` in the background; writes the chunk's id into `*ref` (which must
  // stay valid until Finish) and its size at once. `data` goes back to the buffer pool after.
  void AddChunkAsync(std::string data, ChunkRef* ref) {
    ref->size = static_cast<uint32_t>(data.size());
    pool_.Submit([this, ref, data = std::move(data)]() mutable {
      if (!failed_.load(std::memory_order_relaxed)) {
        ref->id = repo_->mac_.Hash(AsBytes(data));
        Store(ref->id, ObjectKind::kData, data);
      }
      ReleaseBuffer(std::move(data));
    });
  }

  // A buffer for the next chunk. Chunks are up to several MiB: a fresh allocation each time
  // would be a fresh mmap (glibc maps blocks this large directly), page faults on every byte
  // and an munmap, costing more than hashing the chunk. The pool holds at most the chunks in
  // flight, so it adds no memory beyond the queue's bound.
  std::string TakeBuffer() {
    std::lock_guard<std::mutex> l(buffers_mu_);
    if (buffers_.empty()) return std::string();
    std::string b = std::move(buffers_.back());
    buffers_.pop_back();
    return b;
  }

  // Stores a directory (paged when large, tree_pages.h) and returns its id.
  ObjectId AddTree(const Tree& tree) {
    return WriteTreePaged(tree, repo_->tree_seed_, [this](std::string_view bytes) { return AddObject(ObjectKind::kTree, bytes); });
  }

  // Stores a small object (tree, chunk list) synchronously and returns its id.
  ObjectId AddObject(ObjectKind kind, std::string_view data, uint32_t min_saving = codec::kDefaultMinSaving) {
    ObjectId id = repo_->mac_.Hash(AsBytes(data));
    Store(id, kind, data, min_saving);
    return id;
  }

  // Waits until every queued chunk is stored (their ids are then set).
  Status Wait() {
    pool_.Wait();
    return status();
  }

  // Waits, commits the open packs, then the index files that list every pack of the session.
  // The session's objects are durable and indexed when it returns OK.
  Status Commit() {
    Status waited = Wait();
    if (waited.ok()) {
      for (auto& w : idle_writers_) {
        if (w->count() > 0) SealPack(std::move(w));
      }
    }
    idle_writers_.clear();
    sealers_.Wait();
    STRATA_RETURN_IF_ERROR(status());
    if (sealed_.empty()) return Status::OK();
    STRATA_RETURN_IF_ERROR(repo_->WriteIndexFiles(sealed_));
    for (const auto& p : sealed_) repo_->index_.AddPack(p.pack, p.entries);
    sealed_.clear();
    return Status::OK();
  }

  PutStats& stats() { return stats_; }
  const PutStats& stats() const { return stats_; }
  // Counts a file read in full (called by the reader threads).
  void AddFile(uint64_t bytes) {
    std::lock_guard<std::mutex> l(mu_);
    ++stats_.files;
    stats_.bytes += bytes;
  }
  Status status() {
    std::lock_guard<std::mutex> l(mu_);
    return status_;
  }
  void Fail(Status s) {
    std::lock_guard<std::mutex> l(mu_);
    if (status_.ok()) status_ = std::move(s);
    failed_ = true;
  }

 private:
  void ReleaseBuffer(std::string b) {
    b.clear();
    std::lock_guard<std::mutex> l(buffers_mu_);
    buffers_.push_back(std::move(b));
  }

  void Store(const ObjectId& id, ObjectKind kind, std::string_view data, uint32_t min_saving = codec::kDefaultMinSaving) {
    {
      std::lock_guard<std::mutex> l(mu_);
      ++stats_.chunks;
      if (repo_->index_.Contains(id) || !pending_.insert(id).second) return;
      ++stats_.new_chunks;
      stats_.new_bytes += data.size();
    }
    thread_local std::string sealed;
    PackEntry entry;
    SealObject(repo_->aead_, id, kind, AsBytes(data), repo_->config_.compression_level, min_saving, &sealed, &entry);
    std::unique_ptr<PackWriter> writer = TakeWriter();
    if (!writer) return;
    Status s = writer->Add(entry, AsBytes(sealed));
    if (!s.ok()) return Fail(s.WithContext("writing pack " + writer->name()));
    if (writer->size() >= repo_->config_.pack_size) {
      SealPack(std::move(writer));
    } else {
      std::lock_guard<std::mutex> l(mu_);
      idle_writers_.push_back(std::move(writer));
    }
  }

  std::unique_ptr<PackWriter> TakeWriter() {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!idle_writers_.empty()) {
        auto w = std::move(idle_writers_.back());
        idle_writers_.pop_back();
        return w;
      }
    }
    std::string name = NewRandomName() + pack_suffix_;
    auto out = repo_->backend_->Create(volume::ObjectType::kPack, name);
    if (!out.ok()) {
      Fail(out.status().WithContext("creating a pack"));
      return nullptr;
    }
    return std::make_unique<PackWriter>(&repo_->aead_, name, std::move(*out));
  }

  // Hands a full pack to the sealers (trailer, then fsync and rename, or the fragments of its
  // volumes), so that the worker goes on hashing and sealing objects meanwhile; Commit waits
  // for them. Submit blocks while two packs already wait, which bounds the memory in flight.
  void SealPack(std::unique_ptr<PackWriter> writer) {
    std::shared_ptr<PackWriter> w(std::move(writer));
    sealers_.Submit([this, w] {
      if (failed_.load(std::memory_order_relaxed)) return;
      Status s = w->Finish();
      if (!s.ok()) return Fail(s.WithContext("committing pack " + w->name()));
      std::lock_guard<std::mutex> l(mu_);
      stats_.stored_bytes += w->size();
      sealed_.push_back({w->name(), w->entries()});
    });
  }

  RepositoryImpl* repo_;
  std::string pack_suffix_;
  size_t threads_;
  ThreadPool pool_;
  std::mutex mu_;
  Status status_;
  std::atomic<bool> failed_{false};
  std::unordered_set<ObjectId, ObjectIdHash> pending_;
  std::vector<std::unique_ptr<PackWriter>> idle_writers_;
  std::vector<PackListing> sealed_;
  PutStats stats_;
  std::mutex buffers_mu_;
  std::vector<std::string> buffers_;
  ThreadPool sealers_{2, 2};  // last: its tasks use the members above
};

// A node of the tree being put, kept until all its chunks are hashed.
struct Node {
  TreeEntry entry;
  std::string source;                       // path on disk
  std::vector<std::unique_ptr<Node>> children;
  // Stable addresses while workers fill in ids; a list costs one small node per chunk, where
  // a deque would allocate a 512-byte block even for the one chunk of a small file.
  std::list<ChunkRef> chunks;
  // The previously stored entry this one is known to equal, without reading anything: a file
  // whose size and mtime match (its chunks are taken from there), a directory whose entries all
  // match (its subtree is reused whole; its children are dropped), a symlink with the same
  // target. Points into the parent's `previous` or at the caller's reuse entry.
  const TreeEntry* same_as = nullptr;
  std::unique_ptr<Tree> previous;  // a directory's previously stored tree, while it is needed
};

// Whether a scanned node equals `prev` in everything its parent's tree stores of it.
bool SameEntry(const Node& node, const TreeEntry& prev) {
  const TreeEntry& e = node.entry;
  return node.same_as == &prev && e.name == prev.name && e.type == prev.type && e.mode == prev.mode &&
         e.mtime_ns == prev.mtime_ns && e.size == prev.size;
}

// Reads a stream in windows of at least max_size and cuts it into chunks. The window is
// allocated once and reused for every file (Reset), so a tree of small files does not
// allocate and fault in a window of twice the maximum chunk size per file.
class StreamChunker {
 public:
  explicit StreamChunker(const Chunker& chunker) : chunker_(chunker) {
    buf_.resize(2 * static_cast<size_t>(std::max(chunker.params().max_size, chunker.params().fixed_size)));
  }
  StreamChunker(const Chunker& chunker, SequentialFile* in) : StreamChunker(chunker) { Reset(in); }

  // Starts reading `in` from its current position.
  void Reset(SequentialFile* in) {
    in_ = in;
    pos_ = end_ = 0;
    eof_ = false;
  }

  // Sets *chunk to the next chunk; returns false at the end.
  Result<bool> Next(std::string* chunk) {
    size_t want = buf_.size() / 2;
    if (end_ - pos_ < want && !eof_) {
      std::memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
      end_ -= pos_;
      pos_ = 0;
      while (end_ < buf_.size() && !eof_) {
        size_t got = 0;
        STRATA_RETURN_IF_ERROR(in_->Read(buf_.size() - end_, reinterpret_cast<uint8_t*>(buf_.data()) + end_, &got));
        if (got == 0) eof_ = true;
        end_ += got;
      }
    }
    if (pos_ == end_) return false;
    size_t cut = chunker_.NextCut(reinterpret_cast<const uint8_t*>(buf_.data()) + pos_, end_ - pos_, eof_);
    chunk->assign(buf_.data() + pos_, cut);
    pos_ += cut;
    return true;
  }

 private:
  const Chunker& chunker_;
  SequentialFile* in_ = nullptr;
  std::string buf_;
  size_t pos_ = 0, end_ = 0;
  bool eof_ = false;
};

// A file modified within this window of the scan may change again within the same mtime
// tick, so its size and mtime prove nothing (git's "racy" entries): it is read again.
constexpr int64_t kRacyWindowNs = 2'000'000'000;

// What the directories of one scan share: the repository, and helper threads that scan
// subdirectories beside the caller. A rescan of many small files is mostly stat calls, which
// cost the kernel's path lookups on a warm cache and the disk's latency on a cold one; git
// spreads its index refresh over threads too (core.preloadIndex). A subdirectory goes to a
// helper only when one is free (reserved first), so a directory waiting for its subdirectories
// never waits on a task that no thread will run; otherwise the caller scans it itself.
class ScanContext {
 public:
  ScanContext(RepositoryImpl* repo, size_t helpers) : repo_(repo), free_(static_cast<int>(helpers)), helpers_(helpers) {}
  RepositoryImpl* repo() const { return repo_; }

  // Runs `task` on a free helper and returns true, or returns false when none is free.
  bool TryRun(std::function<void()> task) {
    int free = free_.load();
    do {
      if (free <= 0) return false;
    } while (!free_.compare_exchange_weak(free, free - 1));
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!pool_) pool_ = std::make_unique<ThreadPool>(helpers_, helpers_);  // started by the first subdirectory
    }
    pool_->Submit([this, task = std::move(task)] {
      task();
      free_.fetch_add(1);
    });
    return true;
  }

 private:
  RepositoryImpl* repo_;
  std::atomic<int> free_;
  size_t helpers_;
  std::mutex mu_;
  std::unique_ptr<ThreadPool> pool_;
};

// Subdirectory scans handed to helpers by one directory, each with its own totals; the
// directory waits for them (Join) before it compares itself with the stored tree.
class ScanGroup {
 public:
  struct Part {
    uint64_t total = 0;
    PutStats stats;
    Status status;
  };
  ~ScanGroup() { Join(); }
  Part* Add() {
    std::lock_guard<std::mutex> l(mu_);
    ++pending_;
    return &parts_.emplace_back();
  }
  void Done() {
    std::lock_guard<std::mutex> l(mu_);
    if (--pending_ == 0) done_.notify_all();
  }
  void Cancel() { Done(); }  // an Add whose task did not start
  void Join() {
    std::unique_lock<std::mutex> l(mu_);
    done_.wait(l, [&] { return pending_ == 0; });
  }
  // Adds the parts' totals to the directory's; the first error of a part, if any.
  Status Merge(uint64_t* total, PutStats* stats) {
    Join();
    Status first;
    for (auto& p : parts_) {
      if (!p.status.ok() && first.ok()) first = p.status;
      *total += p.total;
      stats->unchanged_files += p.stats.unchanged_files;
      stats->unchanged_bytes += p.stats.unchanged_bytes;
      for (auto& s : p.stats.skipped) stats->skipped.push_back(std::move(s));
    }
    return first;
  }

 private:
  std::mutex mu_;
  std::condition_variable done_;
  size_t pending_ = 0;
  std::deque<Part> parts_;  // stable addresses
};

// Builds the in-memory tree of `path` (stat only; contents are read later). `info` is the
// path's lstat: each entry is stat'ed once, when its parent is listed (a rescan of small files
// is mostly stat calls). `reuse`, when given, is the entry previously stored from the same path:
// files whose size and mtime match it take its chunks and are not read.
Status ScanEntry(ScanContext* ctx, const std::string& path, std::string name, const FileInfo& info,
                 const TreeEntry* reuse, Node* node, uint64_t* total, PutStats* stats) {
  RepositoryImpl* repo = ctx->repo();
  Env* env = repo->options_.env;
  node->source = path;
  node->entry.name = std::move(name);
  node->entry.mode = info.mode & 07777;
  node->entry.mtime_ns = info.mtime_ns;
  switch (info.type) {
    case FileType::kRegular:
      node->entry.type = EntryType::kFile;
      node->entry.size = info.size;
      if (reuse && reuse->type == EntryType::kFile && reuse->size == info.size && reuse->mtime_ns == info.mtime_ns &&
          env->NowMicros() * 1000 - info.mtime_ns > kRacyWindowNs) {
        node->same_as = reuse;
        ++stats->unchanged_files;
        stats->unchanged_bytes += info.size;
        return Status::OK();
      }
      *total += info.size;
      return Status::OK();
    case FileType::kSymlink: {
      node->entry.type = EntryType::kSymlink;
      STRATA_ASSIGN_OR_RETURN(node->entry.target, env->ReadLink(path));
      if (node->entry.target.size() > 65535) return Status::InvalidArgument(fmt::format("symlink '{}' target too long", path));
      if (reuse && reuse->type == EntryType::kSymlink && reuse->target == node->entry.target) node->same_as = reuse;
      return Status::OK();
    }
    case FileType::kDirectory: {
      node->entry.type = EntryType::kDirectory;
      node->previous = std::make_unique<Tree>();
      const Tree& previous = *node->previous;
      if (reuse && reuse->type == EntryType::kDirectory) {
        auto tree = repo->ReadTree(reuse->subtree);
        if (tree.ok()) *node->previous = std::move(*tree);  // unreadable: everything is read afresh
      }
      STRATA_ASSIGN_OR_RETURN(auto entries, env->ListDirInfo(path));
      std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      ScanGroup helped;
      Status failed;
      for (auto& [n, st] : entries) {
        if (!ValidEntryName(n)) {
          stats->skipped.push_back(JoinPath(path, n) + " (invalid name)");
          continue;
        }
        std::string child_path = JoinPath(path, n);
        if (st.type == FileType::kOther) {
          stats->skipped.push_back(child_path + " (special file)");
          continue;
        }
        Node* child = node->children.emplace_back(std::make_unique<Node>()).get();
        const TreeEntry* child_reuse = previous.Find(n);
        if (st.type == FileType::kDirectory) {
          ScanGroup::Part* part = helped.Add();
          bool handed = ctx->TryRun([ctx, child_path, n = n, st = st, child_reuse, child, part, &helped] {
            part->status = ScanEntry(ctx, child_path, n, st, child_reuse, child, &part->total, &part->stats);
            helped.Done();
          });
          if (handed) continue;
          helped.Cancel();
        }
        failed = ScanEntry(ctx, child_path, n, st, child_reuse, child, total, stats);
        if (!failed.ok()) break;
      }
      Status merged = helped.Merge(total, stats);
      STRATA_RETURN_IF_ERROR(failed);
      STRATA_RETURN_IF_ERROR(merged);
      // Every entry as stored before, none added or removed: the stored tree is this
      // directory's tree, and is not built, serialized and hashed again.
      bool same = reuse && !previous.entries.empty() && previous.entries.size() == node->children.size();
      for (size_t i = 0; same && i < node->children.size(); ++i) {
        same = SameEntry(*node->children[i], previous.entries[i]);
      }
      if (same) {
        node->same_as = reuse;
        node->entry.subtree = reuse->subtree;
        node->entry.size = reuse->size;
        node->children.clear();
        node->previous.reset();
      }
      return Status::OK();
    }
    case FileType::kOther:
      return Status::InvalidArgument(fmt::format("'{}' is not a file, directory or symlink", path));
  }
  return Status::OK();
}

// ScanEntry of a path not yet stat'ed, with as many helpers as the put has readers (cold
// caches wait on the disk). Entries skipped are listed in path order.
Status Scan(RepositoryImpl* repo, const std::string& path, std::string name, const TreeEntry* reuse, Node* node,
            uint64_t* total, PutStats* stats) {
  STRATA_ASSIGN_OR_RETURN(FileInfo info, repo->options_.env->Stat(path));
  size_t skipped = stats->skipped.size();
  Status s;
  {
    ScanContext ctx(repo, 2 * ThreadsOrCores(repo->options_.threads) - 1);
    s = ScanEntry(&ctx, path, std::move(name), info, reuse, node, total, stats);
  }
  std::sort(stats->skipped.begin() + skipped, stats->skipped.end());
  return s;
}

// Lists the regular files below `node`, in tree order.
void CollectFiles(Node* node, std::vector<Node*>* files) {
  if (node->entry.type == EntryType::kFile && !node->same_as) files->push_back(node);
  for (auto& c : node->children) CollectFiles(c.get(), files);
}

// Reads one file, handing its chunks to the session.
Status ReadFile(Env* env, StreamChunker* sc, Node* node, PutSession* session, Progress* progress) {
  STRATA_ASSIGN_OR_RETURN(auto file, env->NewSequentialFile(node->source));
  sc->Reset(file.get());
  uint64_t size = 0;
  while (true) {
    STRATA_RETURN_IF_ERROR(session->status());
    std::string chunk = session->TakeBuffer();
    auto more = sc->Next(&chunk);
    if (!more.ok()) return more.status().WithContext("reading " + node->source);
    if (!*more) break;
    size += chunk.size();
    progress->Add(chunk.size());
    node->chunks.emplace_back();
    session->AddChunkAsync(std::move(chunk), &node->chunks.back());
  }
  // The file may have changed since it was scanned: record what was actually read.
  node->entry.size = size;
  session->AddFile(size);
  return Status::OK();
}

// Reads `files` with `readers` threads, each taking the next unread file. One reader would
// spend most of a tree of small files waiting for the disk, one file at a time, with the
// hashing workers idle; several keep as many reads in flight. Each file is read by one thread,
// in order, so its chunk list is the same as a single reader's. Returns the first error.
Status ReadContents(Env* env, const Chunker& chunker, const std::vector<Node*>& files, size_t readers,
                    PutSession* session, Progress* progress) {
  std::atomic<size_t> next{0};
  std::mutex mu;
  Status first_error;
  auto read_files = [&] {
    StreamChunker sc(chunker);
    for (size_t i = next++; i < files.size(); i = next++) {
      Status s = ReadFile(env, &sc, files[i], session, progress);
      if (!s.ok()) {
        std::lock_guard<std::mutex> l(mu);
        if (first_error.ok()) first_error = s;
        next = files.size();  // stop the others early
        return;
      }
    }
  };
  if (files.empty()) return Status::OK();
  readers = std::clamp<size_t>(readers, 1, files.size());
  std::vector<std::thread> threads;
  for (size_t i = 1; i < readers; ++i) threads.emplace_back(read_files);
  read_files();
  for (auto& t : threads) t.join();
  return first_error;
}

// Sets a file node's chunks in its entry: those read, or those of the entry it equals.
void FinishFile(Node* node) {
  if (node->same_as) {
    node->entry.chunks = node->same_as->chunks;
  } else {
    node->entry.chunks.assign(node->chunks.begin(), node->chunks.end());
  }
}

// After all chunks are hashed: turns each directory into a stored tree, bottom-up. A directory
// equal to its stored tree (same_as) already has its subtree.
ObjectId StoreTree(Node* node, PutSession* session) {
  Tree tree;
  uint64_t total = 0;
  for (auto& c : node->children) {
    TreeEntry& e = c->entry;
    if (e.type == EntryType::kDirectory) {
      if (!c->same_as) e.subtree = StoreTree(c.get(), session);
    } else if (e.type == EntryType::kFile) {
      FinishFile(c.get());
    }
    total += e.size;
    tree.entries.push_back(std::move(e));
  }
  ++session->stats().dirs;
  node->entry.size = total;
  return session->AddTree(tree);
}

// A WriteBatch: one PutSession under a shared repository lock.
class Batch : public WriteBatch {
 public:
  static Result<std::unique_ptr<Batch>> Open(RepositoryImpl* repo, const BatchOptions& options) {
    STRATA_ASSIGN_OR_RETURN(auto lock, RepositoryLock::Acquire(repo->backend_.get(), /*exclusive=*/false));
    return std::unique_ptr<Batch>(new Batch(repo, std::move(lock), repo->PackSuffixOf(options.redundancy_class)));
  }

  ObjectId Put(ObjectKind kind, std::string_view bytes, uint32_t min_saving) override {
    return session_.AddObject(kind, bytes, min_saving);
  }
  ObjectId PutTree(const Tree& tree) override { return session_.AddTree(tree); }

  Result<TreeEntry> PutPath(const std::string& path, std::string name, const TreeEntry* reuse) override {
    Node node;
    uint64_t total = 0;
    STRATA_RETURN_IF_ERROR(Scan(repo_, path, std::move(name), reuse, &node, &total, &session_.stats()));
    STRATA_RETURN_IF_ERROR(StoreNodes(&node, total));
    return std::move(node.entry);
  }

  Result<uint64_t> PutStream(SequentialFile* in, std::deque<ChunkRef>* chunks) override {
    if (!stream_) stream_ = std::make_unique<StreamChunker>(repo_->chunker_);
    stream_->Reset(in);
    uint64_t bytes = 0;
    while (true) {
      std::string chunk = session_.TakeBuffer();
      STRATA_ASSIGN_OR_RETURN(bool more, stream_->Next(&chunk));
      if (!more) break;
      bytes += chunk.size();
      chunks->emplace_back();
      session_.AddChunkAsync(std::move(chunk), &chunks->back());
    }
    session_.AddFile(bytes);
    STRATA_RETURN_IF_ERROR(session_.status());
    return bytes;
  }
  Status Flush() override { return session_.Wait(); }

  Status Commit() override { return session_.Commit(); }
  const PutStats& stats() const override { return session_.stats(); }
  PutStats& mutable_stats() { return session_.stats(); }

  // Reads every changed file below `root` (a scanned node), waits for its chunks, and stores
  // the directories bottom-up. On return `root->entry` is complete (subtree or chunks set).
  Status StoreNodes(Node* root, uint64_t total_bytes) {
    const auto& skipped = session_.stats().skipped;
    for (; warned_ < skipped.size(); ++warned_) LogWarning("skipped " + skipped[warned_]);
    Status read_status;
    {
      Progress progress("put", total_bytes, repo_->options_.progress);
      std::vector<Node*> files;
      CollectFiles(root, &files);
      // Twice as many readers as workers: on a cold cache, trees of small files wait on the
      // disk one file at a time, and more reads in flight was measured 20% faster (ARCHITECTURE.md).
      read_status = ReadContents(repo_->options_.env, repo_->chunker_, files, 2 * session_.threads(), &session_, &progress);
    }
    if (!read_status.ok()) {
      session_.Fail(read_status);
      (void)session_.Wait();
      return read_status;
    }
    // Chunk ids are filled in by the workers; trees need them all.
    STRATA_RETURN_IF_ERROR(session_.Wait());
    if (root->entry.type == EntryType::kDirectory) {
      if (!root->same_as) root->entry.subtree = StoreTree(root, &session_);
    } else if (root->entry.type == EntryType::kFile) {
      FinishFile(root);
    }
    return session_.status();
  }

 private:
  Batch(RepositoryImpl* repo, std::unique_ptr<RepositoryLock> lock, std::string pack_suffix)
      : repo_(repo), lock_(std::move(lock)), session_(repo, repo->options_.threads, std::move(pack_suffix)) {}
  RepositoryImpl* repo_;
  std::unique_ptr<RepositoryLock> lock_;
  PutSession session_;
  std::unique_ptr<StreamChunker> stream_;  // PutStream's window, allocated on first use
  size_t warned_ = 0;  // skipped paths already reported
};

}  // namespace

Result<ObjectId> RepositoryImpl::PutPaths(const std::vector<std::string>& paths, PutStats* stats_out) {
  auto start = std::chrono::steady_clock::now();
  if (paths.empty()) return Status::InvalidArgument("nothing to put: no paths given");
  STRATA_ASSIGN_OR_RETURN(auto batch, Batch::Open(this, BatchOptions{}));

  Node root;
  root.entry.type = EntryType::kDirectory;
  root.entry.mode = 0755;
  uint64_t total = 0;
  for (const auto& p : paths) {
    std::string path = p;
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    std::string name(Basename(path));
    if (!ValidEntryName(name)) return Status::InvalidArgument(fmt::format("cannot put '{}': give a path with a final name", p));
    for (const auto& c : root.children) {
      if (c->entry.name == name) return Status::InvalidArgument(fmt::format("two paths share the name '{}'", name));
    }
    auto child = std::make_unique<Node>();
    STRATA_RETURN_IF_ERROR(Scan(this, path, name, nullptr, child.get(), &total, &batch->mutable_stats()));
    root.children.push_back(std::move(child));
  }
  std::sort(root.children.begin(), root.children.end(),
            [](const auto& a, const auto& b) { return a->entry.name < b->entry.name; });
  STRATA_RETURN_IF_ERROR(batch->StoreNodes(&root, total));
  STRATA_RETURN_IF_ERROR(batch->Commit());
  ObjectId tree_id = root.entry.subtree;

  RootInfo info;
  info.name = NewRandomName();
  info.id = tree_id;
  info.time_unix = static_cast<int64_t>(std::time(nullptr));
  info.host = HostName();
  for (const auto& p : paths) info.paths.push_back(p);
  info.bytes = batch->stats().bytes;
  info.files = batch->stats().files;
  STRATA_RETURN_IF_ERROR(WriteRoot(info));
  if (stats_out) {
    *stats_out = batch->stats();
    stats_out->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return tree_id;
}

Result<std::unique_ptr<WriteBatch>> RepositoryImpl::NewBatch(const BatchOptions& options) {
  STRATA_ASSIGN_OR_RETURN(auto batch, Batch::Open(this, options));
  return std::unique_ptr<WriteBatch>(std::move(batch));
}

Result<ObjectId> RepositoryImpl::PutStream(SequentialFile* in, PutStats* stats_out) {
  auto start = std::chrono::steady_clock::now();
  STRATA_ASSIGN_OR_RETURN(auto lock, RepositoryLock::Acquire(backend_.get(), /*exclusive=*/false));
  PutSession session(this, options_.threads);
  std::deque<ChunkRef> chunks;
  StreamChunker sc(chunker_, in);
  uint64_t bytes = 0;
  {
    Progress progress("put", 0, options_.progress);
    while (true) {
      std::string chunk = session.TakeBuffer();
      auto more = sc.Next(&chunk);
      if (!more.ok()) {
        session.Fail(more.status());
        (void)session.Wait();
        return more.status().WithContext("reading the input stream");
      }
      if (!*more) break;
      bytes += chunk.size();
      progress.Add(chunk.size());
      chunks.emplace_back();
      session.AddChunkAsync(std::move(chunk), &chunks.back());
      if (!session.status().ok()) break;
    }
  }
  STRATA_RETURN_IF_ERROR(session.Wait());
  ObjectId id = session.AddObject(ObjectKind::kChunkList,
                                  SerializeChunkList(std::vector<ChunkRef>(chunks.begin(), chunks.end())));
  STRATA_RETURN_IF_ERROR(session.Commit());
  session.stats().files = 1;
  session.stats().bytes = bytes;

  RootInfo info;
  info.name = NewRandomName();
  info.id = id;
  info.is_stream = true;
  info.time_unix = static_cast<int64_t>(std::time(nullptr));
  info.host = HostName();
  info.paths = {"-"};
  info.bytes = bytes;
  info.files = 1;
  STRATA_RETURN_IF_ERROR(WriteRoot(info));
  if (stats_out) {
    *stats_out = session.stats();
    stats_out->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return id;
}

}  // namespace strata::store
