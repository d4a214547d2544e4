// Versioned datasets on the command line: `strata dataset|commit|log|show|checkout|branch|tag|
// diff|reset|revert|merge|policy|forget|gc|audit|catalog`, and dataset refs for `ls` and `cat`.
#include <iostream>

#include <fmt/format.h>

#include "base/logging.h"
#include "cli/commands.h"
#include "strata/lake.h"

namespace strata::cli {

using nlohmann::json;

LakeSession OpenLake(const Globals& g, bool allow_inconsistent) {
  LakeSession s;
  s.repo = OpenRepo(g);
  LakeOptions o;
  o.allow_inconsistent_catalog = allow_inconsistent;
  s.lake = Check(Lake::Open(s.repo.get(), o));
  return s;
}


json CommitResultJson(const CommitResult& r) {
  return {{"commit", r.commit.ToHex()},          {"parent", r.parent.ToHex()},
          {"tree", r.tree.ToHex()},              {"unchanged", r.unchanged},
          {"files", r.put.files},                {"bytes_read", r.put.bytes},
          {"unchanged_files", r.put.unchanged_files}, {"new_chunks", r.put.new_chunks},
          {"new_bytes", r.put.new_bytes},        {"stored_bytes", r.put.stored_bytes},
          {"trees_written", r.trees_written},    {"attempts", r.attempts}};
}

std::pair<std::string, std::string> SplitPair(const std::string& text, const char* what) {
  size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw Failure{Status::InvalidArgument(fmt::format("{} '{}' must be written {}", what, text,
                                                      std::string(what) == "--meta" ? "KEY=VALUE" : "A=B"))};
  }
  return {text.substr(0, eq), text.substr(eq + 1)};
}

namespace {

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
  CopyBlob(Check(s->OpenFile(spec)).get(), stdout, "stdout");
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
    // Log stops early only at a parent that is forgotten (or not indexed).
    if (!commits.empty() && commits.size() < l_limit && !commits.back().parents.empty() && !g.quiet) {
      std::cerr << fmt::format("(history stops here: parent {} was forgotten by the retention policy)\n",
                               commits.back().parents[0].Short());
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

  // merge
  auto* merge = app.add_subcommand(
      "merge",
      "Merge SRC into branch DST: a fast-forward when DST is behind SRC, otherwise a three-way merge\n"
      "against their merge base, recorded as a commit with two parents (DST's head first). A path\n"
      "changed on one side only takes that change; a path changed differently on both sides is a\n"
      "conflict: with --strategy fail (the default) nothing changes and every conflicting path is\n"
      "listed (exit 6); ours keeps DST's version, theirs takes SRC's");
  static std::string m_src, m_dst, m_msg, m_strategy = "fail";
  merge->add_option("src", m_src, "NAME@REF to merge")->required();
  merge->add_option("dst", m_dst, "NAME@BRANCH to merge into")->required();
  merge->add_option("--strategy", m_strategy, "fail, ours or theirs")->capture_default_str();
  merge->add_option("-m,--message", m_msg, "Message (default: Merge SRC into DST)");
  merge->callback([&] {
    auto s = OpenLake(g);
    std::string src = IsDatasetRef(m_src) ? m_src : Check(ParseRefSpec(m_dst)).dataset + "@" + m_src;
    MergeOptions o;
    o.strategy = Check(ParseMergeStrategy(m_strategy));
    o.message = m_msg;
    auto r = s->Merge(src, m_dst, o);
    auto conflicts_json = [](const std::vector<MergeConflict>& list) {
      json arr = json::array();
      for (const auto& c : list) arr.push_back({{"path", c.path}, {"kind", c.kind}});
      return arr;
    };
    if (!r.ok()) {
      // A refused merge still reports its conflicts as data.
      if (g.json && r.status().code() == StatusCode::kFailedPrecondition && o.strategy == MergeStrategy::kFail) {
        auto conflicts = s->MergeConflicts(src, m_dst);
        if (conflicts.ok() && !conflicts->empty()) {
          PrintJson({{"merged", false}, {"conflicts", conflicts_json(*conflicts)}, {"error", r.status().message()}});
          std::cerr << "strata: error: " << r.status().message() << "\n";
          exit_code = ExitCodeFor(r.status());
          return;
        }
      }
      Check(r.status());
    }
    if (g.json) {
      PrintJson({{"merged", true}, {"commit", r->commit.ToHex()}, {"parent", r->parent.ToHex()},
                 {"base", r->base.IsZero() ? "" : r->base.ToHex()}, {"tree", r->tree.ToHex()},
                 {"up_to_date", r->up_to_date}, {"fast_forward", r->fast_forward},
                 {"strategy", MergeStrategyName(o.strategy)}, {"conflicts", conflicts_json(r->conflicts)},
                 {"trees_written", r->trees_written}});
      return;
    }
    if (!g.quiet) {
      if (r->up_to_date) {
        std::cerr << fmt::format("{} already contains {}: nothing to merge\n", m_dst, src);
      } else if (r->fast_forward) {
        std::cerr << fmt::format("{}: fast-forward {} -> {}\n", m_dst, r->parent.Short(), r->commit.Short());
      } else {
        std::cerr << fmt::format("{}: merged {} ({} -> {}, base {}), {} conflicts settled by '{}'\n", m_dst, src,
                                 r->parent.Short(), r->commit.Short(), r->base.IsZero() ? "none" : r->base.Short(),
                                 r->conflicts.size(), MergeStrategyName(o.strategy));
        for (const auto& c : r->conflicts) std::cerr << fmt::format("  {} ({})\n", c.path, c.kind);
      }
    }
    std::cout << r->commit.ToHex() << "\n";
  });

  // policy
  auto* policy = app.add_subcommand("policy", "Retention policies: which commits `strata forget` keeps");
  policy->require_subcommand(1);
  auto* policy_set = policy->add_subcommand(
      "set",
      "Set dataset NAME's retention policy (replacing the old one). Applied to each branch's\n"
      "first-parent history, newest first; the head of every branch and tag is always kept");
  static std::string p_name;
  static RetentionPolicy p_policy;
  static bool p_no_keep_tagged = false;
  policy_set->add_option("name", p_name, "Dataset")->required();
  policy_set->add_option("--keep-last", p_policy.keep_last, "Keep the newest N commits");
  policy_set->add_option("--keep-daily", p_policy.keep_daily, "Keep the newest commit of each of the last N days");
  policy_set->add_option("--keep-weekly", p_policy.keep_weekly, "Keep the newest commit of each of the last N weeks");
  policy_set->add_option("--keep-monthly", p_policy.keep_monthly, "Keep the newest commit of each of the last N months");
  static bool p_keep_tagged = false;
  auto* keep_tagged = policy_set->add_flag("--keep-tagged", p_keep_tagged, "Keep every tagged commit (the default)");
  policy_set->add_flag("--no-keep-tagged", p_no_keep_tagged,
                       "Forget also deletes the unprotected tags whose commits no rule keeps")
      ->excludes(keep_tagged);
  auto policy_json = [](const std::string& name, const RetentionPolicy& p) {
    return json{{"dataset", name},         {"keep_last", p.keep_last},       {"keep_daily", p.keep_daily},
                {"keep_weekly", p.keep_weekly}, {"keep_monthly", p.keep_monthly}, {"keep_tagged", p.keep_tagged}};
  };
  auto print_policy = [&g, policy_json](const std::string& name, const RetentionPolicy& p) {
    if (g.json) return PrintJson(policy_json(name, p));
    std::cout << fmt::format("{}: keep last {}, daily {}, weekly {}, monthly {}; tagged commits {}\n", name,
                             p.keep_last, p.keep_daily, p.keep_weekly, p.keep_monthly,
                             p.keep_tagged ? "kept" : "not kept (their tags are deleted)");
  };
  policy_set->callback([&g, print_policy] {
    p_policy.keep_tagged = !p_no_keep_tagged;
    if (p_policy.keep_last == 0 && p_policy.keep_daily == 0 && p_policy.keep_weekly == 0 &&
        p_policy.keep_monthly == 0) {
      // As restic does: a policy without rules is more likely a slip than a wish.
      throw Failure{Status::InvalidArgument(
          "give at least one rule (--keep-last, --keep-daily, --keep-weekly, --keep-monthly); --keep-last 1 "
          "keeps only the heads")};
    }
    auto s = OpenLake(g);
    Check(s->SetRetentionPolicy(p_name, p_policy));
    if (!g.quiet || g.json) print_policy(p_name, p_policy);
  });
  auto* policy_show = policy->add_subcommand("show", "Show dataset NAME's retention policy");
  policy_show->add_option("name", p_name, "Dataset")->required();
  policy_show->callback([&g, print_policy] {
    auto s = OpenLake(g);
    auto p = Check(s->GetRetentionPolicy(p_name));
    if (!p) {
      if (g.json) return PrintJson({{"dataset", p_name}, {"policy", nullptr}});
      std::cout << fmt::format("{}: no retention policy (forget refuses; everything is kept)\n", p_name);
      return;
    }
    print_policy(p_name, *p);
  });

  // forget
  auto* forget = app.add_subcommand(
      "forget",
      "Apply dataset NAME's retention policy: commits it does not keep are forgotten (their data is\n"
      "freed by the next `strata gc`; the commit records stay, so lineage survives, but `log` stops\n"
      "before them and they no longer resolve). Records an audit entry");
  static std::string f_name;
  static bool f_dry = false;
  forget->add_option("name", f_name, "Dataset")->required();
  forget->add_flag("-n,--dry-run", f_dry, "Show what would be kept and forgotten; change nothing");
  forget->callback([&] {
    auto s = OpenLake(g);
    auto r = Check(s->Forget(f_name, f_dry));
    if (g.json) {
      json kept = json::array(), gone = json::array();
      for (const auto& d : r.decisions) {
        json j = {{"id", d.commit.ToHex()}, {"time_ns", d.time_ns}, {"message", d.message}};
        if (d.keep) {
          j["reasons"] = d.reasons;
          kept.push_back(j);
        } else {
          gone.push_back(j);
        }
      }
      return PrintJson({{"dataset", r.dataset}, {"dry_run", r.dry_run}, {"kept", kept}, {"forgotten", gone},
                        {"tags_deleted", r.tags_deleted}});
    }
    for (const auto& d : r.decisions) {
      std::string why;
      for (const auto& reason : d.reasons) why += (why.empty() ? "" : ", ") + reason;
      std::cout << fmt::format("{:<6} {}  {}  {:<30} {}\n", d.keep ? "keep" : "forget", d.commit.Short(),
                               TimeString(d.time_ns / 1'000'000'000), d.message.substr(0, 30), why);
    }
    for (const auto& t : r.tags_deleted) std::cout << fmt::format("delete tag {}@{}\n", r.dataset, t);
    if (!g.quiet) {
      std::cerr << fmt::format("{}{} kept, {} forgotten{}\n", r.dry_run ? "dry run: " : "", r.kept, r.forgotten,
                               r.dry_run || r.forgotten == 0 ? "" : "; run `strata gc` to free their space");
    }
  });

  // gc
  auto* gc = app.add_subcommand(
      "gc",
      "Delete what no branch, tag or put reaches, and rewrite packs that are mostly dead.\n"
      "Roots: every commit reachable from a branch or tag head of any dataset, with the tree of each\n"
      "one not forgotten by `strata forget`, and every put (`strata ls`). Packs younger than --grace\n"
      "are never touched. gc needs the repository to itself: it refuses (exit 6) while a put or commit\n"
      "runs, and they are refused while it runs. Safe to interrupt at any moment. Records an audit entry");
  static bool gc_dry = false;
  static int64_t gc_grace = 3600;
  static double gc_threshold = 0.3;
  gc->add_flag("-n,--dry-run", gc_dry, "Report what would be freed; change nothing");
  gc->add_option("--grace", gc_grace, "Seconds: packs younger than this are kept whatever they hold")
      ->capture_default_str();
  gc->add_option("--repack-threshold", gc_threshold, "Rewrite a pack when more than this fraction of it is dead")
      ->capture_default_str();
  gc->callback([&] {
    auto s = OpenLake(g);
    LakeGcOptions o;
    o.dry_run = gc_dry;
    o.grace_seconds = gc_grace;
    o.repack_threshold = gc_threshold;
    auto r = Check(s->CollectGarbage(o));
    if (g.json) {
      return PrintJson({{"dry_run", r.dry_run}, {"commits_live", r.commits_live}, {"trees_live", r.trees_live},
                        {"objects_total", r.objects_total}, {"objects_live", r.objects_live},
                        {"packs_deleted", r.packs_deleted}, {"packs_repacked", r.packs_repacked},
                        {"bytes_freed", r.bytes_freed}, {"bytes_rewritten", r.bytes_rewritten}});
    }
    if (!g.quiet) {
      std::cout << fmt::format(
          "{}{} of {} objects live ({} commits); {} packs deleted, {} repacked; {} freed ({} rewritten)\n",
          r.dry_run ? "dry run: " : "", r.objects_live, r.objects_total, r.commits_live, r.packs_deleted,
          r.packs_repacked, Bytes(r.bytes_freed), Bytes(r.bytes_rewritten));
    }
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
