// Retention rules: which commits of a history a policy keeps (restic's `forget` semantics), and
// the policy's stored form.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "strata/lake.h"

namespace strata::version {

struct TimelineCommit {
  ObjectId id;
  int64_t time_unix = 0;  // seconds
};

// Applies the rules of `policy` to one history, newest first: keep-last keeps the first N;
// keep-daily (weekly, monthly) walks the history and keeps a commit whenever its UTC day (week,
// month) differs from the previous kept-for-that-rule commit's, until N such periods are kept.
// Appends the reasons to `keep[id]`.
void ApplyRetention(const RetentionPolicy& policy, const std::vector<TimelineCommit>& timeline,
                    std::map<ObjectId, std::vector<std::string>>* keep);

// JSON: {"keep_last":N,"keep_daily":N,"keep_weekly":N,"keep_monthly":N,"keep_tagged":B}.
std::string EncodePolicy(const RetentionPolicy& policy);
Result<RetentionPolicy> DecodePolicy(std::string_view json);

// A retention lock's stored form (catalog and audit records):
// {"mode":"governance","until":SECONDS,"legal_hold":B,"reason":"...","actor":"...","updated":SECONDS}.
// `dataset` and `commit` are the row's key, not part of the text.
std::string EncodeLock(const RetentionLock& lock);
Result<RetentionLock> DecodeLock(std::string_view json);
// For people: "legal hold", "compliance lock until 2031-01-01 00:00:00 UTC", ...
std::string DescribeLock(const RetentionLock& lock);

}  // namespace strata::version
