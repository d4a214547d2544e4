// RedundantBackend: a Backend that keeps packs as fragments on a set of volumes (replicated or
// Reed–Solomon coded) and everything else in the repository directory, through the primary
// backend it wraps. The store sees the same Backend interface whatever the layout.
//
// Where a pack lives: a placement record `<repository>/placement/<pack>` names, for each
// fragment, the volume that holds it; a pack without one is a local pack of the primary (written
// before volumes were added, or under policy "none"). Order of every change, so a crash at any
// point leaves the pack readable at its policy: new fragments durable, then the placement record
// switched (atomic rename), then old fragments deleted.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <semaphore>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "strata/env.h"
#include "strata/volumes.h"
#include "volume/backend.h"
#include "volume/deadline_runner.h"
#include "volume/fragment.h"

namespace strata::volume {

struct VolumeConfig {
  std::string id;
  std::string path;
  std::string domain;
  uint64_t capacity = 0;
  bool draining = false;
};

struct RedundancyPolicy {
  enum class Kind { kNone, kReplicate, kErasure } kind = Kind::kNone;
  int k = 1, m = 0;  // replicate:N is k = 1, m = N - 1
  static Result<RedundancyPolicy> Parse(std::string_view text);
  std::string ToString() const;
  int width() const { return kind == Kind::kNone ? 0 : k + m; }
  bool operator==(const RedundancyPolicy&) const = default;
};

// How many lost volumes a pack under `policy` survives: what "stronger" means between policies.
int FailuresTolerated(const RedundancyPolicy& policy);

// A policy of its own for some packs (those of a dataset: the layers above map datasets to
// classes by label). Ids are never reused, so a class removed and made again does not inherit
// the old one's packs.
struct RedundancyClass {
  uint32_t id = 0;
  std::string label;
  RedundancyPolicy policy;
  bool operator==(const RedundancyClass&) const = default;
};

struct VolumeLayout {
  std::string repository_id;
  std::vector<VolumeConfig> volumes;
  RedundancyPolicy policy;
  // The policy of archive packs (IsArchivePack); unset: they follow `policy`.
  std::optional<RedundancyPolicy> archive_policy;
  std::vector<RedundancyClass> classes;  // of hot packs named `<hex>-c<id>`
  const VolumeConfig* Find(const std::string& id) const;
  const RedundancyClass* FindClass(uint32_t id) const;
  const RedundancyClass* FindClass(std::string_view label) const;
  // The policy a pack of this name is stored under: the archive tier's for archive packs, its
  // class's for a pack of a class (the repository's when that class was removed since).
  const RedundancyPolicy& PolicyFor(std::string_view pack) const;
  // Whether any pack is spread over volumes under the current policies.
  bool AnyPolicy() const;
};

// Packs below this size are replicated m+1 times instead of striped (docs/DURABILITY.md).
inline constexpr uint64_t kSmallPack = 1u << 20;

// The shape a pack of `size` bytes gets under `policy`: scheme, k, m.
struct Shape {
  Scheme scheme;
  int k, m;
  bool operator==(const Shape&) const = default;
};
Shape ShapeFor(const RedundancyPolicy& policy, uint64_t size);

// Checks that `policy` can be placed on the layout's non-draining volumes: enough of them in
// distinct failure domains. The message says what is missing.
Status CheckPlaceable(const VolumeLayout& layout, const RedundancyPolicy& policy);
// CheckPlaceable for the hot policy, the archive policy and every class's.
Status CheckPlaceable(const VolumeLayout& layout);

// Makes `dir` (new or empty) a volume of repository `repository_id`: its marker file, and the
// fragments/ and tmp/ directories, all durable.
Status InitVolumeDirectory(Env* env, const std::string& dir, const std::string& repository_id,
                           const std::string& volume_id);

// The repository's metadata kept on every volume (RedundantBackend::SyncMirrors), in the
// layout of the repository directory: config, keys/, index/, roots/, records/, placement/.
inline constexpr const char* kMirrorDir = "meta";
inline constexpr const char* kVolumeMarker = "strata-volume";  // a volume's marker file
inline constexpr const char* kMirroredDirs[] = {"keys", "index", "roots", "records", "placement"};

// Makes `repo_dir` (new or empty) a repository directory again from the metadata mirror of
// volume `volume_dir` (after the repository directory was lost): the local layout, then every
// mirrored file, each durable. Packs stay where they are, on the volumes the config names.
// Also compares the copy with those of the other volumes the copied config names.
Result<RecoveryReport> RecoverFromVolume(Env* env, const std::string& volume_dir, const std::string& repo_dir);

// The files of a metadata copy (or of a repository directory) that volumes mirror, as paths
// relative to `top` ("config", "index/<name>", ...), sorted; temporaries left out.
Result<std::vector<std::string>> MetadataFiles(Env* env, const std::string& top);

class RedundantBackend : public Backend {
 public:
  RedundantBackend(Env* env, std::unique_ptr<Backend> primary, VolumeLayout layout);
  ~RedundantBackend() override;  // adds this process's counters to the saved ones

  // A new layout (volume added, drained, policy changed); used by writes from now on.
  void SetLayout(VolumeLayout layout);
  VolumeLayout layout() const;
  Backend* primary() { return primary_.get(); }

  std::string url() const override { return primary_->url(); }
  Result<std::unique_ptr<ObjectWriter>> Create(ObjectType type, const std::string& name) override;
  Status ReadAt(ObjectType type, const std::string& name, uint64_t offset, size_t n, uint8_t* dst) override;
  Result<std::string> Get(ObjectType type, const std::string& name) override;
  Result<ObjectInfo> Stat(ObjectType type, const std::string& name) override;
  Result<std::vector<std::string>> List(ObjectType type) override;
  Status Delete(ObjectType type, const std::string& name) override;
  Status DeleteAll(ObjectType type, const std::vector<std::string>& names) override;
  Result<size_t> CleanTemporaries(int64_t min_age_seconds) override;

  // Maintenance. The caller holds the repository's exclusive lock for Repair (it deletes
  // fragments no placement names, which a running put would be writing).
  Result<ScrubReport> Scrub(const ScrubOptions& options);
  struct RepairOptions {
    bool apply_policy = false;  // re-encode packs whose shape differs from the policy
  };
  Result<RepairReport> Repair(const RepairOptions& options);
  // Moves fragments from the volumes that hold the most to those that hold the fewest (a volume
  // just added holds none; per byte of capacity when every volume has one), never into a failure domain a pack already uses nor to a volume
  // that would weaken the pack's spread, until no move would narrow the difference between
  // volumes further. Only packs with a fragment to move are read. Each pack switches to its new
  // record only once the moved fragments are durable, and the old files are deleted after, so a
  // kill at any moment leaves every pack at full redundancy and the next run goes on from
  // there. Safe beside writers (it touches only packs placed before it started, and removes no
  // leftovers); one at a time per repository (kFailedPrecondition otherwise).
  Result<RepairReport> Rebalance();
  // Policies and pack counts (RedundancyStatus without `volumes`): reads the placement and pack
  // listings, not the volumes.
  Result<RedundancyStatus> GetSummary();
  // GetSummary, and per volume its fragments and bytes (every fragment file listed and stat'ed)
  // and the saved and this process's counters.
  Result<RedundancyStatus> GetStatus();
  // How many placement records name volume `id` (whether or not its files are still there).
  Result<size_t> PlacementsOn(const std::string& id);

  // Metadata mirrors: every object but packs and locks, and every placement record, is written
  // to `<volume>/meta/` on each volume as well as to the repository directory (and removed from
  // both), so that losing the repository directory's disk loses nothing (RecoverFromVolume). A
  // volume that fails or hangs during such a write is noted and skipped; this brings every
  // answering volume's mirror to the repository directory's state (copies what it lacks,
  // rewrites a config, key slot or placement record that differs, removes what it has extra).
  // Also removes temporaries that killed writes left there. Returns the files copied or
  // removed. Run by repair and after a volume is added, under the exclusive lock.
  Result<uint64_t> SyncMirrors();

  // Writes a pack as fragments under the current policy and records its placement (the commit
  // step of a pack writer; also used to spread local packs). Shared: a fragment write that
  // misses its deadline may still be using the bytes after this returns.
  Status WritePlaced(const std::string& pack, std::shared_ptr<const std::string> bytes, uint32_t generation);

  struct Counters {
    uint64_t degraded_reads = 0, read_errors = 0, write_errors = 0;
  };

  // A fragment read that takes longer than kReadDeadline fails over to the other fragments; a
  // fragment write that takes longer than kWriteDeadline (a fragment is at most a pack: 32 MiB
  // by default) is placed on another volume. Either way the volume is skipped by this
  // process's reads and writes for kSilentPeriod (then tried again); a write also avoids it for
  // the rest of the process, as after a failed write.
  static constexpr std::chrono::milliseconds kReadDeadline{10'000};
  static constexpr std::chrono::milliseconds kWriteDeadline{30'000};
  static constexpr std::chrono::seconds kSilentPeriod{60};
  void SetReadDeadlineForTesting(std::chrono::milliseconds deadline) { read_deadline_ = deadline; }
  void SetWriteDeadlineForTesting(std::chrono::milliseconds deadline) { write_deadline_ = deadline; }

  // Buffers of packs and fragments handed from those finished to those started, so that bodies
  // of many MiB are not zero-filled and faulted in again each time. At most kMaxBytes are kept;
  // emptied when a repair (or rebalance) ends.
  class SpareBuffers {
   public:
    // A buffer of `n` bytes (contents undefined: those of a previous use).
    std::string Take(size_t n);
    void Give(std::string buffer);
    // Gives `*buffer` back when nothing else holds it (a write that missed its deadline may).
    void Give(std::shared_ptr<const std::string> buffer);
    void Clear();

   private:
    static constexpr size_t kMaxBytes = 192u << 20;
    std::mutex mu_;
    std::vector<std::string> free_;
    size_t bytes_ = 0;
  };
  SpareBuffers& spare() { return spare_; }

 private:
  struct FragmentFile;
  struct Health;

  std::string PlacementDir() const;
  std::string PlacementPath(const std::string& pack) const;
  // The packs with a placement record, sorted.
  Result<std::vector<std::string>> PlacedPacks();
  std::string FragmentPath(const VolumeConfig& v, const std::string& file) const;
  // nullopt: no placement record (a local pack).
  Result<std::optional<Placement>> LoadPlacement(const std::string& pack);
  Result<std::optional<Placement>> FindPlacement(const std::string& pack, bool reload);
  Status StorePlacement(const Placement& p);

  Result<std::shared_ptr<FragmentFile>> OpenFragment(const Placement& p, int index);
  // The path of fragment `index` and its open file when cached (no I/O).
  Result<std::string> FragmentPathOf(const Placement& p, int index, std::shared_ptr<FragmentFile>* cached);
  void CacheFragment(const std::shared_ptr<FragmentFile>& f);
  // Opens a fragment file and checks its header against the placement. Touches nothing but its
  // arguments, so that it can run where a deadline may abandon it.
  static Result<std::shared_ptr<FragmentFile>> LoadFragmentFile(Env* env, const std::string& path, const Placement& p,
                                                                int index);
  // After a missed read or write deadline: `volume` is skipped for kSilentPeriod.
  void MarkSilent(const std::string& volume);
  // kIOError while `volume` is in its silent period.
  Status CheckAnswering(const std::string& volume);
  void ForgetFragment(const std::string& path);
  // Reads body bytes [off, off+n) of fragment `index`, checking every block it touches.
  Status ReadFragmentRange(const Placement& p, int index, uint64_t off, size_t n, uint8_t* dst);
  // The whole body of fragment `index`, every block checked, read into `reuse`'s memory.
  Result<std::string> ReadFragmentBody(const Placement& p, int index, std::string reuse = {});
  // The blocks that body range [off, off+n) touches, checked, under the read deadline, read into
  // `reuse`'s memory; `*start`: the body offset of the first one.
  Result<std::string> ReadFragmentBlocks(const Placement& p, int index, uint64_t off, size_t n, uint64_t* start,
                                         std::string reuse = {});
  Status ReadPlaced(const Placement& p, uint64_t off, size_t n, uint8_t* dst);
  Status ReadErasurePiece(const Placement& p, int index, uint64_t off, size_t n, uint8_t* dst);
  // The error for a pack of which only `have` fragments read (`why`: each one's problem).
  static Status Unreadable(const Placement& p, int have, const std::vector<std::string>& why);

  Result<std::vector<std::string>> ChooseVolumes(const VolumeLayout& layout, const std::string& pack, int count,
                                                 const std::vector<std::string>& keep,
                                                 const std::set<std::string>& avoid);
  // Runs `write` (which must own all it touches) on the write runner: kIOError when volume `v`
  // has no marker (offline), or when it is silent or misses the write deadline (then it is
  // silent for kSilentPeriod); else what `write` returns.
  Status RunVolumeWrite(const VolumeConfig& v, std::function<Status(Env*)> write);
  // Writes the serialised `header`, then `body` (which points into `*owner`); an empty
  // `header` when `body` starts with it.
  Status WriteFragment(const VolumeConfig& v, const std::string& file, std::string header,
                       std::shared_ptr<const std::string> owner, std::string_view body);
  // Checks one fragment: present, header matches, and (deep) every block's checksum. Returns
  // an empty string when good, else the problem.
  std::string CheckFragment(const VolumeLayout& layout, const Placement& p, int index, bool deep, uint64_t* bytes);
  // Repair of one placed pack, its counts and errors in `report`; safe to run for several
  // packs at once.
  // With `balance`, only packs with a fragment worth moving are handled (see Rebalance).
  struct Balance;
  void RepairPlaced(const std::string& name, const VolumeLayout& layout, const std::set<std::string>& failed,
                    const RepairOptions& options, RepairReport* report, Balance* balance = nullptr);
  // Chooses fragments of `p` to move to emptier volumes; reserves them in `balance`.
  std::map<int, std::string> PlanMoves(const VolumeLayout& layout, const Placement& p, Balance* balance);
  // Repairs (or rebalances) every placed pack, four at once; sums their reports into `report`.
  void RepairAll(const std::vector<std::string>& placed, const VolumeLayout& layout, const std::set<std::string>& failed,
                 const RepairOptions& options, RepairReport* report, Balance* balance);
  bool VolumeOnline(const VolumeConfig& v);
  class MirroringWriter;
  // A writer of a non-pack object in the repository directory that also mirrors it.
  Result<std::unique_ptr<ObjectWriter>> CreateMirrored(ObjectType type, const std::string& name);
  // Runs `op` for every volume that has not failed a write in this process, side by side;
  // failures are noted (NoteWriteError), not returned: the repository directory holds the
  // object, and SyncMirrors catches the volume up.
  void OnEveryMirror(const std::function<Status(const VolumeConfig&)>& op);
  // Whether objects of `type` are copied to the volumes (all but packs and locks).
  static bool Mirrored(ObjectType type) { return type != ObjectType::kPack && type != ObjectType::kLock; }
  // Writes `content` to `relpath` in every volume's mirror; removes `relpaths` from them.
  void Mirror(const std::string& relpath, std::shared_ptr<const std::string> content);
  void MirrorRemoveAll(std::vector<std::string> relpaths);
  // The same on one volume (the removals batched: one directory sync each).
  Status MirrorOn(const VolumeConfig& v, const std::string& relpath, std::shared_ptr<const std::string> content);
  Status RemoveOn(const VolumeConfig& v, std::vector<std::string> relpaths);
  // The volumes a write failed on in this process (avoided for new fragments).
  std::set<std::string> FailedWrites();

  void NoteDegraded(const Placement& p, int index, const Status& why);
  void NoteWriteError(const std::string& volume, const Status& why);
  void SaveCounters();

  Env* env_;
  std::unique_ptr<Backend> primary_;
  SpareBuffers spare_;
  // Turns at the CPU-bound part of a pack's repair (reading, checking, decoding): one per core.
  std::counting_semaphore<> repair_cpu_{std::max<ptrdiff_t>(2, std::thread::hardware_concurrency())};
  mutable std::mutex mu_;
  VolumeLayout layout_;
  std::unordered_map<std::string, std::optional<Placement>> placements_;
  std::unordered_map<std::string, std::shared_ptr<FragmentFile>> open_;
  std::vector<std::string> open_order_;
  std::map<std::string, Counters> counters_;  // per volume, this process
  std::set<std::string> warned_;
  std::set<std::string> failed_writes_;  // volumes that failed a write: avoided by this process
  std::map<std::string, std::chrono::steady_clock::time_point> silent_until_;  // missed a deadline
  std::chrono::milliseconds read_deadline_ = kReadDeadline;
  std::chrono::milliseconds write_deadline_ = kWriteDeadline;
  DeadlineRunner reads_{8};    // fragment reads, each waited for at most read_deadline_
  DeadlineRunner writes_{16};  // fragment writes, each waited for at most write_deadline_
};

}  // namespace strata::volume
