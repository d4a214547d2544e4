// Lake cache: a dataset version read straight from the lake, kept as shards on a local disk, so
// that users who train on the files themselves (no transform) get the loader's speed after the
// first pass.
//
//   strata::loader::LakeCacheOptions o{.dir = "/nvme/strata-cache", .columns = {"label"}};
//   auto entry = strata::loader::CacheLakeVersion(lake, "fmnist@v1:train", o);
//   // entry->shards: one record per file {path: string, data: bytes, label: int}, in path order;
//   // read them with strata::loader::Loader (or strata.torch.LakeDataset).
//
// An entry is named by the version's commit id, the path below it, the columns and whether it
// is encrypted, so it never goes stale: a new commit gets a new entry, and an unchanged version
// is found again without reading the lake. An entry appears only complete (built in a
// temporary directory, synced, renamed), so a crash leaves no half entry; processes that ask for
// the same entry at once wait for the one that builds it (an flock on DIR/NAME.lock).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "strata/lake.h"
#include "strata/shard.h"
#include "strata/status.h"

namespace strata::loader {

struct LakeCacheOptions {
  std::string dir;                     // the cache's directory (created if missing): a fast local disk
  std::vector<std::string> columns;    // record metadata carried as fields (e.g. "label"): int, float, string
  std::optional<shard::Key> key;       // seal every cached record (AES-256-GCM); plaintext otherwise
  uint64_t shard_size = 256ull << 20;
  // Entries other than this one are removed, least recently used first, until the cache holds
  // at most this many bytes (0: no limit).
  uint64_t max_bytes = 0;
  bool progress = false;               // a progress bar on stderr while building
  Env* env = Env::Default();
};

struct LakeCacheEntry {
  std::string dir;                     // the entry's directory
  std::vector<std::string> shards;     // its shard files, in order
  shard::Schema schema;                // path (string), data (bytes), then the columns
  ObjectId commit;                     // the version the spec resolved to
  std::string path;                    // PATH of the spec ("" = the whole tree)
  uint64_t records = 0;                // files cached
  uint64_t file_bytes = 0;             // their bytes
  bool built = false;                  // false: it was in the cache already
  uint64_t evicted = 0;                // entries removed to stay within max_bytes
};

// The entry for NAME@REF[:PATH], built if missing: every regular file below PATH (but .strata/
// and .quarantine/) as one record, in path order. kInvalidArgument when a column is absent from
// a file's record (naming the file) or holds a boolean/other type mix; errors from the lake as
// they come (a damaged chunk is kCorruption naming the file), and then nothing is left behind.
Result<LakeCacheEntry> CacheLakeVersion(Lake* lake, std::string_view spec, const LakeCacheOptions& options);

}  // namespace strata::loader
