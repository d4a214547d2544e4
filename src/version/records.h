// Ref events: the repository's own copy of every audit entry the lake appends (ref changes,
// datasets, protection, other events), stored as sealed records beside the objects.
//
// Why: the catalog is an index that can be lost. Replaying the events in order rebuilds every
// ref, and the newest event holds the audit chain's head, so a catalog replaced by an older or
// another copy is detected. Format in docs/FORMAT.md ("Records").
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "catalog/catalog.h"
#include "store/object_store.h"

namespace strata::version {

// Catalog operations an event replays as (the "op" field).
inline constexpr std::string_view kOpDatasetCreate = "dataset.create";
inline constexpr std::string_view kOpDatasetDelete = "dataset.delete";
inline constexpr std::string_view kOpRefCreate = "ref.create";
inline constexpr std::string_view kOpBranchUpdate = "branch.update";
inline constexpr std::string_view kOpRefDelete = "ref.delete";
inline constexpr std::string_view kOpRefProtect = "ref.protect";
inline constexpr std::string_view kOpRefUnprotect = "ref.unprotect";
inline constexpr std::string_view kOpRebuild = "catalog.rebuild";
inline constexpr std::string_view kOpPolicySet = "policy.set";  // details: "policy"
inline constexpr std::string_view kOpForget = "forget";         // details: "forgotten" (hex ids)
inline constexpr std::string_view kOpLockSet = "lock.set";  // details: "commit", "lock" (null: lifted)
// details: "commit", "tier", "changed_unix", "objects", "stored_before", "stored_after"
inline constexpr std::string_view kOpTierSet = "tier.set";
inline constexpr std::string_view kOpEvent = "event";  // anything else: replayed as an entry

struct RefEvent {
  // The audit chain this event belongs to: 0 for the first catalog, +1 at every rebuild.
  uint64_t epoch = 0;
  uint64_t seq = 0;  // the audit entry's seq and hash in that chain
  ObjectId hash;
  int64_t time_unix_ms = 0;
  std::string op;
  std::string dataset, ref, kind;  // kind: "branch" or "tag"
  ObjectId old_target, new_target;  // zero when not applicable
  std::string actor, action, target;
  std::string details;  // the audit entry's details, verbatim
};

// The record type tags: one event, or a segment (a run of consecutive events of one chain,
// written by CompactRefEventRecords). Records of other types (other layers) are skipped.
inline constexpr std::string_view kRefEventType = "strata.ref-event";
inline constexpr std::string_view kRefSegmentType = "strata.ref-events";

std::string EncodeRefEvent(const RefEvent& e);
// `events`: consecutive seqs of one epoch.
std::string EncodeRefSegment(const std::vector<RefEvent>& events);
// The events a record holds: none for a record of another type, one, or a segment's run;
// kCorruption for a malformed one.
Result<std::vector<RefEvent>> DecodeRefEvents(std::string_view json);

// The event an audit entry the lake appended describes (its details carry the op and names).
RefEvent EventFromAudit(const catalog::AuditRecord& r, uint64_t epoch);

// The entries of one chain that one record holds: [first, last].
struct RecordRange {
  uint64_t epoch = 0;
  uint64_t first = 0;
  uint64_t last = 0;
  uint64_t size() const { return last - first + 1; }
};

// The name key of a ref event's record ("e<epoch>s<seq>", 16 hex digits each) and of a
// segment's ("g<epoch>s<first>t<last>"), so the newest record and the set of recorded entries
// are known from one directory listing.
std::string RefEventKey(uint64_t epoch, uint64_t seq);
std::string RefSegmentKey(const RecordRange& range);
// The range a record name made with either key holds; nullopt for other names (records of
// other types, or ref events written before names carried their key).
std::optional<RecordRange> ParseRefEventName(std::string_view name);

// The events of the keyed record `name`, checked against the range its name says
// (kCorruption otherwise; kNotFound if it is gone).
Result<std::vector<RefEvent>> ReadRefRecord(store::ObjectStore* objects, const RecordRange& range,
                                            const std::string& name);

// Every ref event among `records`, sorted by (epoch, seq), duplicates dropped.
Result<std::vector<RefEvent>> LoadRefEvents(const std::vector<std::string>& records);

// A set of seqs held as disjoint ranges (a segment records a whole run of entries).
class SeqSet {
 public:
  void Add(uint64_t first, uint64_t last);
  bool Contains(uint64_t seq) const;
  bool empty() const { return ranges_.empty(); }
  uint64_t min() const { return ranges_.begin()->first; }   // not empty()
  uint64_t max() const { return ranges_.rbegin()->second; }  // not empty()
  // The smallest seq >= `from` that is not in the set.
  uint64_t FirstMissing(uint64_t from) const;

 private:
  std::map<uint64_t, uint64_t> ranges_;  // first -> last; disjoint and not adjacent
};

// Records of one chain are merged by size tier: when kRecordMergeWidth records hold fewer than
// kRecordMergeWidth^t entries each (t = 1, 2, ...), they are rewritten as segments (one per run
// of consecutive entries) and deleted, so a repository with a million ref events keeps a few
// hundred records at most and an open lists those. `keyed`: every record with a key, as listed.
// Best effort and safe to race: segments are durable before any record they replace is deleted,
// and two processes merging the same records leave duplicates, which loaders drop.
inline constexpr uint64_t kRecordMergeWidth = 32;
Status CompactRefEventRecords(store::ObjectStore* objects,
                              const std::vector<std::pair<RecordRange, std::string>>& keyed);

}  // namespace strata::version
