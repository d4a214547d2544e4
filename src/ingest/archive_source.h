// libarchive plumbing shared by the archive and IDX readers: a reader handle configured with
// the formats and filters ingest accepts, fed from an Env file by positional reads.
#pragma once

#include <memory>
#include <string>
#include <string_view>
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
//
// A gzip stream (the usual .tar.gz, or a .gz of one file) is inflated here with ISA-L's igzip,
// which inflates 1.6x as fast as the zlib that libarchive's own gzip filter uses, on a thread of
// its own a few blocks ahead (bounded); libarchive then sees the plain stream. Concatenated members are one stream (as gzip -d reads them); bytes after
// the last member that do not start another are ignored (as gzip and libarchive do). A damaged
// or truncated stream, or a wrong CRC, is a fatal error of the read that meets it.
class ArchiveSource {
 public:
  // `block`: the most bytes one read callback hands to libarchive.
  ArchiveSource(RandomAccessFile* file, uint64_t size, std::string name, size_t block = 256 << 10);
  ~ArchiveSource();
  ArchiveSource(const ArchiveSource&) = delete;
  ArchiveSource& operator=(const ArchiveSource&) = delete;

  Status Open(archive* a);
  const Status& failure() const { return failure_; }
  // Bytes of the file consumed so far: what the bytes expanded from it are measured against.
  uint64_t consumed() const;
  // After libarchive's last read: inflates what is left of a gzip stream (the container's end
  // padding, the last CRC), so damage past the archive's end is reported too.
  Status ReadToEnd();

 private:
  friend struct ArchiveSourceCallbacks;
  class Gzip;

  // The read callback for a gzip stream: the next block the inflating thread has made.
  long Inflate(archive* a, const void** out);

  RandomAccessFile* file_;
  uint64_t size_;
  std::string name_;
  uint64_t pos_ = 0;
  size_t block_;
  std::vector<uint8_t> buffer_;  // what a read hands to libarchive (not used for gzip)
  std::unique_ptr<Gzip> gzip_;  // set by Open() for a gzip stream
  Status failure_;
};

// Opens `path` for sequential reading of its decompressed bytes: gzip, bzip2, xz, zstd and lz4
// are recognised by their magic, anything else is read as it is. A damaged stream fails the
// Read() that meets the damage with kCorruption.
Result<std::unique_ptr<SequentialFile>> OpenDecompressed(Env* env, const std::string& path);

// A RandomAccessFile over bytes in memory (which must outlive it).
std::unique_ptr<RandomAccessFile> NewMemoryFile(std::string_view bytes);

}  // namespace strata::ingest
