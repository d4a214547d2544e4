#include "ingest/query_reader.h"

#include <sqlite3.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <memory>
#include <unordered_set>

#include <fmt/format.h>

#include "version/record_table.h"

namespace strata::ingest {
namespace {

struct DbClose {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalize {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};

bool Contains(const std::string& upper, const char* what) { return upper.find(what) != std::string::npos; }

std::optional<ColumnType> FromDeclared(const char* decl) {
  if (decl == nullptr) return std::nullopt;
  std::string u(decl);
  std::transform(u.begin(), u.end(), u.begin(), [](unsigned char c) { return std::toupper(c); });
  if (Contains(u, "BOOL")) return ColumnType::kBool;
  if (Contains(u, "INT")) return ColumnType::kInt64;
  if (Contains(u, "CHAR") || Contains(u, "CLOB") || Contains(u, "TEXT")) return ColumnType::kString;
  if (Contains(u, "REAL") || Contains(u, "FLOA") || Contains(u, "DOUB")) return ColumnType::kDouble;
  return std::nullopt;
}

ColumnType FromStorage(int t) {
  switch (t) {
    case SQLITE_INTEGER: return ColumnType::kInt64;
    case SQLITE_FLOAT: return ColumnType::kDouble;
    default: return ColumnType::kString;
  }
}

Status SqliteError(sqlite3* db, int rc, const std::string& name, std::string_view doing) {
  std::string msg = fmt::format("database {}: {}: {}", name, doing, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  int primary = rc & 0xff;
  if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) return Status::Corruption(std::move(msg));
  if (primary == SQLITE_IOERR) return Status::IOError(std::move(msg));
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) return Status::IOError(std::move(msg), true);
  return Status::InvalidArgument(std::move(msg));
}

}  // namespace

Status ReadSqliteQuery(Env* env, const std::string& db_path, const QueryOptions& options, ItemSink* sink) {
  const std::string name = options.name.empty() ? db_path : options.name;
  if (!env->FileExists(db_path)) return Status::NotFound(fmt::format("database {} does not exist", db_path));
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(db_path.c_str(), &raw, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
  std::unique_ptr<sqlite3, DbClose> db(raw);
  if (rc != SQLITE_OK) return SqliteError(raw, rc, name, "open");
  sqlite3_busy_timeout(db.get(), options.busy_timeout_ms);
  sqlite3_set_authorizer(db.get(), &version::ReadOnlyAuthorizer, nullptr);

  sqlite3_stmt* raw_stmt = nullptr;
  const char* tail = nullptr;
  rc = sqlite3_prepare_v2(db.get(), options.query.c_str(), static_cast<int>(options.query.size()), &raw_stmt, &tail);
  std::unique_ptr<sqlite3_stmt, StmtFinalize> stmt(raw_stmt);
  if (rc != SQLITE_OK) return SqliteError(db.get(), rc, name, "query");
  if (!stmt) return Status::InvalidArgument(fmt::format("database {}: the query is empty", name));
  if (tail && std::string_view(tail).find_first_not_of(" \t\r\n;") != std::string_view::npos) {
    return Status::InvalidArgument(fmt::format("database {}: give one statement, not several", name));
  }
  if (!sqlite3_stmt_readonly(stmt.get())) {
    return Status::InvalidArgument(fmt::format("database {}: the query would write; only reads are run", name));
  }

  const int ncols = sqlite3_column_count(stmt.get());
  if (ncols == 0) return Status::InvalidArgument(fmt::format("database {}: the statement returns no columns", name));
  Schema schema;
  std::vector<bool> declared(ncols, false);
  std::unordered_set<std::string> names;
  for (int i = 0; i < ncols; ++i) {
    const char* n = sqlite3_column_name(stmt.get(), i);
    std::string col = n ? n : fmt::format("c{}", i + 1);
    if (!names.insert(col).second) {
      return Status::InvalidArgument(
          fmt::format("database {}: the query returns two columns named '{}' (rename one with AS)", name, col));
    }
    auto t = FromDeclared(sqlite3_column_decltype(stmt.get(), i));
    declared[i] = t.has_value();
    schema.columns.push_back({std::move(col), t.value_or(ColumnType::kString)});
  }

  Record record;
  record.fields.resize(ncols);
  for (int i = 0; i < ncols; ++i) record.fields[i].first = schema.columns[i].name;
  uint64_t row = 0;
  bool started = false;
  for (;;) {
    if (options.max_rows && row >= options.max_rows) break;
    rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return SqliteError(db.get(), rc, name, fmt::format("row {}", row + 1));
    ++row;
    if (!started) {
      for (int i = 0; i < ncols; ++i) {
        if (!declared[i]) schema.columns[i].type = FromStorage(sqlite3_column_type(stmt.get(), i));
      }
      STRATA_RETURN_IF_ERROR(sink->StartTable(name, schema));
      started = true;
    }
    std::string where = fmt::format("{}:{}", name, row);
    bool ok = true;
    for (int i = 0; i < ncols && ok; ++i) {
      const Column& col = schema.columns[i];
      Value& out = record.fields[i].second;
      int t = sqlite3_column_type(stmt.get(), i);
      auto type_error = [&] {
        const unsigned char* txt = sqlite3_column_text(stmt.get(), i);
        std::string shown = txt ? reinterpret_cast<const char*>(txt) : "";
        if (shown.size() > 40) shown = shown.substr(0, 40) + "...";
        sink->Reject(where, "type", fmt::format("column '{}': \"{}\" is not a {}", PrintableName(col.name),
                                                PrintableName(shown), ColumnTypeName(col.type)));
        ok = false;
      };
      if (t == SQLITE_NULL) {
        out = std::monostate{};
        continue;
      }
      if (t == SQLITE_BLOB) {
        sink->Reject(where, "blob", fmt::format("column '{}' holds a BLOB; records hold text, numbers and booleans",
                                                PrintableName(col.name)));
        ok = false;
        continue;
      }
      switch (col.type) {
        case ColumnType::kInt64:
          if (t == SQLITE_INTEGER) out = static_cast<int64_t>(sqlite3_column_int64(stmt.get(), i));
          else type_error();
          break;
        case ColumnType::kDouble:
          if (t == SQLITE_INTEGER || t == SQLITE_FLOAT) out = sqlite3_column_double(stmt.get(), i);
          else type_error();
          break;
        case ColumnType::kBool: {
          int64_t v = sqlite3_column_int64(stmt.get(), i);
          if (t == SQLITE_INTEGER && (v == 0 || v == 1)) out = v == 1;
          else type_error();
          break;
        }
        case ColumnType::kString: {
          const unsigned char* txt = sqlite3_column_text(stmt.get(), i);
          int len = sqlite3_column_bytes(stmt.get(), i);
          std::string s(txt ? reinterpret_cast<const char*>(txt) : "", static_cast<size_t>(len));
          if (!IsValidUtf8(s)) {
            sink->Reject(where, "encoding", fmt::format("column '{}' is not valid UTF-8", PrintableName(col.name)));
            ok = false;
          } else {
            out = std::move(s);
          }
          break;
        }
      }
    }
    record.line = row;
    if (ok) STRATA_RETURN_IF_ERROR(sink->AddRecord(record));
  }
  if (!started) STRATA_RETURN_IF_ERROR(sink->StartTable(name, schema));
  return Status::OK();
}

}  // namespace strata::ingest
