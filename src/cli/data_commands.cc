// Data into and out of datasets on the command line: `strata ingest`, `strata query` and
// `strata meta set`.
#include <fstream>
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.h"
#include "strata/curate.h"
#include "strata/ingest.h"
#include "strata/lake.h"
#include "version/record_table.h"

namespace strata::cli {
namespace {

using nlohmann::json;

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

void PrintTable(const QueryResult& q) {
  std::vector<size_t> width(q.columns.size());
  for (size_t i = 0; i < q.columns.size(); ++i) width[i] = q.columns[i].size();
  std::vector<std::vector<std::string>> cells;
  for (const auto& row : q.rows) {
    cells.emplace_back();
    for (size_t i = 0; i < row.size(); ++i) {
      std::string t = version::MetaValueText(row[i]);
      for (char& c : t) {
        if (static_cast<unsigned char>(c) < 0x20) c = ' ';  // one row per line
      }
      width[i] = std::min<size_t>(std::max(width[i], t.size()), 60);
      cells.back().push_back(std::move(t));
    }
  }
  auto line = [&](const std::vector<std::string>& v) {
    std::string out;
    for (size_t i = 0; i < v.size(); ++i) {
      std::string t = v[i].size() > 60 ? v[i].substr(0, 57) + "..." : v[i];
      out += fmt::format("{:<{}}", t, width[i]) + (i + 1 < v.size() ? "  " : "");
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    std::cout << out << "\n";
  };
  line(q.columns);
  for (const auto& c : cells) line(c);
}

// "42" -> int, "2.5" -> float, "true"/"false" -> bool, "null" -> null, anything else text.
MetaValue ParseCliValue(const std::string& text) {
  if (text == "null") return MetaValue{};
  if (text == "true" || text == "false") return MetaValue{text == "true"};
  json j = json::parse(text, nullptr, false);
  if (j.is_number_integer()) return MetaValue{j.get<int64_t>()};
  if (j.is_number_float()) return MetaValue{j.get<double>()};
  return MetaValue{text};
}

}  // namespace

void AddDataCommands(CLI::App& app, Globals& g) {
  // ingest
  auto* ingest = app.add_subcommand(
      "ingest",
      "Bring SOURCE into NAME@BRANCH as one commit: a directory, an archive (tar, tar.gz/zst/xz,\n"
      "zip: streamed, never extracted), CSV/JSON Lines (a record per row), IDX images+labels\n"
      "(Fashion-MNIST), or sqlite:DB.sqlite or postgresql://USER@HOST/DB with --query. Labels, sources, image sizes and rows\n"
      "become records (`strata query`). Items that are unsafe or malformed (paths escaping the\n"
      "dataset, links, devices, bad rows) are rejected with a reason and kept in\n"
      ".strata/rejects.jsonl; a broken source fails and the branch does not move. Ingesting the\n"
      "same data again stores nothing and makes no commit.");
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

  // query
  auto* query = app.add_subcommand(
      "query",
      "Run SQL over the records of NAME@REF[:PATH], a table named `records`: one row per file\n"
      "(path, size, content: a content id, equal for equal bytes) with its metadata columns\n"
      "(label, source, width, height, ...), plus the rows of ingested tables. Read-only.\n"
      "  strata query fm@main \"SELECT label, count(*) FROM records GROUP BY label\"");
  static std::string q_spec, q_sql;
  static bool q_csv = false;
  query->add_option("ref", q_spec, "NAME@REF[:PATH]")->required();
  query->add_option("sql", q_sql, "One SELECT statement")->required();
  query->add_flag("--csv", q_csv, "Print CSV (RFC 4180) instead of a table");
  query->callback([&] {
    auto s = OpenLake(g);
    QueryResult q = Check(s->Query(q_spec, q_sql));
    if (g.json) {
      json rows = json::array();
      for (const auto& row : q.rows) {
        json o = json::object();
        for (size_t i = 0; i < row.size(); ++i) o[q.columns[i]] = version::MetaValueJson(row[i]);
        rows.push_back(std::move(o));
      }
      PrintJson({{"columns", q.columns}, {"rows", rows}});
    } else if (q_csv) {
      std::vector<std::string> head;
      for (const auto& c : q.columns) head.push_back(CsvField(c));
      std::cout << fmt::format("{}\r\n", fmt::join(head, ","));
      for (const auto& row : q.rows) {
        std::vector<std::string> f;
        for (const auto& v : row) f.push_back(CsvField(version::MetaValueText(v)));
        std::cout << fmt::format("{}\r\n", fmt::join(f, ","));
      }
    } else {
      PrintTable(q);
    }
  });

  // curate
  auto* curate = app.add_subcommand(
      "curate",
      "Derive branch DST from SRC by the rules in a YAML file (docs/CURATION.md): required\n"
      "columns, types, ranges, allowed labels (after remap and a joined labels CSV), a SQL\n"
      "filter, text checks and NFC/whitespace normalisation, image checks, exact and near\n"
      "duplicates. Nothing is dropped: each failing record moves below .quarantine/ with\n"
      "columns quarantine_rule and quarantine_reason. Prints a report (text or --json).\n"
      "  strata curate fm@main fm@curated --rules rules.yaml --report-dir report/");
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

  // meta
  auto* meta = app.add_subcommand("meta", "Per-file metadata (records) of a dataset");
  meta->require_subcommand(1);
  auto* meta_set = meta->add_subcommand(
      "set",
      "Set columns of the record of NAME@BRANCH:PATH as a commit that changes metadata only\n"
      "  strata meta set fm@main:train/00001.pgm label=shirt checked=true -m \"fix label\"\n"
      "VALUE is read as an integer, a float, true/false, null (removes the column) or text.");
  static std::string m_spec, m_msg;
  static std::vector<std::string> m_pairs;
  meta_set->add_option("spec", m_spec, "NAME@BRANCH:PATH")->required();
  meta_set->add_option("columns", m_pairs, "KEY=VALUE (one or more)")->required();
  meta_set->add_option("-m,--message", m_msg, "Commit message (default: set metadata of PATH)");
  meta_set->callback([&] {
    RefSpec spec = Check(ParseRefSpec(m_spec));
    if (spec.path.empty()) throw Failure{Status::InvalidArgument("give the record's path: NAME@BRANCH:PATH")};
    RecordMeta columns;
    for (const auto& p : m_pairs) {
      auto [k, v] = SplitPair(p, "a column");
      columns[k] = ParseCliValue(v);
    }
    auto s = OpenLake(g);
    auto stage = Check(s->Stage(spec.dataset + "@" + spec.ref));
    Check(stage->SetRecord(spec.path, columns));
    CommitOptions o;
    o.message = m_msg.empty() ? fmt::format("set metadata of {}", spec.path) : m_msg;
    CommitResult r = Check(stage->Commit(o));
    if (g.json) return PrintJson(CommitResultJson(r));
    if (!g.quiet) {
      std::cerr << (r.unchanged ? fmt::format("{}: metadata already so; no commit made\n", m_spec)
                                : fmt::format("{}: {} -> {}\n", m_spec, r.parent.Short(), r.commit.Short()));
    }
    std::cout << r.commit.ToHex() << "\n";
  });
}

}  // namespace strata::cli
