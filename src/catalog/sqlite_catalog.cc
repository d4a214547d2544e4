// The embedded catalog: one SQLite database in WAL mode.
//
// WAL lets readers run while one writer commits; every write transaction starts with
// BEGIN IMMEDIATE so that a writer takes the write lock before it reads what it will change.
// That makes read-check-write sequences (compare-and-swap of a branch, appending to the audit
// chain) atomic across processes, and it means a waiting writer is handled by the busy timeout
// instead of failing with SQLITE_BUSY when it upgrades a read transaction.
//
// Ids are stored as 64-digit lowercase hex text: prefix lookups become index range scans and a
// person inspecting the file with the sqlite3 shell can read them.
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "catalog/catalog.h"
#include "crypto/aead.h"
#include "strata/env.h"

namespace strata::catalog {
namespace {

using nlohmann::json;

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

// A commit that leaves this many WAL frames (pages) or more checkpoints and empties the WAL.
constexpr int kWalCheckpointFrames = 256;

// SQLite's default VFS, except that an existing WAL is opened without SQLITE_OPEN_CREATE.
// SQLite opens the WAL with that flag every time and then syncs the directory at the
// connection's first WAL sync, to make the name of a WAL it may have just created durable:
// with each command a process, that was one more disk flush in every change (4-5 ms on a
// busy disk). Here the process that creates a WAL syncs the directory at once (a reader that
// creates it might never sync it), and later ones reuse the file and its durable name. (A
// writer that opens the WAL in the instant between another's create and its directory sync
// relies on the file system writing the name before the WAL's data, as ext4's journal does.)
sqlite3_vfs* WalReusingVfs() {
  static sqlite3_vfs vfs;
  static sqlite3_vfs* base = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
    base = sqlite3_vfs_find(nullptr);
    vfs = *base;  // pAppData too: the default VFS's methods read it
    vfs.zName = "strata-wal-reusing";
    vfs.xOpen = [](sqlite3_vfs*, const char* name, sqlite3_file* file, int flags, int* out_flags) {
      if (name == nullptr || (flags & SQLITE_OPEN_WAL) == 0) return base->xOpen(base, name, file, flags, out_flags);
      if (::access(name, F_OK) == 0) {
        int rc = base->xOpen(base, name, file, flags & ~SQLITE_OPEN_CREATE, out_flags);
        if (rc != SQLITE_CANTOPEN) return rc;  // else removed meanwhile: create it
      }
      int rc = base->xOpen(base, name, file, flags, out_flags);
      if (rc == SQLITE_OK && !Env::Default()->SyncDir(std::string(Dirname(name))).ok()) {
        file->pMethods->xClose(file);
        rc = SQLITE_IOERR_DIR_FSYNC;
      }
      return rc;
    };
    sqlite3_vfs_register(&vfs, /*makeDflt=*/0);
  });
  return &vfs;
}

// A thin owner of the connection that turns SQLite result codes into Statuses naming what was
// being done, so "catalog /r/catalog.db: update branch: disk I/O error" reaches the user rather
// than a bare "disk I/O error".
class Db {
 public:
  Db(sqlite3* db, std::string path, int busy_ms) : db_(db), path_(std::move(path)), busy_ms_(busy_ms) {}
  ~Db() {
    for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
  }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  sqlite3* raw() const { return db_; }
  int busy_ms() const { return busy_ms_; }

  Status Error(int rc, std::string_view purpose) const {
    const char* detail = sqlite3_errmsg(db_);
    std::string what = fmt::format("catalog {}: {}: {} (sqlite code {})", path_, purpose,
                                   detail ? detail : sqlite3_errstr(rc), rc);
    switch (rc & 0xff) {
      case SQLITE_CORRUPT:
      case SQLITE_NOTADB:
        return Status::Corruption(
            what + "; the catalog is damaged: rebuild it from the repository's objects with "
                   "`strata catalog rebuild` (no data is lost)");
      case SQLITE_BUSY:
      case SQLITE_LOCKED:
        return Status::IOError(
            fmt::format("{}; another process held the catalog for more than {} ms, retry", what,
                        busy_ms_),
            /*retryable=*/true);
      case SQLITE_FULL:
        return Status::NoSpace(what);
      case SQLITE_PERM:
      case SQLITE_READONLY:
      case SQLITE_AUTH:
        return Status::PermissionDenied(what);
      case SQLITE_CANTOPEN:
      case SQLITE_IOERR:
      case SQLITE_PROTOCOL:
        return Status::IOError(what);
      default:
        return Status::Internal(what);
    }
  }

  // Runs statements that return no rows (pragmas with side effects, BEGIN, scripts).
  Status Exec(const char* sql, std::string_view purpose) {
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
    return rc == SQLITE_OK ? Status() : Error(rc, purpose);
  }

  // Prepared statements are cached per SQL text: the hot paths (ref CAS, audit append) then
  // skip parsing. The returned statement is reset by Stmt's destructor.
  Result<sqlite3_stmt*> Prepare(const char* sql, std::string_view purpose) {
    auto it = cache_.find(sql);
    if (it != cache_.end()) return it->second;
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(stmt);
      return Error(rc, purpose);
    }
    cache_.emplace(sql, stmt);
    return stmt;
  }

  int64_t Changes() const { return sqlite3_changes64(db_); }

 private:
  sqlite3* db_;
  std::string path_;
  int busy_ms_;
  std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

// One use of a cached statement. Bind errors are kept and reported by the next Step, so call
// sites read as the SQL they run.
class Stmt {
 public:
  Stmt(Db* db, sqlite3_stmt* s, std::string_view purpose) : db_(db), s_(s), purpose_(purpose) {}
  ~Stmt() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& Bind(int i, std::string_view v) {
    Check(sqlite3_bind_text64(s_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
    return *this;
  }
  Stmt& Bind(int i, const ObjectId& id) { return Bind(i, id.ToHex()); }
  Stmt& Bind(int i, int64_t v) {
    Check(sqlite3_bind_int64(s_, i, v));
    return *this;
  }
  Stmt& BindNull(int i) {
    Check(sqlite3_bind_null(s_, i));
    return *this;
  }

  // True when a row is ready, false when done.
  Result<bool> Step() {
    if (bind_rc_ != SQLITE_OK) return db_->Error(bind_rc_, purpose_);
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return db_->Error(rc, purpose_);
  }
  // Steps a statement that returns no rows.
  Status Run() {
    Result<bool> r = Step();
    return r.ok() ? Status() : r.status();
  }

  int64_t Int(int col) const { return sqlite3_column_int64(s_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(s_, col) == SQLITE_NULL; }
  std::string Text(int col) const {
    const unsigned char* p = sqlite3_column_text(s_, col);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(s_, col)))
             : std::string();
  }
  // A stored id; a malformed one means the file was damaged or edited by hand.
  Result<ObjectId> Id(int col) const {
    std::string hex = Text(col);
    auto id = ObjectId::FromHex(hex);
    if (!id.ok()) {
      return Status::Corruption(fmt::format(
          "catalog: {}: stored id '{}' is malformed; rebuild the catalog with "
          "`strata catalog rebuild`",
          purpose_, hex));
    }
    return *id;
  }

 private:
  void Check(int rc) {
    if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }
  Db* db_;
  sqlite3_stmt* s_;
  std::string_view purpose_;
  int bind_rc_ = SQLITE_OK;
};

#define STRATA_SQL(var, db, sql, purpose)                    \
  STRATA_ASSIGN_OR_RETURN(sqlite3_stmt* var##_raw, (db).Prepare(sql, purpose)); \
  Stmt var(&(db), var##_raw, purpose)

// Each statement on its own so that a failure names the table it was creating.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE catalog_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE datasets(
  name TEXT PRIMARY KEY,
  created_ms INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE refs(
  dataset TEXT NOT NULL REFERENCES datasets(name) ON DELETE CASCADE,
  name TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('branch', 'tag')),
  target TEXT NOT NULL,
  protected INTEGER NOT NULL DEFAULT 0,
  updated_ms INTEGER NOT NULL,
  PRIMARY KEY (dataset, name)) WITHOUT ROWID;
CREATE TABLE commits(
  id TEXT PRIMARY KEY,
  dataset TEXT NOT NULL REFERENCES datasets(name) ON DELETE CASCADE,
  first_parent TEXT,
  parents TEXT NOT NULL,
  tree TEXT NOT NULL,
  author TEXT NOT NULL,
  time_unix INTEGER NOT NULL,
  message TEXT NOT NULL,
  meta TEXT NOT NULL);
CREATE INDEX commits_by_dataset ON commits(dataset, time_unix);
CREATE INDEX commits_by_first_parent ON commits(first_parent);
CREATE TABLE commit_meta(
  commit_id TEXT NOT NULL REFERENCES commits(id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (commit_id, key)) WITHOUT ROWID;
CREATE INDEX commit_meta_by_value ON commit_meta(key, value);
CREATE TABLE file_meta(
  commit_id TEXT NOT NULL REFERENCES commits(id) ON DELETE CASCADE,
  path TEXT NOT NULL,
  source TEXT NOT NULL,
  PRIMARY KEY (commit_id, path)) WITHOUT ROWID;
CREATE TABLE file_labels(
  commit_id TEXT NOT NULL,
  path TEXT NOT NULL,
  label TEXT NOT NULL,
  PRIMARY KEY (commit_id, path, label),
  FOREIGN KEY (commit_id, path) REFERENCES file_meta(commit_id, path) ON DELETE CASCADE)
  WITHOUT ROWID;
CREATE INDEX file_labels_by_label ON file_labels(label);
CREATE TABLE audit(
  seq INTEGER PRIMARY KEY,
  time_ms INTEGER NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  details TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL);
)sql";

// Added after schema version 1 was released, without a version bump: the tables are only
// added, and a strata that does not know them ignores them. Created when missing (at open).
constexpr const char* kRetentionTables = R"sql(
CREATE TABLE IF NOT EXISTS retention_policies(
  dataset TEXT PRIMARY KEY REFERENCES datasets(name) ON DELETE CASCADE,
  policy TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS forgotten(
  dataset TEXT NOT NULL REFERENCES datasets(name) ON DELETE CASCADE,
  commit_id TEXT NOT NULL,
  PRIMARY KEY (dataset, commit_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS retention_locks(
  dataset TEXT NOT NULL REFERENCES datasets(name) ON DELETE CASCADE,
  commit_id TEXT NOT NULL,
  lock TEXT NOT NULL,
  PRIMARY KEY (dataset, commit_id)) WITHOUT ROWID;
)sql";

// Added likewise: where dataset versions moved to another storage tier (`strata archive`).
constexpr const char* kArchiveTables = R"sql(
CREATE TABLE IF NOT EXISTS archives(
  dataset TEXT NOT NULL REFERENCES datasets(name) ON DELETE CASCADE,
  commit_id TEXT NOT NULL,
  tier TEXT NOT NULL,
  changed_unix INTEGER NOT NULL,
  objects INTEGER NOT NULL,
  stored_before INTEGER NOT NULL,
  stored_after INTEGER NOT NULL,
  PRIMARY KEY (dataset, commit_id)) WITHOUT ROWID;
)sql";

// "STRC" — marks the file as a strata catalog for `file(1)` and for us.
constexpr int kApplicationId = 0x53545243;

void PutU64(std::string* out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>(v >> (8 * i)));
}
void PutField(std::string* out, std::string_view s) {
  PutU64(out, s.size());
  out->append(s);
}

// Length-prefixed fields in a fixed order: no two different entries serialize alike, and the
// format never depends on a JSON library's whims (details are hashed as stored).
std::string AuditPreimage(uint64_t seq, int64_t time_ms, std::string_view actor,
                          std::string_view action, std::string_view target,
                          std::string_view details, const ObjectId& prev_hash) {
  std::string out = "strata audit v1";
  out.push_back('\0');
  PutU64(&out, seq);
  PutU64(&out, static_cast<uint64_t>(time_ms));
  PutField(&out, actor);
  PutField(&out, action);
  PutField(&out, target);
  PutField(&out, details);
  out.append(reinterpret_cast<const char*>(prev_hash.bytes.data()), prev_hash.bytes.size());
  return out;
}

std::string RefLabel(std::string_view dataset, std::string_view name) {
  return fmt::format("{}@{}", dataset, name);
}

Result<RefKind> ParseKind(const std::string& s) {
  if (s == "branch") return RefKind::kBranch;
  if (s == "tag") return RefKind::kTag;
  return Status::Corruption(fmt::format("catalog: unknown ref kind '{}'", s));
}

class SqliteCatalog final : public Catalog {
 public:
  SqliteCatalog(std::unique_ptr<Db> db, const crypto::Key256& key)
      : db_(std::move(db)), mac_(key) {}

  Status Init(int busy_ms);

  Status CreateDataset(std::string_view name, const AuditEntry& audit) override;
  Result<std::vector<Dataset>> ListDatasets() override;
  Result<Dataset> GetDataset(std::string_view name) override;
  Status DeleteDataset(std::string_view name, const AuditEntry& audit) override;

  Result<Ref> GetRef(std::string_view dataset, std::string_view name) override;
  Result<std::vector<Ref>> ListRefs(std::string_view dataset, std::optional<RefKind> kind) override;
  Status CreateRef(std::string_view dataset, std::string_view name, RefKind kind,
                   const ObjectId& target, const AuditEntry& audit) override;
  Status UpdateBranch(std::string_view dataset, std::string_view name, const ObjectId& expected,
                      const ObjectId& target, const AuditEntry& audit) override;
  Status DeleteRef(std::string_view dataset, std::string_view name,
                   const AuditEntry& audit) override;
  Status SetRefProtected(std::string_view dataset, std::string_view name, bool on,
                         const AuditEntry& audit) override;

  Status PutCommit(const CommitRecord& commit) override { return PutCommits({commit}); }
  Status PutCommits(const std::vector<CommitRecord>& commits) override;
  Result<CommitRecord> GetCommit(const ObjectId& id) override;
  Result<ObjectId> ResolveCommitPrefix(std::string_view dataset, std::string_view prefix) override;
  Result<std::vector<CommitRecord>> Log(const ObjectId& start, size_t limit) override;

  Status SetRetentionPolicy(std::string_view dataset, std::string_view policy_json,
                            const AuditEntry& audit) override;
  Result<std::optional<std::string>> GetRetentionPolicy(std::string_view dataset) override;
  Status Forget(std::string_view dataset, const std::vector<ObjectId>& commits,
                const AuditEntry& audit) override;
  Result<std::set<ObjectId>> ListForgotten(std::string_view dataset) override;
  Status SetLock(std::string_view dataset, const ObjectId& commit, std::string_view lock_json,
                 const AuditEntry& audit) override;
  Result<std::vector<LockRow>> ListLocks(std::string_view dataset) override;
  Status SetArchive(const ArchiveRow& row, const AuditEntry& audit) override;
  Result<std::vector<ArchiveRow>> ListArchives(std::string_view dataset) override;

  Status PutFileMeta(const FileMeta& meta) override;
  Result<FileMeta> GetFileMeta(const ObjectId& commit, std::string_view path) override;

  Status AppendAudit(const AuditEntry& entry) override;
  Result<std::vector<AuditRecord>> ListAudit(uint64_t from_seq, size_t limit) override;
  Result<AuditHead> Head() override;
  Result<AuditVerifyReport> VerifyAudit(std::optional<AuditHead> expected) override;

 private:
  // Runs `body` in a write transaction: committed if it returns OK, rolled back otherwise.
  template <class F>
  Status WriteTxn(std::string_view purpose, F&& body) {
    STRATA_RETURN_IF_ERROR(db_->Exec("BEGIN IMMEDIATE", purpose));
    Status s = body();
    if (s.ok()) s = db_->Exec("COMMIT", purpose);
    if (!s.ok()) (void)db_->Exec("ROLLBACK", purpose);
    return s;
  }

  Status AppendAuditLocked(AuditEntry entry, std::string_view default_action,
                           std::string_view default_target, const json& facts);
  // Sets *fresh for an empty file; fails for a newer or foreign schema.
  Status CheckSchema(bool* fresh);
  Result<bool> DatasetExists(std::string_view name);
  Status RequireDataset(std::string_view name);
  // The ref row, or NotFound naming the ref (or the dataset, if that is what is missing).
  Result<Ref> GetRefLocked(std::string_view dataset, std::string_view name);
  Result<CommitRecord> ReadCommit(Stmt& st, int first_col);

  std::mutex mu_;  // one connection; SQLite serializes processes, this serializes threads
  std::unique_ptr<Db> db_;
  crypto::KeyedHash mac_;
};

Status SqliteCatalog::Init(int busy_ms) {
  sqlite3_extended_result_codes(db_->raw(), 1);
  sqlite3_busy_timeout(db_->raw(), busy_ms);
  // journal_mode is the first statement that reads the file: a damaged header shows up here.
  {
    STRATA_SQL(st, *db_, "PRAGMA journal_mode=WAL", "switch to WAL mode");
    STRATA_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row || st.Text(0) != "wal") {
      return Status::IOError(fmt::format(
          "catalog: could not switch to WAL mode (got '{}'); is it on a network file system?",
          row ? st.Text(0) : ""));
    }
  }
  // FULL: a ref update reported as done survives a power cut (refs are what a rebuild can't
  // recover from objects alone).
  STRATA_RETURN_IF_ERROR(db_->Exec("PRAGMA synchronous=FULL", "set synchronous mode"));
  // The first process to open the catalog rebuilds SQLite's WAL index: it reads and checksums
  // every frame of the WAL (a 4 MB WAL cost 2.5 ms of every command). Nor does SQLite's own
  // auto-checkpoint ever restart a WAL whose writers each run in a new process (the rebuilt
  // index forgets what was copied back), so the WAL grew with every change. Instead, a commit
  // that leaves kWalCheckpointFrames or more frames copies them into the database and empties
  // the WAL, without waiting: when a reader is in the way, a later commit tries again.
  sqlite3_wal_hook(db_->raw(), [](void* owner, sqlite3* db, const char* name, int frames) {
    if (frames >= kWalCheckpointFrames) {
      sqlite3_busy_timeout(db, 0);
      (void)sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
      sqlite3_busy_timeout(db, static_cast<const Db*>(owner)->busy_ms());
    }
    return SQLITE_OK;
  }, db_.get());
  STRATA_RETURN_IF_ERROR(db_->Exec("PRAGMA foreign_keys=ON", "enable foreign keys"));

  // Checking reads only, so opening never waits for another process's writer; only a fresh
  // file takes the write lock, and then checks again in case another process created the
  // schema first.
  bool fresh = false;
  STRATA_RETURN_IF_ERROR(db_->Exec("BEGIN", "check schema"));
  Status s = CheckSchema(&fresh);
  (void)db_->Exec(s.ok() ? "COMMIT" : "ROLLBACK", "check schema");
  STRATA_RETURN_IF_ERROR(s);
  if (!fresh) {
    bool has_added = false;
    {
      // The newest of the added tables: the others exist when it does.
      STRATA_SQL(st, *db_, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'archives'",
                 "look for the retention and archive tables");
      STRATA_ASSIGN_OR_RETURN(has_added, st.Step());
    }
    if (has_added) return Status();
    return WriteTxn("add the retention and archive tables", [&]() -> Status {
      STRATA_RETURN_IF_ERROR(db_->Exec(kRetentionTables, "add the retention tables"));
      return db_->Exec(kArchiveTables, "add the archive table");
    });
  }
  return WriteTxn("create the catalog schema", [&]() -> Status {
    STRATA_RETURN_IF_ERROR(CheckSchema(&fresh));
    if (!fresh) return Status();
    STRATA_RETURN_IF_ERROR(db_->Exec(kSchemaV1, "create the catalog schema"));
    STRATA_RETURN_IF_ERROR(db_->Exec(kRetentionTables, "create the retention tables"));
    STRATA_RETURN_IF_ERROR(db_->Exec(kArchiveTables, "create the archive table"));
    STRATA_RETURN_IF_ERROR(db_->Exec(
        fmt::format("PRAGMA application_id={}", kApplicationId).c_str(), "set application id"));
    STRATA_SQL(st, *db_, "INSERT INTO catalog_meta(key, value) VALUES('schema_version', ?1)",
               "write the schema version");
    return st.Bind(1, std::to_string(kSqliteCatalogSchemaVersion)).Run();
  });
}

Status SqliteCatalog::CheckSchema(bool* fresh) {
  *fresh = false;
  int app_id = 0;
  {
    STRATA_SQL(st, *db_, "PRAGMA application_id", "read application id");
    STRATA_ASSIGN_OR_RETURN(bool row, st.Step());
    if (row) app_id = static_cast<int>(st.Int(0));
  }
  if (app_id != 0 && app_id != kApplicationId) {
    return Status::FailedPrecondition(
        "catalog: the file is an SQLite database of another application, not a strata catalog");
  }
  bool has_meta = false;
  {
    STRATA_SQL(st, *db_,
               "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'catalog_meta'",
               "look for the schema version table");
    STRATA_ASSIGN_OR_RETURN(has_meta, st.Step());
  }
  if (!has_meta) {
    // Anything else already in the file means it is not ours.
    STRATA_SQL(st, *db_, "SELECT name FROM sqlite_master LIMIT 1", "inspect a new catalog");
    STRATA_ASSIGN_OR_RETURN(bool row, st.Step());
    if (row) {
      return Status::FailedPrecondition(
          "catalog: the file is an SQLite database without a strata schema; refusing to "
          "change it");
    }
    *fresh = true;
    return Status();
  }
  STRATA_SQL(st, *db_, "SELECT value FROM catalog_meta WHERE key = 'schema_version'",
             "read the schema version");
  STRATA_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) {
    return Status::Corruption(
        "catalog: schema version is missing; rebuild it with `strata catalog rebuild`");
  }
  std::string v = st.Text(0);
  int version = std::atoi(v.c_str());
  if (version <= 0) {
    return Status::Corruption(fmt::format(
        "catalog: schema version '{}' is malformed; rebuild it with `strata catalog rebuild`", v));
  }
  if (version > kSqliteCatalogSchemaVersion) {
    return Status::Unsupported(fmt::format(
        "catalog schema version {} is newer than this strata reads (up to {}): upgrade strata",
        version, kSqliteCatalogSchemaVersion));
  }
  // Older versions will be migrated here (under the write lock) when there are any.
  return Status();
}

// ---------------------------------------------------------------------------- audit

Status SqliteCatalog::AppendAuditLocked(AuditEntry entry, std::string_view default_action,
                                        std::string_view default_target, const json& facts) {
  if (entry.action.empty()) entry.action = default_action;
  if (entry.target.empty()) entry.target = default_target;
  if (entry.action.empty()) return Status::InvalidArgument("audit entry: action is empty");
  json details = json::object();
  if (!entry.details.empty()) {
    details = json::parse(entry.details, nullptr, /*allow_exceptions=*/false);
    if (details.is_discarded() || !details.is_object()) {
      return Status::InvalidArgument(
          fmt::format("audit entry details must be a JSON object, got: {}", entry.details));
    }
  }
  for (auto it = facts.begin(); it != facts.end(); ++it) details[it.key()] = it.value();
  // nlohmann's objects are sorted maps, so dump() is canonical; the stored text is what is
  // hashed in any case.
  std::string details_text = details.dump();

  uint64_t seq = 1;
  ObjectId prev;
  {
    STRATA_SQL(st, *db_, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
               "read the audit log head");
    STRATA_ASSIGN_OR_RETURN(bool row, st.Step());
    if (row) {
      seq = static_cast<uint64_t>(st.Int(0)) + 1;
      STRATA_ASSIGN_OR_RETURN(prev, st.Id(1));
    }
  }
  int64_t now = NowUnixMs();
  ObjectId hash = mac_.Hash(AuditPreimage(seq, now, entry.actor, entry.action, entry.target,
                                          details_text, prev));
  STRATA_SQL(st, *db_,
             "INSERT INTO audit(seq, time_ms, actor, action, target, details, prev_hash, hash) "
             "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
             "append to the audit log");
  return st.Bind(1, static_cast<int64_t>(seq))
      .Bind(2, now)
      .Bind(3, entry.actor)
      .Bind(4, entry.action)
      .Bind(5, entry.target)
      .Bind(6, details_text)
      .Bind(7, prev)
      .Bind(8, hash)
      .Run();
}

Status SqliteCatalog::AppendAudit(const AuditEntry& entry) {
  std::lock_guard lock(mu_);
  return WriteTxn("append to the audit log",
                  [&] { return AppendAuditLocked(entry, "", "", json::object()); });
}

Result<std::vector<AuditRecord>> SqliteCatalog::ListAudit(uint64_t from_seq, size_t limit) {
  std::lock_guard lock(mu_);
  STRATA_SQL(st, *db_,
             "SELECT seq, time_ms, actor, action, target, details, prev_hash, hash FROM audit "
             "WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
             "list the audit log");
  st.Bind(1, static_cast<int64_t>(std::min<uint64_t>(from_seq, INT64_MAX)))
      .Bind(2, static_cast<int64_t>(std::min<size_t>(limit, INT64_MAX)));
  std::vector<AuditRecord> out;
  for (;;) {
    STRATA_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    AuditRecord r;
    r.seq = static_cast<uint64_t>(st.Int(0));
    r.time_unix_ms = st.Int(1);
    r.actor = st.Text(2);
    r.action = st.Text(3);
    r.target = st.Text(4);
    r.details = st.Text(5);
    STRATA_ASSIGN_OR_RETURN(r.prev_hash, st.Id(6));
    STRATA_ASSIGN_OR_RETURN(r.hash, st.Id(7));
    out.push_back(std::move(r));
  }
  return out;
}

Result<AuditHead> SqliteCatalog::Head() {
  std::lock_guard lock(mu_);
  STRATA_SQL(st, *db_, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
             "read the audit log head");
  STRATA_ASSIGN_OR_RETURN(bool row, st.Step());
  AuditHead head;
  if (row) {
    head.seq = static_cast<uint64_t>(st.Int(0));
    STRATA_ASSIGN_OR_RETURN(head.hash, st.Id(1));
  }
  return head;
}

Result<AuditVerifyReport> SqliteCatalog::VerifyAudit(std::optional<AuditHead> expected) {
  std::lock_guard lock(mu_);
  STRATA_SQL(st, *db_,
             "SELECT seq, time_ms, actor, action, target, details, prev_hash, hash FROM audit "
             "ORDER BY seq",
             "verify the audit log");
  AuditVerifyReport report;
  using Problem = AuditVerifyReport::Problem;
  auto fail = [&](Problem p, uint64_t seq, std::string msg) {
    report.problem = p;
    report.first_bad_seq = seq;
    report.message = std::move(msg);
  };
  std::optional<ObjectId> hash_at_expected;
  // The checks run in an order that names the cause: a gap is a removal, an entry that does
  // not chain to its predecessor was moved, and only then a hash mismatch is an edit.
  for (;;) {
    STRATA_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    int64_t seq = st.Int(0);
    uint64_t want = report.head.seq + 1;
    if (seq <= 0 || static_cast<uint64_t>(seq) < want) {
      fail(Problem::kEdited, want,
           fmt::format("audit entry {} was edited: its sequence number was changed to {}", want,
                       seq));
      return report;
    }
    if (static_cast<uint64_t>(seq) > want) {
      fail(Problem::kRemoved, want,
           seq - 1 == static_cast<int64_t>(want)
               ? fmt::format("audit entry {} was removed", want)
               : fmt::format("audit entries {} to {} were removed", want, seq - 1));
      return report;
    }
    auto prev = ObjectId::FromHex(st.Text(6));
    auto hash = ObjectId::FromHex(st.Text(7));
    if (!prev.ok() || !hash.ok()) {
      fail(Problem::kEdited, want,
           fmt::format("audit entry {} was edited: its stored hashes are malformed", want));
      return report;
    }
    if (*prev != report.head.hash) {
      fail(Problem::kReordered, want,
           fmt::format("audit entry {} does not follow entry {}: entries were reordered (or "
                       "one before it was replaced)",
                       want, want - 1));
      return report;
    }
    ObjectId recomputed = mac_.Hash(AuditPreimage(static_cast<uint64_t>(seq), st.Int(1),
                                                  st.Text(2), st.Text(3), st.Text(4), st.Text(5),
                                                  *prev));
    if (recomputed != *hash) {
      fail(Problem::kEdited, want,
           fmt::format("audit entry {} was edited: its content does not match its keyed hash "
                       "(or the catalog is opened with another repository's key)",
                       want));
      return report;
    }
    report.entries++;
    report.head = AuditHead{want, *hash};
    if (expected && expected->seq == want) hash_at_expected = *hash;
  }
  if (expected && expected->seq > 0) {
    if (report.head.seq < expected->seq) {
      fail(Problem::kTruncated, report.head.seq + 1,
           fmt::format("the repository records {} audit entries but the catalog holds {}: "
                       "entries {} to {} were removed",
                       expected->seq, report.head.seq, report.head.seq + 1, expected->seq));
    } else if (hash_at_expected != expected->hash) {
      fail(Problem::kReplaced, expected->seq,
           fmt::format("audit entry {} is not the one the repository recorded: the audit log "
                       "(or the whole catalog) was replaced",
                       expected->seq));
    }
  }
  return report;
}

// ---------------------------------------------------------------------------- retention

Status SqliteCatalog::SetRetentionPolicy(std::string_view dataset, std::string_view policy_json,
                                         const AuditEntry& audit) {
  std::lock_guard lock(mu_);
  return WriteTxn("set a retention policy", [&]() -> Status {
    STRATA_RETURN_IF_ERROR(RequireDataset(dataset));
    STRATA_SQL(st, *db_,
               "INSERT INTO retention_policies(dataset, policy) VALUES(?1, ?2) "
               "ON CONFLICT(dataset) DO UPDATE SET policy = excluded.policy",
               "set a retention policy");
    STRATA_RETURN_IF_ERROR(st.Bind(1, dataset).Bind(2, policy_json).Run());
    return AppendAuditLocked(audit, "policy.set", dataset, json::object());
  });
}

Result<std::optional<std::string>> SqliteCatalog::GetRetentionPolicy(std::string_view dataset) {
  std::lock_guard lock(mu_);
  STRATA_SQL(st, *db_, "SELECT policy FROM retention_policies WHERE dataset = ?1",
             "read a retention policy");
  STRATA_ASSIGN_OR_RETURN(bool row, st.Bind(1, dataset).Step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(st.Text(0));
}

Status SqliteCatalog::Forget(std::string_view dataset, const std::vector<ObjectId>& commits,
                             const AuditEntry& audit) {
  std::lock_guard lock(mu_);
  return WriteTxn("forget commits", [&]() -> Status {
    STRATA_RETURN_IF_ERROR(RequireDataset(dataset));
    for (const auto& id : commits) {
      STRATA_SQL(st, *db_,
                 "INSERT INTO forgotten(dataset, commit_id) VALUES(?1, ?2) ON CONFLICT DO NOTHING",
                 "forget a commit");
      STRATA_RETURN_IF_ERROR(st.Bind(1, dataset).Bind(2, id).Run());
    }
    return AppendAuditLocked(audit, "forget", dataset, json::object());
  });
}

Result<std::set<ObjectId>> SqliteCatalog::ListForgotten(std::string_view dataset) {
  std::lock_guard lock(mu_);
  STRATA_SQL(st, *db_, "SELECT commit_id FROM forgotten WHERE dataset = ?1",
             "list forgotten commits");
  st.Bind(1, dataset);
  std::set<ObjectId> out;
  for (;;) {
    STRATA_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    STRATA_ASSIGN_OR_RETURN(ObjectId id, st.Id(0));
    out.insert(id);
  }
  return out;
}

Status SqliteCatalog::SetLock(std::string_view dataset, const ObjectId& commit, std::string_view lock_json,
                             const AuditEntry& audit) {
  std::lock_guard lock(mu_);
  return WriteTxn("set a retention lock", [&]() -> Status {
    STRATA_RETURN_IF_ERROR(RequireDataset(dataset));
    if (lock_json.empty()) {
      STRATA_SQL(st, *db_, "DELETE FROM retention_locks WHERE dataset = ?1 AND commit_id = ?2",
                 "remove a retention lock");
      STRATA_RETURN_IF_ERROR(st.Bind(1, dataset).Bind(2, commit).Run());
    } else {
      STRATA_SQL(st, *db_,
                 "INSERT INTO retention_locks(dataset, commit_id, lock) VALUES(?1, ?2, ?3) "
                 "ON CONFLICT(dataset, commit_id) DO UPDATE SET lock = excluded.lock",
                 "set a retention lock");
      STRATA_RETURN_IF_ERROR(st.Bind(1, dataset).Bind(2, commit).Bind(3, lock_json).Run());
    }
    return AppendAuditLocked(audit, "lock.set", fmt::format("{}@{}", dataset, commit.ToHex()), json::object());
  });
}

Result<std::vector<Catalog::LockRow>> SqliteCatalog::ListLocks(std::string_view dataset) {
  std::lock_guard lock(mu_);
  STRATA_SQL(st, *db_,
             "SELECT dataset, commit_id, lock FROM retention_locks WHERE ?1 = '' OR dataset = ?1 "
             "ORDER BY dataset, commit_id",
             "list retention locks");
  st.Bind(1, dataset);
  std::vector<LockRow> out;
  for (;;) {
    STRATA_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    LockRow r;
    r.dataset = st.Text(0);
    STRATA_ASSIGN_OR_RETURN(r.commit, st.Id(1));
    r.lock_json = st.Text(2);
    out.push_back(std::move(r));
  }
  return out;
}

Status SqliteCatalog::SetArchive(const ArchiveRow& row, const AuditEntry& audit) {
  std::lock_guard lock(mu_);
  return WriteTxn("record a storage tier", [&]() -> Status {
    STRATA_RETURN_IF_ERROR(RequireDataset(row.dataset));
    if (row.tier == "hot") {
      STRATA_SQL(st, *db_, "DELETE FROM archives WHERE dataset = ?1 AND commit_id = ?2", "remove an archive row");
      STRATA_RETURN_IF_ERROR(st.Bind(1, row.dataset).Bind(2, row.commit).Run());
    } else {
      STRATA_SQL(st, *db_,
                 "INSERT INTO archives(dataset, commit_id, tier, changed_unix, objects, stored_before, stored_after) "
                 "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(dataset, commit_id) DO UPDATE SET "
                 "tier = excluded.tier, changed_unix = excluded.changed_unix, objects = excluded.objects, "
                 "stored_before = excluded.stored_before, stored_after = excluded.stored_after",
                 "record an archive row");
      STRATA_RETURN_IF_ERROR(st.Bind(1, row.dataset)
                                 .Bind(2, row.commit)
                                 .Bind(3, row.tier)
                                 .Bind(4, row.changed_unix)
                                 .Bind(5, static_cast<int64_t>(row.objects))
                                 .Bind(6, static_cast<int64_t>(row.stored_before))
                                 .Bind(7, static_cast<int64_t>(row.stored_after))
                                 .Run());
    }
    return AppendAuditLocked(audit, "archive.set", fmt::format("{}@{}", row.dataset, row.commit.ToHex()),
                             json::object());
  });
}

Result<std::vector<Catalog::ArchiveRow>> SqliteCatalog::ListArchives(std::string_view dataset) {
  std::lock_guard lock(mu_);
  STRATA_SQL(st, *db_,
             "SELECT dataset, commit_id, tier, changed_unix, objects, stored_before, stored_after FROM archives "
             "WHERE ?1 = '' OR dataset = ?1 ORDER BY dataset, changed_unix, commit_id",
             "list archived versions");
  st.Bind(1, dataset);
  std::vector<ArchiveRow> out;
  for (;;) {
    STRATA_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    ArchiveRow r;
    r.dataset = st.Text(0);
    STRATA_ASSIGN_OR_RETURN(r.commit, st.Id(1));
    r.tier = st.Text(2);
    r.changed_unix = st.Int(3);
    r.objects = static_cast<uint64_t>(st.Int(4));
    r.stored_before = static_cast<uint64_t>(st.Int(5));
    r.stored_after = static_cast<uint64_t>(st.Int(6));
    out.push_back(std::move(r));
  }
  return out;
}

// ---------------------------------------------------------------------------- datasets

Result<bool> SqliteCatalog::DatasetExists(std::string_view name) {
  STRATA_SQL(st, *db_, "SELECT 1 FROM datasets WHERE name = ?1", "look up a dataset");
  return st.Bind(1, name).Step();
}

Status SqliteCatalog::RequireDataset(std::string_view name) {
  STRATA_ASSIGN_OR_RETURN(bool exists, DatasetExists(name));
  if (!exists) return Status::NotFound(fmt::format("no dataset named '{}'", name));
  return Status();
}

Status SqliteCatalog::CreateDataset(std::string_view name, const AuditEntry& audit) {
  STRATA_RETURN_IF_ERROR(ValidateDatasetName(name));
  std::lock_guard lock(mu_);
  return WriteTxn("create a dataset", [&]() -> Status {
    STRATA_SQL(st, *db_,
               "INSERT INTO datasets(name, created_ms) VALUES(?1, ?2) ON CONFLICT DO NOTHING",
               "create a dataset");
    STRATA_RETURN_IF_ERROR(st.Bind(1, name).Bind(2, NowUnixMs()).Run());
    if (db_->Changes() == 0) {
      return Status::AlreadyExists(fmt::format("dataset '{}' already exists", name));
    }
    return AppendAuditLocked(audit, "dataset.create", name, json::object());
  });
}

Result<std::vector<Dataset>> SqliteCatalog::ListDatasets() {
  std::lock_guard lock(mu_);
  STRATA_SQL(st, *db_, "SELECT name, created_ms FROM datasets ORDER BY name", "list datasets");
  std::vector<Dataset> out;
  for (;;) {
    STRATA_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    out.push_back(Dataset{st.Text(0), st.Int(1)});
  }
  return out;
}

Result<Dataset> SqliteCatalog::GetDataset(std::string_view name) {
  std::lock_guard lock(mu_);
  STRATA_SQL(st, *db_, "SELECT name, created_ms FROM datasets WHERE name = ?1",
             "look up a dataset");
  STRATA_ASSIGN_OR_RETURN(bool row, st.Bind(1, name).Step());
  if (!row) return Status::NotFound(fmt::format("no dataset named '{}'", name));
  return Dataset{st.Text(0), st.Int(1)};
}

Status SqliteCatalog::DeleteDataset(std::string_view name, const AuditEntry& audit) {
  std::lock_guard lock(mu_);
  return WriteTxn("delete a dataset", [&]() -> Status {
    STRATA_RETURN_IF_ERROR(RequireDataset(name));
    {
      STRATA_SQL(st, *db_,
                 "SELECT name, kind FROM refs WHERE dataset = ?1 AND protected = 1 "
                 "ORDER BY name LIMIT 1",
                 "look for protected refs");
      STRATA_ASSIGN_OR_RETURN(bool row, st.Bind(1, name).Step());
      if (row) {
        return Status::FailedPrecondition(fmt::format(
            "dataset '{}' has a protected {} '{}': unprotect it before deleting the dataset",
            name, st.Text(1), st.Text(0)));
      }
    }
    json facts = json::object();
    {
      STRATA_SQL(st, *db_, "SELECT name, target FROM refs WHERE dataset = ?1 ORDER BY name",
                 "list the refs of a dataset");
      st.Bind(1, name);
      // The refs are recorded in the audit entry: with them, a deleted dataset can be
      // re-created from the objects that GC has not yet collected.
      json refs = json::object();
      for (;;) {
        STRATA_ASSIGN_OR_RETURN(bool row, st.Step());
        if (!row) break;
        refs[st.Text(0)] = st.Text(1);
      }
      facts["refs"] = std::move(refs);
    }
    STRATA_SQL(st, *db_, "DELETE FROM datasets WHERE name = ?1", "delete a dataset");
    STRATA_RETURN_IF_ERROR(st.Bind(1, name).Run());
    return AppendAuditLocked(audit, "dataset.delete", name, facts);
  });
}

// ---------------------------------------------------------------------------- refs

Result<Ref> SqliteCatalog::GetRefLocked(std::string_view dataset, std::string_view name) {
  STRATA_SQL(st, *db_,
             "SELECT kind, target, protected, updated_ms FROM refs "
             "WHERE dataset = ?1 AND name = ?2",
             "look up a ref");
  STRATA_ASSIGN_OR_RETURN(bool row, st.Bind(1, dataset).Bind(2, name).Step());
  if (!row) {
    STRATA_RETURN_IF_ERROR(RequireDataset(dataset));
    return Status::NotFound(
        fmt::format("no branch or tag '{}' in dataset '{}'", name, dataset));
  }
  Ref ref;
  ref.dataset = std::string(dataset);
  ref.name = std::string(name);
  STRATA_ASSIGN_OR_RETURN(ref.kind, ParseKind(st.Text(0)));
  STRATA_ASSIGN_OR_RETURN(ref.target, st.Id(1));
  ref.is_protected = st.Int(2) != 0;
  ref.updated_unix_ms = st.Int(3);
  return ref;
}

Result<Ref> SqliteCatalog::GetRef(std::string_view dataset, std::string_view name) {
  std::lock_guard lock(mu_);
  return GetRefLocked(dataset, name);
}

Result<std::vector<Ref>> SqliteCatalog::ListRefs(std::string_view dataset,
                                                 std::optional<RefKind> kind) {
  std::lock_guard lock(mu_);
  STRATA_SQL(st, *db_,
             "SELECT name, kind, target, protected, updated_ms FROM refs "
             "WHERE dataset = ?1 AND (?2 IS NULL OR kind = ?2) ORDER BY name",
             "list refs");
  st.Bind(1, dataset);
  if (kind) {
    st.Bind(2, RefKindName(*kind));
  } else {
    st.BindNull(2);
  }
  std::vector<Ref> out;
  for (;;) {
    STRATA_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    Ref ref;
    ref.dataset = std::string(dataset);
    ref.name = st.Text(0);
    STRATA_ASSIGN_OR_RETURN(ref.kind, ParseKind(st.Text(1)));
    STRATA_ASSIGN_OR_RETURN(ref.target, st.Id(2));
    ref.is_protected = st.Int(3) != 0;
    ref.updated_unix_ms = st.Int(4);
    out.push_back(std::move(ref));
  }
  if (out.empty()) STRATA_RETURN_IF_ERROR(RequireDataset(dataset));
  return out;
}

Status SqliteCatalog::CreateRef(std::string_view dataset, std::string_view name, RefKind kind,
                                const ObjectId& target, const AuditEntry& audit) {
  STRATA_RETURN_IF_ERROR(ValidateRefName(name));
  std::lock_guard lock(mu_);
  return WriteTxn("create a ref", [&]() -> Status {
    STRATA_RETURN_IF_ERROR(RequireDataset(dataset));
    {
      STRATA_SQL(st, *db_,
                 "INSERT INTO refs(dataset, name, kind, target, protected, updated_ms) "
                 "VALUES(?1, ?2, ?3, ?4, 0, ?5) ON CONFLICT DO NOTHING",
                 "create a ref");
      STRATA_RETURN_IF_ERROR(st.Bind(1, dataset)
                                 .Bind(2, name)
                                 .Bind(3, RefKindName(kind))
                                 .Bind(4, target)
                                 .Bind(5, NowUnixMs())
                                 .Run());
    }
    if (db_->Changes() == 0) {
      STRATA_ASSIGN_OR_RETURN(Ref existing, GetRefLocked(dataset, name));
      return Status::AlreadyExists(fmt::format("{} {} already exists (at {})",
                                               RefKindName(existing.kind),
                                               RefLabel(dataset, name), existing.target.Short()));
    }
    return AppendAuditLocked(audit, kind == RefKind::kBranch ? "branch.create" : "tag.create",
                             RefLabel(dataset, name),
                             json{{"kind", std::string(RefKindName(kind))}, {"new", target.ToHex()}});
  });
}

Status SqliteCatalog::UpdateBranch(std::string_view dataset, std::string_view name,
                                   const ObjectId& expected, const ObjectId& target,
                                   const AuditEntry& audit) {
  std::lock_guard lock(mu_);
  return WriteTxn("update a branch", [&]() -> Status {
    STRATA_ASSIGN_OR_RETURN(Ref ref, GetRefLocked(dataset, name));
    if (ref.kind == RefKind::kTag) {
      return Status::FailedPrecondition(fmt::format(
          "tag {} is immutable: create a new tag instead", RefLabel(dataset, name)));
    }
    if (ref.target != expected) {
      return Status::Aborted(fmt::format(
          "branch {} moved from {} to {}: nothing was changed; rebase onto {} and retry",
          RefLabel(dataset, name), expected.Short(), ref.target.Short(), ref.target.Short()));
    }
    {
      STRATA_SQL(st, *db_,
                 "UPDATE refs SET target = ?3, updated_ms = ?4 WHERE dataset = ?1 AND name = ?2",
                 "update a branch");
      STRATA_RETURN_IF_ERROR(
          st.Bind(1, dataset).Bind(2, name).Bind(3, target).Bind(4, NowUnixMs()).Run());
    }
    return AppendAuditLocked(audit, "branch.update", RefLabel(dataset, name),
                             json{{"old", expected.ToHex()}, {"new", target.ToHex()}});
  });
}

Status SqliteCatalog::DeleteRef(std::string_view dataset, std::string_view name,
                                const AuditEntry& audit) {
  std::lock_guard lock(mu_);
  return WriteTxn("delete a ref", [&]() -> Status {
    STRATA_ASSIGN_OR_RETURN(Ref ref, GetRefLocked(dataset, name));
    if (ref.is_protected) {
      return Status::FailedPrecondition(
          fmt::format("{} {} is protected: unprotect it before deleting it",
                      RefKindName(ref.kind), RefLabel(dataset, name)));
    }
    {
      STRATA_SQL(st, *db_, "DELETE FROM refs WHERE dataset = ?1 AND name = ?2", "delete a ref");
      STRATA_RETURN_IF_ERROR(st.Bind(1, dataset).Bind(2, name).Run());
    }
    return AppendAuditLocked(audit,
                             ref.kind == RefKind::kBranch ? "branch.delete" : "tag.delete",
                             RefLabel(dataset, name),
                             json{{"kind", std::string(RefKindName(ref.kind))}, {"old", ref.target.ToHex()}});
  });
}

Status SqliteCatalog::SetRefProtected(std::string_view dataset, std::string_view name, bool on,
                                      const AuditEntry& audit) {
  std::lock_guard lock(mu_);
  return WriteTxn("protect a ref", [&]() -> Status {
    STRATA_ASSIGN_OR_RETURN(Ref ref, GetRefLocked(dataset, name));
    {
      STRATA_SQL(st, *db_,
                 "UPDATE refs SET protected = ?3, updated_ms = ?4 WHERE dataset = ?1 AND name = ?2",
                 "protect a ref");
      STRATA_RETURN_IF_ERROR(st.Bind(1, dataset)
                                 .Bind(2, name)
                                 .Bind(3, int64_t{on ? 1 : 0})
                                 .Bind(4, NowUnixMs())
                                 .Run());
    }
    return AppendAuditLocked(audit, on ? "ref.protect" : "ref.unprotect",
                             RefLabel(dataset, name),
                             json{{"kind", std::string(RefKindName(ref.kind))},
                                  {"target", ref.target.ToHex()}});
  });
}

// ---------------------------------------------------------------------------- commits

Status SqliteCatalog::PutCommits(const std::vector<CommitRecord>& commits) {
  std::lock_guard lock(mu_);
  return WriteTxn("record commits", [&]() -> Status {
    std::unordered_set<std::string> known_datasets;
    for (const CommitRecord& c : commits) {
      if (!known_datasets.contains(c.dataset)) {
        STRATA_RETURN_IF_ERROR(RequireDataset(c.dataset));
        known_datasets.insert(c.dataset);
      }
      std::string parents;
      for (const ObjectId& p : c.parents) {
        if (!parents.empty()) parents.push_back(' ');
        parents += p.ToHex();
      }
      json meta(c.meta);
      {
        STRATA_SQL(st, *db_,
                   "INSERT INTO commits(id, dataset, first_parent, parents, tree, author, "
                   "time_unix, message, meta) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
                   "ON CONFLICT(id) DO NOTHING",
                   "record a commit");
        st.Bind(1, c.id).Bind(2, c.dataset);
        if (c.parents.empty()) {
          st.BindNull(3);
        } else {
          st.Bind(3, c.parents[0]);
        }
        STRATA_RETURN_IF_ERROR(st.Bind(4, parents)
                                   .Bind(5, c.tree)
                                   .Bind(6, c.author)
                                   .Bind(7, c.time_unix)
                                   .Bind(8, c.message)
                                   .Bind(9, meta.dump())
                                   .Run());
      }
      if (db_->Changes() == 0) continue;  // already recorded: same id, same content
      for (const auto& [k, v] : c.meta) {
        STRATA_SQL(st, *db_, "INSERT INTO commit_meta(commit_id, key, value) VALUES(?1, ?2, ?3)",
                   "record commit metadata");
        STRATA_RETURN_IF_ERROR(st.Bind(1, c.id).Bind(2, k).Bind(3, v).Run());
      }
    }
    return Status();
  });
}

// Columns: id, dataset, parents, tree, author, time_unix, message, meta.
#define STRATA_COMMIT_ROW \
  "c.id, c.dataset, c.first_parent, c.parents, c.tree, c.author, c.time_unix, c.message, c.meta"
#define STRATA_COMMIT_COLUMNS "c.id, c.dataset, c.parents, c.tree, c.author, c.time_unix, c.message, c.meta"

Result<CommitRecord> SqliteCatalog::ReadCommit(Stmt& st, int col) {
  CommitRecord c;
  STRATA_ASSIGN_OR_RETURN(c.id, st.Id(col));
  c.dataset = st.Text(col + 1);
  std::string parents = st.Text(col + 2);
  for (size_t pos = 0; pos < parents.size();) {
    size_t end = parents.find(' ', pos);
    if (end == std::string::npos) end = parents.size();
    auto p = ObjectId::FromHex(std::string_view(parents).substr(pos, end - pos));
    if (!p.ok()) {
      return Status::Corruption(fmt::format(
          "catalog: commit {} has a malformed parent list; rebuild the catalog with "
          "`strata catalog rebuild`",
          c.id.Short()));
    }
    c.parents.push_back(*p);
    pos = end + 1;
  }
  STRATA_ASSIGN_OR_RETURN(c.tree, st.Id(col + 3));
  c.author = st.Text(col + 4);
  c.time_unix = st.Int(col + 5);
  c.message = st.Text(col + 6);
  json meta = json::parse(st.Text(col + 7), nullptr, /*allow_exceptions=*/false);
  if (meta.is_discarded() || !meta.is_object()) {
    return Status::Corruption(fmt::format(
        "catalog: commit {} has malformed metadata; rebuild the catalog with "
        "`strata catalog rebuild`",
        c.id.Short()));
  }
  for (auto it = meta.begin(); it != meta.end(); ++it) {
    if (!it.value().is_string()) {
      return Status::Corruption(fmt::format("catalog: commit {} metadata '{}' is not a string",
                                            c.id.Short(), it.key()));
    }
    c.meta[it.key()] = it.value().get<std::string>();
  }
  return c;
}

Result<CommitRecord> SqliteCatalog::GetCommit(const ObjectId& id) {
  std::lock_guard lock(mu_);
  STRATA_SQL(st, *db_, "SELECT " STRATA_COMMIT_COLUMNS " FROM commits c WHERE c.id = ?1",
             "look up a commit");
  STRATA_ASSIGN_OR_RETURN(bool row, st.Bind(1, id).Step());
  if (!row) return Status::NotFound(fmt::format("commit {} is not in the catalog", id.Short()));
  return ReadCommit(st, 0);
}

Result<ObjectId> SqliteCatalog::ResolveCommitPrefix(std::string_view dataset,
                                                    std::string_view prefix) {
  std::string p;
  for (char ch : prefix) {
    char c = (ch >= 'A' && ch <= 'F') ? static_cast<char>(ch - 'A' + 'a') : ch;
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return Status::InvalidArgument(
          fmt::format("'{}' is not a commit id prefix: only hex digits are allowed", prefix));
    }
    p.push_back(c);
  }
  if (p.size() < 4 || p.size() > 2 * ObjectId::kSize) {
    return Status::InvalidArgument(fmt::format(
        "commit id prefix '{}' must have 4 to {} hex digits", prefix, 2 * ObjectId::kSize));
  }
  std::lock_guard lock(mu_);
  // Every id with this prefix sorts in [p, p + "g"): 'g' follows every hex digit.
  STRATA_SQL(st, *db_,
             "SELECT id FROM commits WHERE id >= ?1 AND id < ?2 AND dataset = ?3 "
             "ORDER BY id LIMIT 3",
             "resolve a commit id prefix");
  st.Bind(1, p).Bind(2, p + "g").Bind(3, dataset);
  std::vector<ObjectId> found;
  for (;;) {
    STRATA_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    STRATA_ASSIGN_OR_RETURN(ObjectId id, st.Id(0));
    found.push_back(id);
  }
  if (found.empty()) {
    return Status::NotFound(fmt::format("no commit of dataset '{}' starts with {}", dataset, p));
  }
  if (found.size() > 1) {
    std::string list;
    for (const ObjectId& id : found) list += (list.empty() ? "" : ", ") + id.Short();
    return Status::InvalidArgument(fmt::format(
        "commit id prefix {} is ambiguous in dataset '{}': it matches {}{}; give more digits", p,
        dataset, list, found.size() > 2 ? ", ..." : ""));
  }
  return found[0];
}

Result<std::vector<CommitRecord>> SqliteCatalog::Log(const ObjectId& start, size_t limit) {
  std::lock_guard lock(mu_);
  std::vector<CommitRecord> out;
  if (limit == 0) return out;
  // One statement walks the whole chain: each step is one primary-key lookup that carries the
  // whole row along, with no round trip per commit. The depth bound also ends the walk if a
  // damaged file held a cycle.
  STRATA_SQL(st, *db_,
             "WITH RECURSIVE chain(depth, id, dataset, first_parent, parents, tree, author,"
             "                     time_unix, message, meta) AS ("
             "  SELECT 0, " STRATA_COMMIT_ROW " FROM commits c WHERE c.id = ?1"
             "  UNION ALL"
             "  SELECT chain.depth + 1, " STRATA_COMMIT_ROW
             "  FROM chain JOIN commits c ON c.id = chain.first_parent"
             "  WHERE chain.depth + 1 < ?2)"
             "SELECT id, dataset, parents, tree, author, time_unix, message, meta FROM chain "
             "ORDER BY depth",
             "walk the commit log");
  st.Bind(1, start).Bind(2, static_cast<int64_t>(std::min<size_t>(limit, INT64_MAX)));
  for (;;) {
    STRATA_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    STRATA_ASSIGN_OR_RETURN(CommitRecord c, ReadCommit(st, 0));
    out.push_back(std::move(c));
  }
  if (out.empty()) {
    return Status::NotFound(fmt::format("commit {} is not in the catalog", start.Short()));
  }
  return out;
}

// ---------------------------------------------------------------------------- file metadata

Status SqliteCatalog::PutFileMeta(const FileMeta& meta) {
  std::lock_guard lock(mu_);
  return WriteTxn("record file metadata", [&]() -> Status {
    {
      STRATA_SQL(st, *db_, "SELECT 1 FROM commits WHERE id = ?1", "look up a commit");
      STRATA_ASSIGN_OR_RETURN(bool row, st.Bind(1, meta.commit).Step());
      if (!row) {
        return Status::NotFound(
            fmt::format("commit {} is not in the catalog", meta.commit.Short()));
      }
    }
    {
      STRATA_SQL(st, *db_,
                 "INSERT INTO file_meta(commit_id, path, source) VALUES(?1, ?2, ?3) "
                 "ON CONFLICT(commit_id, path) DO UPDATE SET source = excluded.source",
                 "record file metadata");
      STRATA_RETURN_IF_ERROR(st.Bind(1, meta.commit).Bind(2, meta.path).Bind(3, meta.source).Run());
    }
    {
      STRATA_SQL(st, *db_, "DELETE FROM file_labels WHERE commit_id = ?1 AND path = ?2",
                 "replace file labels");
      STRATA_RETURN_IF_ERROR(st.Bind(1, meta.commit).Bind(2, meta.path).Run());
    }
    for (const std::string& label : meta.labels) {
      STRATA_SQL(st, *db_, "INSERT INTO file_labels(commit_id, path, label) VALUES(?1, ?2, ?3)",
                 "record a file label");
      STRATA_RETURN_IF_ERROR(st.Bind(1, meta.commit).Bind(2, meta.path).Bind(3, label).Run());
    }
    return Status();
  });
}

Result<FileMeta> SqliteCatalog::GetFileMeta(const ObjectId& commit, std::string_view path) {
  std::lock_guard lock(mu_);
  FileMeta meta;
  meta.commit = commit;
  meta.path = std::string(path);
  {
    STRATA_SQL(st, *db_, "SELECT source FROM file_meta WHERE commit_id = ?1 AND path = ?2",
               "look up file metadata");
    STRATA_ASSIGN_OR_RETURN(bool row, st.Bind(1, commit).Bind(2, path).Step());
    if (!row) {
      return Status::NotFound(
          fmt::format("no metadata for {} in commit {}", path, commit.Short()));
    }
    meta.source = st.Text(0);
  }
  STRATA_SQL(st, *db_,
             "SELECT label FROM file_labels WHERE commit_id = ?1 AND path = ?2 ORDER BY label",
             "look up file labels");
  st.Bind(1, commit).Bind(2, path);
  for (;;) {
    STRATA_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    meta.labels.insert(st.Text(0));
  }
  return meta;
}

}  // namespace

std::string_view RefKindName(RefKind kind) {
  return kind == RefKind::kBranch ? "branch" : "tag";
}

std::string_view AuditProblemName(AuditVerifyReport::Problem problem) {
  using P = AuditVerifyReport::Problem;
  switch (problem) {
    case P::kNone: return "ok";
    case P::kEdited: return "edited";
    case P::kRemoved: return "removed";
    case P::kReordered: return "reordered";
    case P::kTruncated: return "truncated";
    case P::kReplaced: return "replaced";
  }
  return "unknown";
}

Status ValidateDatasetName(std::string_view name) {
  if (name.empty() || name.size() > 128) {
    return Status::InvalidArgument(
        fmt::format("dataset name '{}' must have 1 to 128 characters", name));
  }
  if (name[0] == '.') {
    return Status::InvalidArgument(fmt::format("dataset name '{}' must not start with '.'", name));
  }
  for (char c : name) {
    if (!IsNameChar(c)) {
      return Status::InvalidArgument(fmt::format(
          "dataset name '{}' may only contain letters, digits, '.', '_' and '-'", name));
    }
  }
  return Status();
}

Status ValidateRefName(std::string_view name) {
  if (name.empty() || name.size() > 128) {
    return Status::InvalidArgument(fmt::format("ref name '{}' must have 1 to 128 characters", name));
  }
  // Components between '/' follow the dataset rules, so no component is empty, '.' or '..'.
  size_t pos = 0;
  for (;;) {
    size_t end = name.find('/', pos);
    std::string_view part = name.substr(pos, end == std::string_view::npos ? name.npos : end - pos);
    bool ok = !part.empty() && part[0] != '.';
    for (char c : part) ok = ok && IsNameChar(c);
    if (!ok) {
      return Status::InvalidArgument(fmt::format(
          "ref name '{}' may only contain letters, digits, '.', '_', '-' and '/' between "
          "non-empty parts that do not start with '.'",
          name));
    }
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return Status();
}

Result<std::unique_ptr<Catalog>> OpenSqliteCatalog(const SqliteCatalogOptions& options) {
  struct stat st;
  if (::stat(options.path.c_str(), &st) != 0) {
    if (errno != ENOENT) return Status::FromErrno(errno, options.path);
    if (!options.create_if_missing) {
      return Status::NotFound(fmt::format("catalog {} does not exist", options.path));
    }
  }
  sqlite3* raw = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
              (options.create_if_missing ? SQLITE_OPEN_CREATE : 0);
  int rc = sqlite3_open_v2(options.path.c_str(), &raw, flags, WalReusingVfs()->zName);
  auto db = std::make_unique<Db>(raw, options.path, options.busy_timeout_ms);
  if (rc != SQLITE_OK) {
    if (raw == nullptr) return Status::Internal("catalog: sqlite3_open_v2 ran out of memory");
    return db->Error(rc, "open");
  }
  if (!options.checkpoint_on_close) {
    // Not a durability setting: it only skips the copy from WAL to file at close.
    sqlite3_db_config(raw, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
  }
  auto catalog = std::make_unique<SqliteCatalog>(std::move(db), options.audit_key);
  STRATA_RETURN_IF_ERROR(catalog->Init(options.busy_timeout_ms));
  return std::unique_ptr<Catalog>(std::move(catalog));
}

}  // namespace strata::catalog
