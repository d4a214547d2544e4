// Rows of a database query as Records. SQLite now; a PostgreSQL reader will take the same
// QueryOptions (with a connection string in place of the path) and yield the same stream.
//
// SQLite: the database is opened read-only, and an authorizer allows only reads (SELECT, WITH,
// functions): ATTACH, PRAGMA and every write are refused, so a query cannot reach another file
// or change this one. The schema comes from the result's columns: the declared type (BOOL* is
// bool, *INT* int64, *CHAR*/*CLOB*/*TEXT* string, *REAL*/*FLOA*/*DOUB* double) or, for
// expressions and other declarations, the storage class of the first row's value (null: string).
// Rows are stepped and handed over one at a time (bounded memory).
//
// Errors: a missing database (kNotFound), a query that does not compile or is not read-only
// (kInvalidArgument, with SQLite's message), two result columns with one name
// (kInvalidArgument: use AS), a damaged database (kCorruption). Per row, rejected with
// `where` = "NAME:ROW": a value that does not fit its column ("type"), a BLOB ("blob"), text
// that is not UTF-8 ("encoding").
#pragma once

#include <cstdint>
#include <string>

#include "ingest/source.h"

namespace strata::ingest {

struct QueryOptions {
  std::string query;          // one statement
  uint64_t max_rows = 0;      // stop after this many rows; 0: all
  int busy_timeout_ms = 5000;
  std::string name;           // names the source in Reject and StartTable; default: the path
};

Status ReadSqliteQuery(Env* env, const std::string& db_path, const QueryOptions& options, ItemSink* sink);

}  // namespace strata::ingest
