// Lake: versioned datasets over a Repository — commits, branches, tags, diffs, rollback and a
// tamper-evident audit log.
//
//   auto lake = strata::Lake::Open(repo.get());
//   (*lake)->CreateDataset("fmnist");                              // fmnist@main, empty
//   (*lake)->CommitDirectory("fmnist@main", "/data/fmnist", {.message = "import"});
//   (*lake)->CreateRef("fmnist@v1", "fmnist@main", strata::RefType::kTag);
//   (*lake)->Checkout("fmnist@v1:train", "/tmp/train");
//   (*lake)->Merge("fmnist@dev", "fmnist@main", {});                 // three-way, or fast-forward
//   (*lake)->SetRetentionPolicy("fmnist", {.keep_last = 10, .keep_daily = 7});
//   (*lake)->Forget("fmnist", /*dry_run=*/false);                    // then CollectGarbage
//
// Every reference is written `NAME@REF[:PATH]`: REF is a branch, a tag, or a unique prefix (at
// least 4 hex digits) of a commit id. Trees and commits are objects in the repository; refs,
// the commit index and the audit log live in a catalog (SQLite) that can be rebuilt from the
// repository alone (RebuildCatalog). Branch updates are compare-and-swap: of two concurrent
// writers one wins, the other gets kAborted ("branch fmnist@main moved from X to Y").
//
// A Lake borrows its Repository (which must outlive it). Thread-compatible: one Lake per thread;
// several processes may use one repository at once.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "strata/env.h"
#include "strata/object_id.h"
#include "strata/repository.h"
#include "strata/status.h"
#include "strata/volumes.h"

namespace strata {

// `NAME@REF[:PATH]`, split. `path` has no leading or trailing '/'; empty means the root.
struct RefSpec {
  std::string dataset;
  std::string ref;
  std::string path;
  std::string ToString() const;
};
// kInvalidArgument with a message that shows the expected syntax.
Result<RefSpec> ParseRefSpec(std::string_view text);

enum class RefType : uint8_t { kBranch, kTag };

struct RefInfo {
  std::string dataset;
  std::string name;
  RefType type = RefType::kBranch;
  ObjectId target;  // a commit
  bool is_protected = false;
  int64_t updated_unix_ms = 0;
};

struct CommitInfo {
  ObjectId id;
  ObjectId tree;
  std::vector<ObjectId> parents;
  std::string dataset;
  int64_t time_ns = 0;
  std::string author;
  std::string message;
  std::map<std::string, std::string> meta;
};

// What a spec resolved to.
struct Resolved {
  RefSpec spec;
  std::optional<RefInfo> ref;  // absent when REF was a commit id prefix
  CommitInfo commit;
};

struct CommitOptions {
  std::string message;
  std::string author;  // default: the Lake's actor (user@host)
  std::map<std::string, std::string> meta;
  // When the branch moved meanwhile, rebase onto its new head if the two changes touch
  // different paths (and try again, up to `max_attempts` times); otherwise fail with kAborted.
  bool retry = false;
  int max_attempts = 8;
  // The head the caller's change is based on, for optimistic concurrency: the swap fails with
  // kAborted if the branch is no longer there. Zero: the branch's head when the commit starts.
  ObjectId expected_head;
  // The commit's time (nanoseconds since the Unix epoch); 0 means now. For imports of history
  // and for tests of retention.
  int64_t time_ns = 0;
};

// One edit of a change list, for callers that know what changed (no directory scan).
struct Change {
  enum class Kind : uint8_t {
    kAdd,     // store `source` (a file, symlink or directory on disk) at `path`, replacing it
    kRemove,  // remove `path`
    kMove,    // move the entry at `from` to `path` (no content is read)
  };
  Kind kind = Kind::kAdd;
  std::string path;
  std::string source;  // kAdd
  std::string from;    // kMove
};

struct CommitResult {
  ObjectId commit;
  ObjectId parent;        // the branch head it was made on (after a rebase: the new head)
  ObjectId tree;
  bool unchanged = false;  // the tree equals the parent's: no commit was made
  PutStats put;            // content read and stored (unchanged files are not read)
  uint64_t trees_written = 0;  // tree objects a change list wrote (O(depth) per path)
  int attempts = 1;        // > 1 when --retry rebased
};

// --- records: per-file and per-row metadata ---
//
// A commit's records are one row per file of its tree (columns `path`, `size`, `content`: the
// file's content id, equal for equal content) joined by path with the metadata rows stored in
// the commit at `.strata/records.jsonl` (labels, sources, image sizes, ...), plus the metadata
// rows that name no file (rows of tabular data). Metadata is versioned like any file: changing a
// label is a commit that rewrites a few chunks of that file.
using MetaValue = std::variant<std::monostate, int64_t, double, bool, std::string>;
using RecordMeta = std::map<std::string, MetaValue>;
inline constexpr std::string_view kRecordsPath = ".strata/records.jsonl";
// Where curation moves what it sets aside (files, and the keys of table rows); what consumes a
// dataset's data (transforms) skips it.
inline constexpr std::string_view kQuarantineDir = ".quarantine/";

struct QueryResult {
  std::vector<std::string> columns;
  std::vector<std::vector<MetaValue>> rows;
};

// Attributes of a file added to a staged commit.
struct FileAttrs {
  uint32_t mode = 0644;
  int64_t mtime_ns = 0;  // 0: now
};

struct StageOptions {
  // Start from an empty tree (and no records) instead of the branch head's: the commit then
  // holds exactly what was added.
  bool replace = false;
  // Start from the tree (and records) of this version (any NAME@REF of the same dataset)
  // instead of the branch head's; the commit's parent is still the head. Curation uses it to
  // derive a branch from another one's latest state.
  std::string from;
};

// A commit built piece by piece from streams (ingest, transforms, checkpoints): content is
// chunked, deduplicated and stored as it is added, so memory stays bounded by the number of
// paths, not their bytes. Nothing is visible until Commit moves the branch (compare-and-swap
// against the head the stage started from). Destroying an uncommitted stage leaves only
// unreferenced objects. Not thread-safe.
class StagedCommit {
 public:
  virtual ~StagedCommit() = default;
  // Stores what `content` yields (to its end) at `path`, replacing what is there. Every path but
  // `.strata/records.jsonl` is open (`.strata/` holds files about the dataset, e.g. rejects).
  virtual Status AddFile(std::string_view path, SequentialFile* content, const FileAttrs& attrs = {}) = 0;
  virtual Status AddBytes(std::string_view path, std::string_view content, const FileAttrs& attrs = {}) = 0;
  // Removes the file or directory at `path` and the records below it.
  virtual Status Remove(std::string_view path) = 0;
  // Moves the entry at `from` in the starting tree (and its records) to `to`; reads no content.
  virtual Status Move(std::string_view from, std::string_view to) = 0;
  // Sets columns of the metadata row keyed `key` (a file's path, or any key for a row of
  // tabular data); columns not named keep their values. A null value removes the column.
  // `path`, `size` and `content` are reserved (they come from the tree).
  virtual Status SetRecord(std::string_view key, const RecordMeta& columns) = 0;
  virtual Status RemoveRecord(std::string_view key) = 0;
  // Makes every object stored so far durable and indexed, so that a re-run after a crash
  // deduplicates against it instead of storing it again (resumable imports).
  virtual Status Checkpoint() = 0;
  // Writes the trees (and the records file when metadata changed) and moves the branch. With
  // nothing changed, no commit is made (`unchanged`).
  virtual Result<CommitResult> Commit(const CommitOptions& options) = 0;
  virtual uint64_t files_added() const = 0;
  virtual uint64_t bytes_added() const = 0;
};

struct DiffEntry {
  enum class Kind : uint8_t { kAdded, kRemoved, kModified, kRenamed };
  Kind kind = Kind::kAdded;
  std::string path;      // the new path (the old one for kRemoved)
  std::string old_path;  // kRenamed
  uint64_t old_size = 0, new_size = 0;
  bool is_symlink = false;
};
std::string_view DiffKindName(DiffEntry::Kind kind);  // "added", "removed", ...

struct DiffResult {
  std::vector<DiffEntry> entries;  // sorted by path
  uint64_t trees_read = 0;         // tree objects read: follows the size of the change
  uint64_t subtrees_skipped = 0;   // equal subtrees not descended into
};

// How Merge settles a path both sides changed differently. "Ours" is the destination branch,
// "theirs" the source being merged into it (as in git).
enum class MergeStrategy : uint8_t {
  kFail,    // change nothing and report every conflicting path (kFailedPrecondition)
  kOurs,    // keep the destination's version of each conflicting path
  kTheirs,  // take the source's version of each conflicting path
};
std::string_view MergeStrategyName(MergeStrategy strategy);  // "fail", "ours", "theirs"
Result<MergeStrategy> ParseMergeStrategy(std::string_view name);

struct MergeOptions {
  MergeStrategy strategy = MergeStrategy::kFail;
  std::string message;  // default: "Merge SRC into DST"
  std::string author;   // default: the Lake's actor
  int64_t time_ns = 0;  // 0: now
};

struct MergeConflict {
  std::string path;
  // "modify/modify", "add/add", "modify/delete" (the destination changed it, the source
  // deleted it), "delete/modify", "file/directory".
  std::string kind;
};

struct MergeResult {
  ObjectId commit;  // the destination's head afterwards
  ObjectId parent;  // its head before
  ObjectId base;    // the merge base (zero when the histories share no commit)
  ObjectId tree;
  bool up_to_date = false;    // the source was already merged: nothing changed
  bool fast_forward = false;  // the destination was an ancestor: it now points at the source
  std::vector<MergeConflict> conflicts;  // settled by the strategy (by path)
  uint64_t trees_written = 0;
};

// Which commits `Forget` keeps, per dataset (restic's rules, applied to each branch's
// first-parent history, newest first). The head of every branch and tag is always kept.
struct RetentionPolicy {
  uint32_t keep_last = 0;     // the newest N commits
  uint32_t keep_daily = 0;    // the newest commit of each of the last N days that have commits
  uint32_t keep_weekly = 0;   // ... of each of the last N weeks (Monday to Sunday, UTC)
  uint32_t keep_monthly = 0;  // ... of each of the last N calendar months (UTC)
  // Keep every tagged commit. When false, forget deletes the (unprotected) tags whose commits
  // no other rule keeps, as restic forgets snapshots: a tag never names forgotten data.
  bool keep_tagged = true;
  bool operator==(const RetentionPolicy&) const = default;
};

struct RetentionDecision {
  ObjectId commit;
  int64_t time_ns = 0;
  std::string message;
  bool keep = false;
  std::vector<std::string> reasons;  // why it is kept: "head of main", "last", "daily 2024-03-05", ...
};

struct ForgetReport {
  std::string dataset;
  bool dry_run = false;
  // Every commit judged (those not forgotten before), newest first.
  std::vector<RetentionDecision> decisions;
  uint64_t kept = 0, forgotten = 0;
  std::vector<std::string> tags_deleted;  // with keep_tagged off
};

// Retention locks on one dataset version (a commit), as S3 Object Lock has them for an object
// version. While a lock is in force the commit's tree is a gc root whatever refs and retention
// policies say, and nothing may remove its last name: deleting a ref that names it, deleting
// its dataset, a reset that drops it from a branch's history, are refused (kFailedPrecondition,
// and the refusal is audited); forget keeps it. See docs/SECURITY.md ("Retention locks").
enum class LockMode : uint8_t {
  kNone,
  // Lifted or shortened only with LockOverride::bypass_governance and a reason (audited).
  kGovernance,
  // Never lifted, shortened or weakened to governance by anyone until it expires; only extended.
  kCompliance,
};
std::string_view LockModeName(LockMode mode);  // "none", "governance", "compliance"
Result<LockMode> ParseLockMode(std::string_view name);

struct RetentionLock {
  std::string dataset;
  ObjectId commit;
  LockMode mode = LockMode::kNone;
  int64_t retain_until_unix = 0;  // seconds since the epoch; the mode holds until then
  bool legal_hold = false;        // holds until cleared, whatever the mode and date
  std::string reason;             // of the last change
  std::string actor;              // who made the last change
  int64_t updated_unix = 0;
  // In force at `now_unix`: under legal hold, or a mode whose date has not passed.
  bool Active(int64_t now_unix) const;
};

// Who may weaken a governance lock: an admin, saying why (both land in the audit entry).
struct LockOverride {
  bool bypass_governance = false;
  std::string reason;
};

struct LakeGcOptions {
  bool dry_run = false;
  // Packs younger than this are never touched (store::GcOptions::grace_seconds).
  int64_t grace_seconds = 3600;
  double repack_threshold = 0.3;
};

struct LakeGcReport {
  uint64_t commits_live = 0;      // commits kept as roots (forgotten ones keep only the commit)
  uint64_t trees_live = 0;        // root trees kept (those of commits that are not forgotten)
  uint64_t objects_total = 0;
  uint64_t objects_live = 0;
  uint64_t packs_deleted = 0;
  uint64_t packs_repacked = 0;
  uint64_t bytes_freed = 0;
  uint64_t bytes_rewritten = 0;
  bool dry_run = false;
};

// Storage tiers of dataset versions (`strata archive`, `strata restore`).
struct TierOptions {
  bool dry_run = false;          // report what would move; change nothing
  int compression_level = -1;    // -1: the tier's (archive: zstd 19; hot: the repository's)
};

struct TierReport : TierMoveStats {
  std::string dataset;
  ObjectId commit;
  StorageTier tier = StorageTier::kHot;
  // Nothing moved and the catalog already had the version in this tier: nothing was recorded.
  bool unchanged = false;
};

// A dataset version recorded in a tier other than hot, with the numbers of its last move.
struct ArchivedVersion {
  std::string dataset;
  ObjectId commit;
  StorageTier tier = StorageTier::kArchive;
  int64_t changed_unix = 0;
  uint64_t objects = 0;
  uint64_t stored_before = 0, stored_after = 0;
  std::vector<std::string> refs;  // branches and tags of the dataset that point at the commit
};

struct AuditEvent {
  uint64_t seq = 0;
  int64_t time_unix_ms = 0;
  std::string actor, action, target;
  std::string details;  // a JSON object
  ObjectId hash;
};

struct AuditCheck {
  bool ok = true;
  uint64_t entries = 0;
  uint64_t head_seq = 0;
  uint64_t recorded_seq = 0;    // the head the repository's records hold
  std::string problem;          // "edited", "removed", "reordered", "truncated", "replaced"
  uint64_t first_bad_seq = 0;
  std::string message;
};

struct RebuildReport {
  uint64_t records = 0;   // ref events replayed
  uint64_t datasets = 0, refs = 0, commits = 0;
  std::vector<std::string> warnings;  // events that could not be replayed as recorded
};

struct LakeOptions {
  std::string actor;  // who makes the changes; default user@host
  // Open even when the catalog disagrees with the repository's records (for `audit verify`,
  // which reports the problem instead of refusing).
  bool allow_inconsistent_catalog = false;
};

class Lake {
 public:
  virtual ~Lake() = default;

  // Opens (creating if needed) the catalog of `repo`. Fails with kCorruption when the catalog is
  // damaged, missing while the repository has records, or older than (or another than) the
  // repository's records; the message says to run `strata catalog rebuild`. Ref changes a
  // crashed process made in the catalog but not yet in the repository are recorded here.
  static Result<std::unique_ptr<Lake>> Open(Repository* repo, const LakeOptions& options = {});
  // Recreates the catalog from the repository's records and commit objects alone (the old
  // database, if any, is replaced only when the new one is complete).
  static Result<RebuildReport> RebuildCatalog(Repository* repo, const LakeOptions& options = {});
  // Whether `repo` has a catalog (any dataset was ever made), without creating one.
  static bool Exists(Repository* repo);

  // --- datasets ---
  // Creates the dataset with branch `main` at an empty root commit.
  virtual Status CreateDataset(std::string_view name) = 0;
  virtual Result<std::vector<std::string>> ListDatasets() = 0;
  // Deletes the dataset's refs and index entries (objects stay until GC). Refused while a ref is
  // protected.
  virtual Status DeleteDataset(std::string_view name) = 0;

  // --- references ---
  virtual Result<Resolved> Resolve(std::string_view spec) = 0;
  // `name` is NAME@NEWREF; `from` any spec (its path is ignored). O(1): one catalog row.
  virtual Status CreateRef(std::string_view name, std::string_view from, RefType type) = 0;
  // Records `tree` (already durable: written through a batch the caller keeps open until this
  // returns, so gc cannot take it meanwhile) as a root commit of the dataset (no parents) and
  // creates the tag `name` (NAME@TAG) on it, with its audit entry and record. kAlreadyExists if
  // a ref of that name exists. For checkpoints: each is an immutable tag whose deletion frees
  // its data at the next gc, and whose creation is the one step that makes it visible.
  virtual Result<ObjectId> TagTree(std::string_view name, const ObjectId& tree, const CommitOptions& options) = 0;
  virtual Result<std::vector<RefInfo>> ListRefs(std::string_view dataset) = 0;
  virtual Status DeleteRef(std::string_view name) = 0;
  virtual Status ProtectRef(std::string_view name, bool on) = 0;

  // --- commits ---
  // Records directory `src` as the new state of branch `target` (NAME@BRANCH). Files whose
  // size and mtime match the parent commit's are not read again.
  virtual Result<CommitResult> CommitDirectory(std::string_view target, const std::string& src,
                                               const CommitOptions& options) = 0;
  // Applies `changes` to the branch head's tree, rewriting only the trees on their paths.
  virtual Result<CommitResult> CommitChanges(std::string_view target, const std::vector<Change>& changes,
                                             const CommitOptions& options) = 0;
  // Starts a commit on branch `target` (NAME@BRANCH) built from streams (see StagedCommit).
  // The stage must be destroyed before the Lake.
  virtual Result<std::unique_ptr<StagedCommit>> Stage(std::string_view target, const StageOptions& options = {}) = 0;
  // The commit a spec names and its first-parent ancestors, newest first.
  virtual Result<std::vector<CommitInfo>> Log(std::string_view spec, size_t limit) = 0;

  // --- merge ---
  // Merges `src` (any NAME@REF) into branch `dst` (NAME@BRANCH) of the same dataset: nothing to
  // do when src is already in dst's history; a fast-forward when dst is in src's; otherwise a
  // three-way merge of the trees against the merge base, recorded as a commit with parents
  // (dst's head, src). Equal subtrees are skipped by id. With kFail, a conflict fails with
  // kFailedPrecondition naming every conflicting path, and nothing changes. The branch moves by
  // compare-and-swap (kAborted if it moved meanwhile).
  virtual Result<MergeResult> Merge(std::string_view src, std::string_view dst, const MergeOptions& options) = 0;
  // The conflicts a merge of `src` into `dst` would meet (none for a fast-forward); changes nothing.
  virtual Result<std::vector<MergeConflict>> MergeConflicts(std::string_view src, std::string_view dst) = 0;

  // --- retention and garbage collection ---
  virtual Status SetRetentionPolicy(std::string_view dataset, const RetentionPolicy& policy) = 0;
  virtual Result<std::optional<RetentionPolicy>> GetRetentionPolicy(std::string_view dataset) = 0;
  // Applies the dataset's policy (kFailedPrecondition when it has none): the commits it does not
  // keep are forgotten. A forgotten commit stays in history (its small commit object is kept, so
  // lineage survives), but its tree is no longer a GC root, it no longer resolves by id, and Log
  // stops before it. See docs/ARCHITECTURE.md ("Retention").
  virtual Result<ForgetReport> Forget(std::string_view dataset, bool dry_run) = 0;
  // Mark-and-sweep over the whole repository. Roots: every commit reachable from a branch or
  // tag head of any dataset, and the tree of each one that is not forgotten (heads always), plus
  // the store's put roots. Computed under the store's exclusive lock, so it fails at once with
  // kFailedPrecondition while a put or commit runs, and none can start meanwhile.
  virtual Result<LakeGcReport> CollectGarbage(const LakeGcOptions& options) = 0;

  // --- retention locks ---
  // Sets (or, with mode kNone, lifts) the lock of the commit `spec` names. Extending a lock or
  // making it stricter is always allowed; an active compliance lock cannot be shortened,
  // weakened or lifted (kFailedPrecondition); an active governance lock only with `override`
  // (bypass and a non-empty reason). `retain_until_unix` must be in the future unless mode is
  // kNone. Every change and every refusal is audited.
  virtual Status SetRetentionLock(std::string_view spec, LockMode mode, int64_t retain_until_unix,
                                  const LockOverride& override = {}) = 0;
  // Puts the commit `spec` names under legal hold, or releases it; `reason` is audited.
  virtual Status SetLegalHold(std::string_view spec, bool on, std::string_view reason) = 0;
  // The locks of `dataset` (every dataset's when empty), expired ones included.
  virtual Result<std::vector<RetentionLock>> ListRetentionLocks(std::string_view dataset = "") = 0;

  // --- storage tiers ---
  // Moves the data of the version `spec` names (its commit, tree and everything below it, the
  // records file included) to `tier`, recompressed for it (ObjectStore::MoveToTier): ids do not
  // change, so every ref, diff and read keeps working. Records the version's tier in the
  // catalog with an audit entry (action "archive" or "restore") and a ref record, so a rebuilt
  // catalog knows it too. Moving to the hot tier leaves archived what the version shares with
  // other archived versions. Objects shared with hot versions move with it (a tier belongs to
  // an object). Fails with kFailedPrecondition while a put or commit runs (exclusive lock).
  virtual Result<TierReport> MoveToTier(std::string_view spec, StorageTier tier, const TierOptions& options = {}) = 0;
  // Versions recorded outside the hot tier, of `dataset` (every dataset's when empty).
  virtual Result<std::vector<ArchivedVersion>> ListArchived(std::string_view dataset = "") = 0;

  // Redundancy per dataset (docs/DURABILITY.md): the policy ("replicate:N", "rs:K+M", "none",
  // or "inherit" to follow the repository's again) of the packs the dataset's commits write
  // from now on. Needs volumes, like VolumeAdmin::SetPolicy.
  virtual Status SetDatasetPolicy(std::string_view dataset, const std::string& policy) = 0;
  // Brings existing data to its policy: every object goes where the strongest policy among the
  // datasets whose history references it says (objects deduplicated across datasets included),
  // then packs are re-encoded and spread as VolumeAdmin::ApplyPolicy does. Resumable: each step
  // is crash-safe and a second run does only what is left.
  virtual Result<RepairReport> ApplyRedundancy() = 0;

  // --- content ---
  virtual Result<std::vector<EntryInfo>> List(std::string_view spec, bool recursive) = 0;
  virtual Result<std::unique_ptr<BlobReader>> OpenFile(std::string_view spec) = 0;
  // The file at `path` of a version resolved before: no catalog lookup, for callers that read
  // many files of one version.
  virtual Result<std::unique_ptr<BlobReader>> OpenFile(const Resolved& version, std::string_view path) = 0;
  // Restores only the spec's path (all of the tree when it has none) into `dest`.
  virtual Status Checkout(std::string_view spec, const std::string& dest, uint64_t* bytes = nullptr) = 0;
  // Differences from `a` to `b`, below `path` ("" = everything; the specs' own paths are
  // ignored). Equal subtrees are skipped by id.
  virtual Result<DiffResult> Diff(std::string_view a, std::string_view b, std::string_view path = "") = 0;

  // The records of the commit `spec` names (see RecordMeta), sorted by path; with a PATH in the
  // spec, only those at or below it.
  virtual Result<std::vector<RecordMeta>> Records(std::string_view spec) = 0;
  // Runs SQL (SQLite's dialect) over the records, exposed as table `records` with one column
  // per metadata key. Read-only: only SELECT statements are allowed, nothing can be attached.
  virtual Result<QueryResult> Query(std::string_view spec, std::string_view sql) = 0;

  // --- rollback ---
  // Points branch `target` at the commit `to` names; nothing is deleted. Returns the old head.
  virtual Result<ObjectId> Reset(std::string_view target, std::string_view to) = 0;
  // A new commit on `target` that undoes what commit `commit` changed (against its first
  // parent). kFailedPrecondition if a path it touched changed again since.
  virtual Result<CommitResult> Revert(std::string_view target, std::string_view commit,
                                      const CommitOptions& options) = 0;

  // --- audit ---
  virtual Result<std::vector<AuditEvent>> AuditLog(uint64_t from_seq, size_t limit) = 0;
  // Checks the whole hash chain and that it ends where the repository's records say it does.
  virtual Result<AuditCheck> VerifyAudit() = 0;
  // Appends an entry for a change made outside the lake (key changes, deletes); `details` is a
  // JSON object or "".
  virtual Status RecordEvent(std::string_view action, std::string_view target, std::string_view details) = 0;

  virtual const std::string& actor() const = 0;
};

}  // namespace strata
