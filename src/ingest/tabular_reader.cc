#include "ingest/tabular_reader.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <unordered_map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace strata::ingest {
namespace {

constexpr size_t kReadBlock = 64 << 10;

std::string Excerpt(std::string_view s) {
  constexpr size_t kMax = 40;
  std::string out = PrintableName(s.substr(0, kMax));
  if (s.size() > kMax) out += "...";
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != b[i]) return false;
  }
  return true;
}

std::optional<bool> ParseBool(std::string_view s) {
  if (EqualsIgnoreCase(s, "true")) return true;
  if (EqualsIgnoreCase(s, "false")) return false;
  return std::nullopt;
}

std::optional<int64_t> ParseInt(std::string_view s) {
  if (s.empty()) return std::nullopt;
  const char* b = s.data();
  const char* e = b + s.size();
  if (*b == '+') ++b;  // from_chars takes '-' but not '+'
  if (b == e || (*b == '-' && s[0] == '+')) return std::nullopt;
  int64_t v = 0;
  auto r = std::from_chars(b, e, v);
  if (r.ec != std::errc() || r.ptr != e) return std::nullopt;
  return v;
}

std::optional<double> ParseDouble(std::string_view s) {
  // Only plain decimal notation: "nan", "inf" and hex floats stay text.
  bool digit = false;
  for (char c : s) {
    if (c >= '0' && c <= '9') {
      digit = true;
    } else if (c != '+' && c != '-' && c != '.' && c != 'e' && c != 'E') {
      return std::nullopt;
    }
  }
  if (!digit) return std::nullopt;
  const char* b = s.data();
  const char* e = b + s.size();
  if (*b == '+') ++b;
  double v = 0;
  auto r = std::from_chars(b, e, v);
  if (r.ec != std::errc() || r.ptr != e || !std::isfinite(v)) return std::nullopt;
  return v;
}

// The narrowest type a CSV text holds.
ColumnType ClassifyText(std::string_view s) {
  if (ParseBool(s)) return ColumnType::kBool;
  if (ParseInt(s)) return ColumnType::kInt64;
  if (ParseDouble(s)) return ColumnType::kDouble;
  return ColumnType::kString;
}

ColumnType ClassifyValue(const Value& v) {
  if (std::holds_alternative<int64_t>(v)) return ColumnType::kInt64;
  if (std::holds_alternative<double>(v)) return ColumnType::kDouble;
  if (std::holds_alternative<bool>(v)) return ColumnType::kBool;
  return ColumnType::kString;
}

ColumnType Widen(ColumnType a, ColumnType b) {
  if (a == b) return a;
  auto numeric = [](ColumnType t) { return t == ColumnType::kInt64 || t == ColumnType::kDouble; };
  if (numeric(a) && numeric(b)) return ColumnType::kDouble;
  return ColumnType::kString;
}

// Rows in, typed Records out: infers the schema from a buffered sample (unless given), then
// converts each row to its columns' types. Cells are either CSV text (a string to parse, or
// null) or typed JSON values.
class TableBuilder {
 public:
  TableBuilder(const TabularOptions& options, std::string name, bool text_cells, ItemSink* sink)
      : options_(options), name_(std::move(name)), text_cells_(text_cells), sink_(sink) {
    if (options_.schema) {
      schema_ = *options_.schema;
      fixed_ = true;
      for (size_t i = 0; i < schema_.columns.size(); ++i) index_[schema_.columns[i].name] = i;
    }
  }

  bool fixed() const { return fixed_; }
  const Schema& schema() const { return schema_; }
  std::string Where(uint64_t line) const { return fmt::format("{}:{}", name_, line); }

  // The column named `name`: an existing one, a new one while inferring, or -1 once the schema
  // is fixed (the caller rejects the row).
  int ColumnIndex(const std::string& name) {
    auto it = index_.find(name);
    if (it != index_.end()) return static_cast<int>(it->second);
    if (fixed_) return -1;
    size_t i = schema_.columns.size();
    schema_.columns.push_back({name, ColumnType::kString});
    inferred_.push_back(std::nullopt);
    index_.emplace(name, i);
    return static_cast<int>(i);
  }
  size_t width() const { return schema_.columns.size(); }

  // `cells` is indexed by column (shorter than the schema when a JSON row lacks later keys).
  Status AddRow(uint64_t line, std::vector<Value> cells) {
    if (fixed_) {
      STRATA_RETURN_IF_ERROR(EnsureStarted());
      return Emit(line, cells);
    }
    for (size_t i = 0; i < cells.size(); ++i) {
      if (IsNull(cells[i])) continue;
      ColumnType t = text_cells_ ? ClassifyText(std::get<std::string>(cells[i])) : ClassifyValue(cells[i]);
      inferred_[i] = inferred_[i] ? Widen(*inferred_[i], t) : t;
      if (auto* s = std::get_if<std::string>(&cells[i])) sample_bytes_ += s->size();
    }
    sample_bytes_ += 16 * cells.size();
    sample_.push_back({line, std::move(cells)});
    if (sample_.size() >= options_.infer_rows || sample_bytes_ >= options_.infer_bytes) return Fix();
    return Status::OK();
  }

  Status Finish() {
    if (!fixed_) return Fix();
    return EnsureStarted();
  }

 private:
  struct Pending {
    uint64_t line;
    std::vector<Value> cells;
  };

  Status Fix() {
    for (size_t i = 0; i < schema_.columns.size(); ++i) {
      schema_.columns[i].type =
          options_.infer_types ? inferred_[i].value_or(ColumnType::kString) : ColumnType::kString;
    }
    fixed_ = true;
    STRATA_RETURN_IF_ERROR(EnsureStarted());
    std::vector<Pending> sample = std::move(sample_);
    sample_.clear();
    for (auto& p : sample) STRATA_RETURN_IF_ERROR(Emit(p.line, p.cells));
    return Status::OK();
  }

  Status EnsureStarted() {
    if (started_) return Status::OK();
    started_ = true;
    return sink_->StartTable(name_, schema_);
  }

  Status Emit(uint64_t line, const std::vector<Value>& cells) {
    record_.line = line;
    record_.fields.resize(schema_.columns.size());
    for (size_t i = 0; i < schema_.columns.size(); ++i) {
      const Column& col = schema_.columns[i];
      record_.fields[i].first = col.name;
      Value& out = record_.fields[i].second;
      if (i >= cells.size() || IsNull(cells[i])) {
        out = std::monostate{};
        continue;
      }
      if (!Convert(cells[i], col.type, &out)) {
        std::string shown = std::holds_alternative<std::string>(cells[i]) ? std::get<std::string>(cells[i])
                                                                           : ValueToString(cells[i]);
        sink_->Reject(Where(line), "type",
                      fmt::format("column '{}': \"{}\" is not a {}", PrintableName(col.name), Excerpt(shown),
                                  ColumnTypeName(col.type)));
        return Status::OK();
      }
    }
    return sink_->AddRecord(record_);
  }

  bool Convert(const Value& in, ColumnType type, Value* out) const {
    if (text_cells_) {
      const std::string& s = std::get<std::string>(in);
      switch (type) {
        case ColumnType::kString: *out = s; return true;
        case ColumnType::kBool:
          if (auto b = ParseBool(s)) { *out = *b; return true; }
          return false;
        case ColumnType::kInt64:
          if (auto v = ParseInt(s)) { *out = *v; return true; }
          return false;
        case ColumnType::kDouble:
          if (auto v = ParseInt(s)) { *out = static_cast<double>(*v); return true; }
          if (auto v = ParseDouble(s)) { *out = *v; return true; }
          return false;
      }
      return false;
    }
    switch (type) {
      case ColumnType::kString:
        if (auto* s = std::get_if<std::string>(&in)) *out = *s;
        else *out = ValueToString(in);
        return true;
      case ColumnType::kBool:
        if (!std::holds_alternative<bool>(in)) return false;
        *out = in;
        return true;
      case ColumnType::kInt64:
        if (!std::holds_alternative<int64_t>(in)) return false;
        *out = in;
        return true;
      case ColumnType::kDouble:
        if (auto* i = std::get_if<int64_t>(&in)) { *out = static_cast<double>(*i); return true; }
        if (!std::holds_alternative<double>(in)) return false;
        *out = in;
        return true;
    }
    return false;
  }

  const TabularOptions& options_;
  std::string name_;
  bool text_cells_;
  ItemSink* sink_;
  Schema schema_;
  std::unordered_map<std::string, size_t> index_;
  std::vector<std::optional<ColumnType>> inferred_;
  bool fixed_ = false;
  bool started_ = false;
  std::vector<Pending> sample_;
  size_t sample_bytes_ = 0;
  Record record_;
};

// ---- CSV ----

struct CsvField {
  std::string text;
  bool quoted = false;
};

// A byte-at-a-time RFC 4180 state machine. After a row error it keeps tracking quotes (so it
// finds where the bad record ends) but stops storing text, which bounds memory.
class CsvParser {
 public:
  explicit CsvParser(const CsvOptions& options) : options_(options) {}

  // Calls on_record(line, fields, error) for each record; `error` is empty for a good one.
  template <class F>
  Status Run(SequentialFile* input, F&& on_record) {
    std::vector<uint8_t> buf(kReadBlock);
    bool first_block = true;
    for (;;) {
      size_t got = 0;
      STRATA_RETURN_IF_ERROR(input->Read(buf.size(), buf.data(), &got));
      if (got == 0) break;
      size_t i = 0;
      if (first_block && got >= 3 && buf[0] == 0xEF && buf[1] == 0xBB && buf[2] == 0xBF) i = 3;
      first_block = false;
      for (; i < got; ++i) STRATA_RETURN_IF_ERROR(Step(static_cast<char>(buf[i]), on_record));
    }
    if (state_ == State::kQuoted) Fail("csv-quote", "unterminated quoted field at the end of the input");
    if (started_) return EndRecord(on_record);
    return Status::OK();
  }

 private:
  enum class State { kFieldStart, kUnquoted, kQuoted, kQuoteSeen };

  void Fail(std::string_view rule, std::string reason) {
    if (!error_rule_.empty()) return;  // the first problem explains the row
    error_rule_ = rule;
    error_ = std::move(reason);
  }

  void Append(char c) {
    if (!error_.empty()) return;
    if (field_.text.size() >= options_.max_field_bytes) {
      Fail("too-long", fmt::format("a field is longer than {} bytes", options_.max_field_bytes));
      return;
    }
    field_.text += c;
  }

  void EndField() {
    if (error_.empty()) {
      if (fields_.size() >= options_.max_columns) {
        Fail("too-many-columns", fmt::format("more than {} fields", options_.max_columns));
      } else {
        fields_.push_back(std::move(field_));
      }
    }
    field_ = CsvField{};
    state_ = State::kFieldStart;
  }

  template <class F>
  Status EndRecord(F& on_record) {
    if (state_ != State::kFieldStart || !fields_.empty() || started_) EndField();
    Status st = on_record(record_line_, fields_, error_rule_, error_);
    fields_.clear();
    field_ = CsvField{};
    error_.clear();
    error_rule_.clear();
    state_ = State::kFieldStart;
    started_ = false;
    record_bytes_ = 0;
    return st;
  }

  template <class F>
  Status Step(char c, F& on_record) {
    if (skip_lf_) {
      skip_lf_ = false;
      if (c == '\n') return Status::OK();
    }
    bool newline = c == '\n' || c == '\r';
    if (!started_) {
      if (newline && state_ == State::kFieldStart) {  // an empty line
        ++line_;
        skip_lf_ = c == '\r';
        return Status::OK();
      }
      started_ = true;
      record_line_ = line_;
    }
    if (++record_bytes_ > options_.max_line_bytes) {
      Fail("too-long", fmt::format("the record is longer than {} bytes", options_.max_line_bytes));
    }
    const char delim = options_.delimiter;
    // A newline outside quotes ends the record (a CR LF pair counts once).
    auto end_line = [this](char c, auto& on_record) {
      ++line_;
      skip_lf_ = c == '\r';
      return EndRecord(on_record);
    };
    switch (state_) {
      case State::kFieldStart:
        if (c == '"') {
          field_.quoted = true;
          state_ = State::kQuoted;
        } else if (c == delim) {
          EndField();
        } else if (newline) {
          return end_line(c, on_record);
        } else {
          Append(c);
          state_ = State::kUnquoted;
        }
        break;
      case State::kUnquoted:
        if (c == delim) {
          EndField();
        } else if (newline) {
          return end_line(c, on_record);
        } else {
          if (c == '"') Fail("csv-quote", "a quote inside an unquoted field");
          Append(c);
        }
        break;
      case State::kQuoted:
        if (c == '"') {
          state_ = State::kQuoteSeen;
        } else {
          if (c == '\n') ++line_;
          Append(c);
        }
        break;
      case State::kQuoteSeen:
        if (c == '"') {
          Append('"');
          state_ = State::kQuoted;
        } else if (c == delim) {
          EndField();
        } else if (newline) {
          return end_line(c, on_record);
        } else {
          Fail("csv-quote", "text after a closing quote");
          Append(c);
          state_ = State::kUnquoted;
        }
        break;
    }
    return Status::OK();
  }

  const CsvOptions& options_;
  State state_ = State::kFieldStart;
  uint64_t line_ = 1;
  uint64_t record_line_ = 1;
  bool started_ = false;
  bool skip_lf_ = false;
  size_t record_bytes_ = 0;
  CsvField field_;
  std::vector<CsvField> fields_;
  std::string error_rule_;
  std::string error_;
};

Status ValidateHeader(const std::vector<CsvField>& fields, const CsvOptions& options, const std::string& name) {
  std::unordered_map<std::string_view, size_t> seen;
  for (size_t i = 0; i < fields.size(); ++i) {
    const std::string& n = fields[i].text;
    if (n.empty()) return Status::InvalidArgument(fmt::format("{}: header column {} has no name", name, i + 1));
    if (!IsValidUtf8(n)) {
      return Status::InvalidArgument(fmt::format("{}: header column {} is not valid UTF-8", name, i + 1));
    }
    if (!seen.emplace(n, i).second) {
      return Status::InvalidArgument(
          fmt::format("{}: header names column '{}' twice", name, PrintableName(n)));
    }
  }
  if (options.schema) {
    const auto& cols = options.schema->columns;
    bool same = cols.size() == fields.size();
    for (size_t i = 0; same && i < cols.size(); ++i) same = cols[i].name == fields[i].text;
    if (!same) {
      return Status::InvalidArgument(
          fmt::format("{}: the header's columns differ from the given schema's (same names, same order)", name));
    }
  }
  return Status::OK();
}

// ---- JSON Lines ----

// Nesting depth of a JSON text, without parsing it: the parser must never see a line that
// would make its (recursive) consumers run out of stack.
size_t JsonDepth(std::string_view s, size_t limit) {
  size_t depth = 0, max = 0;
  bool in_string = false, escaped = false;
  for (char c : s) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') {
      max = std::max(max, ++depth);
      if (max > limit) return max;
    } else if ((c == ']' || c == '}') && depth > 0) --depth;
  }
  return max;
}

Status ProcessJsonLine(std::string_view line, uint64_t number, const JsonlOptions& options,
                       TableBuilder* table, ItemSink* sink) {
  using json = nlohmann::ordered_json;  // keys in the line's order: columns in order of first appearance
  std::string where = table->Where(number);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.find_first_not_of(" \t") == std::string_view::npos) return Status::OK();
  if (!IsValidUtf8(line)) {
    sink->Reject(where, "encoding", "the line is not valid UTF-8");
    return Status::OK();
  }
  if (JsonDepth(line, options.max_depth) > options.max_depth) {
    sink->Reject(where, "json-depth", fmt::format("nested deeper than {} levels", options.max_depth));
    return Status::OK();
  }
  json doc = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    sink->Reject(where, "json-syntax", "the line is not valid JSON");
    return Status::OK();
  }
  if (!doc.is_object()) {
    sink->Reject(where, "json-not-object", fmt::format("the line holds a JSON {}, not an object", doc.type_name()));
    return Status::OK();
  }
  if (doc.size() > options.max_columns) {
    sink->Reject(where, "too-many-columns", fmt::format("more than {} keys", options.max_columns));
    return Status::OK();
  }
  std::vector<Value> cells;
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    const std::string& key = it.key();
    if (key.empty()) {
      sink->Reject(where, "json-empty-key", "an object key is empty");
      return Status::OK();
    }
    if (!table->fixed() && table->width() >= options.max_columns && table->schema().Find(key) < 0) {
      sink->Reject(where, "too-many-columns", fmt::format("more than {} distinct keys", options.max_columns));
      return Status::OK();
    }
    int col = table->ColumnIndex(key);
    if (col < 0) {
      sink->Reject(where, "json-unknown-column",
                   fmt::format("key '{}' is not a column of the table", PrintableName(key)));
      return Status::OK();
    }
    if (cells.size() <= static_cast<size_t>(col)) cells.resize(col + 1);
    const json& v = it.value();
    Value& out = cells[col];
    switch (v.type()) {
      case json::value_t::null: out = std::monostate{}; break;
      case json::value_t::boolean: out = v.get<bool>(); break;
      case json::value_t::number_integer: out = v.get<int64_t>(); break;
      case json::value_t::number_unsigned: {
        uint64_t u = v.get<uint64_t>();
        if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) out = static_cast<int64_t>(u);
        else out = static_cast<double>(u);
        break;
      }
      case json::value_t::number_float: out = v.get<double>(); break;
      case json::value_t::string: out = v.get<std::string>(); break;
      default: out = v.dump(-1, ' ', false, json::error_handler_t::replace); break;
    }
  }
  return table->AddRow(number, std::move(cells));
}

std::string NameOr(const std::string& name, std::string_view fallback) {
  return name.empty() ? std::string(fallback) : name;
}

}  // namespace

Status ReadCsv(SequentialFile* input, const CsvOptions& options, ItemSink* sink) {
  const std::string name = NameOr(options.name, "<input>");
  if (options.delimiter == '"' || options.delimiter == '\n' || options.delimiter == '\r') {
    return Status::InvalidArgument("CSV delimiter may not be a quote or a line break");
  }
  TableBuilder table(options, name, /*text_cells=*/true, sink);
  CsvParser parser(options);
  bool header_done = !options.header;
  bool columns_known = false;
  Status st = parser.Run(input, [&](uint64_t line, std::vector<CsvField>& fields, const std::string& rule,
                                    const std::string& error) -> Status {
    if (!header_done) {
      if (!error.empty()) return Status::InvalidArgument(fmt::format("{}: header row: {}", name, error));
      STRATA_RETURN_IF_ERROR(ValidateHeader(fields, options, name));
      if (!options.schema) {
        for (auto& f : fields) table.ColumnIndex(f.text);
      }
      header_done = columns_known = true;
      return Status::OK();
    }
    std::string where = table.Where(line);
    if (!error.empty()) {
      sink->Reject(where, rule, error);
      return Status::OK();
    }
    if (!columns_known) {
      if (options.schema) {
        columns_known = true;
      } else {
        for (size_t i = 0; i < fields.size(); ++i) table.ColumnIndex(fmt::format("c{}", i + 1));
        columns_known = true;
      }
    }
    if (fields.size() != table.width()) {
      sink->Reject(where, "csv-field-count",
                   fmt::format("the row has {} fields, the table has {} columns", fields.size(), table.width()));
      return Status::OK();
    }
    std::vector<Value> cells(fields.size());
    for (size_t i = 0; i < fields.size(); ++i) {
      if (!IsValidUtf8(fields[i].text)) {
        sink->Reject(where, "encoding",
                     fmt::format("column '{}' is not valid UTF-8", PrintableName(table.schema().columns[i].name)));
        return Status::OK();
      }
      if (fields[i].text.empty() && !fields[i].quoted) continue;  // null
      cells[i] = std::move(fields[i].text);
    }
    return table.AddRow(line, std::move(cells));
  });
  STRATA_RETURN_IF_ERROR(st);
  if (!header_done) return Status::InvalidArgument(fmt::format("{}: no header row (the input is empty)", name));
  return table.Finish();
}

Status ReadJsonl(SequentialFile* input, const JsonlOptions& options, ItemSink* sink) {
  const std::string name = NameOr(options.name, "<input>");
  TableBuilder table(options, name, /*text_cells=*/false, sink);
  std::vector<uint8_t> buf(kReadBlock);
  std::string line;
  uint64_t number = 1;
  bool overlong = false;
  for (;;) {
    size_t got = 0;
    STRATA_RETURN_IF_ERROR(input->Read(buf.size(), buf.data(), &got));
    if (got == 0) break;
    std::string_view block(reinterpret_cast<const char*>(buf.data()), got);
    while (!block.empty()) {
      size_t nl = block.find('\n');
      std::string_view piece = block.substr(0, nl);
      if (!overlong) {
        if (line.size() + piece.size() > options.max_line_bytes) {
          overlong = true;
          line.clear();
          line.shrink_to_fit();
          sink->Reject(table.Where(number), "too-long",
                       fmt::format("the line is longer than {} bytes", options.max_line_bytes));
        } else {
          line.append(piece);
        }
      }
      if (nl == std::string_view::npos) break;
      block.remove_prefix(nl + 1);
      if (!overlong) STRATA_RETURN_IF_ERROR(ProcessJsonLine(line, number, options, &table, sink));
      line.clear();
      overlong = false;
      ++number;
    }
  }
  if (!overlong && !line.empty()) STRATA_RETURN_IF_ERROR(ProcessJsonLine(line, number, options, &table, sink));
  return table.Finish();
}

Status ReadCsvFile(Env* env, const std::string& path, CsvOptions options, ItemSink* sink) {
  if (options.name.empty()) options.name = path;
  STRATA_ASSIGN_OR_RETURN(auto file, env->NewSequentialFile(path));
  return ReadCsv(file.get(), options, sink);
}

Status ReadJsonlFile(Env* env, const std::string& path, JsonlOptions options, ItemSink* sink) {
  if (options.name.empty()) options.name = path;
  STRATA_ASSIGN_OR_RETURN(auto file, env->NewSequentialFile(path));
  return ReadJsonl(file.get(), options, sink);
}

}  // namespace strata::ingest
