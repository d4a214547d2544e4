// The Lake: versioned datasets built from the store's objects and the catalog.
//
// Durability order of every ref change (a commit, a reset, a tag, ...):
//   1. objects: new trees and the commit object, durable at WriteBatch::Commit();
//   2. the catalog: the compare-and-swap of the ref and its audit entry, in one SQLite
//      transaction (synchronous=FULL): this is the moment the change happens;
//   3. a sealed record in the repository mirroring that audit entry (a "ref event" with the
//      entry's seq and hash: the audit head).
// Why the catalog before the record: the record must carry the audit entry's hash, which only
// exists once the catalog has appended it, and a record written before the CAS would describe a
// change that may then lose the race. A crash between 2 and 3 leaves a catalog entry without a
// record; the next Open() finds every unrecorded entry and records it, so the repository catches
// up. A crash before 2 leaves only unreferenced objects: the branch is at the old commit or the
// new one, never in between. Rebuild replays the records in audit order, then walks commit
// parents through the objects.
#include "strata/lake.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <functional>
#include <set>
#include <unordered_set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/endian.h"
#include "base/logging.h"
#include "base/sysinfo.h"
#include "catalog/catalog.h"
#include "store/object_store.h"
#include "version/commit.h"
#include "version/diff.h"
#include "version/merge.h"
#include "version/record_table.h"
#include "version/records.h"
#include "version/retention.h"
#include "version/stager.h"
#include "version/tree_edit.h"

namespace strata {

using nlohmann::json;
using store::EntryType;
using store::ObjectKind;
using store::TreeEntry;

std::string_view DiffKindName(DiffEntry::Kind kind) {
  switch (kind) {
    case DiffEntry::Kind::kAdded: return "added";
    case DiffEntry::Kind::kRemoved: return "removed";
    case DiffEntry::Kind::kModified: return "modified";
    case DiffEntry::Kind::kRenamed: return "renamed";
  }
  return "?";
}

std::string_view MergeStrategyName(MergeStrategy strategy) {
  switch (strategy) {
    case MergeStrategy::kFail: return "fail";
    case MergeStrategy::kOurs: return "ours";
    case MergeStrategy::kTheirs: return "theirs";
  }
  return "?";
}

Result<MergeStrategy> ParseMergeStrategy(std::string_view name) {
  for (auto s : {MergeStrategy::kFail, MergeStrategy::kOurs, MergeStrategy::kTheirs}) {
    if (MergeStrategyName(s) == name) return s;
  }
  return Status::InvalidArgument(fmt::format("unknown merge strategy '{}': use fail, ours or theirs", name));
}

namespace version {
namespace {

constexpr const char* kCatalogFile = "catalog.db";
constexpr const char* kRebuildHint = "run `strata catalog rebuild` to recreate it from the repository";

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string DefaultActor() { return UserAtHost(); }

std::string CatalogPath(store::ObjectStore* objects) { return objects->local_state_dir() + "/" + kCatalogFile; }

bool IsHex(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  });
}

RefInfo ToRefInfo(const catalog::Ref& r) {
  return RefInfo{r.dataset, r.name, r.kind == catalog::RefKind::kTag ? RefType::kTag : RefType::kBranch,
                 r.target, r.is_protected, r.updated_unix_ms};
}

CommitInfo ToCommitInfo(const ObjectId& id, const Commit& c) {
  return CommitInfo{id, c.tree, c.parents, c.dataset, c.time_ns, c.author, c.message, c.meta};
}

catalog::CommitRecord ToRecord(const ObjectId& id, const Commit& c) {
  return catalog::CommitRecord{id, c.dataset, c.parents, c.tree, c.author, c.time_ns / 1'000'000'000, c.message, c.meta};
}

Result<CommitInfo> ReadCommit(store::ObjectStore* objects, const ObjectId& id) {
  auto bytes = objects->Read(id, ObjectKind::kCommit);
  if (!bytes.ok()) return bytes.status().WithContext(fmt::format("commit {}", id.Short()));
  auto c = ParseCommit(AsBytes(*bytes));
  if (!c.ok()) return c.status().WithContext(fmt::format("commit {}", id.Short()));
  return ToCommitInfo(id, *c);
}

ObjectId EmptyTreeId(store::ObjectStore* objects) { return objects->Hash(store::SerializeTree(store::Tree{})); }

// What the repository's records say about the audit chain.
struct RecordState {
  std::vector<RefEvent> events;  // every event: only when loaded with all_events
  size_t count = 0;              // ref-event records
  uint64_t epoch = 0;        // the current chain
  uint64_t chain_start = 1;  // its first seq that is not a replay of an older chain
  SeqSet recorded;           // seqs of the current chain that have a record
  std::optional<catalog::AuditHead> head;
  std::vector<std::pair<RecordRange, std::string>> keyed;  // records named by their range
};

// Reads the newest keyed record (its last event) into `st`; false when it was merged into a
// segment since the listing.
Result<bool> ReadNewest(store::ObjectStore* objects, const std::pair<RecordRange, std::string>& newest,
                        RecordState* st) {
  auto events = ReadRefRecord(objects, newest.first, newest.second);
  if (!events.ok() && events.status().IsNotFound()) return false;
  if (!events.ok()) return events.status();
  st->events.push_back(std::move(events->back()));
  return true;
}

// With `all_events` (rebuild) every record is read. Otherwise only the names are listed and
// the newest record is read (plus any record whose name does not carry its range: those
// written before names did), so the cost of an open does not grow with history.
Result<RecordState> LoadRecordState(store::ObjectStore* objects, bool all_events = false) {
  RecordState st;
  if (all_events) {
    STRATA_ASSIGN_OR_RETURN(auto records, objects->Records());
    STRATA_ASSIGN_OR_RETURN(st.events, LoadRefEvents(records));
  } else {
    for (int pass = 0;; ++pass) {
      st = RecordState();
      STRATA_ASSIGN_OR_RETURN(auto names, objects->RecordNames());
      std::vector<std::string> legacy;
      const std::pair<RecordRange, std::string>* newest = nullptr;
      for (auto& name : names) {
        auto k = ParseRefEventName(name);
        if (!k) {
          STRATA_ASSIGN_OR_RETURN(std::string r, objects->ReadRecord(name));
          legacy.push_back(std::move(r));
          continue;
        }
        st.keyed.emplace_back(*k, std::move(name));
      }
      for (const auto& k : st.keyed) {
        if (!newest || std::make_pair(k.first.epoch, k.first.last) >
                           std::make_pair(newest->first.epoch, newest->first.last)) {
          newest = &k;
        }
      }
      STRATA_ASSIGN_OR_RETURN(st.events, LoadRefEvents(legacy));
      for (const auto& k : st.keyed) st.count += k.first.size();
      st.count += st.events.size();
      if (newest && (st.events.empty() || std::make_pair(newest->first.epoch, newest->first.last) >
                                              std::make_pair(st.events.back().epoch, st.events.back().seq))) {
        STRATA_ASSIGN_OR_RETURN(bool found, ReadNewest(objects, *newest, &st));
        if (!found && pass < store::kRelistPasses) continue;  // merged meanwhile: list again
        if (!found) return Status::NotFound(fmt::format("record {} vanished while read", newest->second));
      }
      break;
    }
    if (st.events.empty()) return st;
    st.epoch = st.events.back().epoch;
    st.head = catalog::AuditHead{st.events.back().seq, st.events.back().hash};
    for (const auto& [range, name] : st.keyed) {
      if (range.epoch == st.epoch) st.recorded.Add(range.first, range.last);
    }
    for (const auto& e : st.events) {
      if (e.epoch == st.epoch) st.recorded.Add(e.seq, e.seq);
    }
    // A rebuilt chain (epoch > 0) starts at its rebuild marker, the first entry it recorded
    // (the replayed entries before it are not recorded again); the first chain starts at 1.
    if (st.epoch > 0 && !st.recorded.empty()) st.chain_start = st.recorded.min();
    st.events.clear();
    return st;
  }
  st.count = st.events.size();
  if (st.events.empty()) return st;
  st.epoch = st.events.back().epoch;
  st.head = catalog::AuditHead{st.events.back().seq, st.events.back().hash};
  bool marker = false;
  for (const auto& e : st.events) {
    if (e.epoch != st.epoch) continue;
    st.recorded.Add(e.seq, e.seq);
    if (e.op == kOpRebuild && !marker) {
      st.chain_start = e.seq;
      marker = true;
    }
  }
  return st;
}

// "" when the catalog's chain holds the entry the newest record names; otherwise what is wrong.
Result<std::string> CompareWithRecords(catalog::Catalog* cat, const RecordState& st) {
  if (!st.head) return std::string();
  STRATA_ASSIGN_OR_RETURN(auto entries, cat->ListAudit(st.head->seq, 1));
  if (entries.empty() || entries[0].seq != st.head->seq) {
    STRATA_ASSIGN_OR_RETURN(auto head, cat->Head());
    return fmt::format(
        "the catalog's audit log ends at entry {} but the repository recorded entry {}: the catalog is an "
        "older copy or was truncated",
        head.seq, st.head->seq);
  }
  if (entries[0].hash != st.head->hash) {
    return fmt::format(
        "audit entry {} of the catalog is not the one the repository recorded: the catalog was replaced",
        st.head->seq);
  }
  return std::string();
}

class LakeImpl final : public Lake {
 public:
  LakeImpl(Repository* repo, std::unique_ptr<catalog::Catalog> cat, std::string actor, RecordState st)
      : repo_(repo), objects_(repo->objects()), cat_(std::move(cat)), actor_(std::move(actor)) {
    epoch_ = st.epoch;
    chain_start_ = st.chain_start;
    recorded_ = std::move(st.recorded);
    synced_ = recorded_.empty() ? 0 : recorded_.max();
  }

  // The first seq of the current chain without a record: entries from there on are checked
  // against the catalog at open (normally just those after the newest record).
  uint64_t FirstUnrecorded() const { return recorded_.FirstMissing(chain_start_); }

  // Records every entry of the current chain from `from` on that has no record yet. The
  // catalog holds each entry durably (synchronous=FULL) before it is recorded, so a record's
  // name need not be: one that a power cut takes away is written again by the next Open, like
  // one that a crash kept from being written (saves a directory sync on every change).
  Status SyncRecords(uint64_t from) {
    STRATA_ASSIGN_OR_RETURN(auto entries, cat_->ListAudit(std::max(from, chain_start_), SIZE_MAX));
    for (const auto& e : entries) {
      if (!recorded_.Contains(e.seq)) {
        STRATA_RETURN_IF_ERROR(objects_->AppendRecord(EncodeRefEvent(EventFromAudit(e, epoch_)),
                                                      RefEventKey(epoch_, e.seq), /*name_may_be_lost=*/true));
        recorded_.Add(e.seq, e.seq);
      }
      synced_ = std::max(synced_, e.seq);
    }
    return Status::OK();
  }

  // After a change: the catalog has it (it happened); a failure to mirror it is repaired by the
  // next Open, so it is reported but not returned as the change's failure.
  void Recorded() {
    Status s = SyncRecords(synced_ + 1);
    if (!s.ok()) {
      LogWarning(fmt::format("the change was made but not yet recorded in the repository ({}); the next "
                             "command records it",
                             s.ToString()));
    }
  }

  // A write batch whose packs are stored under the dataset's redundancy policy (its class,
  // when `strata volume policy set P --dataset D` gave it one).
  Result<std::unique_ptr<store::WriteBatch>> BatchFor(std::string_view dataset) {
    return objects_->NewBatch({.redundancy_class = std::string(dataset)});
  }

  catalog::AuditEntry Audit(std::string action, json details) {
    return catalog::AuditEntry{actor_, std::move(action), "", details.dump()};
  }

  // --- datasets ---

  Status CreateDataset(std::string_view name) override {
    STRATA_RETURN_IF_ERROR(catalog::ValidateDatasetName(name));
    STRATA_ASSIGN_OR_RETURN(auto batch, BatchFor(name));
    ObjectId tree = batch->PutTree(store::Tree{});
    Commit c{tree, {}, std::string(name), NowNs(), actor_, fmt::format("create dataset {}", name), {}};
    ObjectId id = batch->Put(ObjectKind::kCommit, SerializeCommit(c));
    STRATA_RETURN_IF_ERROR(batch->Commit());
    STRATA_RETURN_IF_ERROR(cat_->CreateDataset(name, Audit("", {{"op", kOpDatasetCreate}, {"dataset", name}})));
    Status s = cat_->PutCommit(ToRecord(id, c));
    if (s.ok()) {
      s = cat_->CreateRef(name, "main", catalog::RefKind::kBranch, id,
                          Audit("", {{"op", kOpRefCreate}, {"dataset", name}, {"ref", "main"}}));
    }
    Recorded();
    return s;
  }

  Result<std::vector<std::string>> ListDatasets() override {
    STRATA_ASSIGN_OR_RETURN(auto list, cat_->ListDatasets());
    std::vector<std::string> out;
    for (auto& d : list) out.push_back(std::move(d.name));
    return out;
  }

  Status DeleteDataset(std::string_view name) override {
    STRATA_RETURN_IF_ERROR(RequireDataset(name));
    STRATA_ASSIGN_OR_RETURN(auto locks, ActiveLocks(name));
    if (!locks.empty()) {
      const RetentionLock& l = locks.begin()->second;
      return Refuse("dataset.delete", name,
                    fmt::format("dataset '{}' cannot be deleted: commit {} is under {}", name, l.commit.Short(),
                                DescribeLock(l)));
    }
    STRATA_RETURN_IF_ERROR(cat_->DeleteDataset(name, Audit("", {{"op", kOpDatasetDelete}, {"dataset", name}})));
    Recorded();
    return Status::OK();
  }

  // --- references ---

  Status RequireDataset(std::string_view name) {
    auto ds = cat_->GetDataset(name);
    if (ds.ok()) return Status::OK();
    if (ds.status().IsNotFound()) {
      return Status::NotFound(fmt::format("no dataset '{}' (see `strata dataset list`)", name));
    }
    return ds.status();
  }

  Result<Resolved> ResolveSpec(const RefSpec& spec) {
    Resolved r;
    r.spec = spec;
    ObjectId id;
    auto ref = cat_->GetRef(spec.dataset, spec.ref);
    if (ref.ok()) {
      r.ref = ToRefInfo(*ref);
      id = ref->target;
    } else if (!ref.status().IsNotFound()) {
      return ref.status();
    } else {
      STRATA_RETURN_IF_ERROR(RequireDataset(spec.dataset));
      if (!IsHex(spec.ref) || spec.ref.size() < 4) {
        return Status::NotFound(fmt::format("no branch or tag '{}' in dataset '{}' (see `strata branch list {}`)",
                                            spec.ref, spec.dataset, spec.dataset));
      }
      auto found = cat_->ResolveCommitPrefix(spec.dataset, spec.ref);
      if (!found.ok()) {
        if (found.status().IsNotFound()) {
          return Status::NotFound(fmt::format("no branch, tag or commit '{}' in dataset '{}'", spec.ref, spec.dataset));
        }
        return found.status();
      }
      id = *found;
      STRATA_ASSIGN_OR_RETURN(auto forgotten, cat_->ListForgotten(spec.dataset));
      if (forgotten.count(id)) {
        return Status::NotFound(fmt::format(
            "commit {} of dataset '{}' was forgotten by its retention policy (`strata forget`): its content "
            "is gone, or will be at the next `strata gc`",
            id.Short(), spec.dataset));
      }
    }
    STRATA_ASSIGN_OR_RETURN(r.commit, ReadCommit(objects_, id));
    return r;
  }

  Result<Resolved> Resolve(std::string_view text) override {
    STRATA_ASSIGN_OR_RETURN(RefSpec spec, ParseRefSpec(text));
    return ResolveSpec(spec);
  }

  // NAME@REF without a path.
  Result<RefSpec> ParseRefName(std::string_view text) {
    STRATA_ASSIGN_OR_RETURN(RefSpec spec, ParseRefSpec(text));
    if (!spec.path.empty()) {
      return Status::InvalidArgument(fmt::format("'{}' names a path; a ref is written NAME@REF", text));
    }
    return spec;
  }

  Result<Resolved> ResolveBranch(std::string_view text) {
    STRATA_ASSIGN_OR_RETURN(RefSpec spec, ParseRefName(text));
    STRATA_ASSIGN_OR_RETURN(Resolved r, ResolveSpec(spec));
    if (!r.ref) {
      return Status::InvalidArgument(
          fmt::format("'{}' is a commit, not a branch: only branches move (create one with `strata branch create`)", text));
    }
    if (r.ref->type == RefType::kTag) {
      return Status::FailedPrecondition(fmt::format("{} is a tag, and tags never move: use a branch", text));
    }
    return r;
  }

  Status CreateRef(std::string_view name, std::string_view from, RefType type) override {
    STRATA_ASSIGN_OR_RETURN(RefSpec spec, ParseRefName(name));
    STRATA_ASSIGN_OR_RETURN(Resolved src, Resolve(from));
    if (src.spec.dataset != spec.dataset) {
      return Status::InvalidArgument(
          fmt::format("'{}' is in dataset '{}', not '{}'", from, src.spec.dataset, spec.dataset));
    }
    auto kind = type == RefType::kTag ? catalog::RefKind::kTag : catalog::RefKind::kBranch;
    STRATA_RETURN_IF_ERROR(cat_->CreateRef(spec.dataset, spec.ref, kind, src.commit.id,
                                           Audit("", {{"op", kOpRefCreate}, {"dataset", spec.dataset}, {"ref", spec.ref}})));
    Recorded();
    return Status::OK();
  }

  Result<ObjectId> TagTree(std::string_view name, const ObjectId& tree, const CommitOptions& options) override {
    STRATA_ASSIGN_OR_RETURN(RefSpec spec, ParseRefName(name));
    STRATA_RETURN_IF_ERROR(RequireDataset(spec.dataset));
    if (!objects_->Contains(tree)) return Status::NotFound(fmt::format("tree {} is not in the repository", tree.Short()));
    STRATA_ASSIGN_OR_RETURN(auto batch, BatchFor(spec.dataset));
    Commit c{tree, {}, spec.dataset, options.time_ns ? options.time_ns : NowNs(),
             options.author.empty() ? actor_ : options.author, options.message, options.meta};
    ObjectId id = batch->Put(ObjectKind::kCommit, SerializeCommit(c));
    STRATA_RETURN_IF_ERROR(batch->Commit());
    STRATA_RETURN_IF_ERROR(cat_->PutCommit(ToRecord(id, c)));
    STRATA_RETURN_IF_ERROR(cat_->CreateRef(spec.dataset, spec.ref, catalog::RefKind::kTag, id,
                                           Audit("", {{"op", kOpRefCreate}, {"dataset", spec.dataset}, {"ref", spec.ref}})));
    Recorded();
    return id;
  }

  Result<std::vector<RefInfo>> ListRefs(std::string_view dataset) override {
    STRATA_RETURN_IF_ERROR(RequireDataset(dataset));
    STRATA_ASSIGN_OR_RETURN(auto refs, cat_->ListRefs(dataset));
    std::vector<RefInfo> out;
    for (const auto& r : refs) out.push_back(ToRefInfo(r));
    return out;
  }

  Status DeleteRef(std::string_view name) override {
    STRATA_ASSIGN_OR_RETURN(RefSpec spec, ParseRefName(name));
    STRATA_RETURN_IF_ERROR(RequireDataset(spec.dataset));
    // A tag is a version's name: it stays while its commit is locked. A branch may go when
    // another ref still reaches every locked commit it reaches.
    if (auto ref = cat_->GetRef(spec.dataset, spec.ref); ref.ok() && ref->kind == catalog::RefKind::kTag) {
      STRATA_ASSIGN_OR_RETURN(auto locks, ActiveLocks(spec.dataset));
      if (auto l = locks.find(ref->target); l != locks.end()) {
        return Refuse("ref.delete", name,
                      fmt::format("tag {} cannot be deleted: its commit {} is under {}", name, ref->target.Short(),
                                  DescribeLock(l->second)));
      }
    }
    STRATA_RETURN_IF_ERROR(CheckLockedNamesSurvive("ref.delete", spec.dataset, spec.ref, std::nullopt));
    STRATA_RETURN_IF_ERROR(cat_->DeleteRef(spec.dataset, spec.ref,
                                           Audit("", {{"op", kOpRefDelete}, {"dataset", spec.dataset}, {"ref", spec.ref}})));
    Recorded();
    return Status::OK();
  }

  Status ProtectRef(std::string_view name, bool on) override {
    STRATA_ASSIGN_OR_RETURN(RefSpec spec, ParseRefName(name));
    STRATA_RETURN_IF_ERROR(RequireDataset(spec.dataset));
    STRATA_RETURN_IF_ERROR(cat_->SetRefProtected(
        spec.dataset, spec.ref, on,
        Audit("", {{"op", on ? kOpRefProtect : kOpRefUnprotect}, {"dataset", spec.dataset}, {"ref", spec.ref}})));
    Recorded();
    return Status::OK();
  }

  // --- commits ---

  // Builds the new tree from the branch head's commit, through the given batch.
  using TreeMaker = std::function<Result<ObjectId>(store::WriteBatch*, const CommitInfo& base, CommitResult*)>;

  // `batch`: one the caller already wrote through (a staged commit); otherwise a new one.
  Result<CommitResult> CommitWith(std::string_view target, const CommitOptions& options, std::string_view action,
                                  const TreeMaker& make, std::unique_ptr<store::WriteBatch> batch = nullptr) {
    STRATA_ASSIGN_OR_RETURN(Resolved branch, ResolveBranch(target));
    CommitInfo base = branch.commit;
    if (!options.expected_head.IsZero() && options.expected_head != base.id) {
      STRATA_ASSIGN_OR_RETURN(base, ReadCommit(objects_, options.expected_head));
      if (base.dataset != branch.spec.dataset) {
        return Status::InvalidArgument(fmt::format("commit {} is not in dataset '{}'", base.id.Short(), branch.spec.dataset));
      }
    }
    CommitResult res;
    if (!batch) {
      STRATA_ASSIGN_OR_RETURN(batch, BatchFor(branch.spec.dataset));
    }
    STRATA_ASSIGN_OR_RETURN(ObjectId tree, make(batch.get(), base, &res));
    const std::string& dataset = branch.spec.dataset;
    const std::string& name = branch.spec.ref;
    for (res.attempts = 1;; ++res.attempts) {
      res.parent = base.id;
      res.tree = tree;
      if (tree == base.tree) {
        // Nothing to record: no commit, the branch stays where it is.
        STRATA_RETURN_IF_ERROR(batch->Commit());
        if (res.attempts == 1) res.put = batch->stats();
        res.unchanged = true;
        res.commit = base.id;
        return res;
      }
      Commit c{tree, {base.id}, dataset, options.time_ns ? options.time_ns : NowNs(),
               options.author.empty() ? actor_ : options.author, options.message, options.meta};
      ObjectId id = batch->Put(ObjectKind::kCommit, SerializeCommit(c));
      STRATA_RETURN_IF_ERROR(batch->Commit());
      if (res.attempts == 1) res.put = batch->stats();
      // Indexed before the ref moves (idempotent; harmless if the swap then loses).
      STRATA_RETURN_IF_ERROR(cat_->PutCommit(ToRecord(id, c)));
      Status s = cat_->UpdateBranch(
          dataset, name, base.id, id,
          Audit(std::string(action), {{"op", kOpBranchUpdate}, {"dataset", dataset}, {"ref", name},
                                      {"message", options.message.substr(0, 200)}}));
      if (s.ok()) {
        res.commit = id;
        Recorded();
        return res;
      }
      if (s.code() != StatusCode::kAborted || !options.retry || res.attempts >= options.max_attempts) return s;

      // Rebase: our change onto the branch's new head, if the two touched different paths.
      STRATA_ASSIGN_OR_RETURN(Resolved now, ResolveBranch(target));
      STRATA_ASSIGN_OR_RETURN(auto ours, ChangedPaths(objects_, base.tree, tree));
      STRATA_ASSIGN_OR_RETURN(auto theirs, ChangedPaths(objects_, base.tree, now.commit.tree));
      std::string where;
      if (PathsOverlap(ours, theirs, &where)) {
        return Status::Aborted(
            fmt::format("{}; --retry cannot rebase: both changes touch '{}'", s.message(), where));
      }
      std::vector<TreeEdit> edits;
      for (const auto& p : ours) {
        STRATA_ASSIGN_OR_RETURN(auto entry, LookupEntry(objects_, tree, p));
        edits.push_back(TreeEdit{p, std::move(entry)});
      }
      STRATA_ASSIGN_OR_RETURN(batch, BatchFor(branch.spec.dataset));
      STRATA_ASSIGN_OR_RETURN(tree, ApplyEdits(objects_, batch.get(), now.commit.tree, edits, &res.trees_written));
      base = now.commit;
    }
  }

  Result<CommitResult> CommitDirectory(std::string_view target, const std::string& src,
                                       const CommitOptions& options) override {
    return CommitWith(target, options, "commit",
                      [&](store::WriteBatch* batch, const CommitInfo& base, CommitResult*) -> Result<ObjectId> {
                        // The parent's root as the reuse entry: unchanged files are not read.
                        TreeEntry reuse;
                        reuse.type = EntryType::kDirectory;
                        reuse.subtree = base.tree;
                        STRATA_ASSIGN_OR_RETURN(TreeEntry root, batch->PutPath(src, "root", &reuse));
                        if (root.type != EntryType::kDirectory) {
                          return Status::InvalidArgument(fmt::format(
                              "'{}' is not a directory: a commit records a directory (use a change list, "
                              "--add, for single files)",
                              src));
                        }
                        return root.subtree;
                      });
  }

  Result<CommitResult> CommitChanges(std::string_view target, const std::vector<Change>& changes,
                                     const CommitOptions& options) override {
    return CommitWith(target, options, "commit",
                      [&](store::WriteBatch* batch, const CommitInfo& base, CommitResult* res) -> Result<ObjectId> {
                        std::vector<TreeEdit> edits;
                        for (const auto& ch : changes) {
                          STRATA_ASSIGN_OR_RETURN(auto parts, SplitPath(ch.path));
                          if (parts.empty()) return Status::InvalidArgument("a change needs a path inside the dataset");
                          switch (ch.kind) {
                            case Change::Kind::kAdd: {
                              STRATA_ASSIGN_OR_RETURN(auto old, LookupEntry(objects_, base.tree, ch.path));
                              STRATA_ASSIGN_OR_RETURN(TreeEntry e,
                                                      batch->PutPath(ch.source, parts.back(), old ? &*old : nullptr));
                              edits.push_back(TreeEdit{ch.path, std::move(e)});
                              break;
                            }
                            case Change::Kind::kRemove:
                              edits.push_back(TreeEdit{ch.path, std::nullopt});
                              break;
                            case Change::Kind::kMove: {
                              STRATA_ASSIGN_OR_RETURN(auto e, LookupEntry(objects_, base.tree, ch.from));
                              if (!e) return Status::NotFound(fmt::format("cannot move '{}': no such path", ch.from));
                              edits.push_back(TreeEdit{ch.from, std::nullopt});
                              edits.push_back(TreeEdit{ch.path, std::move(e)});
                              break;
                            }
                          }
                        }
                        return ApplyEdits(objects_, batch, base.tree, edits, &res->trees_written);
                      });
  }

  Result<std::unique_ptr<StagedCommit>> Stage(std::string_view target, const StageOptions& options) override {
    STRATA_ASSIGN_OR_RETURN(Resolved branch, ResolveBranch(target));
    ObjectId base_tree = branch.commit.tree;
    if (!options.from.empty()) {
      STRATA_ASSIGN_OR_RETURN(Resolved from, Resolve(options.from));
      if (from.spec.dataset != branch.spec.dataset) {
        return Status::InvalidArgument(
            fmt::format("'{}' is in dataset '{}', not '{}'", options.from, from.spec.dataset, branch.spec.dataset));
      }
      base_tree = from.commit.tree;
    }
    STRATA_ASSIGN_OR_RETURN(auto batch, BatchFor(branch.spec.dataset));
    ObjectId head = branch.commit.id;
    std::string where(target);
    return NewStagedCommit(
        objects_, std::move(batch), options.replace ? ObjectId() : base_tree,
        [this, head, where](std::unique_ptr<store::WriteBatch> b, const ObjectId& tree,
                            const CommitOptions& opts) -> Result<CommitResult> {
          CommitOptions o = opts;
          if (o.expected_head.IsZero()) o.expected_head = head;
          return CommitWith(
              where, o, "commit",
              [tree](store::WriteBatch*, const CommitInfo&, CommitResult*) -> Result<ObjectId> { return tree; },
              std::move(b));
        });
  }

  Result<std::vector<CommitInfo>> Log(std::string_view spec, size_t limit) override {
    STRATA_ASSIGN_OR_RETURN(Resolved r, Resolve(spec));
    STRATA_ASSIGN_OR_RETURN(auto records, cat_->Log(r.commit.id, limit));
    STRATA_ASSIGN_OR_RETURN(auto forgotten, cat_->ListForgotten(r.spec.dataset));
    std::vector<CommitInfo> out;
    for (auto& c : records) {
      // History ends before the first forgotten commit (the one named may itself be forgotten
      // when a ref still points at it).
      if (!out.empty() && forgotten.count(c.id)) break;
      out.push_back(CommitInfo{c.id, c.tree, c.parents, c.dataset, c.time_unix * 1'000'000'000, c.author,
                               c.message, c.meta});
    }
    return out;
  }

  // --- content ---

  Result<std::vector<EntryInfo>> List(std::string_view spec, bool recursive) override {
    STRATA_ASSIGN_OR_RETURN(Resolved r, Resolve(spec));
    return repo_->List(r.commit.tree, r.spec.path, recursive);
  }

  Result<std::unique_ptr<BlobReader>> OpenFile(std::string_view spec) override {
    STRATA_ASSIGN_OR_RETURN(Resolved r, Resolve(spec));
    if (r.spec.path.empty()) {
      return Status::InvalidArgument(fmt::format("'{}' names no file: write NAME@REF:PATH", spec));
    }
    return repo_->OpenFile(r.commit.tree, r.spec.path);
  }

  Result<std::unique_ptr<BlobReader>> OpenFile(const Resolved& version, std::string_view path) override {
    return repo_->OpenFile(version.commit.tree, path);
  }

  Status Checkout(std::string_view spec, const std::string& dest, uint64_t* bytes) override {
    STRATA_ASSIGN_OR_RETURN(Resolved r, Resolve(spec));
    return repo_->Restore(r.commit.tree, r.spec.path, dest, bytes);
  }

  Result<DiffResult> Diff(std::string_view a, std::string_view b, std::string_view path) override {
    STRATA_ASSIGN_OR_RETURN(Resolved ra, Resolve(a));
    STRATA_ASSIGN_OR_RETURN(Resolved rb, Resolve(b));
    std::string p(path);
    if (p.empty()) p = !ra.spec.path.empty() ? ra.spec.path : rb.spec.path;
    STRATA_ASSIGN_OR_RETURN(auto parts, SplitPath(p));
    if (parts.empty()) return DiffTrees(objects_, ra.commit.tree, rb.commit.tree);
    std::string norm;
    for (const auto& part : parts) norm += (norm.empty() ? "" : "/") + part;
    STRATA_ASSIGN_OR_RETURN(auto ea, LookupEntry(objects_, ra.commit.tree, norm));
    STRATA_ASSIGN_OR_RETURN(auto eb, LookupEntry(objects_, rb.commit.tree, norm));
    return DiffEntries(objects_, ea, eb, norm);
  }

  Result<std::vector<RecordMeta>> Records(std::string_view spec) override {
    STRATA_ASSIGN_OR_RETURN(Resolved r, Resolve(spec));
    RecordRows meta;
    STRATA_ASSIGN_OR_RETURN(auto file, LookupEntry(objects_, r.commit.tree, kRecordsPath));
    if (file && file->type == EntryType::kFile) {
      STRATA_ASSIGN_OR_RETURN(meta, ReadRecordsFile(objects_, *file));
    }
    const std::string& under = r.spec.path;
    auto wanted = [&](std::string_view path) {
      return under.empty() || path == under ||
             (path.size() > under.size() && path.substr(0, under.size()) == under && path[under.size()] == '/');
    };
    std::vector<RecordMeta> out;
    auto next_meta = meta.begin();
    auto add_meta_only = [&](auto end) {
      // Rows that name no file, up to `end` (rows and files are both in path order).
      for (; next_meta != end; ++next_meta) {
        if (!wanted(next_meta->first)) continue;
        RecordMeta row = next_meta->second;
        row["path"] = next_meta->first;
        out.push_back(std::move(row));
      }
    };
    STRATA_RETURN_IF_ERROR(WalkFiles(objects_, r.commit.tree, "", [&](const std::string& path, const TreeEntry& e) -> Status {
      if (path.starts_with(".strata/") || !wanted(path)) return Status::OK();
      add_meta_only(meta.lower_bound(path));
      RecordMeta row;
      if (next_meta != meta.end() && next_meta->first == path) row = (next_meta++)->second;
      row["path"] = path;
      row["size"] = static_cast<int64_t>(e.size);
      if (e.type == EntryType::kFile) {
        row["content"] = objects_->Hash(store::SerializeChunkList(e.chunks)).ToHex();
      }
      out.push_back(std::move(row));
      return Status::OK();
    }));
    add_meta_only(meta.end());
    return out;
  }

  Result<QueryResult> Query(std::string_view spec, std::string_view sql) override {
    STRATA_ASSIGN_OR_RETURN(auto rows, Records(spec));
    return RunQuery(rows, sql);
  }

  // --- rollback ---

  Result<ObjectId> Reset(std::string_view target, std::string_view to) override {
    STRATA_ASSIGN_OR_RETURN(Resolved branch, ResolveBranch(target));
    STRATA_ASSIGN_OR_RETURN(Resolved dest, Resolve(to));
    if (dest.spec.dataset != branch.spec.dataset) {
      return Status::InvalidArgument(
          fmt::format("'{}' is in dataset '{}', not '{}'", to, dest.spec.dataset, branch.spec.dataset));
    }
    STRATA_RETURN_IF_ERROR(CheckLockedNamesSurvive("reset", branch.spec.dataset, branch.spec.ref, dest.commit.id));
    STRATA_RETURN_IF_ERROR(cat_->UpdateBranch(
        branch.spec.dataset, branch.spec.ref, branch.commit.id, dest.commit.id,
        Audit("reset", {{"op", kOpBranchUpdate}, {"dataset", branch.spec.dataset}, {"ref", branch.spec.ref},
                        {"to", std::string(to)}})));
    Recorded();
    return branch.commit.id;
  }

  Result<CommitResult> Revert(std::string_view target, std::string_view commit, const CommitOptions& options) override {
    STRATA_ASSIGN_OR_RETURN(Resolved undo, Resolve(commit));
    ObjectId before = EmptyTreeId(objects_);
    if (!undo.commit.parents.empty()) {
      STRATA_ASSIGN_OR_RETURN(CommitInfo parent, ReadCommit(objects_, undo.commit.parents[0]));
      before = parent.tree;
    }
    CommitOptions opts = options;
    if (opts.message.empty()) {
      std::string first = undo.commit.message.substr(0, undo.commit.message.find('\n'));
      opts.message = fmt::format("Revert \"{}\"\n\nThis reverts commit {}.", first, undo.commit.id.ToHex());
    }
    opts.meta.emplace("revert", undo.commit.id.ToHex());
    return CommitWith(target, opts, "revert",
                      [&](store::WriteBatch* batch, const CommitInfo& base, CommitResult* res) -> Result<ObjectId> {
                        STRATA_ASSIGN_OR_RETURN(auto paths, ChangedPaths(objects_, before, undo.commit.tree));
                        std::vector<TreeEdit> edits;
                        for (const auto& p : paths) {
                          STRATA_ASSIGN_OR_RETURN(auto now, LookupEntry(objects_, base.tree, p));
                          STRATA_ASSIGN_OR_RETURN(auto made, LookupEntry(objects_, undo.commit.tree, p));
                          bool same = now.has_value() == made.has_value() && (!now || SameContent(*now, *made));
                          if (!same) {
                            return Status::FailedPrecondition(fmt::format(
                                "cannot revert {}: '{}' changed again after it; revert by hand",
                                undo.commit.id.Short(), p));
                          }
                          STRATA_ASSIGN_OR_RETURN(auto old, LookupEntry(objects_, before, p));
                          edits.push_back(TreeEdit{p, std::move(old)});
                        }
                        if (edits.empty()) return base.tree;
                        return ApplyEdits(objects_, batch, base.tree, edits, &res->trees_written);
                      });
  }

  // --- merge ---

  // The commit closest to `a` (breadth first over all parents) that is also an ancestor of `b`
  // (or `b` itself); zero when the histories share no commit.
  Result<ObjectId> MergeBase(const ObjectId& a, const ObjectId& b) {
    std::unordered_set<ObjectId, ObjectIdHash> of_b;
    std::deque<ObjectId> todo{b};
    of_b.insert(b);
    while (!todo.empty()) {
      STRATA_ASSIGN_OR_RETURN(CommitInfo c, ReadCommit(objects_, todo.front()));
      todo.pop_front();
      for (const auto& p : c.parents) {
        if (of_b.insert(p).second) todo.push_back(p);
      }
    }
    std::unordered_set<ObjectId, ObjectIdHash> seen{a};
    todo.assign({a});
    while (!todo.empty()) {
      ObjectId id = todo.front();
      todo.pop_front();
      if (of_b.count(id)) return id;
      STRATA_ASSIGN_OR_RETURN(CommitInfo c, ReadCommit(objects_, id));
      for (const auto& p : c.parents) {
        if (seen.insert(p).second) todo.push_back(p);
      }
    }
    return ObjectId();
  }

  struct MergePlan {
    Resolved src, dst;
    ObjectId base;
    bool up_to_date = false, fast_forward = false;
  };

  Result<MergePlan> PlanMerge(std::string_view src, std::string_view dst) {
    MergePlan plan;
    STRATA_ASSIGN_OR_RETURN(plan.dst, ResolveBranch(dst));
    STRATA_ASSIGN_OR_RETURN(RefSpec src_spec, ParseRefName(src));
    STRATA_ASSIGN_OR_RETURN(plan.src, ResolveSpec(src_spec));
    if (plan.src.spec.dataset != plan.dst.spec.dataset) {
      return Status::InvalidArgument(fmt::format("cannot merge '{}' into '{}': they are different datasets", src, dst));
    }
    const ObjectId& s = plan.src.commit.id;
    const ObjectId& d = plan.dst.commit.id;
    if (s == d) {
      plan.base = s;
      plan.up_to_date = true;
      return plan;
    }
    STRATA_ASSIGN_OR_RETURN(plan.base, MergeBase(s, d));
    plan.up_to_date = plan.base == s;
    plan.fast_forward = plan.base == d;
    return plan;
  }

  Result<std::optional<ObjectId>> BaseTree(const ObjectId& base) {
    if (base.IsZero()) return std::optional<ObjectId>();
    STRATA_ASSIGN_OR_RETURN(CommitInfo c, ReadCommit(objects_, base));
    return std::optional<ObjectId>(c.tree);
  }

  static std::string ConflictList(const std::vector<MergeConflict>& conflicts) {
    std::string out;
    for (const auto& c : conflicts) out += fmt::format("\n  {} ({})", c.path, c.kind);
    return out;
  }

  Result<std::vector<MergeConflict>> MergeConflicts(std::string_view src, std::string_view dst) override {
    STRATA_ASSIGN_OR_RETURN(MergePlan plan, PlanMerge(src, dst));
    if (plan.up_to_date || plan.fast_forward) return std::vector<MergeConflict>();
    STRATA_ASSIGN_OR_RETURN(auto base_tree, BaseTree(plan.base));
    STRATA_ASSIGN_OR_RETURN(TreeMerge m, MergeTrees(objects_, nullptr, base_tree, plan.dst.commit.tree,
                                                    plan.src.commit.tree, MergeStrategy::kFail));
    return m.conflicts;
  }

  Result<MergeResult> Merge(std::string_view src, std::string_view dst, const MergeOptions& options) override {
    STRATA_ASSIGN_OR_RETURN(MergePlan plan, PlanMerge(src, dst));
    const std::string& dataset = plan.dst.spec.dataset;
    const std::string& name = plan.dst.spec.ref;
    MergeResult res;
    res.parent = plan.dst.commit.id;
    res.base = plan.base;
    if (plan.up_to_date) {
      res.up_to_date = true;
      res.commit = plan.dst.commit.id;
      res.tree = plan.dst.commit.tree;
      return res;
    }
    json details = {{"op", kOpBranchUpdate}, {"dataset", dataset}, {"ref", name}, {"from", std::string(src)},
                    {"base", plan.base.IsZero() ? "" : plan.base.ToHex()}};
    if (plan.fast_forward) {
      details["fast_forward"] = true;
      STRATA_RETURN_IF_ERROR(cat_->UpdateBranch(dataset, name, plan.dst.commit.id, plan.src.commit.id,
                                                Audit("merge", details)));
      Recorded();
      res.fast_forward = true;
      res.commit = plan.src.commit.id;
      res.tree = plan.src.commit.tree;
      return res;
    }
    STRATA_ASSIGN_OR_RETURN(auto base_tree, BaseTree(plan.base));
    if (options.strategy == MergeStrategy::kFail) {
      // A dry pass first, so that a refused merge writes nothing at all.
      STRATA_ASSIGN_OR_RETURN(TreeMerge dry, MergeTrees(objects_, nullptr, base_tree, plan.dst.commit.tree,
                                                        plan.src.commit.tree, MergeStrategy::kFail));
      if (!dry.conflicts.empty()) {
        return Status::FailedPrecondition(fmt::format(
            "merge of {} into {}: {} conflicting path{} (nothing changed; merge with --strategy ours or theirs, "
            "or change them first):{}",
            src, dst, dry.conflicts.size(), dry.conflicts.size() == 1 ? "" : "s", ConflictList(dry.conflicts)));
      }
    }
    // The batch (and its shared repository lock) lives until the branch names its objects, so a
    // gc cannot run in between.
    STRATA_ASSIGN_OR_RETURN(auto batch, BatchFor(dataset));
    STRATA_ASSIGN_OR_RETURN(TreeMerge m, MergeTrees(objects_, batch.get(), base_tree, plan.dst.commit.tree,
                                                    plan.src.commit.tree, options.strategy));
    std::map<std::string, std::string> meta{{"merge_strategy", std::string(MergeStrategyName(options.strategy))}};
    if (!plan.base.IsZero()) meta["merge_base"] = plan.base.ToHex();
    Commit c{m.tree,
             {plan.dst.commit.id, plan.src.commit.id},
             dataset,
             options.time_ns ? options.time_ns : NowNs(),
             options.author.empty() ? actor_ : options.author,
             options.message.empty() ? fmt::format("Merge {} into {}", src, dst) : options.message,
             meta};
    ObjectId id = batch->Put(ObjectKind::kCommit, SerializeCommit(c));
    STRATA_RETURN_IF_ERROR(batch->Commit());
    STRATA_RETURN_IF_ERROR(cat_->PutCommit(ToRecord(id, c)));
    details["strategy"] = MergeStrategyName(options.strategy);
    details["conflicts"] = m.conflicts.size();
    details["message"] = c.message.substr(0, 200);
    STRATA_RETURN_IF_ERROR(cat_->UpdateBranch(dataset, name, plan.dst.commit.id, id, Audit("merge", details)));
    Recorded();
    res.commit = id;
    res.tree = m.tree;
    res.conflicts = std::move(m.conflicts);
    res.trees_written = m.trees_written;
    return res;
  }

  // --- retention and garbage collection ---

  Status SetRetentionPolicy(std::string_view dataset, const RetentionPolicy& policy) override {
    STRATA_RETURN_IF_ERROR(RequireDataset(dataset));
    std::string text = EncodePolicy(policy);
    STRATA_RETURN_IF_ERROR(cat_->SetRetentionPolicy(
        dataset, text,
        Audit("policy.set", {{"op", kOpPolicySet}, {"dataset", dataset}, {"policy", json::parse(text)}})));
    Recorded();
    return Status::OK();
  }

  Result<std::optional<RetentionPolicy>> GetRetentionPolicy(std::string_view dataset) override {
    STRATA_RETURN_IF_ERROR(RequireDataset(dataset));
    STRATA_ASSIGN_OR_RETURN(auto text, cat_->GetRetentionPolicy(dataset));
    if (!text) return std::optional<RetentionPolicy>();
    STRATA_ASSIGN_OR_RETURN(RetentionPolicy p, DecodePolicy(*text));
    return std::optional<RetentionPolicy>(p);
  }

  Result<ForgetReport> Forget(std::string_view dataset, bool dry_run) override {
    STRATA_ASSIGN_OR_RETURN(auto policy, GetRetentionPolicy(dataset));
    if (!policy) {
      return Status::FailedPrecondition(fmt::format(
          "dataset '{}' has no retention policy: set one with `strata policy set {} --keep-last N ...`", dataset,
          dataset));
    }
    STRATA_ASSIGN_OR_RETURN(auto refs, cat_->ListRefs(dataset));
    STRATA_ASSIGN_OR_RETURN(auto forgotten, cat_->ListForgotten(dataset));
    ForgetReport report;
    report.dataset = std::string(dataset);
    report.dry_run = dry_run;

    // Branches: their heads, and the rules over each first-parent history.
    std::map<ObjectId, std::vector<std::string>> keep;
    for (const auto& r : refs) {
      if (r.kind != catalog::RefKind::kBranch) continue;
      keep[r.target].push_back("head of " + r.name);
      STRATA_ASSIGN_OR_RETURN(auto history, cat_->Log(r.target, SIZE_MAX));
      std::vector<TimelineCommit> timeline;
      for (const auto& c : history) {
        if (!forgotten.count(c.id)) timeline.push_back(TimelineCommit{c.id, c.time_unix});
      }
      ApplyRetention(*policy, timeline, &keep);
    }
    // Commits under a retention lock are kept whatever the policy says.
    STRATA_ASSIGN_OR_RETURN(auto locks, ActiveLocks(dataset));
    for (const auto& [id, l] : locks) keep[id].push_back(DescribeLock(l));
    // Tags: kept, or (keep_tagged off) deleted unless something else keeps their commit.
    std::vector<ObjectId> heads;
    for (const auto& r : refs) {
      if (r.kind == catalog::RefKind::kBranch) {
        heads.push_back(r.target);
        continue;
      }
      if (policy->keep_tagged || r.is_protected || keep.count(r.target)) {
        keep[r.target].push_back((r.is_protected && !policy->keep_tagged ? "protected tag " : "tag ") + r.name);
        heads.push_back(r.target);
      } else {
        report.tags_deleted.push_back(r.name);
      }
    }
    // Every commit the remaining refs reach, not forgotten before, is judged.
    std::set<ObjectId> seen(heads.begin(), heads.end());
    std::deque<ObjectId> todo(seen.begin(), seen.end());
    std::vector<catalog::CommitRecord> judged;
    while (!todo.empty()) {
      ObjectId id = todo.front();
      todo.pop_front();
      auto c = cat_->GetCommit(id);
      if (!c.ok()) {
        if (c.status().IsNotFound()) continue;  // not indexed: nothing to judge it by
        return c.status();
      }
      for (const auto& p : c->parents) {
        if (seen.insert(p).second) todo.push_back(p);
      }
      // A commit forgotten before stays forgotten (its content may be gone already).
      if (!forgotten.count(id)) judged.push_back(std::move(*c));
    }
    std::sort(judged.begin(), judged.end(), [](const auto& a, const auto& b) {
      return a.time_unix != b.time_unix ? a.time_unix > b.time_unix : a.id < b.id;
    });
    std::vector<ObjectId> to_forget;
    json ids = json::array();
    for (const auto& c : judged) {
      RetentionDecision d{c.id, c.time_unix * 1'000'000'000, c.message.substr(0, c.message.find('\n')), false, {}};
      auto it = keep.find(c.id);
      if (it != keep.end()) {
        d.keep = true;
        d.reasons = it->second;
        ++report.kept;
      } else {
        to_forget.push_back(c.id);
        ids.push_back(c.id.ToHex());
        ++report.forgotten;
      }
      report.decisions.push_back(std::move(d));
    }
    if (dry_run) return report;
    for (const auto& tag : report.tags_deleted) {
      STRATA_RETURN_IF_ERROR(cat_->DeleteRef(
          dataset, tag,
          Audit("", {{"op", kOpRefDelete}, {"dataset", dataset}, {"ref", tag}, {"reason", "retention policy"}})));
      Recorded();
    }
    STRATA_RETURN_IF_ERROR(cat_->Forget(dataset, to_forget,
                                        Audit("forget", {{"op", kOpForget},
                                                         {"dataset", dataset},
                                                         {"forgotten", ids},
                                                         {"kept", report.kept},
                                                         {"policy", json::parse(EncodePolicy(*policy))}})));
    Recorded();
    return report;
  }

  // GC roots: see CollectGarbage in lake.h and docs/ARCHITECTURE.md. Reads commit objects, not
  // the index, so a damaged catalog index cannot make gc delete history.
  Result<std::vector<ObjectId>> LiveRoots(LakeGcReport* report) {
    std::vector<ObjectId> roots;
    // Locked commits and their trees, whatever refs and retention say.
    STRATA_ASSIGN_OR_RETURN(auto locks, ActiveLocks(""));
    for (const auto& [id, l] : locks) {
      auto c = ReadCommit(objects_, id);
      if (!c.ok()) {
        return c.status().WithContext(fmt::format("gc: locked commit {} of dataset '{}' is unreadable; run `strata verify`",
                                                  id.Short(), l.dataset));
      }
      roots.push_back(id);
      roots.push_back(c->tree);
    }
    STRATA_ASSIGN_OR_RETURN(auto datasets, cat_->ListDatasets());
    for (const auto& d : datasets) STRATA_RETURN_IF_ERROR(HistoryRoots(d.name, &roots, report));
    return roots;
  }

  // Appends the roots of dataset `name`'s history: every commit its refs reach and the trees of
  // those not forgotten (forgotten ones keep only the commit, their data may be collected).
  Status HistoryRoots(const std::string& name, std::vector<ObjectId>* roots, LakeGcReport* report) {
    STRATA_ASSIGN_OR_RETURN(auto refs, cat_->ListRefs(name));
    STRATA_ASSIGN_OR_RETURN(auto forgotten, cat_->ListForgotten(name));
    std::unordered_set<ObjectId, ObjectIdHash> heads, seen;
    std::deque<ObjectId> todo;
    for (const auto& r : refs) {
      heads.insert(r.target);
      if (seen.insert(r.target).second) todo.push_back(r.target);
    }
    while (!todo.empty()) {
      ObjectId id = todo.front();
      todo.pop_front();
      auto c = ReadCommit(objects_, id);
      if (!c.ok()) {
        return c.status().WithContext(fmt::format("history of dataset '{}' is damaged; run `strata verify`", name));
      }
      roots->push_back(id);
      ++report->commits_live;
      if (heads.count(id) || !forgotten.count(id)) {
        roots->push_back(c->tree);
        ++report->trees_live;
      }
      for (const auto& p : c->parents) {
        if (seen.insert(p).second) todo.push_back(p);
      }
    }
    return Status::OK();
  }

  // --- redundancy per dataset ---

  Status SetDatasetPolicy(std::string_view dataset, const std::string& policy) override {
    if (policy != "inherit") STRATA_RETURN_IF_ERROR(RequireDataset(dataset));
    STRATA_RETURN_IF_ERROR(repo_->volumes()->SetClassPolicy(std::string(dataset), policy).status());
    STRATA_RETURN_IF_ERROR(cat_->AppendAudit(catalog::AuditEntry{
        actor_, "policy", std::string(dataset), json{{"op", kOpEvent}, {"policy", policy}}.dump()}));
    Recorded();
    return Status::OK();
  }

  Result<RepairReport> ApplyRedundancy() override {
    STRATA_ASSIGN_OR_RETURN(RedundancyStatus st, repo_->volumes()->GetSummary());
    std::map<std::string, int> tolerated;  // class label -> lost volumes its policy survives
    for (const auto& c : st.classes) tolerated[c.label] = c.failures_tolerated;
    // Each dataset's history, grouped by the class its data belongs in ("" = the repository's
    // policy), strongest first: an object two datasets share then moves once.
    std::map<std::string, std::vector<ObjectId>> roots;
    LakeGcReport counted;
    STRATA_ASSIGN_OR_RETURN(auto datasets, cat_->ListDatasets());
    for (const auto& d : datasets) {
      std::string label = tolerated.count(d.name) ? d.name : std::string();
      STRATA_RETURN_IF_ERROR(HistoryRoots(d.name, &roots[label], &counted));
    }
    STRATA_ASSIGN_OR_RETURN(auto locks, ActiveLocks(""));
    for (const auto& [id, l] : locks) {
      auto c = ReadCommit(objects_, id);
      if (!c.ok()) continue;  // gc names it; here it only decides where some data belongs
      auto& r = roots[tolerated.count(l.dataset) ? l.dataset : std::string()];
      r.push_back(id);
      r.push_back(c->tree);
    }
    std::vector<std::pair<int, std::string>> order;
    for (const auto& [label, r] : roots) order.emplace_back(label.empty() ? st.failures_tolerated : tolerated[label], label);
    std::sort(order.begin(), order.end(), std::greater<>());
    uint64_t moved = 0;
    for (const auto& [strength, label] : order) {
      STRATA_ASSIGN_OR_RETURN(auto m, objects_->MoveToClass(roots[label], label, store::TierMoveOptions{}));
      moved += m.objects_moved;
    }
    STRATA_ASSIGN_OR_RETURN(RepairReport report, repo_->volumes()->ApplyPolicy());
    report.objects_regrouped = moved;
    return report;
  }

  Result<LakeGcReport> CollectGarbage(const LakeGcOptions& options) override {
    if (options.grace_seconds < 0) return Status::InvalidArgument("gc grace period must not be negative");
    LakeGcReport report;
    store::GcOptions go;
    go.dry_run = options.dry_run;
    go.grace_seconds = options.grace_seconds;
    go.repack_threshold = options.repack_threshold;
    go.live_roots = [&]() -> Result<std::vector<ObjectId>> {
      report.commits_live = report.trees_live = 0;
      return LiveRoots(&report);
    };
    auto r = objects_->CollectGarbage(go);
    if (!r.ok()) {
      if (r.status().code() == StatusCode::kFailedPrecondition) {
        return Status::FailedPrecondition(fmt::format(
            "gc needs the repository to itself and refuses while a put or commit runs ({}); run it again "
            "when they are done",
            r.status().message()));
      }
      return r.status();
    }
    report.objects_total = r->objects_total;
    report.objects_live = r->objects_live;
    report.packs_deleted = r->packs_deleted;
    report.packs_repacked = r->packs_repacked;
    report.bytes_freed = r->bytes_freed;
    report.bytes_rewritten = r->bytes_rewritten;
    report.dry_run = options.dry_run;
    if (!options.dry_run) {
      json d = {{"op", kOpEvent},
                {"commits_live", report.commits_live},
                {"objects_total", report.objects_total},
                {"objects_live", report.objects_live},
                {"packs_deleted", report.packs_deleted},
                {"packs_repacked", report.packs_repacked},
                {"bytes_freed", report.bytes_freed},
                {"bytes_rewritten", report.bytes_rewritten},
                {"grace_seconds", options.grace_seconds}};
      // gc happened; an entry that fails to append is a warning, as for any recorded change.
      Status s = cat_->AppendAudit(catalog::AuditEntry{actor_, "gc", "repository", d.dump()});
      if (!s.ok()) LogWarning(fmt::format("gc finished but the audit log did not record it: {}", s.ToString()));
      else Recorded();
    }
    return report;
  }

  // --- retention locks ---

  static int64_t NowUnix() { return NowNs() / 1'000'000'000; }

  // The locks in force, by commit (of `dataset`, or of all when empty).
  Result<std::map<ObjectId, RetentionLock>> ActiveLocks(std::string_view dataset) {
    STRATA_ASSIGN_OR_RETURN(auto all, ListRetentionLocks(dataset));
    std::map<ObjectId, RetentionLock> out;
    int64_t now = NowUnix();
    for (auto& l : all) {
      if (l.Active(now)) out.emplace(l.commit, std::move(l));
    }
    return out;
  }

  // Audits a refused change and returns the refusal.
  Status Refuse(std::string_view operation, std::string_view target, std::string message) {
    json d = {{"op", kOpEvent}, {"operation", operation}, {"error", message}};
    Status s = cat_->AppendAudit(catalog::AuditEntry{actor_, "lock.refused", std::string(target), d.dump()});
    if (s.ok()) Recorded();
    else LogWarning(fmt::format("a refusal was not audited: {}", s.ToString()));
    return Status::FailedPrecondition(std::move(message));
  }

  // Every commit reachable from `heads` through all parents (commit objects, not the index).
  Result<std::unordered_set<ObjectId, ObjectIdHash>> Reachable(const std::vector<ObjectId>& heads) {
    std::unordered_set<ObjectId, ObjectIdHash> seen(heads.begin(), heads.end());
    std::deque<ObjectId> todo(heads.begin(), heads.end());
    while (!todo.empty()) {
      ObjectId id = todo.front();
      todo.pop_front();
      STRATA_ASSIGN_OR_RETURN(CommitInfo c, ReadCommit(objects_, id));
      for (const auto& p : c.parents) {
        if (seen.insert(p).second) todo.push_back(p);
      }
    }
    return seen;
  }

  // Refuses (audited) when ref `ref` of `dataset` moving to `new_target` (deleted when absent)
  // would leave a locked commit it reaches without any ref reaching it. Costs nothing for a
  // dataset without locks; otherwise walks the histories involved.
  Status CheckLockedNamesSurvive(std::string_view operation, const std::string& dataset, const std::string& ref,
                                 std::optional<ObjectId> new_target) {
    STRATA_ASSIGN_OR_RETURN(auto locks, ActiveLocks(dataset));
    if (locks.empty()) return Status::OK();
    auto cur = cat_->GetRef(dataset, ref);
    if (!cur.ok()) return cur.status().IsNotFound() ? Status::OK() : cur.status();  // the change itself reports it
    STRATA_ASSIGN_OR_RETURN(auto before, Reachable({cur->target}));
    std::vector<const RetentionLock*> at_risk;
    for (const auto& [id, l] : locks) {
      if (before.count(id)) at_risk.push_back(&l);
    }
    if (at_risk.empty()) return Status::OK();
    std::vector<ObjectId> heads;
    if (new_target) heads.push_back(*new_target);
    STRATA_ASSIGN_OR_RETURN(auto refs, cat_->ListRefs(dataset));
    for (const auto& r : refs) {
      if (r.name != ref) heads.push_back(r.target);
    }
    STRATA_ASSIGN_OR_RETURN(auto after, Reachable(heads));
    for (const RetentionLock* l : at_risk) {
      if (after.count(l->commit)) continue;
      return Refuse(operation, fmt::format("{}@{}", dataset, ref),
                    fmt::format("{} of {}@{} refused: commit {} is under {} and no other ref of '{}' reaches it",
                                operation, dataset, ref, l->commit.Short(), DescribeLock(*l), dataset));
    }
    return Status::OK();
  }

  Result<std::optional<RetentionLock>> LockOf(const std::string& dataset, const ObjectId& commit) {
    STRATA_ASSIGN_OR_RETURN(auto all, ListRetentionLocks(dataset));
    for (auto& l : all) {
      if (l.commit == commit) return std::optional<RetentionLock>(std::move(l));
    }
    return std::optional<RetentionLock>();
  }

  Status StoreLock(const RetentionLock& next, const std::optional<RetentionLock>& prev, std::string action,
                   json extra) {
    bool empty = next.mode == LockMode::kNone && !next.legal_hold;
    std::string text = empty ? std::string() : EncodeLock(next);
    json d = {{"op", kOpLockSet},
              {"dataset", next.dataset},
              {"commit", next.commit.ToHex()},
              {"lock", empty ? json() : json::parse(text)},
              {"previous", prev ? json::parse(EncodeLock(*prev)) : json()}};
    for (auto it = extra.begin(); it != extra.end(); ++it) d[it.key()] = it.value();
    STRATA_RETURN_IF_ERROR(cat_->SetLock(next.dataset, next.commit, text, Audit(std::move(action), d)));
    Recorded();
    return Status::OK();
  }

  Status SetRetentionLock(std::string_view spec, LockMode mode, int64_t until, const LockOverride& ov) override {
    STRATA_ASSIGN_OR_RETURN(Resolved r, Resolve(spec));
    const std::string& dataset = r.spec.dataset;
    STRATA_ASSIGN_OR_RETURN(auto prev, LockOf(dataset, r.commit.id));
    int64_t now = NowUnix();
    if (mode != LockMode::kNone && until <= now) {
      return Status::InvalidArgument("a retention lock must end in the future");
    }
    std::string target = fmt::format("{}@{}", dataset, r.commit.id.ToHex());
    bool bypassed = false;
    if (prev && prev->mode != LockMode::kNone && now < prev->retain_until_unix) {
      bool shorter = mode == LockMode::kNone || until < prev->retain_until_unix;
      if (prev->mode == LockMode::kCompliance && (shorter || mode != LockMode::kCompliance)) {
        return Refuse("lock.set", target,
                      fmt::format("commit {} of '{}' is under a {}: it can be extended, but not shortened, weakened "
                                  "or lifted by anyone before it expires",
                                  r.commit.id.Short(), dataset, DescribeLock(*prev)));
      }
      if (prev->mode == LockMode::kGovernance && shorter) {
        if (!ov.bypass_governance || ov.reason.empty()) {
          return Refuse("lock.set", target,
                        fmt::format("commit {} of '{}' is under a {}: lifting or shortening it needs "
                                    "--bypass-governance and a --reason (audited)",
                                    r.commit.id.Short(), dataset, DescribeLock(*prev)));
        }
        bypassed = true;
      }
    }
    RetentionLock next = prev ? *prev : RetentionLock{};
    next.dataset = dataset;
    next.commit = r.commit.id;
    next.mode = mode;
    next.retain_until_unix = mode == LockMode::kNone ? 0 : until;
    next.reason = ov.reason;
    next.actor = actor_;
    next.updated_unix = now;
    return StoreLock(next, prev, mode == LockMode::kNone ? "lock.clear" : "lock.set",
                     {{"bypass_governance", bypassed}, {"reason", ov.reason}});
  }

  Status SetLegalHold(std::string_view spec, bool on, std::string_view reason) override {
    STRATA_ASSIGN_OR_RETURN(Resolved r, Resolve(spec));
    STRATA_ASSIGN_OR_RETURN(auto prev, LockOf(r.spec.dataset, r.commit.id));
    RetentionLock next = prev ? *prev : RetentionLock{};
    // An expired mode is dropped when the hold changes, so the stored lock says what holds.
    if (next.mode != LockMode::kNone && NowUnix() >= next.retain_until_unix) {
      next.mode = LockMode::kNone;
      next.retain_until_unix = 0;
    }
    next.dataset = r.spec.dataset;
    next.commit = r.commit.id;
    next.legal_hold = on;
    next.reason = std::string(reason);
    next.actor = actor_;
    next.updated_unix = NowUnix();
    return StoreLock(next, prev, on ? "legal_hold.on" : "legal_hold.off", {{"reason", reason}});
  }

  Result<std::vector<RetentionLock>> ListRetentionLocks(std::string_view dataset) override {
    if (!dataset.empty()) STRATA_RETURN_IF_ERROR(RequireDataset(dataset));
    STRATA_ASSIGN_OR_RETURN(auto rows, cat_->ListLocks(dataset));
    std::vector<RetentionLock> out;
    for (const auto& row : rows) {
      auto l = DecodeLock(row.lock_json);
      if (!l.ok()) return l.status().WithContext(fmt::format("lock of {}@{}", row.dataset, row.commit.Short()));
      l->dataset = row.dataset;
      l->commit = row.commit;
      out.push_back(std::move(*l));
    }
    return out;
  }

  // --- storage tiers ---

  Result<TierReport> MoveToTier(std::string_view spec, StorageTier tier, const TierOptions& options) override {
    STRATA_ASSIGN_OR_RETURN(Resolved r, Resolve(spec));
    const std::string& dataset = r.spec.dataset;
    const std::string tier_name = StorageTierName(tier);
    STRATA_ASSIGN_OR_RETURN(auto rows, cat_->ListArchives(""));
    std::optional<catalog::Catalog::ArchiveRow> prev;
    store::TierMoveOptions mo;
    mo.dry_run = options.dry_run;
    mo.compression_level = options.compression_level;
    mo.redundancy_class = dataset;  // restored objects go into the dataset's packs
    for (const auto& row : rows) {
      if (row.dataset == dataset && row.commit == r.commit.id) {
        prev = row;
        continue;
      }
      if (tier != StorageTier::kHot) continue;
      // What the version shares with other archived versions stays archived. A version whose
      // data gc already took (forgotten, then collected) keeps nothing.
      auto c = ReadCommit(objects_, row.commit);
      if (!c.ok() || !objects_->Contains(c->tree)) continue;
      mo.keep_roots.push_back(row.commit);
      mo.keep_roots.push_back(c->tree);
    }
    STRATA_ASSIGN_OR_RETURN(store::TierMoveReport moved, objects_->MoveToTier({r.commit.id, r.commit.tree}, tier, mo));
    TierReport report;
    report.dataset = dataset;
    report.commit = r.commit.id;
    report.tier = tier;
    static_cast<TierMoveStats&>(report) = moved;
    // The catalog follows the data: a crash after the move and before this leaves the row to the
    // next run, which finds nothing to move and records it.
    const bool recorded = tier == StorageTier::kHot ? !prev : (prev && prev->tier == tier_name);
    report.unchanged = moved.objects_moved == 0 && recorded;
    if (options.dry_run || report.unchanged) return report;
    catalog::Catalog::ArchiveRow row{dataset,           r.commit.id,          tier_name, NowUnix(),
                                     moved.objects_moved, moved.stored_before, moved.stored_after};
    if (prev && prev->tier == tier_name) {
      // Moved again (part of it had come back with a shared version): the row keeps the totals.
      row.objects += prev->objects;
      row.stored_before += prev->stored_before;
      row.stored_after += prev->stored_after;
    }
    json d = {{"op", kOpTierSet},
              {"dataset", dataset},
              {"commit", r.commit.id.ToHex()},
              {"tier", tier_name},
              {"changed_unix", row.changed_unix},
              {"objects", row.objects},
              {"stored_before", row.stored_before},
              {"stored_after", row.stored_after},
              {"moved", {{"objects", moved.objects_moved},
                         {"stored_before", moved.stored_before},
                         {"stored_after", moved.stored_after},
                         {"packs_rewritten", moved.packs_rewritten}}}};
    STRATA_RETURN_IF_ERROR(cat_->SetArchive(row, Audit(tier == StorageTier::kHot ? "restore" : "archive", d)));
    Recorded();
    return report;
  }

  Result<std::vector<ArchivedVersion>> ListArchived(std::string_view dataset) override {
    if (!dataset.empty()) STRATA_RETURN_IF_ERROR(RequireDataset(dataset));
    STRATA_ASSIGN_OR_RETURN(auto rows, cat_->ListArchives(dataset));
    std::vector<ArchivedVersion> out;
    std::map<std::string, std::vector<catalog::Ref>> refs;
    for (const auto& row : rows) {
      ArchivedVersion v;
      v.dataset = row.dataset;
      v.commit = row.commit;
      STRATA_ASSIGN_OR_RETURN(v.tier, ParseStorageTier(row.tier));
      v.changed_unix = row.changed_unix;
      v.objects = row.objects;
      v.stored_before = row.stored_before;
      v.stored_after = row.stored_after;
      auto it = refs.find(row.dataset);
      if (it == refs.end()) {
        STRATA_ASSIGN_OR_RETURN(auto list, cat_->ListRefs(row.dataset));
        it = refs.emplace(row.dataset, std::move(list)).first;
      }
      for (const auto& ref : it->second) {
        if (ref.target == row.commit) v.refs.push_back(ref.name);
      }
      out.push_back(std::move(v));
    }
    return out;
  }

  // --- audit ---

  Result<std::vector<AuditEvent>> AuditLog(uint64_t from_seq, size_t limit) override {
    STRATA_ASSIGN_OR_RETURN(auto entries, cat_->ListAudit(from_seq, limit));
    std::vector<AuditEvent> out;
    for (auto& e : entries) {
      out.push_back(AuditEvent{e.seq, e.time_unix_ms, std::move(e.actor), std::move(e.action), std::move(e.target),
                               std::move(e.details), e.hash});
    }
    return out;
  }

  Result<AuditCheck> VerifyAudit() override {
    STRATA_ASSIGN_OR_RETURN(RecordState st, LoadRecordState(objects_));
    STRATA_ASSIGN_OR_RETURN(auto rep, cat_->VerifyAudit(st.head));
    AuditCheck out;
    out.ok = rep.ok();
    out.entries = rep.entries;
    out.head_seq = rep.head.seq;
    out.recorded_seq = st.head ? st.head->seq : 0;
    out.problem = rep.ok() ? "" : std::string(catalog::AuditProblemName(rep.problem));
    out.first_bad_seq = rep.first_bad_seq;
    out.message = rep.message;
    return out;
  }

  Status RecordEvent(std::string_view action, std::string_view target, std::string_view details) override {
    json d = json::object();
    if (!details.empty()) {
      d = json::parse(details, nullptr, false);
      if (d.is_discarded() || !d.is_object()) return Status::InvalidArgument("event details must be a JSON object");
    }
    d["op"] = kOpEvent;
    STRATA_RETURN_IF_ERROR(cat_->AppendAudit(catalog::AuditEntry{actor_, std::string(action), std::string(target), d.dump()}));
    Recorded();
    return Status::OK();
  }

  const std::string& actor() const override { return actor_; }

 private:
  Repository* repo_;
  store::ObjectStore* objects_;
  std::unique_ptr<catalog::Catalog> cat_;
  std::string actor_;
  uint64_t epoch_ = 0;
  uint64_t chain_start_ = 1;
  SeqSet recorded_;
  uint64_t synced_ = 0;
};

// --- rebuild ---

// Applies one recorded event to a fresh catalog, as the operation it recorded.
Status Replay(catalog::Catalog* cat, const RefEvent& e) {
  json d = json::parse(e.details, nullptr, false);
  if (d.is_discarded() || !d.is_object()) d = json::object();
  d["replayed"] = {{"epoch", e.epoch}, {"seq", e.seq}, {"time_ms", e.time_unix_ms}};
  catalog::AuditEntry audit{e.actor, e.action, e.target, d.dump()};
  if (e.op == kOpDatasetCreate) return cat->CreateDataset(e.dataset, audit);
  if (e.op == kOpDatasetDelete) return cat->DeleteDataset(e.dataset, audit);
  if (e.op == kOpRefCreate) {
    return cat->CreateRef(e.dataset, e.ref, e.kind == "tag" ? catalog::RefKind::kTag : catalog::RefKind::kBranch,
                          e.new_target, audit);
  }
  if (e.op == kOpBranchUpdate) {
    // The recorded new target is what counts: an update whose own record was lost in a crash
    // leaves a different "old" here.
    STRATA_ASSIGN_OR_RETURN(auto ref, cat->GetRef(e.dataset, e.ref));
    return cat->UpdateBranch(e.dataset, e.ref, ref.target, e.new_target, audit);
  }
  if (e.op == kOpRefDelete) return cat->DeleteRef(e.dataset, e.ref, audit);
  if (e.op == kOpRefProtect || e.op == kOpRefUnprotect) {
    return cat->SetRefProtected(e.dataset, e.ref, e.op == kOpRefProtect, audit);
  }
  if (e.op == kOpPolicySet) {
    if (!d.contains("policy") || !d["policy"].is_object()) return Status::Corruption("policy event without a policy");
    return cat->SetRetentionPolicy(e.dataset, d["policy"].dump(), audit);
  }
  if (e.op == kOpLockSet) {
    if (!d.contains("commit") || !d["commit"].is_string()) return Status::Corruption("lock event without a commit");
    STRATA_ASSIGN_OR_RETURN(ObjectId id, ObjectId::FromHex(d["commit"].get<std::string>()));
    std::string lock = d.contains("lock") && d["lock"].is_object() ? d["lock"].dump() : std::string();
    return cat->SetLock(e.dataset, id, lock, audit);
  }
  if (e.op == kOpTierSet) {
    if (!d.contains("commit") || !d["commit"].is_string() || !d.contains("tier") || !d["tier"].is_string()) {
      return Status::Corruption("tier event without a commit or tier");
    }
    catalog::Catalog::ArchiveRow row;
    row.dataset = e.dataset;
    STRATA_ASSIGN_OR_RETURN(row.commit, ObjectId::FromHex(d["commit"].get<std::string>()));
    row.tier = d["tier"].get<std::string>();
    auto number = [&](const char* key) -> uint64_t {
      return d.contains(key) && d[key].is_number_unsigned() ? d[key].get<uint64_t>() : 0;
    };
    row.changed_unix = static_cast<int64_t>(number("changed_unix"));
    row.objects = number("objects");
    row.stored_before = number("stored_before");
    row.stored_after = number("stored_after");
    return cat->SetArchive(row, audit);
  }
  if (e.op == kOpForget) {
    std::vector<ObjectId> ids;
    if (d.contains("forgotten") && d["forgotten"].is_array()) {
      for (const auto& h : d["forgotten"]) {
        if (!h.is_string()) continue;
        STRATA_ASSIGN_OR_RETURN(ObjectId id, ObjectId::FromHex(h.get<std::string>()));
        ids.push_back(id);
      }
    }
    return cat->Forget(e.dataset, ids, audit);
  }
  return cat->AppendAudit(audit);
}

Status RemoveIfExists(Env* env, const std::string& path) {
  return env->FileExists(path) ? env->DeleteFile(path) : Status::OK();
}

}  // namespace
}  // namespace version

Result<std::unique_ptr<Lake>> Lake::Open(Repository* repo, const LakeOptions& options) {
  using namespace version;
  store::ObjectStore* objects = repo->objects();
  STRATA_ASSIGN_OR_RETURN(RecordState st, LoadRecordState(objects));
  std::string path = CatalogPath(objects);
  auto keyed = std::move(st.keyed);
  if (st.head && !objects->env()->FileExists(path)) {
    return Status::Corruption(fmt::format("the catalog database {} is missing but the repository records {} ref "
                                          "events: {}",
                                          path, st.count, kRebuildHint));
  }
  catalog::SqliteCatalogOptions co;
  co.path = path;
  co.audit_key = objects->audit_key();
  STRATA_ASSIGN_OR_RETURN(auto cat, catalog::OpenSqliteCatalog(co));
  STRATA_ASSIGN_OR_RETURN(std::string problem, CompareWithRecords(cat.get(), st));
  bool consistent = problem.empty();
  if (!consistent && !options.allow_inconsistent_catalog) {
    return Status::Corruption(fmt::format("{}: {}", problem, kRebuildHint));
  }
  auto lake = std::make_unique<LakeImpl>(repo, std::move(cat), options.actor.empty() ? DefaultActor() : options.actor,
                                         std::move(st));
  // Catch up with changes a crashed process made in the catalog but did not record.
  if (consistent) STRATA_RETURN_IF_ERROR(lake->SyncRecords(lake->FirstUnrecorded()));
  // Merge small records, so the next open lists fewer. Best effort: a read-only repository, or
  // a failure part-way, leaves records that every reader still understands.
  if (consistent) {
    Status s = CompactRefEventRecords(objects, keyed);
    if (!s.ok()) LogDebug(fmt::format("ref event records not merged: {}", s.ToString()));
  }
  return std::unique_ptr<Lake>(std::move(lake));
}

bool Lake::Exists(Repository* repo) {
  store::ObjectStore* objects = repo->objects();
  return objects->env()->FileExists(version::CatalogPath(objects));
}

Result<RebuildReport> Lake::RebuildCatalog(Repository* repo, const LakeOptions& options) {
  using namespace version;
  store::ObjectStore* objects = repo->objects();
  Env* env = objects->env();
  STRATA_ASSIGN_OR_RETURN(RecordState st, LoadRecordState(objects, /*all_events=*/true));
  std::string path = CatalogPath(objects);
  std::string tmp = path + ".rebuild";
  for (const char* suffix : {"", "-wal", "-shm"}) STRATA_RETURN_IF_ERROR(RemoveIfExists(env, tmp + suffix));

  RebuildReport report;
  uint64_t epoch = st.events.empty() ? 0 : st.epoch + 1;
  {
    catalog::SqliteCatalogOptions co;
    co.path = tmp;
    co.audit_key = objects->audit_key();
    co.checkpoint_on_close = true;  // renamed into place without its WAL
    STRATA_ASSIGN_OR_RETURN(auto cat, catalog::OpenSqliteCatalog(co));
    for (const auto& e : st.events) {
      Status s = Replay(cat.get(), e);
      if (!s.ok()) {
        report.warnings.push_back(fmt::format("event {}.{} ({} {}): {}", e.epoch, e.seq, e.action, e.target, s.message()));
      }
      ++report.records;
    }
    // The commit index: every commit an event named, and their ancestors, from the objects.
    STRATA_ASSIGN_OR_RETURN(auto datasets, cat->ListDatasets());
    std::set<std::string> live;
    for (const auto& d : datasets) live.insert(d.name);
    report.datasets = live.size();
    std::deque<ObjectId> todo;
    std::unordered_set<ObjectId, ObjectIdHash> seen;
    for (const auto& e : st.events) {
      if (!live.count(e.dataset)) continue;
      for (const ObjectId* id : {&e.old_target, &e.new_target}) {
        if (!id->IsZero() && seen.insert(*id).second) todo.push_back(*id);
      }
    }
    std::vector<catalog::CommitRecord> commits;
    while (!todo.empty()) {
      ObjectId id = todo.front();
      todo.pop_front();
      auto bytes = objects->Read(id, ObjectKind::kCommit);
      if (!bytes.ok()) {
        report.warnings.push_back(fmt::format("commit {}: {}", id.Short(), bytes.status().message()));
        continue;
      }
      auto c = ParseCommit(AsBytes(*bytes));
      if (!c.ok()) {
        report.warnings.push_back(fmt::format("commit {}: {}", id.Short(), c.status().message()));
        continue;
      }
      if (!live.count(c->dataset)) continue;
      for (const auto& p : c->parents) {
        if (seen.insert(p).second) todo.push_back(p);
      }
      commits.push_back(ToRecord(id, *c));
    }
    STRATA_RETURN_IF_ERROR(cat->PutCommits(commits));
    report.commits = commits.size();
    for (const auto& d : live) {
      STRATA_ASSIGN_OR_RETURN(auto refs, cat->ListRefs(d));
      report.refs += refs.size();
    }
    // The new chain starts here; its marker's record makes it the one the repository expects.
    std::string actor = options.actor.empty() ? DefaultActor() : options.actor;
    json details = {{"op", kOpRebuild}, {"epoch", epoch}, {"events", report.records}, {"commits", report.commits}};
    STRATA_RETURN_IF_ERROR(cat->AppendAudit(catalog::AuditEntry{actor, std::string(kOpRebuild), "catalog", details.dump()}));
    STRATA_ASSIGN_OR_RETURN(auto head, cat->Head());
    STRATA_ASSIGN_OR_RETURN(auto marker, cat->ListAudit(head.seq, 1));
    if (marker.empty()) return Status::Internal("rebuilt catalog lost its last audit entry");
    STRATA_RETURN_IF_ERROR(
        objects->AppendRecord(EncodeRefEvent(EventFromAudit(marker[0], epoch)), RefEventKey(epoch, marker[0].seq)));
  }  // closed: SQLite checkpoints its WAL into the file
  // The old database's WAL must not be replayed into the new file.
  for (const char* suffix : {"-wal", "-shm"}) STRATA_RETURN_IF_ERROR(RemoveIfExists(env, path + suffix));
  STRATA_RETURN_IF_ERROR(env->RenameFile(tmp, path));
  STRATA_RETURN_IF_ERROR(env->SyncDir(objects->local_state_dir()));
  return report;
}

}  // namespace strata
