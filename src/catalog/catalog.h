// The catalog: datasets, refs (branches and tags), an index of commit records, per-file metadata
// and a tamper-evident audit log.
//
// The catalog is an index, not the source of truth: commits, trees and blobs live in the
// repository's objects, so a lost or damaged catalog is rebuilt from them
// (`strata catalog rebuild`) and no data is lost. What only the catalog knows (refs, the audit
// chain) is also summarised in the repository by the layers above: the audit chain's Head() is
// stored there so that replacing the whole catalog is detected by VerifyAudit().
//
// `Catalog` is an interface: the embedded default is SQLite in WAL mode (OpenSqliteCatalog);
// a PostgreSQL implementation for many hosts implements the same contract.
//
// Every mutation that changes a ref or a dataset takes an AuditEntry and appends it to the audit
// log in the same transaction as the change: either both are stored or neither is.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/keys.h"
#include "strata/object_id.h"
#include "strata/status.h"

namespace strata::catalog {

struct Dataset {
  std::string name;
  int64_t created_unix_ms = 0;
};

enum class RefKind : uint8_t { kBranch, kTag };
std::string_view RefKindName(RefKind kind);  // "branch" or "tag"

// A named pointer at a commit. Branches and tags of one dataset share one namespace, so
// `NAME@REF` never has to choose between a branch and a tag of the same name.
struct Ref {
  std::string dataset;
  std::string name;
  RefKind kind = RefKind::kBranch;
  ObjectId target;
  bool is_protected = false;  // protected refs cannot be deleted (nor their dataset)
  int64_t updated_unix_ms = 0;
};

// The searchable copy of a commit object. The object in the repository is authoritative; its
// id names its content, so inserting the same id twice is a no-op.
struct CommitRecord {
  ObjectId id;
  std::string dataset;
  std::vector<ObjectId> parents;  // first parent first; empty for a root commit
  ObjectId tree;
  std::string author;
  int64_t time_unix = 0;  // seconds since the Unix epoch, as recorded in the commit
  std::string message;
  std::map<std::string, std::string> meta;  // key=value pairs, queryable by later layers
};

// Metadata of one file in one commit (labels from curation, where the file came from).
struct FileMeta {
  ObjectId commit;
  std::string path;
  std::set<std::string> labels;
  std::string source;
};

// What the caller says about a change. For ref and dataset changes the catalog fills an empty
// `action` and `target` with the operation's own ("branch.update", "fmnist@main") and adds the
// facts it knows ("old", "new", "kind") to `details`, so an entry can't misstate what changed.
struct AuditEntry {
  std::string actor;    // who: user@host, or a service name
  std::string action;   // what kind of change: "merge", "reset", "gc", "key.add", ...
  std::string target;   // what it changed: "fmnist@main", "key 3f2a…", ...
  std::string details;  // a JSON object ("" means {}); stored in canonical form
};

// A stored audit entry. hash = HMAC(audit key, canonical serialization of every other field,
// prev_hash included), so changing, removing or reordering entries breaks the chain and only a
// holder of the key could forge a consistent one.
struct AuditRecord {
  uint64_t seq = 0;  // 1, 2, 3, ... without gaps
  int64_t time_unix_ms = 0;
  std::string actor;
  std::string action;
  std::string target;
  std::string details;
  ObjectId prev_hash;  // the previous entry's hash; zero for seq 1
  ObjectId hash;
};

// The last entry of the chain: the repository stores it so that a catalog replaced by an older
// or a forged copy is detected. An empty log has seq 0 and a zero hash.
struct AuditHead {
  uint64_t seq = 0;
  ObjectId hash;
  bool operator==(const AuditHead&) const = default;
};

struct AuditVerifyReport {
  enum class Problem : uint8_t {
    kNone,
    kEdited,     // an entry's content no longer matches its hash
    kRemoved,    // a seq is missing (an entry was deleted)
    kReordered,  // an entry does not follow the one stored before it
    kTruncated,  // entries after the repository's recorded head are missing
    kReplaced,   // the entry at the repository's recorded head differs: another log
  };
  uint64_t entries = 0;    // entries read
  AuditHead head;          // the last entry read
  Problem problem = Problem::kNone;
  uint64_t first_bad_seq = 0;  // the first seq at which the chain breaks (0 when intact)
  std::string message;         // for a person: which entry, what is wrong
  bool ok() const { return problem == Problem::kNone; }
};
std::string_view AuditProblemName(AuditVerifyReport::Problem problem);

// Dataset names: 1 to 128 of [A-Za-z0-9._-], not starting with '.'.
Status ValidateDatasetName(std::string_view name);
// Ref names: like dataset names, plus '/' between non-empty components ("feature/x").
Status ValidateRefName(std::string_view name);

// Implementations are thread-safe. Many processes may open the same catalog: writers are
// serialized (a writer waits up to the busy timeout for another to finish, then fails with a
// retryable kIOError), and every multi-step change is one transaction.
class Catalog {
 public:
  virtual ~Catalog() = default;

  // --- datasets ---
  // kAlreadyExists if present, kInvalidArgument for a bad name.
  virtual Status CreateDataset(std::string_view name, const AuditEntry& audit) = 0;
  virtual Result<std::vector<Dataset>> ListDatasets() = 0;  // sorted by name
  virtual Result<Dataset> GetDataset(std::string_view name) = 0;
  // Removes the dataset with its refs, commit records and file metadata (the objects stay in
  // the repository until GC). kFailedPrecondition while any of its refs is protected.
  virtual Status DeleteDataset(std::string_view name, const AuditEntry& audit) = 0;

  // --- refs ---
  virtual Result<Ref> GetRef(std::string_view dataset, std::string_view name) = 0;
  // Sorted by name; `kind` filters when given.
  virtual Result<std::vector<Ref>> ListRefs(std::string_view dataset,
                                            std::optional<RefKind> kind = std::nullopt) = 0;
  // O(1): one row. kAlreadyExists if a branch or tag of that name exists.
  virtual Status CreateRef(std::string_view dataset, std::string_view name, RefKind kind,
                           const ObjectId& target, const AuditEntry& audit) = 0;
  // Compare-and-swap: moves branch `name` from `expected` to `target` only if it still points at
  // `expected`. Otherwise kAborted ("branch fmnist@main moved from <expected> to <current>") and
  // nothing changes, so of two concurrent committers exactly one wins and the other can rebase.
  // Tags never move: kFailedPrecondition.
  virtual Status UpdateBranch(std::string_view dataset, std::string_view name,
                              const ObjectId& expected, const ObjectId& target,
                              const AuditEntry& audit) = 0;
  // kFailedPrecondition if protected.
  virtual Status DeleteRef(std::string_view dataset, std::string_view name,
                           const AuditEntry& audit) = 0;
  virtual Status SetRefProtected(std::string_view dataset, std::string_view name, bool on,
                                 const AuditEntry& audit) = 0;

  // --- commit records ---
  // Idempotent; the dataset must exist. Parents need not be recorded yet (a rebuild inserts in
  // any order).
  virtual Status PutCommit(const CommitRecord& commit) = 0;
  // Many at once, in one transaction (a rebuild, an import): all or none are stored.
  virtual Status PutCommits(const std::vector<CommitRecord>& commits) = 0;
  virtual Result<CommitRecord> GetCommit(const ObjectId& id) = 0;
  // The unique commit of `dataset` whose hex id starts with `prefix` (at least 4 hex digits).
  // kNotFound if none, kInvalidArgument if several (the message lists some).
  virtual Result<ObjectId> ResolveCommitPrefix(std::string_view dataset,
                                               std::string_view prefix) = 0;
  // `start` and its first-parent ancestors, newest first, at most `limit` of them. The walk
  // stops at a root commit or at a parent that is not recorded. kNotFound if `start` isn't.
  virtual Result<std::vector<CommitRecord>> Log(const ObjectId& start, size_t limit) = 0;

  // --- retention (version/retention.h decides; the catalog stores) ---
  // Replaces the dataset's retention policy (a JSON object the layer above defines).
  virtual Status SetRetentionPolicy(std::string_view dataset, std::string_view policy_json,
                                    const AuditEntry& audit) = 0;
  // nullopt when the dataset has none.
  virtual Result<std::optional<std::string>> GetRetentionPolicy(std::string_view dataset) = 0;
  // Adds `commits` to the dataset's forgotten set (idempotent), with the audit entry, in one
  // transaction. Forgotten commits stay in the commit index (history walks pass through them).
  virtual Status Forget(std::string_view dataset, const std::vector<ObjectId>& commits,
                        const AuditEntry& audit) = 0;
  virtual Result<std::set<ObjectId>> ListForgotten(std::string_view dataset) = 0;

  // --- retention locks (the lake decides what may change; the catalog stores) ---
  // Replaces the lock of (dataset, commit) with `lock_json` (a JSON object the layer above
  // defines), or removes it when `lock_json` is empty, with the audit entry, in one transaction.
  virtual Status SetLock(std::string_view dataset, const ObjectId& commit, std::string_view lock_json,
                         const AuditEntry& audit) = 0;
  // (commit, lock JSON) of every lock of `dataset`, or of every dataset when it is empty.
  struct LockRow {
    std::string dataset;
    ObjectId commit;
    std::string lock_json;
  };
  virtual Result<std::vector<LockRow>> ListLocks(std::string_view dataset) = 0;

  // --- storage tiers (the lake moves the data; the catalog records where each version is) ---
  // One dataset version in a tier other than hot, with the numbers of its last move.
  struct ArchiveRow {
    std::string dataset;
    ObjectId commit;
    std::string tier;          // "archive"
    int64_t changed_unix = 0;  // when it was moved
    uint64_t objects = 0;      // objects moved by that move
    uint64_t stored_before = 0, stored_after = 0;  // their stored bytes before and after it
  };
  // Records (dataset, commit) in `row.tier`, or removes its row when the tier is "hot", with
  // the audit entry, in one transaction.
  virtual Status SetArchive(const ArchiveRow& row, const AuditEntry& audit) = 0;
  // The rows of `dataset`, or of every dataset when it is empty.
  virtual Result<std::vector<ArchiveRow>> ListArchives(std::string_view dataset) = 0;

  // --- per-file metadata ---
  // Replaces the metadata of (meta.commit, meta.path). The commit must be recorded.
  virtual Status PutFileMeta(const FileMeta& meta) = 0;
  virtual Result<FileMeta> GetFileMeta(const ObjectId& commit, std::string_view path) = 0;

  // --- audit log ---
  // For changes the catalog does not make itself (key changes, GC, object deletion).
  virtual Status AppendAudit(const AuditEntry& entry) = 0;
  // Entries with seq >= `from_seq`, oldest first, at most `limit`.
  virtual Result<std::vector<AuditRecord>> ListAudit(uint64_t from_seq, size_t limit) = 0;
  virtual Result<AuditHead> Head() = 0;
  // Recomputes the whole chain and reports the first entry that was edited, removed or
  // reordered. With `expected` (the head the repository recorded), also detects a log that was
  // truncated or replaced. A broken chain is a report, not an error: errors are for failing to
  // read the log at all.
  virtual Result<AuditVerifyReport> VerifyAudit(
      std::optional<AuditHead> expected = std::nullopt) = 0;
};

struct SqliteCatalogOptions {
  std::string path;           // the database file; its directory must exist
  // Keys the audit chain: the repository's MAC key, or a key derived from it.
  crypto::Key256 audit_key{};
  bool create_if_missing = true;
  // How long a writer waits for another process's transaction before failing (retryable).
  int busy_timeout_ms = 10000;
  // Copy the WAL into the database file when the connection closes. Off by default: a command
  // then pays no checkpoint (two fsyncs) at exit, and the WAL is checkpointed when it grows
  // (SQLite's auto-checkpoint) or by the next process; committed transactions are durable in
  // the WAL either way. On where the file alone must be complete (a rebuilt catalog is renamed
  // into place without its WAL).
  bool checkpoint_on_close = false;
};

// Opens (creating if allowed) a SQLite catalog in WAL mode. kCorruption for a damaged file
// (the message suggests `strata catalog rebuild`), kUnsupported for a schema from a newer
// strata, kNotFound if missing and !create_if_missing.
Result<std::unique_ptr<Catalog>> OpenSqliteCatalog(const SqliteCatalogOptions& options);

// The schema version this build writes and the newest it reads.
inline constexpr int kSqliteCatalogSchemaVersion = 1;

}  // namespace strata::catalog
