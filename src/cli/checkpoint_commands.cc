// `strata run ...` and `strata ckpt ...`: experiment runs and their checkpoints (checkpoint.h).
#include <algorithm>
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.h"
#include "strata/checkpoint.h"

namespace strata::cli {
namespace {

using nlohmann::json;

json CheckpointJson(const CheckpointInfo& c) {
  json j = {{"run", c.run},       {"step", c.step},   {"commit", c.commit.ToHex()}, {"time_ns", c.time_ns},
            {"world_size", c.world_size}, {"bytes", c.bytes}, {"meta", c.meta},   {"metrics", c.metrics},
            {"labels", c.labels}};
  if (!c.tensors.empty()) {
    json t = json::array();
    for (const auto& m : c.tensors) {
      t.push_back({{"name", m.name}, {"dtype", DTypeName(m.dtype)}, {"shape", m.shape}, {"bytes", m.bytes}, {"pieces", m.pieces}});
    }
    j["tensors"] = t;
    j["states"] = c.states;
  }
  return j;
}

json RunJson(const RunInfo& r) {
  return {{"name", r.name},       {"status", r.status}, {"created_ns", r.created_ns}, {"updated_ns", r.updated_ns},
          {"params", r.params},   {"tags", r.tags},     {"dataset", r.dataset},       {"loader_state", r.loader_state}};
}

std::string Shape(const std::vector<uint64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

// "RUN" or "RUN@STEP" -> (run, step or kLatestStep).
std::pair<std::string, int64_t> ParseRunStep(const std::string& text) {
  size_t at = text.find('@');
  if (at == std::string::npos) return {text, kLatestStep};
  std::string step = text.substr(at + 1);
  if (step.empty() || step.find_first_not_of("0123456789") != std::string::npos) {
    throw Failure{Status::InvalidArgument(fmt::format("'{}': expected RUN or RUN@STEP", text))};
  }
  return {text.substr(0, at), std::stoll(step)};
}

void AddRunCommands(CLI::App& app, Globals& g) {
  auto* run = app.add_subcommand("run", "Experiment runs: parameters, metrics, status, lineage");
  run->require_subcommand(1);

  auto* create = run->add_subcommand("create", "Create run NAME");
  static RunInfo info;
  static std::vector<std::string> params, tags;
  create->add_option("name", info.name, "Run name")->required();
  create->add_option("--param,-p", params, "Hyper-parameter KEY=VALUE (repeatable)");
  create->add_option("--tag,-t", tags, "Tag (repeatable)");
  create->add_option("--dataset", info.dataset, "The dataset version it trains on (NAME@REF), recorded as a commit id");
  create->add_option("--loader-state", info.loader_state, "The data loader's state it starts from (JSON)");
  create->callback([&] {
    for (const auto& p : params) info.params.insert(SplitPair(p, "--param"));
    info.tags.insert(tags.begin(), tags.end());
    auto repo = OpenRepo(g);
    auto runs = Check(Runs::Open(repo.get()));
    Check(runs->Create(info));
    auto r = Check(runs->Get(info.name));
    if (g.json) PrintJson(RunJson(r));
    else if (!g.quiet) std::cout << fmt::format("created run {}\n", r.name);
  });

  auto* list = run->add_subcommand("list", "List runs");
  list->callback([&] {
    auto repo = OpenRepo(g);
    auto runs = Check(Runs::Open(repo.get()));
    auto all = Check(runs->List());
    if (g.json) {
      json a = json::array();
      for (const auto& r : all) a.push_back(RunJson(r));
      PrintJson(a);
      return;
    }
    for (const auto& r : all) {
      std::cout << fmt::format("{:<24} {:<10} {}  {}\n", r.name, r.status, TimeString(r.created_ns / 1'000'000'000),
                               r.dataset);
    }
  });

  auto* show = run->add_subcommand("show", "Show a run: parameters, tags, lineage, last metrics, checkpoints");
  static std::string show_name;
  show->add_option("name", show_name, "Run name")->required();
  show->callback([&] {
    auto repo = OpenRepo(g);
    auto runs = Check(Runs::Open(repo.get()));
    auto r = Check(runs->Get(show_name));
    auto metrics = Check(runs->Metrics(show_name));
    auto ckpts = Check(runs->Checkpoints(show_name));
    std::map<std::string, MetricPoint> last;
    for (const auto& m : metrics) last[m.name] = m;
    if (g.json) {
      json j = RunJson(r);
      json ms = json::object();
      for (const auto& [n, m] : last) ms[n] = {{"step", m.step}, {"value", m.value}};
      j["last_metrics"] = ms;
      j["metric_points"] = metrics.size();
      json cs = json::array();
      for (const auto& c : ckpts) cs.push_back(CheckpointJson(c));
      j["checkpoints"] = cs;
      PrintJson(j);
      return;
    }
    std::cout << fmt::format("run {}  status {}\n", r.name, r.status);
    if (!r.dataset.empty()) std::cout << fmt::format("dataset {}\n", r.dataset);
    for (const auto& [k, v] : r.params) std::cout << fmt::format("param {} = {}\n", k, v);
    for (const auto& t : r.tags) std::cout << fmt::format("tag {}\n", t);
    for (const auto& [n, m] : last) std::cout << fmt::format("metric {} = {} (step {})\n", n, m.value, m.step);
    std::cout << fmt::format("{} checkpoints\n", ckpts.size());
  });

  auto* log = run->add_subcommand("log", "Record metric values of a run at a step");
  static std::string log_name;
  static int64_t log_step = 0;
  static std::vector<std::string> log_metrics;
  log->add_option("name", log_name, "Run name")->required();
  log->add_option("--step", log_step, "Training step")->required();
  log->add_option("--metric,-m", log_metrics, "NAME=VALUE (repeatable)")->required();
  log->callback([&] {
    std::vector<MetricPoint> points;
    for (const auto& m : log_metrics) {
      auto [k, v] = SplitPair(m, "--metric");
      char* end = nullptr;
      double d = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end) throw Failure{Status::InvalidArgument(fmt::format("--metric {}: not a number", m))};
      points.push_back({log_step, k, d});
    }
    auto repo = OpenRepo(g);
    auto runs = Check(Runs::Open(repo.get()));
    Check(runs->LogMetrics(log_name, points));
    if (g.json) PrintJson({{"run", log_name}, {"logged", points.size()}});
  });

  auto* status = run->add_subcommand("status", "Set a run's status (running, finished, failed, ...)");
  static std::string st_name, st_value;
  status->add_option("name", st_name, "Run name")->required();
  status->add_option("status", st_value, "New status")->required();
  status->callback([&] {
    auto repo = OpenRepo(g);
    auto runs = Check(Runs::Open(repo.get()));
    Check(runs->SetStatus(st_name, st_value));
    if (g.json) PrintJson({{"run", st_name}, {"status", st_value}});
  });

  auto* compare = run->add_subcommand("compare", "A table of runs with chosen parameters and metrics (last values)");
  static std::vector<std::string> cmp_runs, cmp_params, cmp_metrics;
  compare->add_option("runs", cmp_runs, "Runs (default: all)");
  compare->add_option("--param,-p", cmp_params, "Parameter columns (default: all)");
  compare->add_option("--metric,-m", cmp_metrics, "Metric columns (default: all)");
  compare->callback([&] {
    auto repo = OpenRepo(g);
    auto runs = Check(Runs::Open(repo.get()));
    std::vector<RunInfo> list;
    if (cmp_runs.empty()) list = Check(runs->List());
    for (const auto& n : cmp_runs) list.push_back(Check(runs->Get(n)));
    std::set<std::string> pset(cmp_params.begin(), cmp_params.end()), mset(cmp_metrics.begin(), cmp_metrics.end());
    std::vector<std::map<std::string, double>> last(list.size());
    for (size_t i = 0; i < list.size(); ++i) {
      for (const auto& m : Check(runs->Metrics(list[i].name))) last[i][m.name] = m.value;
      if (cmp_params.empty()) for (const auto& [k, v] : list[i].params) pset.insert(k);
      if (cmp_metrics.empty()) for (const auto& [k, v] : last[i]) mset.insert(k);
    }
    if (g.json) {
      json a = json::array();
      for (size_t i = 0; i < list.size(); ++i) {
        json p = json::object(), m = json::object();
        for (const auto& k : pset) p[k] = list[i].params.count(k) ? json(list[i].params.at(k)) : json(nullptr);
        for (const auto& k : mset) m[k] = last[i].count(k) ? json(last[i].at(k)) : json(nullptr);
        a.push_back({{"run", list[i].name}, {"status", list[i].status}, {"params", p}, {"metrics", m}});
      }
      PrintJson(a);
      return;
    }
    std::vector<std::vector<std::string>> rows;
    std::vector<std::string> head = {"run", "status"};
    for (const auto& k : pset) head.push_back(k);
    for (const auto& k : mset) head.push_back(k);
    rows.push_back(head);
    for (size_t i = 0; i < list.size(); ++i) {
      std::vector<std::string> row = {list[i].name, list[i].status};
      for (const auto& k : pset) row.push_back(list[i].params.count(k) ? list[i].params.at(k) : "-");
      for (const auto& k : mset) row.push_back(last[i].count(k) ? fmt::format("{:.6g}", last[i].at(k)) : "-");
      rows.push_back(row);
    }
    std::vector<size_t> width(head.size(), 0);
    for (const auto& r : rows) for (size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], r[c].size());
    for (const auto& r : rows) {
      std::string line;
      for (size_t c = 0; c < r.size(); ++c) line += fmt::format("{:<{}}  ", r[c], width[c]);
      while (!line.empty() && line.back() == ' ') line.pop_back();
      std::cout << line << "\n";
    }
  });

  auto* best = run->add_subcommand("best", "The best K checkpoints of a run by a metric");
  static std::string best_name, best_metric;
  static size_t best_k = 1;
  static bool best_max = false;
  best->add_option("name", best_name, "Run name")->required();
  best->add_option("--metric,-m", best_metric, "Metric")->required();
  best->add_option("-k", best_k, "How many")->capture_default_str();
  best->add_flag("--max", best_max, "Larger is better (default: smaller)");
  best->callback([&] {
    auto repo = OpenRepo(g);
    auto runs = Check(Runs::Open(repo.get()));
    auto list = Check(runs->Best(best_name, best_metric, best_k, best_max));
    if (g.json) {
      json a = json::array();
      for (const auto& c : list) a.push_back(CheckpointJson(c));
      PrintJson(a);
      return;
    }
    for (const auto& c : list) std::cout << fmt::format("{:>12}  {} = {:.6g}\n", c.step, best_metric, c.metrics.at(best_metric));
  });
}

void AddCkptCommands(CLI::App& app, Globals& g, int& exit_code) {
  auto* ckpt = app.add_subcommand("ckpt", "Checkpoints of runs: list, show, verify, export, import, rm, label, retain");
  ckpt->require_subcommand(1);

  auto* list = ckpt->add_subcommand("list", "List a run's checkpoints, newest first");
  static std::string list_run;
  list->add_option("run", list_run, "Run name")->required();
  list->callback([&] {
    auto repo = OpenRepo(g);
    auto runs = Check(Runs::Open(repo.get()));
    auto all = Check(runs->Checkpoints(list_run));
    if (g.json) {
      json a = json::array();
      for (const auto& c : all) a.push_back(CheckpointJson(c));
      PrintJson(a);
      return;
    }
    for (const auto& c : all) {
      std::string metrics;
      for (const auto& [k, v] : c.metrics) metrics += fmt::format(" {}={:.6g}", k, v);
      std::string labels;
      for (const auto& l : c.labels) labels += " [" + l + "]";
      std::cout << fmt::format("{:>12}  {}  {:>10}  world {}{}{}\n", c.step, TimeString(c.time_ns / 1'000'000'000),
                               Bytes(c.bytes), c.world_size, metrics, labels);
    }
  });

  auto* show = ckpt->add_subcommand("show", "Show a checkpoint's tensors and states (RUN or RUN@STEP)");
  static std::string show_ref;
  show->add_option("ref", show_ref, "RUN or RUN@STEP")->required();
  show->callback([&] {
    auto [run, step] = ParseRunStep(show_ref);
    auto repo = OpenRepo(g);
    auto r = Check(CheckpointReader::Open(repo.get(), run, step));
    const auto& c = r->info();
    if (g.json) {
      PrintJson(CheckpointJson(c));
      return;
    }
    std::cout << fmt::format("checkpoint {} of run {}  {}  world size {}  {}\n", c.step, c.run, Bytes(c.bytes),
                             c.world_size, c.commit.Short());
    for (const auto& t : c.tensors) {
      std::cout << fmt::format("  {:<40} {:<6} {:<20} {:>10}{}\n", t.name, DTypeName(t.dtype), Shape(t.shape), Bytes(t.bytes),
                               t.pieces > 1 ? fmt::format("  {} pieces", t.pieces) : "");
    }
    for (const auto& s : c.states) std::cout << fmt::format("  state {}\n", s);
  });

  auto* verify = ckpt->add_subcommand("verify", "Read and authenticate every byte of a checkpoint (RUN or RUN@STEP)");
  static std::string verify_ref;
  verify->add_option("ref", verify_ref, "RUN or RUN@STEP")->required();
  verify->callback([&] {
    auto [run, step] = ParseRunStep(verify_ref);
    auto repo = OpenRepo(g);
    auto r = Check(CheckpointReader::Open(repo.get(), run, step));
    Status s = r->Verify();
    if (g.json) {
      PrintJson({{"run", run}, {"step", r->info().step}, {"ok", s.ok()}, {"error", s.ok() ? "" : s.message()}});
    } else if (s.ok()) {
      if (!g.quiet) std::cout << fmt::format("checkpoint {} of run {}: ok ({})\n", r->info().step, run, Bytes(r->info().bytes));
    } else {
      std::cerr << "strata: " << s.message() << "\n";
    }
    if (!s.ok()) exit_code = kExitIntegrity;
  });

  auto* exp = ckpt->add_subcommand("export", "Write a checkpoint's tensors to a file (RUN or RUN@STEP)");
  static std::string exp_ref, exp_out, exp_format = "safetensors";
  static bool exp_latest_valid = false;
  exp->add_option("ref", exp_ref, "RUN or RUN@STEP")->required();
  exp->add_option("-o,--output", exp_out, "Output file")->required();
  exp->add_option("--format", exp_format, "safetensors")->check(CLI::IsMember({"safetensors"}));
  exp->add_flag("--latest-valid", exp_latest_valid, "Fall back to the newest checkpoint that verifies");
  exp->callback([&] {
    auto [run, step] = ParseRunStep(exp_ref);
    auto repo = OpenRepo(g);
    ReadOptions ro;
    ro.latest_valid = exp_latest_valid;
    auto r = Check(CheckpointReader::Open(repo.get(), run, step, ro));
    Check(ExportSafetensors(r.get(), exp_out));
    if (g.json) PrintJson({{"run", run}, {"step", r->info().step}, {"output", exp_out}, {"bytes", r->info().bytes}});
    else if (!g.quiet) std::cout << fmt::format("wrote checkpoint {} of run {} to {}\n", r->info().step, run, exp_out);
  });

  auto* imp = ckpt->add_subcommand("import", "Save the tensors of a safetensors file as a checkpoint of RUN");
  static std::string imp_run, imp_file, imp_format = "safetensors";
  static int64_t imp_step = 0;
  imp->add_option("run", imp_run, "Run name (created if missing)")->required();
  imp->add_option("file", imp_file, "The file")->required();
  imp->add_option("--step", imp_step, "The checkpoint's step")->required();
  imp->add_option("--format", imp_format, "safetensors")->check(CLI::IsMember({"safetensors"}));
  imp->callback([&] {
    auto repo = OpenRepo(g);
    auto ck = Check(Checkpointer::Open(repo.get(), imp_run));
    Check(ImportSafetensors(ck.get(), imp_file, imp_step));
    if (g.json) PrintJson({{"run", imp_run}, {"step", imp_step}});
    else if (!g.quiet) std::cout << fmt::format("saved checkpoint {} of run {}\n", imp_step, imp_run);
  });

  auto* rm = ckpt->add_subcommand("rm", "Delete a checkpoint (RUN@STEP); gc frees its data");
  static std::string rm_ref;
  rm->add_option("ref", rm_ref, "RUN@STEP")->required();
  rm->callback([&] {
    auto [run, step] = ParseRunStep(rm_ref);
    if (step == kLatestStep) throw Failure{Status::InvalidArgument("name the step to delete: RUN@STEP")};
    auto repo = OpenRepo(g);
    auto runs = Check(Runs::Open(repo.get()));
    Check(runs->DeleteCheckpoint(run, step));
    if (g.json) PrintJson({{"run", run}, {"step", step}, {"deleted", true}});
  });

  auto* label = ckpt->add_subcommand("label", "Label a checkpoint (RUN@STEP LABEL); retention keeps labelled ones");
  static std::string label_ref, label_name;
  label->add_option("ref", label_ref, "RUN@STEP")->required();
  label->add_option("label", label_name, "Label")->required();
  label->callback([&] {
    auto [run, step] = ParseRunStep(label_ref);
    auto repo = OpenRepo(g);
    auto runs = Check(Runs::Open(repo.get()));
    Check(runs->LabelCheckpoint(run, step, label_name));
    if (g.json) PrintJson({{"run", run}, {"step", step}, {"label", label_name}});
  });

  auto* retain = ckpt->add_subcommand("retain", "Keep the last N, best K by a metric and labelled checkpoints; delete the rest");
  static RetentionSpec spec;
  static std::string retain_run;
  retain->add_option("run", retain_run, "Run name")->required();
  retain->add_option("--keep-last", spec.keep_last, "Newest N");
  retain->add_option("--keep-best", spec.keep_best, "Best K by --metric");
  retain->add_option("--metric", spec.metric, "Metric for --keep-best");
  retain->add_flag("--max", spec.maximize, "Larger metric is better");
  retain->add_flag("--dry-run,-n", spec.dry_run, "Show what would be deleted");
  retain->callback([&] {
    auto repo = OpenRepo(g);
    auto runs = Check(Runs::Open(repo.get()));
    auto res = Check(runs->Retain(retain_run, spec));
    if (g.json) {
      json reasons = json::object();
      for (const auto& [s, why] : res.reasons) reasons[std::to_string(s)] = why;
      PrintJson({{"run", retain_run}, {"kept", res.kept}, {"removed", res.removed}, {"locked", res.locked},
                 {"reasons", reasons}, {"dry_run", spec.dry_run}});
      return;
    }
    for (int64_t s : res.kept) {
      std::string why;
      for (const auto& w : res.reasons[s]) why += (why.empty() ? "" : ", ") + w;
      std::cout << fmt::format("keep   {:>12}  {}\n", s, why);
    }
    if (!res.locked.empty()) {
      std::cout << fmt::format("skipped {} checkpoint(s) under a retention lock or legal hold\n", res.locked.size());
    }
    for (int64_t s : res.removed) std::cout << fmt::format("{} {:>12}\n", spec.dry_run ? "would remove" : "remove", s);
  });
}

}  // namespace

void AddCheckpointCommands(CLI::App& app, Globals& g, int& exit_code) {
  AddRunCommands(app, g);
  AddCkptCommands(app, g, exit_code);
}

}  // namespace strata::cli
