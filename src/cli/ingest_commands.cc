// `strata ingest` and `strata curate`: foreign formats (archives, tables, databases, images) into
// datasets. Built into the strata-data binary only (see data_exec.cc).
#include <fstream>
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.h"
#include "strata/curate.h"
#include "strata/ingest.h"

namespace strata::cli {

using nlohmann::json;

void AddIngestCommands(CLI::App& app, Globals& g) {
  // ingest
  auto* ingest = app.add_subcommand("ingest", kIngestHelp);
  static std::string i_source, i_target;
  static IngestOptions io;
  static std::vector<std::string> i_meta;
  ingest->add_option("source", i_source, "Directory, archive, table, IDX images file, sqlite:PATH or postgresql://URI")->required();
  ingest->add_option("target", i_target, "NAME@BRANCH to commit to")->required();
  ingest->add_option("--format", io.format, "auto (default), dir, archive, csv, jsonl, idx, sqlite or postgres");
  ingest->add_option("--prefix", io.prefix, "Put everything below this path of the dataset");
  ingest->add_flag("--image-folder", io.image_folder, "Class-per-folder layout: the parent folder's name is the label");
  ingest->add_option("--labels", io.labels_csv, "CSV with columns file,label joined to the files by name");
  ingest->add_option("--idx-labels", io.idx_labels, "IDX labels file (default: the images file's sibling)");
  ingest->add_option("--query", io.query, "SELECT statement for a sqlite: or postgres source (run read-only)");
  ingest->add_flag("--replace", io.replace, "The commit holds only this source (default: added to the branch's files)");
  ingest->add_option("--max-total-bytes", io.max_total_bytes, "Archive limit: uncompressed bytes in all (default 256 GiB)");
  ingest->add_option("--max-entry-bytes", io.max_entry_bytes, "Archive limit: uncompressed bytes of one member (16 GiB)");
  ingest->add_option("--max-entries", io.max_entries, "Archive limit: members (10 million)");
  ingest->add_option("--max-ratio", io.max_ratio, "Archive limit: uncompressed / compressed bytes (250)");
  ingest->add_option("-m,--message", io.commit.message, "Commit message (default: ingest SOURCE)");
  ingest->add_option("--meta", i_meta, "KEY=VALUE commit metadata (repeatable)");
  ingest->callback([&] {
    for (const auto& m : i_meta) io.commit.meta.insert(SplitPair(m, "--meta"));
    io.progress = !g.quiet && !g.json;
    auto s = OpenLake(g);
    IngestReport r = Check(Ingest(s.lake.get(), i_source, i_target, io));
    if (g.json) {
      json rejects = json::array();
      for (const auto& x : r.rejects) rejects.push_back({{"where", x.where}, {"rule", x.rule}, {"reason", x.reason}});
      PrintJson({{"source", r.source},
                 {"format", r.format},
                 {"source_sha256", r.source_sha256},
                 {"files", r.files},
                 {"bytes", r.bytes},
                 {"records", r.records},
                 {"labelled", r.labelled},
                 {"rejected", r.rejects.size()},
                 {"rejects", rejects},
                 {"seconds", r.seconds},
                 {"commit", CommitResultJson(r.commit)}});
      return;
    }
    if (!g.quiet) {
      std::cerr << fmt::format("{}: {} files ({}), {} records, {} labelled, {} rejected in {:.1f} s\n", r.source,
                               r.files, Bytes(r.bytes), r.records, r.labelled, r.rejects.size(), r.seconds);
      for (size_t i = 0; i < r.rejects.size() && i < 10; ++i) {
        std::cerr << fmt::format("  rejected {} [{}]: {}\n", r.rejects[i].where, r.rejects[i].rule, r.rejects[i].reason);
      }
      if (r.rejects.size() > 10) std::cerr << fmt::format("  ... and {} more in .strata/rejects.jsonl\n", r.rejects.size() - 10);
      if (r.commit.unchanged) {
        std::cerr << fmt::format("{}: nothing new: the same data is already there; no commit made\n", i_target);
      } else {
        std::cerr << fmt::format("{}: {} -> {}; {} new in the repository\n", i_target, r.commit.parent.Short(),
                                 r.commit.commit.Short(), Bytes(r.commit.put.stored_bytes));
      }
    }
    std::cout << r.commit.commit.ToHex() << "\n";
  });

  // curate
  auto* curate = app.add_subcommand("curate", kCurateHelp);
  static std::string c_src, c_dst, c_rules, c_report, c_msg;
  curate->add_option("src", c_src, "NAME@REF to curate")->required();
  curate->add_option("dst", c_dst, "NAME@BRANCH to write (created at SRC if missing)")->required();
  curate->add_option("--rules", c_rules, "Rules file (YAML)")->required();
  curate->add_option("--report-dir", c_report, "Also write report.json, report.txt and report.html (thumbnails) here");
  curate->add_option("-m,--message", c_msg, "Commit message (default: curate SRC)");
  curate->callback([&] {
    CurationRules rules = Check(LoadCurationRules(c_rules));
    auto s = OpenLake(g);
    CurateOptions o;
    o.commit.message = c_msg;
    o.progress = !g.quiet && !g.json;
    CurationReport r = Check(Curate(s.lake.get(), c_src, c_dst, rules, o));
    if (!c_report.empty()) {
      Check(Env::Default()->CreateDirs(c_report));
      std::string html = Check(CurationReportHtml(s.lake.get(), r));
      for (auto [name, text] : {std::pair<std::string, std::string>{"report.json", CurationReportJson(r)},
                                {"report.txt", CurationReportText(r)}, {"report.html", html}}) {
        std::ofstream f(c_report + "/" + name, std::ios::binary | std::ios::trunc);
        f << text;
        if (!f) throw Failure{Status::IOError(fmt::format("cannot write {}/{}", c_report, name))};
      }
    }
    if (g.json) {
      std::cout << CurationReportJson(r) << "\n";
      return;
    }
    if (!g.quiet) std::cerr << CurationReportText(r);
    std::cout << r.commit.commit.ToHex() << "\n";
  });
}

}  // namespace strata::cli
