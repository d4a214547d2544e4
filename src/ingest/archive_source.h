// libarchive plumbing shared by the archive and IDX readers: a reader handle configured with
// the formats and filters ingest accepts, fed from an Env file by positional reads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "strata/env.h"
#include "strata/status.h"

struct archive;

namespace strata::ingest {

struct ArchiveFree {
  void operator()(archive* a) const;
};
using ArchiveHandle = std::unique_ptr<archive, ArchiveFree>;

enum class ArchiveKind {
  kArchive,  // tar (every variant libarchive reads) and zip
  kRaw,      // one compressed (gzip, bzip2, xz, zstd, lz4) or plain stream, no container
};
// Only library filters are enabled: never the ones that run an external program.
ArchiveHandle NewArchiveReader(ArchiveKind kind);

// Feeds an archive handle from `file` (which must outlive it) with read, skip and seek
// callbacks. An Env error is kept in failure() and reported to libarchive as a fatal error, so
// the walk can return the real cause instead of libarchive's paraphrase.
class ArchiveSource {
 public:
  ArchiveSource(RandomAccessFile* file, uint64_t size, std::string name)
      : file_(file), size_(size), name_(std::move(name)), buffer_(256 << 10) {}
  ArchiveSource(const ArchiveSource&) = delete;
  ArchiveSource& operator=(const ArchiveSource&) = delete;

  Status Open(archive* a);
  const Status& failure() const { return failure_; }

 private:
  friend struct ArchiveSourceCallbacks;

  RandomAccessFile* file_;
  uint64_t size_;
  std::string name_;
  uint64_t pos_ = 0;
  std::vector<uint8_t> buffer_;
  Status failure_;
};

// Opens `path` for sequential reading of its decompressed bytes: gzip, bzip2, xz, zstd and lz4
// are recognised by their magic, anything else is read as it is. A damaged stream fails the
// Read() that meets the damage with kCorruption.
Result<std::unique_ptr<SequentialFile>> OpenDecompressed(Env* env, const std::string& path);

}  // namespace strata::ingest
