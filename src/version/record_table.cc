#include "version/record_table.h"

#include <sqlite3.h>

#include <cmath>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace strata::version {

using nlohmann::json;

namespace {

constexpr size_t kMaxKey = 4096;
constexpr size_t kMaxColumn = 256;

bool Reserved(std::string_view column) { return column == "path" || column == "size" || column == "content"; }

Result<MetaValue> FromJson(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return MetaValue{};
    case json::value_t::boolean: return MetaValue{v.get<bool>()};
    case json::value_t::number_integer: return MetaValue{v.get<int64_t>()};
    case json::value_t::number_unsigned: {
      uint64_t u = v.get<uint64_t>();
      if (u > uint64_t(INT64_MAX)) return MetaValue{double(u)};
      return MetaValue{int64_t(u)};
    }
    case json::value_t::number_float: return MetaValue{v.get<double>()};
    case json::value_t::string: return MetaValue{v.get<std::string>()};
    default: return Status::Corruption("values must be null, booleans, numbers or strings");
  }
}

}  // namespace

json MetaValueJson(const MetaValue& v) {
  struct Visit {
    json operator()(std::monostate) const { return nullptr; }
    json operator()(int64_t i) const { return i; }
    json operator()(double d) const { return std::isfinite(d) ? json(d) : json(nullptr); }
    json operator()(bool b) const { return b; }
    json operator()(const std::string& s) const { return s; }
  };
  return std::visit(Visit{}, v);
}

namespace {

std::string Quote(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}


struct Db {
  sqlite3* db = nullptr;
  ~Db() { sqlite3_close(db); }
  Status Error(std::string_view what) const { return Status::InvalidArgument(fmt::format("{}: {}", what, sqlite3_errmsg(db))); }
};

struct Stmt {
  sqlite3_stmt* st = nullptr;
  ~Stmt() { sqlite3_finalize(st); }
};

int Bind(sqlite3_stmt* st, int i, const MetaValue& v) {
  struct Visit {
    sqlite3_stmt* st;
    int i;
    int operator()(std::monostate) const { return sqlite3_bind_null(st, i); }
    int operator()(int64_t x) const { return sqlite3_bind_int64(st, i, x); }
    int operator()(double x) const { return sqlite3_bind_double(st, i, x); }
    int operator()(bool x) const { return sqlite3_bind_int(st, i, x ? 1 : 0); }
    int operator()(const std::string& s) const {
      return sqlite3_bind_text(st, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    }
  };
  return std::visit(Visit{st, i}, v);
}

MetaValue Column(sqlite3_stmt* st, int i) {
  switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER: return MetaValue{static_cast<int64_t>(sqlite3_column_int64(st, i))};
    case SQLITE_FLOAT: return MetaValue{sqlite3_column_double(st, i)};
    case SQLITE_TEXT:
    case SQLITE_BLOB: {
      const char* p = reinterpret_cast<const char*>(sqlite3_column_text(st, i));
      return MetaValue{std::string(p ? p : "", sqlite3_column_bytes(st, i))};
    }
    default: return MetaValue{};
  }
}

}  // namespace

Status ValidateRecord(std::string_view key, const RecordMeta& columns) {
  if (key.empty() || key.size() > kMaxKey || key.find('\0') != std::string_view::npos) {
    return Status::InvalidArgument(fmt::format("a record key must be 1 to {} bytes without NUL", kMaxKey));
  }
  for (const auto& [name, value] : columns) {
    if (name.empty() || name.size() > kMaxColumn || name.find('\0') != std::string::npos) {
      return Status::InvalidArgument(fmt::format("record '{}': a column name must be 1 to {} bytes without NUL", key, kMaxColumn));
    }
    if (Reserved(name)) {
      return Status::InvalidArgument(
          fmt::format("record '{}': column '{}' is reserved (path, size and content come from the tree)", key, name));
    }
    if (auto* s = std::get_if<std::string>(&value); s && s->find('\0') != std::string::npos) {
      return Status::InvalidArgument(fmt::format("record '{}': column '{}' holds a NUL byte", key, name));
    }
  }
  return Status::OK();
}

Result<RecordRows> ParseRecordsFile(std::string_view text) {
  RecordRows rows;
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (line.empty()) continue;
    auto bad = [&](std::string_view why) {
      return Status::Corruption(fmt::format("{} line {}: {}", kRecordsPath, line_no, why));
    };
    json obj = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!obj.is_object()) return bad("not a JSON object");
    auto path = obj.find("path");
    if (path == obj.end() || !path->is_string()) return bad("no \"path\" string");
    std::string key = path->get<std::string>();
    RecordMeta meta;
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      if (it.key() == "path") continue;
      auto v = FromJson(it.value());
      if (!v.ok()) return bad(fmt::format("column '{}': {}", it.key(), v.status().message()));
      meta.emplace(it.key(), std::move(*v));
    }
    Status s = ValidateRecord(key, meta);
    if (!s.ok()) return bad(s.message());
    if (!rows.emplace(std::move(key), std::move(meta)).second) return bad("a second row for the same path");
  }
  return rows;
}

std::string SerializeRecordsFile(const RecordRows& rows) {
  std::string out;
  for (const auto& [key, columns] : rows) {
    json obj = json::object();
    obj["path"] = key;
    for (const auto& [name, value] : columns) obj[name] = MetaValueJson(value);
    out += obj.dump(-1, ' ', false, json::error_handler_t::replace);
    out += '\n';
  }
  return out;
}

Result<RecordRows> ReadRecordsFile(store::ObjectStore* objects, const store::TreeEntry& entry, std::string* text) {
  std::string bytes;
  bytes.reserve(entry.size);
  for (const auto& c : entry.chunks) {
    STRATA_ASSIGN_OR_RETURN(std::string part, objects->Read(c.id, store::ObjectKind::kData));
    bytes += part;
  }
  STRATA_ASSIGN_OR_RETURN(RecordRows rows, ParseRecordsFile(bytes));
  if (text != nullptr) *text = std::move(bytes);
  return rows;
}

int ReadOnlyAuthorizer(void*, int action, const char*, const char*, const char*, const char*) {
  switch (action) {
    case SQLITE_SELECT:
    case SQLITE_READ:
    case SQLITE_FUNCTION:
    case SQLITE_RECURSIVE:
      return SQLITE_OK;
    default:
      return SQLITE_DENY;
  }
}

std::string MetaValueText(const MetaValue& v) {
  struct Visit {
    std::string operator()(std::monostate) const { return ""; }
    std::string operator()(int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const { return fmt::format("{}", d); }
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(const std::string& s) const { return s; }
  };
  return std::visit(Visit{}, v);
}

Result<QueryResult> RunQuery(const std::vector<RecordMeta>& rows, std::string_view sql) {
  // Columns: path, size, content first, then the others in name order.
  std::vector<std::string> columns = {"path", "size", "content"};
  std::set<std::string> others;
  for (const auto& r : rows) {
    for (const auto& [name, v] : r) {
      if (!Reserved(name)) others.insert(name);
    }
  }
  columns.insert(columns.end(), others.begin(), others.end());

  Db db;
  if (sqlite3_open_v2(":memory:", &db.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_MEMORY, nullptr) != SQLITE_OK) {
    return Status::IOError("cannot open an in-memory SQLite database");
  }
  sqlite3_limit(db.db, SQLITE_LIMIT_ATTACHED, 0);
  std::string create = "CREATE TABLE records(";
  std::string insert = "INSERT INTO records VALUES(";
  for (size_t i = 0; i < columns.size(); ++i) {
    create += (i ? ", " : "") + Quote(columns[i]);
    insert += i ? ", ?" : "?";
  }
  create += ")";
  insert += ")";
  if (sqlite3_exec(db.db, create.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) return db.Error("creating table records");
  sqlite3_exec(db.db, "BEGIN", nullptr, nullptr, nullptr);
  {
    Stmt ins;
    if (sqlite3_prepare_v2(db.db, insert.c_str(), -1, &ins.st, nullptr) != SQLITE_OK) return db.Error("preparing insert");
    for (const auto& r : rows) {
      for (size_t i = 0; i < columns.size(); ++i) {
        auto it = r.find(columns[i]);
        Bind(ins.st, static_cast<int>(i + 1), it == r.end() ? MetaValue{} : it->second);
      }
      if (sqlite3_step(ins.st) != SQLITE_DONE) return db.Error("loading records");
      sqlite3_reset(ins.st);
    }
  }
  sqlite3_exec(db.db, "COMMIT", nullptr, nullptr, nullptr);
  sqlite3_set_authorizer(db.db, ReadOnlyAuthorizer, nullptr);

  Stmt q;
  const char* tail = nullptr;
  std::string text(sql);
  if (sqlite3_prepare_v2(db.db, text.c_str(), static_cast<int>(text.size()), &q.st, &tail) != SQLITE_OK) {
    return Status::InvalidArgument(fmt::format("query: {} (the table is `records`, columns: {})", sqlite3_errmsg(db.db),
                                               fmt::join(columns, ", ")));
  }
  if (!q.st) return Status::InvalidArgument("query: no statement given");
  for (const char* p = tail; p && *p; ++p) {
    if (!isspace(static_cast<unsigned char>(*p)) && *p != ';') {
      return Status::InvalidArgument("query: give one statement");
    }
  }
  if (!sqlite3_stmt_readonly(q.st)) return Status::InvalidArgument("query: only reading statements are allowed");
  QueryResult out;
  int n = sqlite3_column_count(q.st);
  for (int i = 0; i < n; ++i) out.columns.push_back(sqlite3_column_name(q.st, i));
  int rc;
  while ((rc = sqlite3_step(q.st)) == SQLITE_ROW) {
    std::vector<MetaValue> row;
    row.reserve(n);
    for (int i = 0; i < n; ++i) row.push_back(Column(q.st, i));
    out.rows.push_back(std::move(row));
  }
  if (rc != SQLITE_DONE) return Status::InvalidArgument(fmt::format("query: {}", sqlite3_errmsg(db.db)));
  return out;
}

}  // namespace strata::version
