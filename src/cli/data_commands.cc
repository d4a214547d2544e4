// The records of datasets on the command line: `strata query` and `strata meta set`.
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.h"
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

void AddRecordCommands(CLI::App& app, Globals& g) {
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
