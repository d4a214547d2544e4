// Rows of a PostgreSQL query as Records (libpqxx), the same stream ReadSqliteQuery yields.
//
// `conninfo` is a libpq connection string: a URI (postgresql://user@host:5432/db?sslmode=...)
// or key=value pairs ("host=... dbname=..."). A connect_timeout of 10 s is added unless it
// names one; the client encoding is UTF8, TimeZone UTC and DateStyle ISO, so text is the same
// whatever the server's defaults.
//
// The query runs in a transaction made read-only (SET TRANSACTION READ ONLY) before anything
// else, with statement_timeout = options.statement_timeout_ms, as the one statement of a
// server-side cursor (DECLARE ... CURSOR FOR <query>): it must be a SELECT, VALUES or a WITH
// of reads; a second statement, a write (also one hidden in a function) or SELECT FOR UPDATE
// is refused by the server. Rows are fetched `fetch_rows` at a time, so memory stays bounded
// whatever the result's size. The transaction is rolled back at the end: nothing is changed.
//
// Types, from the result's type OIDs: int2/int4/int8/oid -> int64; float4/float8 -> double
// (NaN and +-Infinity included); bool -> bool; numeric -> string, its exact decimal text (a
// double would silently round numbers of more than 15 digits, and libpqxx 6 does not expose the
// column's declared precision: cast with ::float8 in the query for a double); bytea rejects the
// row ("blob"), as SQLite's BLOBs do; everything else (text, varchar, date, timestamp, json,
// uuid, arrays ...) -> string in PostgreSQL's text form; NULL -> null. `line` is the 1-based row
// number. Per row, rejected with `where` = "NAME:ROW": a bytea value ("blob"), text that is not
// UTF-8 ("encoding").
//
// Errors, never showing a password from `conninfo` (it is removed from every message): a
// server that cannot be reached or a connection lost midway (kIOError, retryable); a refused
// login (kUnauthenticated); a missing table or column (kNotFound); a query that does not parse,
// fails, writes or returns two columns of one name (kInvalidArgument); no privilege
// (kPermissionDenied); statement_timeout reached (kAborted).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "ingest/query_reader.h"
#include "ingest/source.h"

namespace strata::ingest {

struct PostgresOptions {
  int statement_timeout_ms = 10 * 60 * 1000;  // per statement (DECLARE, each FETCH); 0: none
  int connect_timeout_s = 10;                 // unless the connection string gives one
  int fetch_rows = 1000;                      // rows per FETCH
};

// `options.name` names the source in Reject and StartTable; default: RedactConninfo(conninfo).
Status ReadPostgresQuery(const std::string& conninfo, const QueryOptions& options, ItemSink* sink,
                         const PostgresOptions& pg = {});

// True for a libpq URI ("postgresql://..." or "postgres://...").
bool IsPostgresUri(std::string_view source);

// `conninfo` with any password removed (the URI's user:password@, a password= parameter or
// key=value pair): what may be shown and recorded.
std::string RedactConninfo(std::string_view conninfo);

// The database a connection string names (its dbname), or "" when it names none.
std::string ConninfoDatabase(const std::string& conninfo);

}  // namespace strata::ingest
