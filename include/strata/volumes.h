// Volumes and redundancy: a repository's packs spread over several directories (disks, mounts)
// in distinct failure domains, replicated or Reed–Solomon coded (docs/DURABILITY.md).
//
//   auto* v = repo->volumes();
//   v->AddVolume({.path = "/mnt/d1", .domain = "rack1/host1/d1"});   // ... six of them
//   v->SetPolicy("rs:4+2");        // new packs: 4 data + 2 parity fragments
//   v->ApplyPolicy();              // existing packs re-encoded
//   v->Scrub({.deep = true});      // which pack/fragment/volume is bad
//   v->Repair();                   // rebuild bad or missing fragments
//
// A repository without volumes keeps its single-directory layout. Metadata (config, keys,
// index files, roots, records, placement records) always stays in the repository directory;
// only packs are spread. Calls that change the layout take the repository's exclusive lock and
// must not run concurrently with other calls on the same Repository object.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "strata/status.h"

namespace strata {

struct VolumeSpec {
  std::string path;      // a directory: new, or empty
  std::string domain;    // failure domain, most general first: "rack1/host2/disk3"
  uint64_t capacity = 0; // bytes; 0 = not stated
};

struct VolumeInfo {
  std::string id;        // "v1", "v2", ... never reused
  std::string path, domain;
  uint64_t capacity = 0;
  bool draining = false;  // new fragments avoid it; `drain` moves its fragments away
  bool online = false;    // its directory and marker are present
  uint64_t fragments = 0, bytes = 0;
  // Counted by every process that opened the repository (saved when it closes).
  uint64_t degraded_reads = 0;  // reads that rebuilt a fragment of this volume from the others
  uint64_t read_errors = 0, write_errors = 0;
  // Files in its copy of the repository's metadata (`<volume>/meta/`); fewer than the
  // repository directory's `metadata_files` when it missed writes (repair catches it up).
  uint64_t metadata_files = 0;
};

// A policy of its own for the packs of some data (a dataset's: its name is the label).
struct RedundancyClassInfo {
  uint32_t id = 0;
  std::string label, policy;
  int failures_tolerated = 0;  // lost volumes its packs survive: what "stronger" compares
};

struct RedundancyStatus {
  std::string policy;  // "none", "replicate:3", "rs:4+2"
  int failures_tolerated = 0;  // of `policy`
  std::string archive_policy;  // of archive packs; empty: they follow `policy`
  std::vector<RedundancyClassInfo> classes;  // datasets with a policy of their own
  std::vector<VolumeInfo> volumes;
  uint64_t placed_packs = 0;   // packs with a placement record
  uint64_t local_packs = 0;    // packs in the repository directory (not spread)
  uint64_t degraded_reads = 0;
  uint64_t metadata_files = 0;  // GetStatus: the repository directory's files that volumes copy
};

struct ScrubOptions {
  bool deep = false;       // read every byte and check every block checksum
  double rate_mb_s = 0;    // limit on bytes read per second (0 = none)
  bool repair = false;     // repair what was found (exclusive lock)
  bool restart = false;    // ignore an interrupted scrub's progress and start over
};

struct FragmentProblem {
  std::string pack;
  int fragment = -1;  // -1: the pack as a whole
  std::string volume;
  std::string problem;
};

struct ScrubReport {
  uint64_t packs_checked = 0, fragments_checked = 0, bytes_read = 0;
  bool resumed = false;                 // continued an interrupted scrub
  std::vector<FragmentProblem> problems;  // bad or missing fragments (repairable or not)
  std::vector<std::string> warnings;      // below policy, on a draining volume, leftovers
  // Packs with fewer readable fragments than needed, each with the ids of the objects lost.
  std::map<std::string, std::vector<std::string>> unreadable;
  bool ok() const { return problems.empty() && unreadable.empty(); }
};

struct RepairReport {
  uint64_t packs_checked = 0;
  uint64_t fragments_rebuilt = 0;  // decoded from the others
  uint64_t fragments_moved = 0;    // copied off a draining or removed volume, or to even out volumes
  uint64_t packs_reencoded = 0;    // to the current policy (apply)
  uint64_t leftovers_removed = 0;  // fragments no placement names (interrupted writes)
  uint64_t objects_regrouped = 0;  // moved into the packs of a dataset's stronger policy (Lake::ApplyRedundancy)
  uint64_t mirror_files = 0;       // metadata files copied to (or removed from) volumes' mirrors
  uint64_t bytes_written = 0;
  double seconds = 0;
  std::map<std::string, std::vector<std::string>> unreadable;  // as in ScrubReport
  std::vector<std::string> errors;
  bool ok() const { return errors.empty() && unreadable.empty(); }
};

class VolumeAdmin {
 public:
  virtual ~VolumeAdmin() = default;
  // Initialises the directory as a volume of this repository; returns its id.
  virtual Result<std::string> AddVolume(const VolumeSpec& spec) = 0;
  // Refused while any placement record names the volume (drain it first).
  virtual Status RemoveVolume(const std::string& id) = 0;
  // Marks the volume draining and moves every fragment it holds to other volumes.
  virtual Result<RepairReport> Drain(const std::string& id) = 0;
  // "none", "replicate:N" (2 <= N <= 8) or "rs:K+M" (K+M <= 32). Refused when fewer volumes in
  // distinct failure domains than the policy needs. Applies to packs written from now on.
  virtual Status SetPolicy(const std::string& policy) = 0;
  // The policy of archive packs (`strata archive`): as SetPolicy; "inherit" makes them follow
  // the hot policy again. Applies to archive packs written from now on.
  virtual Status SetArchivePolicy(const std::string& policy) = 0;
  // The policy of the packs of class `label` (a dataset's name: the lake writes a dataset's
  // packs in its class) as SetPolicy; "inherit" removes the class, its packs follow the
  // repository's policy again. Applies to packs written from now on; returns the class id.
  virtual Result<uint32_t> SetClassPolicy(const std::string& label, const std::string& policy) = 0;
  // Re-encodes every pack not stored as its policy says (and spreads local packs). Objects a
  // class shares with other data stay in their packs: the lake's ApplyRedundancy moves them to
  // the strongest policy among the datasets that reference them first.
  virtual Result<RepairReport> ApplyPolicy() = 0;
  virtual Result<RedundancyStatus> GetStatus() = 0;
  // GetStatus without `volumes`: the policies and pack counts, without reading every volume.
  virtual Result<RedundancyStatus> GetSummary() = 0;
  virtual Result<ScrubReport> Scrub(const ScrubOptions& options) = 0;
  // Rebuilds missing or bad fragments onto healthy volumes; moves fragments off draining ones.
  virtual Result<RepairReport> Repair() = 0;
  // Evens out the fragments per volume, in proportion to capacity when every volume has one
  // (after volumes were added: new packs use them at once,
  // existing fragments stay where they are until this moves them), keeping every pack at full
  // redundancy throughout; resumable after a kill. Runs beside puts and reads (shared lock), so
  // it can go on in the background (`strata volume add` starts it so); one at a time, and not
  // during gc or repair.
  virtual Result<RepairReport> Rebalance() = 0;
};

// Recreates the repository directory `repository_dir` (new or empty) from the copy of its
// metadata that every volume keeps (`<volume>/meta/`: config, key slots, index files, roots,
// records, placement records; written beside the repository directory's own and brought up to
// date by repair), after the disk that held the directory was lost. The packs stay on the
// volumes the config names. Open the result with a passphrase and rebuild its catalog
// (`Lake::RebuildCatalog`); `strata volume recover` does all three.
struct RecoveryReport {
  size_t files = 0;  // metadata files copied
  // Other volumes of the repository (by directory) whose copy holds files this one lacks: it
  // may have missed writes they did not (a volume that failed or hung for a while), and one of
  // them may be the better source. Empty when every reachable copy is contained in this one.
  std::map<std::string, size_t> fuller;
};
Result<RecoveryReport> RecoverRepository(const std::string& volume_dir, const std::string& repository_dir);

}  // namespace strata
