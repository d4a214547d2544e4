#include "version/retention.h"

#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace strata::version {

using nlohmann::json;

namespace {

int64_t DaysSinceEpoch(int64_t t) { return t >= 0 ? t / 86400 : (t - 86399) / 86400; }

std::string DayName(int64_t day) {
  time_t t = static_cast<time_t>(day * 86400);
  struct tm tm {};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

struct Rule {
  uint32_t count;
  const char* name;
  // The period a time falls in, and how it is written.
  int64_t (*period)(int64_t t);
  std::string (*label)(int64_t period);
};

int64_t Day(int64_t t) { return DaysSinceEpoch(t); }
// 1970-01-01 was a Thursday: shifting by 3 days makes weeks start on Monday.
int64_t Week(int64_t t) {
  int64_t d = DaysSinceEpoch(t) + 3;
  return d >= 0 ? d / 7 : (d - 6) / 7;
}
int64_t Month(int64_t t) {
  time_t tt = static_cast<time_t>(t);
  struct tm tm {};
  gmtime_r(&tt, &tm);
  return int64_t{tm.tm_year + 1900} * 12 + tm.tm_mon;
}
std::string DayLabel(int64_t day) { return DayName(day); }
std::string WeekLabel(int64_t week) { return "week of " + DayName(week * 7 - 3); }
std::string MonthLabel(int64_t month) { return fmt::format("{:04}-{:02}", month / 12, month % 12 + 1); }

}  // namespace

void ApplyRetention(const RetentionPolicy& policy, const std::vector<TimelineCommit>& timeline,
                    std::map<ObjectId, std::vector<std::string>>* keep) {
  for (size_t i = 0; i < timeline.size() && i < policy.keep_last; ++i) (*keep)[timeline[i].id].push_back("last");
  const Rule rules[] = {{policy.keep_daily, "daily", Day, DayLabel},
                        {policy.keep_weekly, "weekly", Week, WeekLabel},
                        {policy.keep_monthly, "monthly", Month, MonthLabel}};
  for (const Rule& r : rules) {
    uint32_t kept = 0;
    bool have_last = false;
    int64_t last = 0;
    for (const auto& c : timeline) {
      if (kept >= r.count) break;
      int64_t p = r.period(c.time_unix);
      if (have_last && p == last) continue;
      have_last = true;
      last = p;
      ++kept;
      (*keep)[c.id].push_back(fmt::format("{} {}", r.name, r.label(p)));
    }
  }
}

std::string EncodePolicy(const RetentionPolicy& p) {
  return json{{"keep_last", p.keep_last},
              {"keep_daily", p.keep_daily},
              {"keep_weekly", p.keep_weekly},
              {"keep_monthly", p.keep_monthly},
              {"keep_tagged", p.keep_tagged}}
      .dump();
}

Result<RetentionPolicy> DecodePolicy(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status::Corruption("retention policy is not a JSON object");
  RetentionPolicy p;
  for (auto [key, field] : {std::pair{"keep_last", &p.keep_last}, std::pair{"keep_daily", &p.keep_daily},
                            std::pair{"keep_weekly", &p.keep_weekly}, std::pair{"keep_monthly", &p.keep_monthly}}) {
    if (!j.contains(key)) continue;
    if (!j[key].is_number_unsigned() || j[key].get<uint64_t>() > UINT32_MAX) {
      return Status::Corruption(fmt::format("retention policy: '{}' is not a count", key));
    }
    *field = j[key].get<uint32_t>();
  }
  if (j.contains("keep_tagged")) {
    if (!j["keep_tagged"].is_boolean()) return Status::Corruption("retention policy: 'keep_tagged' is not a boolean");
    p.keep_tagged = j["keep_tagged"].get<bool>();
  }
  return p;
}

std::string EncodeLock(const RetentionLock& l) {
  return json{{"mode", LockModeName(l.mode)}, {"until", l.retain_until_unix}, {"legal_hold", l.legal_hold},
              {"reason", l.reason},          {"actor", l.actor},             {"updated", l.updated_unix}}
      .dump();
}

Result<RetentionLock> DecodeLock(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status::Corruption("retention lock is not a JSON object");
  RetentionLock l;
  if (!j.contains("mode") || !j["mode"].is_string()) return Status::Corruption("retention lock without a mode");
  auto mode = ParseLockMode(j["mode"].get<std::string>());
  if (!mode.ok()) return Status::Corruption(fmt::format("retention lock: {}", mode.status().message()));
  l.mode = *mode;
  if (!j.contains("until") || !j["until"].is_number_integer()) return Status::Corruption("retention lock without a date");
  l.retain_until_unix = j["until"].get<int64_t>();
  if (j.contains("legal_hold")) {
    if (!j["legal_hold"].is_boolean()) return Status::Corruption("retention lock: 'legal_hold' is not a boolean");
    l.legal_hold = j["legal_hold"].get<bool>();
  }
  if (j.contains("reason") && j["reason"].is_string()) l.reason = j["reason"].get<std::string>();
  if (j.contains("actor") && j["actor"].is_string()) l.actor = j["actor"].get<std::string>();
  if (j.contains("updated") && j["updated"].is_number_integer()) l.updated_unix = j["updated"].get<int64_t>();
  return l;
}

std::string DescribeLock(const RetentionLock& l) {
  std::string out;
  if (l.mode != LockMode::kNone) {
    time_t t = static_cast<time_t>(l.retain_until_unix);
    struct tm tm {};
    gmtime_r(&t, &tm);
    out = fmt::format("{} lock until {:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC", LockModeName(l.mode), tm.tm_year + 1900,
                      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  }
  if (l.legal_hold) out += out.empty() ? "legal hold" : " and legal hold";
  return out.empty() ? "no lock" : out;
}

}  // namespace strata::version

namespace strata {

std::string_view LockModeName(LockMode mode) {
  switch (mode) {
    case LockMode::kNone: return "none";
    case LockMode::kGovernance: return "governance";
    case LockMode::kCompliance: return "compliance";
  }
  return "?";
}

Result<LockMode> ParseLockMode(std::string_view name) {
  if (name == "none") return LockMode::kNone;
  if (name == "governance") return LockMode::kGovernance;
  if (name == "compliance") return LockMode::kCompliance;
  return Status::InvalidArgument(fmt::format("unknown lock mode '{}' (governance or compliance)", name));
}

bool RetentionLock::Active(int64_t now_unix) const {
  return legal_hold || (mode != LockMode::kNone && now_unix < retain_until_unix);
}

}  // namespace strata
