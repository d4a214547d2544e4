// Runs: a run is the dataset `run.NAME`; its branch `main` holds run.json (status, params,
// tags, lineage) and metrics.jsonl (one {"step","name","value"} per line), so a run is
// versioned, audited and rebuilt with the catalog like any dataset. Its checkpoints are tags.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/logging.h"
#include "checkpoint/manifest.h"
#include "checkpoint/runs_impl.h"
#include "version/retention.h"

namespace strata {
namespace checkpoint {

using nlohmann::json;

namespace {

constexpr std::string_view kRunFile = "run.json";
constexpr std::string_view kMetricsFile = "metrics.jsonl";

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string EncodeRun(const RunInfo& r) {
  json j = {{"format", "strata.run"},
            {"version", 1},
            {"name", r.name},
            {"status", r.status},
            {"created_ns", r.created_ns},
            {"updated_ns", r.updated_ns},
            {"params", r.params},
            {"tags", r.tags},
            {"dataset", r.dataset},
            {"loader_state", r.loader_state}};
  return j.dump(2) + "\n";
}

Result<RunInfo> DecodeRun(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || j.value("format", "") != "strata.run") {
    return Status::Corruption("run.json is not a run record");
  }
  RunInfo r;
  try {
    r.name = j.value("name", "");
    r.status = j.value("status", "");
    r.created_ns = j.value("created_ns", int64_t{0});
    r.updated_ns = j.value("updated_ns", int64_t{0});
    r.params = j.value("params", std::map<std::string, std::string>{});
    r.tags = j.value("tags", std::set<std::string>{});
    r.dataset = j.value("dataset", "");
    r.loader_state = j.value("loader_state", "");
  } catch (const json::exception& e) {
    return Status::Corruption(fmt::format("run.json: {}", e.what()));
  }
  return r;
}

Result<std::string> ReadRunFile(Lake* lake, std::string_view run, std::string_view file, bool missing_ok) {
  auto reader = lake->OpenFile(fmt::format("{}@main:{}", RunDataset(run), file));
  if (!reader.ok()) {
    if (missing_ok && reader.status().IsNotFound()) return std::string();
    return reader.status();
  }
  std::string out((*reader)->size(), '\0');
  size_t got = 0;
  STRATA_RETURN_IF_ERROR((*reader)->ReadAt(0, out.size(), reinterpret_cast<uint8_t*>(out.data()), &got));
  if (got != out.size()) return Status::Corruption(fmt::format("{} of run {} is short", file, run));
  return out;
}

// Read-modify-write of run files on `main`, retried when another process moved the branch.
Status UpdateRun(Lake* lake, std::string_view run, std::string_view what,
                 const std::function<Result<std::map<std::string, std::string>>()>& make) {
  for (int attempt = 0;; ++attempt) {
    STRATA_ASSIGN_OR_RETURN(Resolved head, lake->Resolve(RunDataset(run) + "@main"));
    STRATA_ASSIGN_OR_RETURN(auto files, make());
    STRATA_ASSIGN_OR_RETURN(auto stage, lake->Stage(RunDataset(run) + "@main"));
    for (const auto& [path, content] : files) STRATA_RETURN_IF_ERROR(stage->AddBytes(path, content));
    CommitOptions co;
    co.message = std::string(what);
    co.expected_head = head.commit.id;
    auto c = stage->Commit(co);
    if (c.ok()) return Status::OK();
    if (c.status().code() != StatusCode::kAborted || attempt >= 8) return c.status();
  }
}

}  // namespace

Status EnsureRun(Lake* lake, std::string_view run) {
  STRATA_RETURN_IF_ERROR(ValidateRunName(run));
  STRATA_ASSIGN_OR_RETURN(auto datasets, lake->ListDatasets());
  if (std::find(datasets.begin(), datasets.end(), RunDataset(run)) != datasets.end()) return Status::OK();
  Status s = lake->CreateDataset(RunDataset(run));
  if (s.code() == StatusCode::kAlreadyExists) return Status::OK();  // created meanwhile
  STRATA_RETURN_IF_ERROR(s);
  RunInfo info;
  info.name = std::string(run);
  info.created_ns = info.updated_ns = NowNs();
  return UpdateRun(lake, run, "create run", [&]() -> Result<std::map<std::string, std::string>> {
    return std::map<std::string, std::string>{{std::string(kRunFile), EncodeRun(info)}};
  });
}

Result<std::vector<CheckpointInfo>> ListCheckpoints(Lake* lake, std::string_view run) {
  STRATA_RETURN_IF_ERROR(ValidateRunName(run));
  auto refs = lake->ListRefs(RunDataset(run));
  if (!refs.ok()) {
    if (refs.status().IsNotFound()) return Status::NotFound(fmt::format("no run named '{}'", run));
    return refs.status();
  }
  std::map<ObjectId, std::vector<std::string>> labels;
  for (const auto& r : *refs) {
    if (r.name.starts_with(kLabelTagPrefix)) labels[r.target].push_back(r.name.substr(kLabelTagPrefix.size()));
  }
  std::vector<CheckpointInfo> out;
  for (const auto& r : *refs) {
    int64_t step = StepOfTag(r.name);
    if (step < 0) continue;
    STRATA_ASSIGN_OR_RETURN(Resolved c, lake->Resolve(RunDataset(run) + "@" + r.name));
    CheckpointInfo info;
    info.run = std::string(run);
    info.step = step;
    info.commit = r.target;
    info.time_ns = c.commit.time_ns;
    for (const auto& [k, v] : c.commit.meta) {
      if (k == "ckpt.world_size") info.world_size = std::atoi(v.c_str());
      else if (k == "ckpt.bytes") info.bytes = std::strtoull(v.c_str(), nullptr, 10);
      else if (k.starts_with("metric.")) info.metrics[k.substr(7)] = std::strtod(v.c_str(), nullptr);
      else if (k.starts_with("meta.")) info.meta[k.substr(5)] = v;
    }
    info.labels = labels[r.target];
    out.push_back(std::move(info));
  }
  std::sort(out.begin(), out.end(), [](const CheckpointInfo& a, const CheckpointInfo& b) { return a.step > b.step; });
  return out;
}

namespace {

class RunsImpl : public Runs {
 public:
  explicit RunsImpl(std::unique_ptr<Lake> lake) : lake_(std::move(lake)) {}

  Status Create(const RunInfo& in) override {
    STRATA_RETURN_IF_ERROR(ValidateRunName(in.name));
    RunInfo info = in;
    if (!info.dataset.empty()) {
      // Lineage: the exact commit, whatever the branch does later.
      STRATA_ASSIGN_OR_RETURN(Resolved d, lake_->Resolve(info.dataset));
      info.dataset = fmt::format("{}@{}", d.spec.dataset, d.commit.id.ToHex());
    }
    if (!info.loader_state.empty()) {
      json j = json::parse(info.loader_state, nullptr, false);
      if (j.is_discarded()) return Status::InvalidArgument("the loader state must be JSON");
    }
    info.created_ns = info.updated_ns = NowNs();
    Status s = lake_->CreateDataset(RunDataset(info.name));
    if (s.code() == StatusCode::kAlreadyExists) return Status::AlreadyExists(fmt::format("run '{}' exists", info.name));
    STRATA_RETURN_IF_ERROR(s);
    return UpdateRun(lake_.get(), info.name, "create run", [&]() -> Result<std::map<std::string, std::string>> {
      return std::map<std::string, std::string>{{std::string(kRunFile), EncodeRun(info)}};
    });
  }

  Result<RunInfo> Get(std::string_view run) override {
    STRATA_RETURN_IF_ERROR(ValidateRunName(run));
    auto text = ReadRunFile(lake_.get(), run, kRunFile, false);
    if (!text.ok() && text.status().IsNotFound()) return Status::NotFound(fmt::format("no run named '{}'", run));
    if (!text.ok()) return text.status();
    return DecodeRun(*text);
  }

  Result<std::vector<RunInfo>> List() override {
    STRATA_ASSIGN_OR_RETURN(auto datasets, lake_->ListDatasets());
    std::vector<RunInfo> out;
    for (const auto& d : datasets) {
      if (!d.starts_with(kRunPrefix)) continue;
      auto r = Get(d.substr(kRunPrefix.size()));
      if (r.ok()) out.push_back(std::move(*r));
      else LogWarning(fmt::format("run {}: {}", d, r.status().message()));
    }
    return out;
  }

  Status SetStatus(std::string_view run, std::string_view status) override {
    return UpdateRun(lake_.get(), run, fmt::format("status {}", status), [&]() -> Result<std::map<std::string, std::string>> {
      STRATA_ASSIGN_OR_RETURN(RunInfo info, Get(run));
      info.status = std::string(status);
      info.updated_ns = NowNs();
      return std::map<std::string, std::string>{{std::string(kRunFile), EncodeRun(info)}};
    });
  }

  Status LogMetrics(std::string_view run, const std::vector<MetricPoint>& points) override {
    for (const auto& p : points) {
      if (p.name.empty() || !std::isfinite(p.value)) return Status::InvalidArgument("a metric needs a name and a finite value");
    }
    return UpdateRun(lake_.get(), run, fmt::format("{} metric values", points.size()),
                     [&]() -> Result<std::map<std::string, std::string>> {
                       STRATA_RETURN_IF_ERROR(Get(run).status());
                       STRATA_ASSIGN_OR_RETURN(std::string text, ReadRunFile(lake_.get(), run, kMetricsFile, true));
                       for (const auto& p : points) {
                         text += json({{"step", p.step}, {"name", p.name}, {"value", p.value}}).dump() + "\n";
                       }
                       return std::map<std::string, std::string>{{std::string(kMetricsFile), text}};
                     });
  }

  Result<std::vector<MetricPoint>> Metrics(std::string_view run) override {
    STRATA_RETURN_IF_ERROR(Get(run).status());
    STRATA_ASSIGN_OR_RETURN(std::string text, ReadRunFile(lake_.get(), run, kMetricsFile, true));
    std::vector<MetricPoint> out;
    size_t pos = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      std::string_view line(text.data() + pos, (nl == std::string::npos ? text.size() : nl) - pos);
      pos = nl == std::string::npos ? text.size() : nl + 1;
      if (line.empty()) continue;
      json j = json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("step") || !j["step"].is_number_integer() ||
          !j.contains("name") || !j["name"].is_string() || !j.contains("value") || !j["value"].is_number()) {
        return Status::Corruption(fmt::format("metrics of run {}: bad line", run));
      }
      out.push_back({j["step"].get<int64_t>(), j["name"].get<std::string>(), j["value"].get<double>()});
    }
    return out;
  }

  Result<std::vector<CheckpointInfo>> Checkpoints(std::string_view run) override { return ListCheckpoints(lake_.get(), run); }

  Status DeleteCheckpoint(std::string_view run, int64_t step) override {
    Status s = lake_->DeleteRef(RunDataset(run) + "@" + CheckpointTag(step));
    if (s.IsNotFound()) return Status::NotFound(fmt::format("run {} has no checkpoint {}", run, step));
    return s;
  }

  Status LabelCheckpoint(std::string_view run, int64_t step, std::string_view label) override {
    return lake_->CreateRef(fmt::format("{}@{}{}", RunDataset(run), kLabelTagPrefix, label),
                            RunDataset(run) + "@" + CheckpointTag(step), RefType::kTag);
  }

  Result<std::vector<CheckpointInfo>> Best(std::string_view run, std::string_view metric, size_t k, bool maximize) override {
    STRATA_ASSIGN_OR_RETURN(auto list, Ranked(run, metric, maximize));
    if (list.size() > k) list.resize(k);
    return list;
  }

  Result<RetentionResult> Retain(std::string_view run, const RetentionSpec& spec) override {
    if (spec.keep_best > 0 && spec.metric.empty()) return Status::InvalidArgument("keeping the best needs a metric");
    STRATA_ASSIGN_OR_RETURN(auto list, ListCheckpoints(lake_.get(), run));
    RetentionResult res;
    std::map<int64_t, std::vector<std::string>>& why = res.reasons;
    for (size_t i = 0; i < list.size() && i < spec.keep_last; ++i) why[list[i].step].push_back("last");
    if (spec.keep_best > 0) {
      STRATA_ASSIGN_OR_RETURN(auto best, Best(run, spec.metric, spec.keep_best, spec.maximize));
      for (const auto& c : best) why[c.step].push_back(fmt::format("best {}", spec.metric));
    }
    if (spec.keep_labelled) {
      for (const auto& c : list) {
        for (const auto& l : c.labels) why[c.step].push_back("label " + l);
      }
    }
    // A checkpoint under a retention lock or legal hold is kept, whatever the rules say, and
    // reported as such: its tag cannot be deleted while the lock holds.
    STRATA_ASSIGN_OR_RETURN(auto locks, lake_->ListRetentionLocks(RunDataset(run)));
    std::map<ObjectId, std::string> locked;
    int64_t now = NowNs() / 1'000'000'000;
    for (const auto& l : locks) {
      if (l.Active(now)) locked[l.commit] = version::DescribeLock(l);
    }
    for (const auto& c : list) {
      if (auto l = locked.find(c.commit); l != locked.end()) {
        if (!why.count(c.step)) res.locked.push_back(c.step);  // kept by the lock alone
        why[c.step].push_back(l->second);
      }
      if (why.count(c.step)) {
        res.kept.push_back(c.step);
        continue;
      }
      if (!spec.dry_run) {
        Status s = DeleteCheckpoint(run, c.step);
        // Refused because deleting it would drop a locked commit's last name (an older locked
        // checkpoint reachable only through it): kept, with the refusal as the reason.
        if (s.code() == StatusCode::kFailedPrecondition) {
          why[c.step].push_back(std::string(s.message()));
          res.locked.push_back(c.step);
          res.kept.push_back(c.step);
          continue;
        }
        STRATA_RETURN_IF_ERROR(s);
      }
      res.removed.push_back(c.step);
    }
    if (!spec.dry_run) {
      // Parts of sharded saves that never completed: kept an hour for their missing ranks.
      STRATA_ASSIGN_OR_RETURN(auto refs, lake_->ListRefs(RunDataset(run)));
      int64_t now_ms = NowNs() / 1'000'000;
      for (const auto& r : refs) {
        if (r.name.starts_with(kPendingTagPrefix) && now_ms - r.updated_unix_ms > 3'600'000) {
          STRATA_RETURN_IF_ERROR(lake_->DeleteRef(RunDataset(run) + "@" + r.name));
        }
      }
    }
    return res;
  }

 private:
  // Checkpoints that have a value for `metric`, best first.
  Result<std::vector<CheckpointInfo>> Ranked(std::string_view run, std::string_view metric, bool maximize) {
    STRATA_ASSIGN_OR_RETURN(auto list, ListCheckpoints(lake_.get(), run));
    STRATA_ASSIGN_OR_RETURN(auto series, Metrics(run));
    std::map<int64_t, double> at_step;
    for (const auto& p : series) {
      if (p.name == metric) at_step[p.step] = p.value;
    }
    std::vector<std::pair<double, CheckpointInfo>> ranked;
    for (auto& c : list) {
      auto it = c.metrics.find(std::string(metric));
      if (it != c.metrics.end()) {
        ranked.push_back({it->second, std::move(c)});
      } else if (auto s = at_step.find(c.step); s != at_step.end()) {
        c.metrics[std::string(metric)] = s->second;
        ranked.push_back({s->second, std::move(c)});
      }
    }
    std::stable_sort(ranked.begin(), ranked.end(), [&](const auto& a, const auto& b) {
      return maximize ? a.first > b.first : a.first < b.first;
    });
    std::vector<CheckpointInfo> out;
    for (auto& [v, c] : ranked) out.push_back(std::move(c));
    return out;
  }

  std::unique_ptr<Lake> lake_;
};

}  // namespace
}  // namespace checkpoint

Result<std::unique_ptr<Runs>> Runs::Open(Repository* repo) {
  STRATA_ASSIGN_OR_RETURN(auto lake, Lake::Open(repo));
  return std::unique_ptr<Runs>(new checkpoint::RunsImpl(std::move(lake)));
}

}  // namespace strata
