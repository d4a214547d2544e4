// The neutral interface between ingest's source readers and whatever stores what they read.
//
// A reader (archive, directory, CSV, JSON Lines, IDX, SQLite query, ...) walks one source and
// hands what it finds to an ItemSink, in a deterministic order, holding a bounded amount of
// memory: file contents are streamed through a SequentialFile, tabular data one Record at a
// time. Readers know nothing about the lake; the sink knows nothing about the source format.
//
// Two kinds of problem are kept apart:
//  - a problem with one item or row (a path that escapes, a symlink, a malformed CSV row,
//    invalid UTF-8) is passed to Reject() and the walk goes on: the caller keeps it for the
//    curation / quarantine report;
//  - a problem with the source as a whole (unreadable file, corrupt or truncated archive, a
//    global limit exceeded, a failing query) ends the walk with a non-OK Status.
// A non-OK Status returned by the sink ends the walk too and is returned unchanged.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "strata/env.h"
#include "strata/status.h"

namespace strata::ingest {

// ---- files ----

struct FileItem {
  // Relative, '/'-separated, never empty; no "", "." or ".." component, no leading '/', no NUL
  // or control byte, valid UTF-8 (see CheckItemPath).
  std::string path;
  uint64_t size = 0;        // content length in bytes; exact when size_exact
  bool size_exact = true;   // false when the source did not say (some zip entries)
  int64_t mtime_ns = 0;     // modification time, nanoseconds since the epoch (0 if unknown)
  uint32_t mode = 0644;     // permission bits (07777)
  // Source-specific facts: "label" (ImageFolder, IDX, labels join), "index" (IDX), ...
  std::map<std::string, std::string> meta;
};

// ---- tabular records ----

enum class ColumnType : uint8_t { kInt64 = 0, kDouble = 1, kBool = 2, kString = 3 };
std::string_view ColumnTypeName(ColumnType type);  // "int64", "double", "bool", "string"

// A typed cell. std::monostate is SQL NULL (an empty unquoted CSV field, a JSON null or a
// missing JSON key). Every column is nullable.
using Value = std::variant<std::monostate, int64_t, double, bool, std::string>;
inline bool IsNull(const Value& v) { return std::holds_alternative<std::monostate>(v); }
// A value as text: "" for null, "true"/"false", shortest round-trip form for doubles.
std::string ValueToString(const Value& v);

struct Column {
  std::string name;
  ColumnType type = ColumnType::kString;
  bool operator==(const Column&) const = default;
};
struct Schema {
  std::vector<Column> columns;
  bool operator==(const Schema&) const = default;
  // Index of the column named `name`, or -1.
  int Find(std::string_view name) const;
};

// One row. fields[i] belongs to the schema's column i and holds a value of that column's
// type or null, in the schema's order.
struct Record {
  uint64_t line = 0;  // where the row starts in the source: 1-based line (CSV, JSONL), row (SQL)
  std::vector<std::pair<std::string, Value>> fields;
};

// ---- the sink ----

// Receives per-item problems. Split from ItemSink so that helpers that only report (the labels
// loader) need no more.
class RejectSink {
 public:
  virtual ~RejectSink() = default;
  // `where`: the item ("archive.tar:a/b.png", "data.csv:17"); `rule`: a short stable name a
  // report can group by ("path-traversal", "symlink", "csv-field-count", ...); `reason`: a
  // sentence for a person. Must not fail; called from the reader's thread.
  virtual void Reject(std::string_view where, std::string_view rule, std::string_view reason) = 0;
};

// Implemented by the caller. Calls come from one thread, in the reader's order.
class ItemSink : public RejectSink {
 public:
  // One file to store. `content` yields exactly the file's bytes and is valid only during the
  // call: read what you need before returning (the reader skips what is left). A content
  // Read() that fails (corrupt archive, a limit exceeded) fails the whole walk, whatever this
  // returns.
  virtual Status AddFile(const FileItem& item, SequentialFile* content) = 0;
  // Called once per tabular source before its first AddRecord (also when it has no rows).
  // `source` names it as in Reject's `where`.
  virtual Status StartTable(std::string_view source, const Schema& schema) = 0;
  // One row conforming to the schema last given to StartTable. The reader may reuse the
  // Record's storage after the call returns.
  virtual Status AddRecord(const Record& record) = 0;
};

// ---- shared helpers ----

// True when `s` is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
bool IsValidUtf8(std::string_view s);

// The outcome of checking a path taken from an untrusted source.
struct PathCheck {
  bool ok = false;
  std::string path;    // the normalised path when ok ("./a//b" -> "a/b")
  std::string rule;    // when not ok: "path-absolute", "path-traversal", "path-control-byte", ...
  std::string reason;  // when not ok: a sentence
};
// Checks a member name from an archive (or similar). Only harmless spellings are normalised
// ("./" prefixes, repeated or trailing '/'); anything that could address a place outside the
// destination (absolute, "..", a drive letter, a backslash) or confuse a terminal or another
// tool (control bytes, invalid UTF-8, over `max_bytes`) is refused, never rewritten.
PathCheck CheckItemPath(std::string_view raw, size_t max_bytes = 4096);

// `s` with control bytes, backslashes and invalid UTF-8 written as \xNN, for messages and
// reports (a hostile name must not drive the terminal that shows it).
std::string PrintableName(std::string_view s);

// A SequentialFile over bytes owned by someone else (they must outlive it).
class MemorySequentialFile final : public SequentialFile {
 public:
  explicit MemorySequentialFile(std::string_view data) : data_(data) {}
  Status Read(size_t n, uint8_t* dst, size_t* got) override;

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

}  // namespace strata::ingest
