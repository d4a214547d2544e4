// Records: the metadata rows of a commit (`.strata/records.jsonl`) and SQL over them.
//
// The file holds one JSON object per line, sorted by its "path" key, each object's keys sorted;
// values are null, booleans, integers, floats or strings. It is an ordinary file of the tree, so
// it is chunked like any other: rows that did not change dedupe against the parent's file.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "store/object_store.h"
#include "store/tree.h"
#include "strata/lake.h"

namespace strata::version {

using RecordRows = std::map<std::string, RecordMeta, std::less<>>;  // key ("path") -> columns

// Untrusted input (fuzzed): a malformed line gives kCorruption naming the line.
Result<RecordRows> ParseRecordsFile(std::string_view text);
std::string SerializeRecordsFile(const RecordRows& rows);
// Reads and parses the records file `entry` (the file at kRecordsPath of a tree), every chunk
// authenticated; `text`, when given, receives its bytes.
Result<RecordRows> ReadRecordsFile(store::ObjectStore* objects, const store::TreeEntry& entry,
                                   std::string* text = nullptr);

// Checks a metadata row's key and columns: kInvalidArgument for an empty or overlong key or
// column name, a reserved column (path, size, content), or a NUL byte.
Status ValidateRecord(std::string_view key, const RecordMeta& columns);

// Runs `sql` over `rows` exposed as table `records` (a column per distinct key, `path` first).
// Only reading statements are authorized; ATTACH, writes, pragmas and extensions are refused.
Result<QueryResult> RunQuery(const std::vector<RecordMeta>& rows, std::string_view sql);

// Text of a value for tables and CSV ("" for null).
std::string MetaValueText(const MetaValue& v);
// A value as JSON (non-finite floats, which JSON cannot hold, as null).
nlohmann::json MetaValueJson(const MetaValue& v);

// The SQLite authorizer (for sqlite3_set_authorizer) of statements that only read: SELECT,
// reads, functions and recursive queries; everything else (writes, ATTACH, PRAGMA, ...) is denied.
int ReadOnlyAuthorizer(void*, int action, const char*, const char*, const char*, const char*);

}  // namespace strata::version
