// CSV (RFC 4180) and JSON Lines, read as a stream of typed Records.
//
// Column types are given by the caller (TabularOptions::schema) or inferred from the first rows:
// the reader buffers up to `infer_rows` rows (and at most `infer_bytes` of their text), gives
// each column the narrowest type that holds every non-null value seen (bool, int64, double,
// string; int64 and double widen to double, any other mix to string, an all-null column is
// string), calls ItemSink::StartTable, and then streams every row. A later value that does not
// fit its column's type rejects its row.
//
// Per-row problems go to ItemSink::Reject with `where` = "NAME:LINE" (LINE is the 1-based line
// where the row starts) and the walk goes on:
//   csv-quote            a quote inside an unquoted field, text after a closing quote, or an
//                        unterminated quoted field at the end of the input
//   csv-field-count      a row whose field count differs from the header's
//   too-long             a field over max_field_bytes or a row/line over max_line_bytes (the
//                        rest of it is read and dropped, so memory stays bounded)
//   too-many-columns     more than max_columns fields or keys
//   encoding             invalid UTF-8
//   type                 a value that does not fit its column's type
//   json-syntax, json-not-object, json-depth, json-unknown-column, json-empty-key
// A damaged header (CSV) or a given schema the header contradicts ends the walk with
// kInvalidArgument; so does an input with no header row.
//
// CSV details: the delimiter is configurable; fields may be quoted with '"', a quote inside a
// quoted field is written twice; records end with LF, CRLF or CR; quoted fields may span lines.
// An unquoted empty field is null, a quoted empty field ("") is the empty string. Completely
// empty lines are skipped. A leading UTF-8 byte order mark is ignored. Without a header row
// the columns are named c1, c2, ... after the first row's width.
//
// JSON Lines details: one JSON object per line (LF or CRLF); lines of only whitespace are
// skipped. Columns are the keys in order of first appearance; a missing key is null. Arrays and
// objects are stored as their compact JSON text in a string column. Integers beyond int64 are
// doubles.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "ingest/source.h"

namespace strata::ingest {

struct TabularOptions {
  std::optional<Schema> schema;          // when set, nothing is inferred
  bool infer_types = true;               // false: every inferred column is a string
  size_t infer_rows = 1000;
  size_t infer_bytes = size_t{16} << 20;
  size_t max_line_bytes = size_t{16} << 20;  // one CSV record (all its lines) or one JSONL line
  size_t max_field_bytes = size_t{1} << 20;  // CSV
  size_t max_columns = 4096;
  std::string name;  // names the source in Reject and errors ("<input>" when empty)
};

struct CsvOptions : TabularOptions {
  char delimiter = ',';
  bool header = true;
};

struct JsonlOptions : TabularOptions {
  size_t max_depth = 64;  // nesting of arrays and objects in one line
};

// Reads `input` to its end. `input` is used by this thread only, for the duration of the call.
Status ReadCsv(SequentialFile* input, const CsvOptions& options, ItemSink* sink);
Status ReadJsonl(SequentialFile* input, const JsonlOptions& options, ItemSink* sink);

// The same for a file read through `env`; an empty options.name becomes the path.
Status ReadCsvFile(Env* env, const std::string& path, CsvOptions options, ItemSink* sink);
Status ReadJsonlFile(Env* env, const std::string& path, JsonlOptions options, ItemSink* sink);

}  // namespace strata::ingest
