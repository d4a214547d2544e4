// Versioned datasets on the command line: `strata dataset|commit|log|show|checkout|branch|tag|
// diff|reset|revert|audit|catalog`, and dataset refs for `ls` and `cat`.
#include <iostream>

#include <fmt/format.h>

#include "base/logging.h"
#include "cli/commands.h"
#include "strata/lake.h"

namespace strata::cli {
namespace {

using nlohmann::json;

// A lake borrows its repository: both live as long as the command.
struct LakeSession {
  std::unique_ptr<Repository> repo;
  std::unique_ptr<Lake> lake;
  Lake* operator->() { return lake.get(); }
};

LakeSession OpenLake(const Globals& g, bool allow_inconsistent = false) {
  LakeSession s;
  s.repo = OpenRepo(g);
  LakeOptions o;
  o.allow_inconsistent_catalog = allow_inconsistent;
  s.lake = Check(Lake::Open(s.repo.get(), o));
  return s;
}

std::string FirstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

json CommitJson(const CommitInfo& c) {
  json parents = json::array();
  for (const auto& p : c.parents) parents.push_back(p.ToHex());
  return {{"id", c.id.ToHex()}, {"tree", c.tree.ToHex()}, {"parents", parents}, {"dataset", c.dataset},
          {"time_ns", c.time_ns}, {"author", c.author}, {"message", c.message}, {"meta", c.meta}};
}

json RefJson(const RefInfo& r) {
  return {{"dataset", r.dataset}, {"name", r.name}, {"type", r.type == RefType::kTag ? "tag" : "branch"},
          {"target", r.target.ToHex()}, {"protected", r.is_protected}, {"updated_ms", r.updated_unix_ms}};
}

json CommitResultJson(const CommitResult& r) {
  return {{"commit", r.commit.ToHex()},          {"parent", r.parent.ToHex()},
          {"tree", r.tree.ToHex()},              {"unchanged", r.unchanged},
          {"files", r.put.files},                {"bytes_read", r.put.bytes},
          {"unchanged_files", r.put.unchanged_files}, {"new_chunks", r.put.new_chunks},
          {"new_bytes", r.put.new_bytes},        {"stored_bytes", r.put.stored_bytes},
          {"trees_written", r.trees_written},    {"attempts", r.attempts}};
}

void ReportCommit(const Globals& g, const std::string& target, const CommitResult& r) {
  if (g.json) return PrintJson(CommitResultJson(r));
  if (!g.quiet) {
    if (r.unchanged) {
      std::cerr << fmt::format("{}: nothing changed; no commit made ({} files recognised unchanged)\n", target,
                               r.put.unchanged_files);
    } else {
      std::cerr << fmt::format("{}: {} -> {}; {} files read ({}), {} unchanged, {} added to the repository{}\n",
                               target, r.parent.Short(), r.commit.Short(), r.put.files, Bytes(r.put.bytes),
                               r.put.unchanged_files, Bytes(r.put.stored_bytes),
                               r.attempts > 1 ? fmt::format(" (rebased, attempt {})", r.attempts) : "");
    }
  }
  std::cout << r.commit.ToHex() << "\n";
}

std::pair<std::string, std::string> SplitPair(const std::string& text, const char* what) {
  size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw Failure{Status::InvalidArgument(fmt::format("{} '{}' must be written {}", what, text,
                                                      std::string(what) == "--meta" ? "KEY=VALUE" : "A=B"))};
  }
  return {text.substr(0, eq), text.substr(eq + 1)};
}

void AddRefCommands(CLI::App& app, Globals& g, RefType type) {
  const bool tag = type == RefType::kTag;
  const char* noun = tag ? "tag" : "branch";
  auto* cmd = app.add_subcommand(
      noun, tag ? "Tags: immutable names for commits (protected tags cannot be deleted)"
                : "Branches: movable names for commits; creating one costs O(1)");
  cmd->require_subcommand(1);

  auto* create = cmd->add_subcommand("create", tag ? "Create tag NAME@TAG at FROM" : "Create branch NAME@BRANCH at FROM");
  auto name = std::make_shared<std::string>();
  auto from = std::make_shared<std::string>();
  auto off = std::make_shared<bool>(false);
  create->add_option("name", *name, tag ? "NAME@TAG to create" : "NAME@BRANCH to create")->required();
  create->add_option("from", *from, "NAME@REF it starts at (default NAME@main)");
  create->callback([&g, name, from, type, noun] {
    auto s = OpenLake(g);
    std::string src = *from;
    if (src.empty()) src = Check(ParseRefSpec(*name)).dataset + "@main";
    Check(s->CreateRef(*name, src, type));
    auto r = Check(s->Resolve(*name));
    if (g.json) PrintJson(RefJson(*r.ref));
    else if (!g.quiet) std::cout << fmt::format("created {} {} at {}\n", noun, *name, r.commit.id.Short());
  });

  auto* list = cmd->add_subcommand("list", tag ? "List the tags of dataset NAME" : "List the branches of dataset NAME");
  auto dataset = std::make_shared<std::string>();
  list->add_option("dataset", *dataset, "Dataset name")->required();
  list->callback([&g, dataset, type] {
    auto s = OpenLake(g);
    json arr = json::array();
    for (const auto& r : Check(s->ListRefs(*dataset))) {
      if (r.type != type) continue;
      if (g.json) arr.push_back(RefJson(r));
      else std::cout << fmt::format("{:<24} {}{}\n", r.name, r.target.Short(), r.is_protected ? "  (protected)" : "");
    }
    if (g.json) PrintJson(arr);
  });

  auto* del = cmd->add_subcommand("delete", tag ? "Delete tag NAME@TAG (refused while protected)"
                                                : "Delete branch NAME@BRANCH (its commits stay in the repository)");
  del->add_option("name", *name, "NAME@REF")->required();
  del->callback([&g, name, noun] {
    auto s = OpenLake(g);
    Check(s->DeleteRef(*name));
    if (g.json) PrintJson({{"deleted", *name}});
    else if (!g.quiet) std::cout << fmt::format("deleted {} {}\n", noun, *name);
  });

  auto* protect = cmd->add_subcommand("protect", "Protect NAME@REF from deletion (--off to lift it)");
  protect->add_option("name", *name, "NAME@REF")->required();
  protect->add_flag("--off", *off, "Remove the protection");
  protect->callback([&g, name, off] {
    auto s = OpenLake(g);
    Check(s->ProtectRef(*name, !*off));
    if (g.json) PrintJson({{"ref", *name}, {"protected", !*off}});
    else if (!g.quiet) std::cout << fmt::format("{} is {}protected\n", *name, *off ? "no longer " : "");
  });
}

}  // namespace

bool IsDatasetRef(const std::string& text) { return text.find('@') != std::string::npos; }

void LakeLs(const Globals& g, const std::string& spec, bool recursive, bool long_format) {
  auto s = OpenLake(g);
  PrintEntries(g, Check(s->List(spec, recursive)), long_format);
}

void LakeCat(const Globals& g, const std::string& spec) {
  auto s = OpenLake(g);
  WriteToStdout(Check(s->OpenFile(spec)).get());
}

void RecordAuditEvent(Repository& repo, const std::string& action, const std::string& target, const json& details) {
  auto lake = Lake::Open(&repo);
  Status st = lake.ok() ? (*lake)->RecordEvent(action, target, details.dump()) : lake.status();
  if (!st.ok()) LogWarning(fmt::format("the audit log did not record {} of {}: {}", action, target, st.message()));
}

// Option values live in function-level statics: CLI11 writes them during parsing, after this
// function returned, and there is one command line per process (as main.cc's locals are).
void AddVersionCommands(CLI::App& app, Globals& g, int& exit_code) {
  // dataset
  auto* dataset = app.add_subcommand("dataset", "Datasets: named, versioned collections (NAME@REF[:PATH])");
  dataset->require_subcommand(1);
  auto* ds_create = dataset->add_subcommand("create", "Create dataset NAME with an empty branch `main`");
  static std::string ds_name;
  ds_create->add_option("name", ds_name, "Letters, digits, '.', '_' and '-'")->required();
  ds_create->callback([&] {
    auto s = OpenLake(g);
    Check(s->CreateDataset(ds_name));
    auto r = Check(s->Resolve(ds_name + "@main"));
    if (g.json) PrintJson({{"dataset", ds_name}, {"branch", "main"}, {"commit", r.commit.id.ToHex()}});
    else if (!g.quiet) std::cout << fmt::format("created dataset {} (branch main at {})\n", ds_name, r.commit.id.Short());
  });
  auto* ds_list = dataset->add_subcommand("list", "List datasets");
  ds_list->callback([&] {
    auto s = OpenLake(g);
    auto names = Check(s->ListDatasets());
    if (g.json) {
      json arr = json::array();
      for (const auto& n : names) {
        json refs = json::array();
        for (const auto& r : Check(s->ListRefs(n))) refs.push_back(RefJson(r));
        arr.push_back({{"name", n}, {"refs", refs}});
      }
      return PrintJson(arr);
    }
    for (const auto& n : names) std::cout << n << "\n";
  });
  auto* ds_rm = dataset->add_subcommand("rm", "Delete dataset NAME: its refs and index (refused while a ref is protected)");
  ds_rm->add_option("name", ds_name, "Dataset name")->required();
  ds_rm->callback([&] {
    auto s = OpenLake(g);
    Check(s->DeleteDataset(ds_name));
    if (g.json) PrintJson({{"deleted", ds_name}});
    else if (!g.quiet) std::cout << fmt::format("deleted dataset {}\n", ds_name);
  });

  // commit
  auto* commit = app.add_subcommand(
      "commit",
      "Record directory SRC as the new state of NAME@BRANCH (unchanged files are recognised by size\n"
      "and mtime and not read), or apply a change list (--add/--remove/--move) without a scan");
  static std::string c_target, c_src, c_msg, c_author;
  static std::vector<std::string> c_meta, c_add, c_remove, c_move;
  static bool c_retry = false;
  commit->add_option("target", c_target, "NAME@BRANCH to move")->required();
  commit->add_option("src", c_src, "Directory whose content becomes the branch's new tree");
  commit->add_option("-m,--message", c_msg, "Commit message")->required();
  commit->add_option("--meta", c_meta, "KEY=VALUE metadata (repeatable)");
  commit->add_option("--author", c_author, "Author (default user@host)");
  commit->add_option("--add", c_add, "PATH=SRC: store SRC (file or directory) at PATH (repeatable)");
  commit->add_option("--remove", c_remove, "PATH to remove (repeatable)");
  commit->add_option("--move", c_move, "FROM=TO: move an entry, reading no content (repeatable)");
  commit->add_flag("--retry", c_retry, "If the branch moved meanwhile, rebase when the changes touch other paths");
  commit->callback([&] {
    bool changes = !c_add.empty() || !c_remove.empty() || !c_move.empty();
    if (changes == !c_src.empty()) {
      throw Failure{Status::InvalidArgument("give either a directory SRC or a change list (--add/--remove/--move)")};
    }
    CommitOptions o;
    o.message = c_msg;
    o.author = c_author;
    o.retry = c_retry;
    for (const auto& m : c_meta) o.meta.insert(SplitPair(m, "--meta"));
    auto s = OpenLake(g);
    CommitResult r;
    if (changes) {
      std::vector<Change> list;
      for (const auto& m : c_move) {
        auto [from, to] = SplitPair(m, "--move");
        list.push_back(Change{Change::Kind::kMove, to, "", from});
      }
      for (const auto& p : c_remove) list.push_back(Change{Change::Kind::kRemove, p, "", ""});
      for (const auto& a : c_add) {
        auto [path, src] = SplitPair(a, "--add");
        list.push_back(Change{Change::Kind::kAdd, path, src, ""});
      }
      r = Check(s->CommitChanges(c_target, list, o));
    } else {
      r = Check(s->CommitDirectory(c_target, c_src, o));
    }
    ReportCommit(g, c_target, r);
  });

  // log
  auto* log = app.add_subcommand("log", "Show the history of NAME@REF, newest first");
  static std::string l_spec;
  static size_t l_limit = 100;
  log->add_option("ref", l_spec, "NAME@REF")->required();
  log->add_option("-n,--max-count", l_limit, "At most N commits")->capture_default_str();
  log->callback([&] {
    auto s = OpenLake(g);
    auto commits = Check(s->Log(l_spec, l_limit));
    if (g.json) {
      json arr = json::array();
      for (const auto& c : commits) arr.push_back(CommitJson(c));
      return PrintJson(arr);
    }
    for (const auto& c : commits) {
      std::cout << fmt::format("{}  {}  {:<20} {}\n", c.id.Short(), TimeString(c.time_ns / 1'000'000'000), c.author,
                               FirstLine(c.message));
    }
  });

  // show
  auto* show = app.add_subcommand("show", "Show the commit NAME@REF names, or the entry at its PATH");
  static std::string sh_spec;
  show->add_option("ref", sh_spec, "NAME@REF[:PATH]")->required();
  show->callback([&] {
    auto s = OpenLake(g);
    auto r = Check(s->Resolve(sh_spec));
    std::vector<EntryInfo> entries;
    if (!r.spec.path.empty()) entries = Check(s->List(sh_spec, false));
    DiffResult changes;
    if (r.spec.path.empty() && !r.commit.parents.empty()) {
      changes = Check(s->Diff(fmt::format("{}@{}", r.spec.dataset, r.commit.parents[0].ToHex()),
                              fmt::format("{}@{}", r.spec.dataset, r.commit.id.ToHex())));
    }
    if (g.json) {
      json j = CommitJson(r.commit);
      if (r.ref) j["ref"] = RefJson(*r.ref);
      if (!r.spec.path.empty()) {
        j["path"] = r.spec.path;
        j["entries"] = entries.size();
      } else {
        json c = json::array();
        for (const auto& e : changes.entries) c.push_back({{"kind", DiffKindName(e.kind)}, {"path", e.path}});
        j["changes"] = c;
      }
      return PrintJson(j);
    }
    std::cout << fmt::format("commit {}\n", r.commit.id.ToHex());
    for (size_t i = 0; i < r.commit.parents.size(); ++i) std::cout << fmt::format("parent {}\n", r.commit.parents[i].ToHex());
    std::cout << fmt::format("tree   {}\nauthor {}\ndate   {}\n", r.commit.tree.ToHex(), r.commit.author,
                             TimeString(r.commit.time_ns / 1'000'000'000));
    for (const auto& [k, v] : r.commit.meta) std::cout << fmt::format("meta   {}={}\n", k, v);
    std::cout << "\n    " << r.commit.message << "\n\n";
    if (!r.spec.path.empty()) return PrintEntries(g, entries, true);
    for (const auto& e : changes.entries) {
      std::cout << fmt::format("{:<9} {}{}\n", DiffKindName(e.kind), e.kind == DiffEntry::Kind::kRenamed ? e.old_path + " -> " : "",
                               e.path);
    }
  });

  // checkout
  auto* checkout = app.add_subcommand("checkout", "Restore NAME@REF[:PATH] into DEST (only the paths asked for)");
  static std::string co_spec, co_dest;
  checkout->add_option("ref", co_spec, "NAME@REF[:PATH]")->required();
  checkout->add_option("dest", co_dest, "Destination directory (created if missing)")->required();
  checkout->callback([&] {
    auto s = OpenLake(g);
    uint64_t bytes = 0;
    Check(s->Checkout(co_spec, co_dest, &bytes));
    if (g.json) PrintJson({{"ref", co_spec}, {"dest", co_dest}, {"bytes", bytes}});
    else if (!g.quiet) std::cerr << fmt::format("restored {} of {} into {}\n", Bytes(bytes), co_spec, co_dest);
  });

  AddRefCommands(app, g, RefType::kBranch);
  AddRefCommands(app, g, RefType::kTag);

  // diff
  auto* diff = app.add_subcommand(
      "diff", "What changed from A to B: added, removed, modified, renamed (by content), with sizes.\n"
              "Equal subtrees are skipped by id, so the cost follows the size of the change");
  static std::string d_a, d_b, d_path;
  diff->add_option("a", d_a, "NAME@REF (the old side)")->required();
  diff->add_option("b", d_b, "NAME@REF (the new side)")->required();
  diff->add_option("path", d_path, "Only below PATH");
  diff->callback([&] {
    auto s = OpenLake(g);
    auto d = Check(s->Diff(d_a, d_b, d_path));
    if (g.json) {
      json arr = json::array();
      for (const auto& e : d.entries) {
        json j = {{"kind", DiffKindName(e.kind)}, {"path", e.path}, {"old_size", e.old_size}, {"new_size", e.new_size}};
        if (e.kind == DiffEntry::Kind::kRenamed) j["old_path"] = e.old_path;
        arr.push_back(j);
      }
      return PrintJson({{"changes", arr}, {"trees_read", d.trees_read}, {"subtrees_skipped", d.subtrees_skipped}});
    }
    for (const auto& e : d.entries) {
      switch (e.kind) {
        case DiffEntry::Kind::kAdded: std::cout << fmt::format("A  {}  ({})\n", e.path, Bytes(e.new_size)); break;
        case DiffEntry::Kind::kRemoved: std::cout << fmt::format("D  {}  ({})\n", e.path, Bytes(e.old_size)); break;
        case DiffEntry::Kind::kModified:
          std::cout << fmt::format("M  {}  ({} -> {})\n", e.path, Bytes(e.old_size), Bytes(e.new_size));
          break;
        case DiffEntry::Kind::kRenamed: std::cout << fmt::format("R  {} -> {}  ({})\n", e.old_path, e.path, Bytes(e.new_size)); break;
      }
    }
    if (!g.quiet) std::cerr << fmt::format("{} changes ({} trees read, {} equal subtrees skipped)\n", d.entries.size(), d.trees_read, d.subtrees_skipped);
  });

  // reset
  auto* reset = app.add_subcommand(
      "reset", "Roll branch NAME@BRANCH back (or forward) to REF; nothing is deleted, the audit log records it");
  static std::string r_target, r_to;
  reset->add_option("branch", r_target, "NAME@BRANCH to move")->required();
  reset->add_option("ref", r_to, "NAME@REF or a commit id prefix of the same dataset")->required();
  reset->callback([&] {
    auto s = OpenLake(g);
    std::string to = IsDatasetRef(r_to) ? r_to : Check(ParseRefSpec(r_target)).dataset + "@" + r_to;
    ObjectId old = Check(s->Reset(r_target, to));
    auto now = Check(s->Resolve(r_target));
    if (g.json) PrintJson({{"branch", r_target}, {"old", old.ToHex()}, {"new", now.commit.id.ToHex()}});
    else if (!g.quiet) {
      std::cout << fmt::format("{} moved from {} to {} (the old head stays in the repository)\n", r_target, old.Short(),
                               now.commit.id.Short());
    }
  });

  // revert
  auto* revert = app.add_subcommand("revert", "Commit on NAME@BRANCH the inverse of what COMMIT changed");
  static std::string rv_target, rv_commit, rv_msg;
  revert->add_option("branch", rv_target, "NAME@BRANCH to commit to")->required();
  revert->add_option("commit", rv_commit, "NAME@REF or a commit id prefix to undo")->required();
  revert->add_option("-m,--message", rv_msg, "Message (default: Revert \"...\")");
  revert->callback([&] {
    auto s = OpenLake(g);
    std::string what = IsDatasetRef(rv_commit) ? rv_commit : Check(ParseRefSpec(rv_target)).dataset + "@" + rv_commit;
    CommitOptions o;
    o.message = rv_msg;
    ReportCommit(g, rv_target, Check(s->Revert(rv_target, what, o)));
  });

  // audit
  auto* audit = app.add_subcommand("audit", "The hash-chained log of every ref, dataset and key change");
  audit->require_subcommand(1);
  auto* audit_log = audit->add_subcommand("log", "List audit entries, oldest first");
  static uint64_t a_from = 1;
  static size_t a_limit = 1000;
  audit_log->add_option("--from", a_from, "First sequence number")->capture_default_str();
  audit_log->add_option("-n,--max-count", a_limit, "At most N entries")->capture_default_str();
  audit_log->callback([&] {
    auto s = OpenLake(g, /*allow_inconsistent=*/true);
    auto entries = Check(s->AuditLog(a_from, a_limit));
    if (g.json) {
      json arr = json::array();
      for (const auto& e : entries) {
        json details = json::parse(e.details, nullptr, false);
        arr.push_back({{"seq", e.seq}, {"time_ms", e.time_unix_ms}, {"actor", e.actor}, {"action", e.action},
                       {"target", e.target}, {"details", details.is_discarded() ? json(e.details) : details},
                       {"hash", e.hash.ToHex()}});
      }
      return PrintJson(arr);
    }
    for (const auto& e : entries) {
      std::cout << fmt::format("{:>6}  {}  {:<20} {:<16} {}  {}\n", e.seq, TimeString(e.time_unix_ms / 1000), e.actor,
                               e.action, e.target, e.details);
    }
  });
  auto* audit_verify = audit->add_subcommand(
      "verify", "Recompute the chain; report the first entry edited, removed or reordered, and a catalog\n"
                "replaced or truncated behind the repository's records (exit 5 when broken)");
  audit_verify->callback([&] {
    auto s = OpenLake(g, /*allow_inconsistent=*/true);
    auto c = Check(s->VerifyAudit());
    if (g.json) {
      PrintJson({{"ok", c.ok}, {"entries", c.entries}, {"head_seq", c.head_seq}, {"recorded_seq", c.recorded_seq},
                 {"problem", c.problem}, {"first_bad_seq", c.first_bad_seq}, {"message", c.message}});
    } else if (c.ok) {
      std::cout << fmt::format("ok: {} audit entries, chain intact, head {} (the repository records {})\n", c.entries,
                               c.head_seq, c.recorded_seq);
    } else {
      std::cout << fmt::format("FAILED: {} (entry {}): {}\n", c.problem, c.first_bad_seq, c.message);
    }
    if (!c.ok) exit_code = kExitIntegrity;
  });

  // catalog
  auto* catalog = app.add_subcommand("catalog", "The catalog database (refs, commit index, audit log)");
  catalog->require_subcommand(1);
  auto* rebuild = catalog->add_subcommand(
      "rebuild", "Recreate the catalog from the repository's records and commit objects alone\n"
                 "(after it was lost, damaged or replaced); run it while no other strata writes");
  rebuild->callback([&] {
    auto repo = OpenRepo(g);
    auto r = Check(Lake::RebuildCatalog(repo.get()));
    for (const auto& w : r.warnings) std::cerr << "warning: " << w << "\n";
    if (g.json) {
      PrintJson({{"events", r.records}, {"datasets", r.datasets}, {"refs", r.refs}, {"commits", r.commits},
                 {"warnings", r.warnings}});
    } else if (!g.quiet) {
      std::cout << fmt::format("catalog rebuilt: {} events replayed, {} datasets, {} refs, {} commits\n", r.records,
                               r.datasets, r.refs, r.commits);
    }
  });
}

}  // namespace strata::cli
