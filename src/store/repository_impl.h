// Internal: the local/embedded implementation of strata::Repository, split over
// repository.cc (open, keys, reads), put.cc (writes), verify.cc (verify, repair) and gc.cc
// (garbage collection).
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "crypto/aead.h"
#include "crypto/keys.h"
#include "store/chunk_index.h"
#include "store/chunker.h"
#include "store/config.h"
#include "store/object_store.h"
#include "store/tree.h"
#include "strata/repository.h"
#include "volume/backend.h"

namespace strata::store {

class RepositoryImpl : public Repository, public ObjectStore {
 public:
  RepositoryImpl(const OpenOptions& options, std::unique_ptr<volume::Backend> backend,
                 RepositoryConfig config, crypto::MasterKeys keys, crypto::KeySlot slot);

  Result<ObjectId> PutPaths(const std::vector<std::string>& paths, PutStats* stats) override;
  Result<ObjectId> PutStream(SequentialFile* in, PutStats* stats) override;
  Result<std::unique_ptr<BlobReader>> OpenFile(const ObjectId& id, std::string_view path) override;
  Result<std::vector<EntryInfo>> List(const ObjectId& tree, std::string_view path, bool recursive) override;
  Status Restore(const ObjectId& tree, std::string_view path, const std::string& dest,
                 uint64_t* bytes_written) override;
  Result<ObjectId> ResolveId(std::string_view text) override;
  Result<std::vector<RootInfo>> Roots() override;
  Result<VerifyReport> Verify(bool read_data) override;
  Result<RepositoryStats> Stats() override;
  Result<VerifyReport> RepairIndex() override;
  Result<size_t> CleanLeftovers() override;
  Result<std::vector<KeySlotInfo>> ListKeys() override;
  Result<std::string> AddKey(std::string_view passphrase, std::string label) override;
  Status RemoveKey(std::string_view slot_id, bool allow_current) override;
  Status ChangePassphrase(std::string_view new_passphrase) override;
  std::string url() const override { return backend_->url(); }
  ObjectStore* objects() override { return this; }

  // ObjectStore
  Result<std::unique_ptr<WriteBatch>> NewBatch() override;
  Result<std::string> Read(const ObjectId& id, ObjectKind kind) override { return ReadObject(id, kind); }
  Result<Tree> ReadTree(const ObjectId& id) override;
  bool Contains(const ObjectId& id) override { return index_.Contains(id); }
  ObjectId Hash(std::string_view bytes) override { return mac_.Hash(bytes); }
  Env* env() override { return options_.env; }
  std::string local_state_dir() override;
  const crypto::Key256& audit_key() override { return audit_key_; }
  Status AppendRecord(std::string_view json) override;
  Result<std::vector<std::string>> Records() override;
  Result<GcReport> CollectGarbage(const GcOptions& options) override;

  // Loads every index file into index_, replacing what it held.
  Status LoadIndex();
  // Reads, authenticates and decompresses one object; fails if it is not of `kind`.
  Result<std::string> ReadObject(const ObjectId& id, ObjectKind kind);
  // Follows `path` (slash-separated, may be empty) from the tree `root`.
  Result<TreeEntry> Lookup(const ObjectId& root, std::string_view path);
  Status WriteRoot(const RootInfo& root);

  const OpenOptions options_;
  std::unique_ptr<volume::Backend> backend_;
  const RepositoryConfig config_;
  const crypto::MasterKeys keys_;
  crypto::KeySlot slot_;
  crypto::Aead aead_;
  crypto::KeyedHash mac_;
  Chunker chunker_;
  ChunkIndex index_;
  std::mutex keys_mu_;
  crypto::Key256 audit_key_;
  uint64_t tree_seed_ = 0;  // keys the page boundaries of large directories (tree_pages.h)
};

}  // namespace strata::store
