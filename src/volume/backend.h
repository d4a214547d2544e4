// Backend: where a repository's objects live. Callers name objects by (type, name) and never
// see paths, so an S3 backend or a set of erasure-coded volumes can replace the local directory
// without changing them.
//
// Contract shared by every implementation:
// - An object becomes visible (List, Read) only once it is complete and durable: a crash
//   during a write leaves no trace but an invisible temporary, removed by CleanTemporaries().
// - Objects are immutable once written, except by Delete.
// - All methods are thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "strata/env.h"
#include "strata/status.h"

namespace strata::volume {

enum class ObjectType : uint8_t { kConfig, kKeySlot, kPack, kIndex, kRoot, kLock, kRecord };
std::string_view ObjectTypeName(ObjectType type);

// A pack of the archive tier is named `<32 hex>-archive` (a hot pack: `<32 hex>`). The tier is
// in the name so that every layer that places or repairs a pack (the redundant backend's
// archive policy, gc keeping archived objects archived) knows it without reading the pack;
// a suffix keeps the local layout (packs/<first 2 hex>/) spread, and strata that predates
// tiers reads such packs like any other.
inline constexpr std::string_view kArchivePackSuffix = "-archive";
inline bool IsArchivePack(std::string_view name) { return name.ends_with(kArchivePackSuffix); }

// A hot pack of redundancy class N (a dataset with a policy of its own) is named
// `<32 hex>-c<N>`; the class's policy is in the repository's config, so a pack's policy follows
// from its name as the archive tier's does. 0: the repository's own policy (no suffix).
inline constexpr std::string_view kClassPackInfix = "-c";
uint32_t PackClass(std::string_view name);
// The suffix of a pack name of class `id` ("" for class 0).
std::string ClassPackSuffix(uint32_t id);

// What a power cut may take from an object once its Commit() has returned.
enum class Durability : uint8_t {
  // Nothing: the object and its name are on stable storage.
  kDurable,
  // Its name (then the object is absent), never part of its content: for an object the caller
  // writes again from its own durable state when it finds it missing (a ref event, which the
  // catalog holds). Saves the directory sync.
  kNameMayBeLost,
};

// Streams one new object. Nothing is visible until Commit() returns OK. Destroying an
// uncommitted writer aborts it. Used by one thread at a time.
class ObjectWriter {
 public:
  virtual ~ObjectWriter() = default;
  virtual Status Append(std::span<const uint8_t> data) = 0;
  // Makes the object visible under its name (replacing any object of that name), complete and
  // as durable as asked.
  virtual Status Commit(Durability durability) = 0;
  virtual uint64_t size() const = 0;
};

struct ObjectInfo {
  uint64_t size = 0;
  int64_t mtime_ns = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  // "file:///srv/repo" style description for messages.
  virtual std::string url() const = 0;

  virtual Result<std::unique_ptr<ObjectWriter>> Create(ObjectType type, const std::string& name) = 0;
  // Whole-object write: Create + Append + Commit.
  Status Put(ObjectType type, const std::string& name, std::span<const uint8_t> data,
             Durability durability = Durability::kDurable);
  Status Put(ObjectType type, const std::string& name, std::string_view data,
             Durability durability = Durability::kDurable);
  // Reads exactly `n` bytes at `offset`; a shorter object gives kCorruption ("truncated").
  virtual Status ReadAt(ObjectType type, const std::string& name, uint64_t offset, size_t n,
                        uint8_t* dst) = 0;
  virtual Result<std::string> Get(ObjectType type, const std::string& name) = 0;
  virtual Result<ObjectInfo> Stat(ObjectType type, const std::string& name) = 0;
  virtual Result<std::vector<std::string>> List(ObjectType type) = 0;
  // Durable once it returns. kNotFound if absent.
  virtual Status Delete(ObjectType type, const std::string& name) = 0;
  // Deletes each of `names`, skipping absent ones; durable once it returns. A local directory
  // syncs each directory once, not once per file (compactions delete dozens of small files).
  virtual Status DeleteAll(ObjectType type, const std::vector<std::string>& names);

  // Removes temporaries of interrupted writes older than `min_age_seconds`.
  virtual Result<size_t> CleanTemporaries(int64_t min_age_seconds) = 0;
};

// Where an object lives in a repository directory, relative to it: "config", "keys/<name>",
// "packs/<2 hex>/<name>", "index/<name>", "roots/<name>", "locks/<name>", "records/<name>".
std::string ObjectPath(ObjectType type, const std::string& name);

// A repository in a local directory. `Create` makes the directory layout (the directory must
// not exist or be empty); `Open` checks it looks like a repository.
Result<std::unique_ptr<Backend>> CreateLocalBackend(Env* env, const std::string& dir);
Result<std::unique_ptr<Backend>> OpenLocalBackend(Env* env, const std::string& dir);

}  // namespace strata::volume
