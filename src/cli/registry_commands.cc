// `strata model ...`, `strata retention ...`, `strata lineage` and `strata report governance`:
// the model registry, serving export, retention locks and lineage (registry.h, lake.h).
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/commands.h"
#include "strata/registry.h"

namespace strata::cli {
namespace {

using nlohmann::json;

json VersionJson(const ModelVersion& v) {
  return {{"model", v.model},
          {"version", v.version},
          {"commit", v.commit.ToHex()},
          {"time_ns", v.time_ns},
          {"author", v.author},
          {"run", v.run},
          {"step", v.step},
          {"checkpoint_commit", v.checkpoint_commit.ToHex()},
          {"data", v.data},
          {"pipeline_hash", v.pipeline_hash},
          {"params", v.params},
          {"metrics", v.metrics},
          {"signature", json::parse(SignatureJson(v.signature))},
          {"description", v.description},
          {"aliases", v.aliases}};
}

json LockJson(const RetentionLock& l, int64_t now) {
  return {{"dataset", l.dataset},     {"commit", l.commit.ToHex()},
          {"mode", LockModeName(l.mode)}, {"retain_until", l.retain_until_unix},
          {"legal_hold", l.legal_hold}, {"active", l.Active(now)},
          {"reason", l.reason},       {"actor", l.actor},
          {"updated", l.updated_unix}};
}

std::string Utc(int64_t t) {
  time_t tt = static_cast<time_t>(t);
  struct tm tm {};
  gmtime_r(&tt, &tm);
  return fmt::format("{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
}

// "2031-01-01", "2031-01-01T12:00:00" (UTC) or seconds since the epoch.
int64_t ParseUntil(const std::string& text) {
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos) return std::stoll(text);
  struct tm tm {};
  const char* end = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!end || *end) {
    tm = {};
    end = strptime(text.c_str(), "%Y-%m-%d", &tm);
  }
  if (!end || *end) {
    throw Failure{Status::InvalidArgument(fmt::format("--until {}: expected YYYY-MM-DD[THH:MM:SS] (UTC) or epoch seconds", text))};
  }
  return timegm(&tm);
}

// "name:dtype:d0,d1" (a dimension -1 or '?' means any size).
TensorSignature ParseTensorSig(const std::string& text) {
  TensorSignature t;
  size_t a = text.find(':');
  t.name = text.substr(0, a);
  if (a != std::string::npos) {
    size_t b = text.find(':', a + 1);
    t.dtype = text.substr(a + 1, b == std::string::npos ? std::string::npos : b - a - 1);
    if (!t.dtype.empty()) Check(ParseDType(t.dtype).status());
    if (b != std::string::npos) {
      std::string dims = text.substr(b + 1);
      size_t pos = 0;
      while (pos <= dims.size() && !dims.empty()) {
        size_t c = dims.find(',', pos);
        std::string d = dims.substr(pos, c == std::string::npos ? std::string::npos : c - pos);
        if (d == "?" || d == "-1") t.shape.push_back(-1);
        else if (!d.empty() && d.find_first_not_of("0123456789") == std::string::npos) t.shape.push_back(std::stoll(d));
        else throw Failure{Status::InvalidArgument(fmt::format("'{}': a shape is sizes or ? separated by commas", text))};
        if (c == std::string::npos) break;
        pos = c + 1;
      }
    }
  }
  if (t.name.empty()) throw Failure{Status::InvalidArgument(fmt::format("'{}': expected NAME:DTYPE:SHAPE", text))};
  return t;
}

struct RegistrySession {
  std::unique_ptr<Repository> repo;
  std::unique_ptr<ModelRegistry> reg;
  ModelRegistry* operator->() { return reg.get(); }
};
RegistrySession OpenRegistry(const Globals& g) {
  RegistrySession s;
  s.repo = OpenRepo(g);
  s.reg = Check(ModelRegistry::Open(s.repo.get()));
  return s;
}

// "NAME@VERSION-OR-ALIAS" -> (NAME, REF).
std::pair<std::string, std::string> SplitModelRef(const std::string& text) {
  size_t at = text.find('@');
  if (at == std::string::npos || at == 0 || at + 1 == text.size()) {
    throw Failure{Status::InvalidArgument(fmt::format("'{}': expected NAME@ALIAS", text))};
  }
  return {text.substr(0, at), text.substr(at + 1)};
}

void PrintVersion(const ModelVersion& v) {
  std::cout << fmt::format("model {} version {}{}\n", v.model, v.version,
                           v.aliases.empty() ? "" : fmt::format(" ({})", fmt::join(v.aliases, ", ")));
  std::cout << fmt::format("from run {} checkpoint {} ({})\n", v.run, v.step, v.checkpoint_commit.Short());
  if (!v.data.empty()) std::cout << fmt::format("data {}\n", v.data);
  if (!v.pipeline_hash.empty()) std::cout << fmt::format("pipeline {}\n", v.pipeline_hash);
  for (const auto& [k, x] : v.params) std::cout << fmt::format("param {} = {}\n", k, x);
  for (const auto& [k, x] : v.metrics) std::cout << fmt::format("metric {} = {}\n", k, x);
  for (const auto& t : v.signature.inputs) std::cout << fmt::format("input {} {} [{}]\n", t.name, t.dtype, fmt::join(t.shape, ","));
  for (const auto& t : v.signature.outputs) std::cout << fmt::format("output {} {} [{}]\n", t.name, t.dtype, fmt::join(t.shape, ","));
  if (!v.description.empty()) std::cout << v.description << "\n";
}

void AddModelCommands(CLI::App& app, Globals& g) {
  auto* model = app.add_subcommand("model", "Model registry: versions, aliases, export and pull for serving");
  model->require_subcommand(1);

  auto* reg = model->add_subcommand("register",
                                    "Register a checkpoint as the next version of model NAME\n"
                                    "  strata model register fmnist-cnn --from exp1@1000 --metric accuracy=0.91 \\\n"
                                    "      --input image:F32:?,1,28,28 --output logits:F32:?,10");
  static RegisterRequest rr;
  static std::vector<std::string> r_metrics, r_inputs, r_outputs;
  static std::string r_signature;
  reg->add_option("name", rr.model, "Model name")->required();
  reg->add_option("--from", rr.from, "RUN@STEP, run.RUN@ckpt/STEP, or RUN (its newest checkpoint)")->required();
  reg->add_option("--metric,-m", r_metrics, "NAME=VALUE (repeatable; over the checkpoint's own)");
  reg->add_option("--input", r_inputs, "Input tensor NAME:DTYPE:SHAPE, ? for any size (repeatable)");
  reg->add_option("--output", r_outputs, "Output tensor NAME:DTYPE:SHAPE (repeatable)");
  reg->add_option("--signature", r_signature, "Signature as JSON {\"inputs\":[..],\"outputs\":[..]}");
  reg->add_option("--description", rr.description, "Free text");
  reg->callback([&] {
    for (const auto& m : r_metrics) {
      auto [k, v] = SplitPair(m, "--metric");
      char* end = nullptr;
      double d = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end) throw Failure{Status::InvalidArgument(fmt::format("--metric {}: not a number", m))};
      rr.metrics[k] = d;
    }
    if (!r_signature.empty()) rr.signature = Check(ParseSignature(r_signature));
    for (const auto& t : r_inputs) rr.signature.inputs.push_back(ParseTensorSig(t));
    for (const auto& t : r_outputs) rr.signature.outputs.push_back(ParseTensorSig(t));
    auto s = OpenRegistry(g);
    auto v = Check(s->Register(rr));
    if (g.json) PrintJson(VersionJson(v));
    else if (!g.quiet) std::cout << fmt::format("registered {} version {} ({})\n", v.model, v.version, v.commit.Short());
  });

  auto* list = model->add_subcommand("list", "List models, or the versions of model NAME");
  static std::string l_name;
  list->add_option("name", l_name, "Model name");
  list->callback([&] {
    auto s = OpenRegistry(g);
    if (l_name.empty()) {
      json a = json::array();
      for (const auto& m : Check(s->ListModels())) {
        auto versions = Check(s->Versions(m));
        json aliases = json::object();
        for (const auto& v : versions) {
          for (const auto& al : v.aliases) aliases[al] = v.version;
        }
        a.push_back({{"model", m}, {"versions", versions.size()}, {"aliases", aliases}});
        if (!g.json) std::cout << fmt::format("{:<24} {} versions  {}\n", m, versions.size(), aliases.dump());
      }
      if (g.json) PrintJson(a);
      return;
    }
    auto versions = Check(s->Versions(l_name));
    json a = json::array();
    for (const auto& v : versions) {
      a.push_back(VersionJson(v));
      if (!g.json) {
        std::cout << fmt::format("v{:<4} {}  run {}@{}  {}{}\n", v.version, v.commit.Short(), v.run, v.step,
                                 json(v.metrics).dump(), v.aliases.empty() ? "" : fmt::format("  [{}]", fmt::join(v.aliases, ",")));
      }
    }
    if (g.json) PrintJson(a);
  });

  auto* show = model->add_subcommand("show", "Show a model version: NAME, NAME@VERSION or NAME@ALIAS");
  static std::string s_spec;
  show->add_option("spec", s_spec, "NAME[@VERSION|@ALIAS]")->required();
  show->callback([&] {
    auto s = OpenRegistry(g);
    auto v = Check(s->Get(s_spec));
    if (g.json) PrintJson(VersionJson(v));
    else PrintVersion(v);
  });

  auto* diff = model->add_subcommand("diff", "Compare two model versions: params, metrics, data commits");
  static std::string d_a, d_b;
  diff->add_option("a", d_a, "NAME@VERSION|ALIAS")->required();
  diff->add_option("b", d_b, "NAME@VERSION|ALIAS")->required();
  diff->callback([&] {
    auto s = OpenRegistry(g);
    auto a = Check(s->Get(d_a));
    auto b = Check(s->Get(d_b));
    json params = json::object(), metrics = json::object();
    std::set<std::string> keys;
    for (const auto& [k, v] : a.params) keys.insert(k);
    for (const auto& [k, v] : b.params) keys.insert(k);
    for (const auto& k : keys) {
      auto x = a.params.find(k), y = b.params.find(k);
      json xa = x == a.params.end() ? json() : json(x->second), yb = y == b.params.end() ? json() : json(y->second);
      if (xa != yb) params[k] = {xa, yb};
    }
    keys.clear();
    for (const auto& [k, v] : a.metrics) keys.insert(k);
    for (const auto& [k, v] : b.metrics) keys.insert(k);
    for (const auto& k : keys) {
      auto x = a.metrics.find(k), y = b.metrics.find(k);
      json xa = x == a.metrics.end() ? json() : json(x->second), yb = y == b.metrics.end() ? json() : json(y->second);
      if (xa != yb) metrics[k] = {xa, yb};
    }
    json out = {{"a", {{"model", a.model}, {"version", a.version}}},
                {"b", {{"model", b.model}, {"version", b.version}}},
                {"params", params},
                {"metrics", metrics},
                {"data", {a.data, b.data}},
                {"data_changed", a.data != b.data},
                {"pipeline_changed", a.pipeline_hash != b.pipeline_hash},
                {"checkpoint", {fmt::format("{}@{}", a.run, a.step), fmt::format("{}@{}", b.run, b.step)}}};
    if (g.json) {
      PrintJson(out);
      return;
    }
    std::cout << fmt::format("{} v{} -> {} v{}\n", a.model, a.version, b.model, b.version);
    for (auto it = params.begin(); it != params.end(); ++it) std::cout << fmt::format("param  {}: {} -> {}\n", it.key(), it.value()[0].dump(), it.value()[1].dump());
    for (auto it = metrics.begin(); it != metrics.end(); ++it) std::cout << fmt::format("metric {}: {} -> {}\n", it.key(), it.value()[0].dump(), it.value()[1].dump());
    std::cout << (a.data == b.data ? fmt::format("data   same ({})\n", a.data) : fmt::format("data   {} -> {}\n", a.data, b.data));
  });

  auto* alias = model->add_subcommand("alias", "Point alias NAME@ALIAS at VERSION (atomic, audited)\n"
                                               "  strata model alias fmnist-cnn@production 3");
  static std::string a_ref;
  static int64_t a_version = 0;
  static bool a_delete = false;
  alias->add_option("alias", a_ref, "NAME@ALIAS")->required();
  alias->add_option("version", a_version, "Version number");
  alias->add_flag("--delete", a_delete, "Remove the alias");
  alias->callback([&] {
    auto [name, al] = SplitModelRef(a_ref);
    auto s = OpenRegistry(g);
    if (a_delete) {
      Check(s->DeleteAlias(name, al));
      if (g.json) PrintJson({{"model", name}, {"alias", al}, {"deleted", true}});
      else if (!g.quiet) std::cout << fmt::format("removed alias {}@{}\n", name, al);
      return;
    }
    if (a_version <= 0) throw Failure{Status::InvalidArgument("give the VERSION the alias points at")};
    Check(s->SetAlias(name, al, a_version));
    if (g.json) PrintJson({{"model", name}, {"alias", al}, {"version", a_version}});
    else if (!g.quiet) std::cout << fmt::format("{}@{} -> version {}\n", name, al, a_version);
  });

  auto* exp = model->add_subcommand("export", "Write a model version's weights for serving\n"
                                              "  strata model export fmnist-cnn@production --format strata /srv/model.strata");
  static std::string e_spec, e_format = "strata", e_dest;
  static uint32_t e_align = 4096;
  exp->add_option("spec", e_spec, "NAME[@VERSION|@ALIAS]")->required();
  exp->add_option("--format", e_format, "strata (memory-mappable, hashed) or safetensors")->check(CLI::IsMember({"strata", "safetensors"}));
  exp->add_option("--align", e_align, "Tensor alignment of the strata format: 4096 or 64")->check(CLI::IsMember({64, 4096}));
  exp->add_option("dest", e_dest, "Destination file")->required();
  exp->callback([&] {
    auto s = OpenRegistry(g);
    auto v = Check(s->Get(e_spec));
    auto r = Check(s->OpenWeights(v));
    if (e_format == "safetensors") {
      Check(ExportSafetensors(r.get(), e_dest));
    } else {
      ServingExportOptions o;
      o.alignment = e_align;
      o.metadata = {{"model", v.model}, {"version", std::to_string(v.version)}};
      Check(ExportServing(r.get(), e_dest, o));
    }
    if (g.json) PrintJson({{"model", v.model}, {"version", v.version}, {"format", e_format}, {"path", e_dest}});
    else if (!g.quiet) std::cout << fmt::format("exported {} version {} to {} ({})\n", v.model, v.version, e_dest, e_format);
  });

  auto* pull = model->add_subcommand("pull", "Materialise a verified copy of a model version in DIR (only changed tensors are read)");
  static std::string p_spec, p_dir;
  pull->add_option("spec", p_spec, "NAME[@VERSION|@ALIAS]")->required();
  pull->add_option("dir", p_dir, "Directory")->required();
  pull->callback([&] {
    auto s = OpenRegistry(g);
    auto rep = Check(PullModel(s.reg.get(), p_spec, p_dir));
    if (g.json) {
      PrintJson({{"model", rep.model}, {"version", rep.version}, {"tensors", rep.tensors}, {"tensors_reused", rep.tensors_reused},
                 {"bytes", rep.bytes}, {"bytes_read", rep.bytes_read}});
    } else if (!g.quiet) {
      std::cout << fmt::format("pulled {} version {}: {} tensors ({} reused), {} bytes ({} read from the repository)\n",
                               rep.model, rep.version, rep.tensors, rep.tensors_reused, rep.bytes, rep.bytes_read);
    }
  });
}

void AddRetentionCommands(CLI::App& app, Globals& g) {
  auto* ret = app.add_subcommand("retention", "Retention locks and legal holds on dataset and model versions");
  ret->require_subcommand(1);

  auto* lock = ret->add_subcommand("lock", "Lock the commit NAME@REF names until a date\n"
                                           "  strata retention lock fm@v1 --mode compliance --for 365d\n"
                                           "  strata retention lock model.cnn@v/000000000003 --mode governance --until 2031-01-01");
  static std::string l_spec, l_mode = "governance", l_until, l_for, l_reason;
  static bool l_bypass = false;
  lock->add_option("spec", l_spec, "NAME@REF (a model version is model.NAME@v/<12 digits>)")->required();
  lock->add_option("--mode", l_mode, "governance or compliance");
  lock->add_option("--until", l_until, "YYYY-MM-DD[THH:MM:SS] UTC, or epoch seconds");
  lock->add_option("--for", l_for, "Duration from now: 90s, 15m, 2h, 30d");
  lock->add_flag("--bypass-governance", l_bypass, "Shorten a governance lock (an admin act, audited with --reason)");
  lock->add_option("--reason", l_reason, "Why (audited)");
  lock->callback([&] {
    LockMode mode = Check(ParseLockMode(l_mode));
    if (mode == LockMode::kNone) throw Failure{Status::InvalidArgument("use `strata retention unlock` to lift a lock")};
    if (l_until.empty() == l_for.empty()) throw Failure{Status::InvalidArgument("give either --until or --for")};
    int64_t until = l_until.empty() ? std::time(nullptr) + Check(ParseDuration(l_for)) : ParseUntil(l_until);
    auto s = OpenLake(g);
    Check(s->SetRetentionLock(l_spec, mode, until, {l_bypass, l_reason}));
    if (g.json) PrintJson({{"spec", l_spec}, {"mode", l_mode}, {"retain_until", until}});
    else if (!g.quiet) std::cout << fmt::format("{} locked ({}) until {}\n", l_spec, l_mode, Utc(until));
  });

  auto* unlock = ret->add_subcommand("unlock", "Lift the lock of NAME@REF (governance: with --bypass-governance and --reason)");
  static std::string u_spec, u_reason;
  static bool u_bypass = false;
  unlock->add_option("spec", u_spec, "NAME@REF")->required();
  unlock->add_flag("--bypass-governance", u_bypass, "Lift an active governance lock (audited)");
  unlock->add_option("--reason", u_reason, "Why (audited)");
  unlock->callback([&] {
    auto s = OpenLake(g);
    Check(s->SetRetentionLock(u_spec, LockMode::kNone, 0, {u_bypass, u_reason}));
    if (g.json) PrintJson({{"spec", u_spec}, {"unlocked", true}});
    else if (!g.quiet) std::cout << fmt::format("{} unlocked\n", u_spec);
  });

  auto* hold = ret->add_subcommand("hold", "Put NAME@REF under legal hold (on) or release it (off); audited");
  static std::string h_spec, h_state, h_reason;
  hold->add_option("spec", h_spec, "NAME@REF")->required();
  hold->add_option("state", h_state, "on or off")->required()->check(CLI::IsMember({"on", "off"}));
  hold->add_option("--reason", h_reason, "Why (audited)");
  hold->callback([&] {
    auto s = OpenLake(g);
    Check(s->SetLegalHold(h_spec, h_state == "on", h_reason));
    if (g.json) PrintJson({{"spec", h_spec}, {"legal_hold", h_state == "on"}});
    else if (!g.quiet) std::cout << fmt::format("legal hold {} for {}\n", h_state, h_spec);
  });

  auto* list = ret->add_subcommand("list", "List retention locks (of dataset NAME, or all)");
  static std::string ls_name;
  list->add_option("name", ls_name, "Dataset");
  list->callback([&] {
    auto s = OpenLake(g);
    auto locks = Check(s->ListRetentionLocks(ls_name));
    int64_t now = std::time(nullptr);
    json a = json::array();
    for (const auto& l : locks) {
      a.push_back(LockJson(l, now));
      if (!g.json) {
        std::cout << fmt::format("{}@{}  {}{}{}\n", l.dataset, l.commit.Short(),
                                 l.mode == LockMode::kNone ? "" : fmt::format("{} until {}", LockModeName(l.mode), Utc(l.retain_until_unix)),
                                 l.legal_hold ? (l.mode == LockMode::kNone ? "legal hold" : ", legal hold") : "",
                                 l.Active(now) ? "" : "  (expired)");
      }
    }
    if (g.json) PrintJson(a);
  });
}

json NodeJson(const LineageNode& n) {
  json inputs = json::array();
  for (const auto& c : n.inputs) inputs.push_back(NodeJson(c));
  return {{"kind", n.kind}, {"label", n.label}, {"attrs", n.attrs}, {"inputs", inputs}};
}

void PrintTree(const LineageNode& n, const std::string& indent, bool last, bool root) {
  std::string head = root ? "" : indent + (last ? "└─ " : "├─ ");
  std::cout << fmt::format("{}{} {}\n", head, n.kind, n.label);
  std::string child = root ? "" : indent + (last ? "   " : "│  ");
  for (const auto& [k, v] : n.attrs) {
    if (k == "commit" || k == "tree" || k == "transform.tools" || k == "transform.ops") continue;
    std::cout << fmt::format("{}{}  {} = {}\n", child, n.inputs.empty() ? " " : "│", k, v.size() > 100 ? v.substr(0, 97) + "..." : v);
  }
  for (size_t i = 0; i < n.inputs.size(); ++i) PrintTree(n.inputs[i], child, i + 1 == n.inputs.size(), false);
}

// Runs Graphviz's `dot -Tsvg -o PATH` with `graph` on its standard input; the SVG is whole or
// absent (dot writes a temporary that is renamed).
Status DrawSvg(const std::string& graph, const std::string& path) {
  const std::string tmp = path + ".tmp";
  int in[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return Status::IOError(fmt::format("pipe: {}", std::strerror(errno)));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
  std::vector<std::string> args = {"dot", "-Tsvg", "-o", tmp};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  int err = posix_spawnp(&pid, "dot", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(in[0]);
  if (err != 0) {
    ::close(in[1]);
    if (err == ENOENT) return Status::NotFound("--svg needs Graphviz's dot (apt-get install graphviz); --dot prints the graph");
    return Status::IOError(fmt::format("running dot: {}", std::strerror(err)));
  }
  bool written = true;
  auto old_pipe = std::signal(SIGPIPE, SIG_IGN);  // a dot that exits early is an error, not a kill
  for (size_t off = 0; off < graph.size();) {
    ssize_t n = ::write(in[1], graph.data() + off, graph.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      written = false;
      break;
    }
    off += static_cast<size_t>(n);
  }
  ::close(in[1]);
  std::signal(SIGPIPE, old_pipe);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!written || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::remove(tmp.c_str());
    return Status::IOError(fmt::format("dot could not draw {}", path));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return Status::IOError(fmt::format("rename {}: {}", path, std::strerror(errno)));
  }
  return Status::OK();
}

void AddLineageCommands(CLI::App& app, Globals& g) {
  auto* lin = app.add_subcommand("lineage", "The chain from a model version back to its raw data, or (--reverse) the\n"
                                            "models trained on a dataset version\n"
                                            "  strata lineage fmnist-cnn@production --svg lineage.svg   # with Graphviz installed\n"
                                            "  strata lineage --reverse fm@raw");
  static std::string spec;
  static std::string svg;
  static bool reverse = false, dot = false;
  lin->add_option("spec", spec, "MODEL@VERSION|ALIAS, or with --reverse a dataset NAME@REF")->required();
  lin->add_flag("--reverse", reverse, "Which model versions were trained on NAME@REF");
  lin->add_flag("--dot", dot, "Graphviz DOT output");
  lin->add_option("--svg", svg, "Also draw the graph into FILE with Graphviz's dot (apt-get install graphviz)");
  lin->callback([&] {
    auto s = OpenRegistry(g);
    if (reverse) {
      auto models = Check(ModelsTrainedOn(s.reg.get(), spec));
      json a = json::array();
      for (const auto& v : models) {
        a.push_back({{"model", v.model}, {"version", v.version}, {"aliases", v.aliases}, {"run", v.run}});
        if (!g.json) std::cout << fmt::format("{} version {}{}  (run {})\n", v.model, v.version,
                                              v.aliases.empty() ? "" : fmt::format(" [{}]", fmt::join(v.aliases, ",")), v.run);
      }
      if (g.json) PrintJson(a);
      else if (models.empty()) std::cout << "no registered model was trained on it\n";
      return;
    }
    auto root = Check(ModelLineage(s.reg.get(), spec));
    if (!svg.empty()) Check(DrawSvg(LineageDot(root), svg));
    if (dot) std::cout << LineageDot(root);
    else if (g.json) PrintJson(NodeJson(root));
    else PrintTree(root, "", true, true);
  });
}

void AddReportCommands(CLI::App& app, Globals& g, int& exit_code) {
  auto* rep = app.add_subcommand("report", "Reports");
  rep->require_subcommand(1);
  auto* gov = rep->add_subcommand("governance", "Datasets and models with their retention locks, encryption and audit-log state");
  static std::string name;
  gov->add_option("name", name, "Only this dataset or model");
  gov->callback([&] {
    auto s = OpenLake(g);
    int64_t now = std::time(nullptr);
    auto check = Check(s->VerifyAudit());
    auto locks = Check(s->ListRetentionLocks(""));
    auto archived = Check(s->ListArchived(""));
    json datasets = json::array();
    for (const auto& d : Check(s->ListDatasets())) {
      if (!name.empty() && d != name && d != ModelDataset(name)) continue;
      json dl = json::array();
      for (const auto& l : locks) {
        if (l.dataset == d) dl.push_back(LockJson(l, now));
      }
      auto policy = Check(s->GetRetentionPolicy(d));
      // The versions recorded outside the hot tier; every other version is hot.
      json av = json::array();
      for (const auto& v : archived) {
        if (v.dataset != d) continue;
        av.push_back({{"commit", v.commit.ToHex()}, {"tier", StorageTierName(v.tier)}, {"refs", v.refs},
                      {"since", v.changed_unix}, {"objects", v.objects}, {"stored_before", v.stored_before},
                      {"stored_after", v.stored_after}});
      }
      datasets.push_back({{"name", d},
                          {"kind", d.starts_with("model.") ? "model" : d.starts_with("run.") ? "run" : "dataset"},
                          {"locks", dl},
                          {"retention_policy", policy.has_value()},
                          {"archive", av.empty() ? std::string("hot")
                                                 : fmt::format("{} version{} archived", av.size(), av.size() == 1 ? "" : "s")},
                          {"archived_versions", av}});
    }
    json out = {{"encryption", "AES-256-GCM, chunk ids HMAC-SHA-256 under the repository key"},
                {"audit", {{"ok", check.ok}, {"entries", check.entries}, {"problem", check.problem}, {"message", check.message}}},
                {"datasets", datasets}};
    if (!check.ok) exit_code = kExitIntegrity;
    if (g.json) {
      PrintJson(out);
      return;
    }
    std::cout << fmt::format("encryption: {}\n", out["encryption"].get<std::string>());
    std::cout << fmt::format("audit log: {} ({} entries){}\n", check.ok ? "verified" : "BROKEN", check.entries,
                             check.ok ? "" : ": " + check.message);
    for (const auto& d : datasets) {
      std::cout << fmt::format("{:<8} {:<32} archive {}  policy {}  {} locks\n", d["kind"].get<std::string>(),
                               d["name"].get<std::string>(), d["archive"].get<std::string>(),
                               d["retention_policy"].get<bool>() ? "yes" : "no", d["locks"].size());
      for (const auto& l : d["locks"]) {
        std::cout << fmt::format("         {} {}{}{}\n", l["commit"].get<std::string>().substr(0, 12), l["mode"].get<std::string>(),
                                 l["mode"] == "none" ? "" : " until " + Utc(l["retain_until"].get<int64_t>()),
                                 l["legal_hold"].get<bool>() ? ", legal hold" : "");
      }
      for (const auto& v : d["archived_versions"]) {
        std::vector<std::string> refs = v["refs"];
        std::cout << fmt::format("         {} {}{} since {}, stored {} -> {}\n", v["commit"].get<std::string>().substr(0, 12),
                                 v["tier"].get<std::string>(), refs.empty() ? "" : fmt::format(" [{}]", fmt::join(refs, ", ")),
                                 Utc(v["since"].get<int64_t>()), Bytes(v["stored_before"].get<uint64_t>()),
                                 Bytes(v["stored_after"].get<uint64_t>()));
      }
    }
  });
}

}  // namespace

void AddRegistryCommands(CLI::App& app, Globals& g, int& exit_code) {
  AddModelCommands(app, g);
  AddRetentionCommands(app, g);
  AddLineageCommands(app, g);
  AddReportCommands(app, g, exit_code);
}

}  // namespace strata::cli
