// Ref events: the repository's own copy of every audit entry the lake appends (ref changes,
// datasets, protection, other events), stored as sealed records beside the objects.
//
// Why: the catalog is an index that can be lost. Replaying the events in order rebuilds every
// ref, and the newest event holds the audit chain's head, so a catalog replaced by an older or
// another copy is detected. Format in docs/FORMAT.md ("Records").
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "catalog/catalog.h"

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

// The record type tag; records of other types (other layers) are skipped.
inline constexpr std::string_view kRefEventType = "strata.ref-event";

std::string EncodeRefEvent(const RefEvent& e);
// nullopt for a record of another type; kCorruption for a malformed ref event.
Result<std::optional<RefEvent>> DecodeRefEvent(std::string_view json);

// The event an audit entry the lake appended describes (its details carry the op and names).
RefEvent EventFromAudit(const catalog::AuditRecord& r, uint64_t epoch);

// The name key of a ref event's record ("e<epoch>s<seq>", 16 hex digits each), so the newest
// record and the set of recorded entries are known from one directory listing.
std::string RefEventKey(uint64_t epoch, uint64_t seq);
// (epoch, seq) from a record name made with RefEventKey; nullopt for other names (records of
// other types, or ref events written before names carried their key).
std::optional<std::pair<uint64_t, uint64_t>> ParseRefEventName(std::string_view name);

// Every ref event among `records`, sorted by (epoch, seq), duplicates dropped.
Result<std::vector<RefEvent>> LoadRefEvents(const std::vector<std::string>& records);

}  // namespace strata::version
