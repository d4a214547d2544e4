// Ingest: bring raw data into a dataset as one commit, with its source recorded.
//
//   strata::IngestOptions o;
//   o.image_folder = true;                                     // class-per-folder labels
//   auto r = strata::Ingest(lake, "/data/pets.tar.gz", "pets@main", o);
//   // r->commit.unchanged: the same data was ingested before; nothing new was stored.
//
// Sources: a directory (optionally ImageFolder), an archive (tar, tar.gz/zst/xz/bz2, zip: read
// streamed, never extracted), CSV or JSON Lines (one record per row), IDX image/label pairs
// (MNIST, Fashion-MNIST), or a SQL query against a SQLite or PostgreSQL database (run read-only). Files become files of the
// dataset; labels, sources, image sizes and table rows become its records (strata/lake.h), so
// `Lake::Query` can select them. A problem with one item (a path that escapes, a link, a device,
// a malformed row, invalid UTF-8) is rejected with a rule and reason, kept in the commit at
// `.strata/rejects.jsonl`, and the ingest goes on; a problem with the whole source (unreadable,
// corrupt or truncated archive, a limit exceeded, a failing query) fails it and the branch does
// not move. Objects are made durable every `checkpoint_bytes`, so re-running an interrupted
// ingest stores nothing twice.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "strata/lake.h"

namespace strata {

struct IngestOptions {
  // "auto" (by the source: a directory, a file's extension or name, "sqlite:PATH", or a
  // "postgresql://" / "postgres://" URI), "dir", "archive", "csv", "jsonl", "idx", "sqlite",
  // "postgres" (the source is a libpq connection string; the report's source has no password).
  std::string format = "auto";
  std::string prefix;          // where in the dataset ("raw/2026-11"); default the root
  bool image_folder = false;   // dir/archive: the parent folder's name is the label
  std::string labels_csv;      // a CSV (columns file,label) joined to the files by name
  std::string idx_labels;      // idx: the labels file (default: the images file's sibling)
  std::string query;           // sqlite, postgres: the SELECT to run
  bool replace = false;        // the commit holds only this source (default: added to the head)
  // Archive limits (bombs): total and per-entry uncompressed bytes, entries, expansion ratio.
  uint64_t max_total_bytes = uint64_t{256} << 30;
  uint64_t max_entry_bytes = uint64_t{16} << 30;
  uint64_t max_entries = 10'000'000;
  double max_ratio = 250.0;
  uint64_t checkpoint_bytes = uint64_t{1} << 30;
  bool progress = false;       // a progress line on stderr
  CommitOptions commit;        // message, author, meta (source facts are added to meta)
};

struct IngestReject {
  std::string where, rule, reason;
};

struct IngestReport {
  std::string source;          // absolute path or URI
  std::string format;          // as detected
  std::string source_sha256;   // of the source file (empty for directories and queries)
  uint64_t files = 0, bytes = 0;
  uint64_t records = 0;        // table rows
  uint64_t labelled = 0;       // files given a label
  std::vector<IngestReject> rejects;
  CommitResult commit;         // commit.unchanged: nothing new
  double seconds = 0;
};

Result<IngestReport> Ingest(Lake* lake, std::string_view source, std::string_view target, const IngestOptions& options);

}  // namespace strata
