#include "ingest/postgres_reader.h"

#include <libpq-fe.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <memory>
#include <optional>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>
#include <pqxx/pqxx>

namespace strata::ingest {
namespace {

// Type OIDs (pg_type.oid; fixed for the built-in types).
constexpr pqxx::oid kBool = 16, kBytea = 17, kInt8 = 20, kInt2 = 21, kInt4 = 23, kOid = 26, kFloat4 = 700,
                    kFloat8 = 701;

ColumnType TypeOf(pqxx::oid oid) {
  switch (oid) {
    case kInt2: case kInt4: case kInt8: case kOid: return ColumnType::kInt64;
    case kFloat4: case kFloat8: return ColumnType::kDouble;
    case kBool: return ColumnType::kBool;
    default: return ColumnType::kString;  // numeric too: its exact decimal text
  }
}

int FromHex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && FromHex(s[i + 1]) >= 0 && FromHex(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(FromHex(s[i + 1]) * 16 + FromHex(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

size_t SchemeLength(std::string_view s) {
  for (std::string_view scheme : {"postgresql://", "postgres://"}) {
    if (s.starts_with(scheme)) return scheme.size();
  }
  return 0;
}

// A connection string taken apart just enough to remove its password. `secrets` gets every
// spelling of the password found (as written and percent-decoded), for scrubbing messages.
std::string Redact(std::string_view conninfo, std::vector<std::string>* secrets) {
  auto keep_secret = [&](std::string_view raw, bool uri) {
    if (raw.empty() || !secrets) return;
    secrets->emplace_back(raw);
    if (uri) secrets->push_back(PercentDecode(raw));
  };
  if (size_t scheme = SchemeLength(conninfo)) {
    // libpq: the user info runs to the first '@' that comes before any '/'.
    std::string out(conninfo.substr(0, scheme));
    std::string_view rest = conninfo.substr(scheme);
    size_t stop = rest.find_first_of("@/");
    if (stop != std::string_view::npos && rest[stop] == '@') {
      std::string_view userinfo = rest.substr(0, stop);
      size_t colon = userinfo.find(':');
      if (colon != std::string_view::npos) {
        keep_secret(userinfo.substr(colon + 1), true);
        userinfo = userinfo.substr(0, colon);
      }
      out += std::string(userinfo) + "@";
      rest = rest.substr(stop + 1);
    }
    size_t q = rest.find('?');
    out += std::string(rest.substr(0, q));
    if (q == std::string_view::npos) return out;
    std::string_view params = rest.substr(q + 1);
    std::string kept;
    while (true) {
      size_t amp = params.find('&');
      std::string_view p = params.substr(0, amp);
      size_t eq = p.find('=');
      if (PercentDecode(p.substr(0, eq)) == "password") {
        if (eq != std::string_view::npos) keep_secret(p.substr(eq + 1), true);
      } else if (!p.empty()) {
        kept += (kept.empty() ? "" : "&") + std::string(p);
      }
      if (amp == std::string_view::npos) break;
      params = params.substr(amp + 1);
    }
    if (!kept.empty()) out += "?" + kept;
    return out;
  }
  // key = value pairs; a value is a word or '...' with \' and \\ escapes.
  std::string out;
  size_t i = 0;
  const size_t n = conninfo.size();
  auto space = [&](size_t at) { return at < n && std::isspace(static_cast<unsigned char>(conninfo[at])); };
  while (i < n) {
    size_t start = i;
    while (space(i)) ++i;
    size_t key_begin = i;
    while (i < n && conninfo[i] != '=' && !space(i)) ++i;
    std::string_view key = conninfo.substr(key_begin, i - key_begin);
    while (space(i)) ++i;
    if (i >= n || conninfo[i] != '=') {  // malformed: keep the rest, minus nothing we can name
      out += std::string(conninfo.substr(start));
      break;
    }
    ++i;
    while (space(i)) ++i;
    size_t value_begin = i;
    std::string value;
    if (i < n && conninfo[i] == '\'') {
      ++i;
      while (i < n && conninfo[i] != '\'') {
        if (conninfo[i] == '\\' && i + 1 < n) ++i;
        value.push_back(conninfo[i++]);
      }
      if (i < n) ++i;
    } else {
      while (i < n && !space(i)) {
        if (conninfo[i] == '\\' && i + 1 < n) ++i;
        value.push_back(conninfo[i++]);
      }
    }
    if (key == "password") {
      keep_secret(conninfo.substr(value_begin, i - value_begin), false);
      keep_secret(value, false);
    } else {
      out += std::string(conninfo.substr(start, i - start));
    }
  }
  size_t first = out.find_first_not_of(" \t\r\n");
  return first == std::string::npos ? std::string() : out.substr(first);
}

// The password as libpq reads it (and the rest of the options), or nothing when it does not parse.
std::optional<std::string> ConninfoOption(const std::string& conninfo, std::string_view key, bool* parsed = nullptr) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (err) PQfreemem(err);
  if (parsed) *parsed = opts != nullptr;
  if (!opts) return std::nullopt;
  std::optional<std::string> found;
  for (PQconninfoOption* o = opts; o->keyword; ++o) {
    if (key == o->keyword && o->val) found = o->val;
  }
  PQconninfoFree(opts);
  return found;
}

class Scrubber {
 public:
  explicit Scrubber(const std::string& conninfo) {
    Redact(conninfo, &secrets_);
    if (auto pw = ConninfoOption(conninfo, "password"); pw && !pw->empty()) secrets_.push_back(*pw);
    std::sort(secrets_.begin(), secrets_.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
  }
  std::string operator()(std::string msg) const {
    for (const auto& s : secrets_) {
      if (s.empty()) continue;
      for (size_t at = msg.find(s); at != std::string::npos; at = msg.find(s, at + 3)) msg.replace(at, s.size(), "***");
    }
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    return msg;
  }

 private:
  std::vector<std::string> secrets_;
};

bool Has(const std::string& s, std::string_view what) { return s.find(what) != std::string::npos; }

Status ConnectError(const std::string& name, const std::string& msg) {
  std::string text = fmt::format("database {}: cannot connect: {}", name, msg);
  if (Has(msg, "authentication failed") || Has(msg, "password") || Has(msg, "no pg_hba.conf entry") ||
      (Has(msg, "role \"") && Has(msg, "does not exist"))) {
    return Status::Unauthenticated(std::move(text));
  }
  if (Has(msg, "database \"") && Has(msg, "does not exist")) return Status::NotFound(std::move(text));
  return Status::IOError(std::move(text), true);
}

Status SqlError(const std::string& name, const std::string& state, const std::string& msg) {
  std::string text = fmt::format("database {}: {} (SQLSTATE {})", name, msg, state);
  if (state == "25006") {
    return Status::InvalidArgument(fmt::format("database {}: the query would write; only reads are run: {}", name, msg));
  }
  if (state == "42601" && Has(msg, "multiple commands")) {
    return Status::InvalidArgument(fmt::format("database {}: give one statement, not several", name));
  }
  if (state == "57014") {
    return Status::Aborted(fmt::format("database {}: the query ran past statement_timeout: {}", name, msg));
  }
  if (state == "42P01" || state == "42703" || state == "42883" || state == "3F000" || state == "3D000") {
    return Status::NotFound(std::move(text));
  }
  if (state == "42501") return Status::PermissionDenied(std::move(text));
  if (state.starts_with("28")) return Status::Unauthenticated(std::move(text));
  if (state.starts_with("08") || state.starts_with("53") || state.starts_with("57P")) {
    return Status::IOError(std::move(text), true);
  }
  return Status::InvalidArgument(std::move(text));
}

std::string WithConnectTimeout(const std::string& conninfo, int seconds) {
  if (seconds <= 0 || ConninfoOption(conninfo, "connect_timeout")) return conninfo;
  if (SchemeLength(conninfo)) {
    return conninfo + (conninfo.find('?') == std::string::npos ? "?" : "&") + fmt::format("connect_timeout={}", seconds);
  }
  return conninfo + fmt::format(" connect_timeout={}", seconds);
}

std::optional<double> ParseDouble(std::string_view s) {
  if (s == "NaN") return std::numeric_limits<double>::quiet_NaN();
  if (s == "Infinity") return std::numeric_limits<double>::infinity();
  if (s == "-Infinity") return -std::numeric_limits<double>::infinity();
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<int64_t> ParseInt(std::string_view s) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

constexpr const char* kCursor = "strata_ingest";

}  // namespace

bool IsPostgresUri(std::string_view source) { return SchemeLength(source) != 0; }

std::string RedactConninfo(std::string_view conninfo) { return Redact(conninfo, nullptr); }

std::string ConninfoDatabase(const std::string& conninfo) {
  return ConninfoOption(conninfo, "dbname").value_or("");
}

Status ReadPostgresQuery(const std::string& conninfo, const QueryOptions& options, ItemSink* sink,
                         const PostgresOptions& pg) {
  const std::string name = options.name.empty() ? RedactConninfo(conninfo) : options.name;
  const Scrubber scrub(conninfo);
  bool parsed = false;
  ConninfoOption(conninfo, "dbname", &parsed);
  if (!parsed) {
    // libpq's message may quote the string, password included: say only where to look.
    return Status::InvalidArgument(fmt::format(
        "database {}: the connection string does not parse (a postgresql:// URI or key=value pairs)", name));
  }
  std::string query = options.query;
  while (!query.empty() && (query.back() == ';' || std::isspace(static_cast<unsigned char>(query.back())))) {
    query.pop_back();
  }
  if (query.find_first_not_of(" \t\r\n") == std::string::npos) {
    return Status::InvalidArgument(fmt::format("database {}: the query is empty", name));
  }

  std::unique_ptr<pqxx::connection> conn;
  try {
    conn = std::make_unique<pqxx::connection>(WithConnectTimeout(conninfo, pg.connect_timeout_s));
  } catch (const pqxx::broken_connection& e) {
    return ConnectError(name, scrub(e.what()));
  } catch (const std::exception& e) {
    return ConnectError(name, scrub(e.what()));
  }

  std::string step = "start";
  try {
    conn->set_client_encoding("UTF8");
    pqxx::work tx(*conn, "strata_ingest");
    // First, before the query can run: no write, whatever the statement or its functions do.
    tx.exec0("SET TRANSACTION READ ONLY");
    tx.exec0(fmt::format("SET LOCAL statement_timeout = {}", std::max(pg.statement_timeout_ms, 0)));
    tx.exec0("SET LOCAL TimeZone = 'UTC'");
    tx.exec0("SET LOCAL DateStyle = 'ISO, YMD'");
    tx.exec0("SET LOCAL extra_float_digits = 3");
    // One statement (the extended protocol refuses several); a cursor takes only SELECT,
    // VALUES or a WITH without data-modifying parts.
    step = "query";
    tx.exec_params(fmt::format("DECLARE {} NO SCROLL CURSOR FOR {}", kCursor, query));

    Schema schema;
    std::vector<pqxx::oid> oids;
    bool started = false;
    Record record;
    uint64_t row = 0;
    const int batch = std::max(pg.fetch_rows, 1);
    for (;;) {
      uint64_t want = static_cast<uint64_t>(batch);
      if (options.max_rows) {
        if (row >= options.max_rows) break;
        want = std::min<uint64_t>(want, options.max_rows - row);
      }
      step = fmt::format("row {}", row + 1);
      pqxx::result r = tx.exec(fmt::format("FETCH FORWARD {} FROM {}", want, kCursor));
      if (!started) {
        const int ncols = static_cast<int>(r.columns());
        if (ncols == 0) return Status::InvalidArgument(fmt::format("database {}: the statement returns no columns", name));
        std::unordered_set<std::string> names;
        for (int i = 0; i < ncols; ++i) {
          std::string col = r.column_name(static_cast<pqxx::row::size_type>(i));
          if (!names.insert(col).second) {
            return Status::InvalidArgument(fmt::format(
                "database {}: the query returns two columns named '{}' (rename one with AS)", name, PrintableName(col)));
          }
          oids.push_back(r.column_type(i));
          schema.columns.push_back({std::move(col), TypeOf(oids.back())});
        }
        record.fields.resize(ncols);
        for (int i = 0; i < ncols; ++i) record.fields[i].first = schema.columns[i].name;
        STRATA_RETURN_IF_ERROR(sink->StartTable(name, schema));
        started = true;
      }
      for (const auto& fields : r) {
        ++row;
        std::string where = fmt::format("{}:{}", name, row);
        bool ok = true;
        for (size_t i = 0; i < schema.columns.size() && ok; ++i) {
          const Column& col = schema.columns[i];
          const pqxx::field f = fields[static_cast<pqxx::row::size_type>(i)];
          Value& out = record.fields[i].second;
          if (f.is_null()) {
            out = std::monostate{};
            continue;
          }
          std::string_view text(f.c_str(), f.size());
          auto type_error = [&] {
            std::string shown(text.substr(0, 40));
            if (text.size() > 40) shown += "...";
            sink->Reject(where, "type", fmt::format("column '{}': \"{}\" is not a {}", PrintableName(col.name),
                                                    PrintableName(shown), ColumnTypeName(col.type)));
            ok = false;
          };
          switch (col.type) {
            case ColumnType::kInt64:
              if (auto v = ParseInt(text)) out = *v;
              else type_error();
              break;
            case ColumnType::kDouble:
              if (auto v = ParseDouble(text)) out = *v;
              else type_error();
              break;
            case ColumnType::kBool:
              if (text == "t" || text == "f") out = text == "t";
              else type_error();
              break;
            case ColumnType::kString:
              if (oids[i] == kBytea) {
                sink->Reject(where, "blob", fmt::format("column '{}' is bytea; records hold text, numbers and booleans",
                                                        PrintableName(col.name)));
                ok = false;
              } else if (!IsValidUtf8(text)) {
                sink->Reject(where, "encoding", fmt::format("column '{}' is not valid UTF-8", PrintableName(col.name)));
                ok = false;
              } else {
                out = std::string(text);
              }
              break;
          }
        }
        record.line = row;
        if (ok) STRATA_RETURN_IF_ERROR(sink->AddRecord(record));
      }
      if (r.size() < want) break;
    }
    tx.abort();  // read-only: nothing to keep
    return Status::OK();
  } catch (const pqxx::broken_connection& e) {
    return Status::IOError(fmt::format("database {}: {}: the connection was lost: {}", name, step, scrub(e.what())),
                           true);
  } catch (const pqxx::sql_error& e) {
    return SqlError(name, e.sqlstate(), scrub(e.what()));
  } catch (const std::exception& e) {
    return Status::IOError(fmt::format("database {}: {}: {}", name, step, scrub(e.what())), true);
  }
}

}  // namespace strata::ingest
