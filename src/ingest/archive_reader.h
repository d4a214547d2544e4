// Archives (tar, tar.gz/.bz2/.xz/.zst/.lz4, zip) read as a stream with libarchive: each regular
// member becomes one ItemSink::AddFile whose content is decompressed as the sink reads it.
// Nothing is ever extracted to disk.
//
// Archives are untrusted input. Members that could hurt a later checkout or a person reading a
// report are rejected (ItemSink::Reject) and the walk goes on:
//   path-absolute, path-traversal, path-backslash, path-control-byte, path-encoding,
//   path-too-long, path-empty   the member's name (see CheckItemPath): refused, never rewritten
//   symlink, hardlink           links are never followed nor stored
//   special-file                devices, fifos, sockets
//   encrypted                   encrypted zip members
//   duplicate-path              a second member with an already-seen path
// Directories produce no item (they are implied by file paths). Nested archives are stored as
// plain files, never opened. Permission bits are kept without setuid/setgid/sticky (mode & 0777).
//
// Limits guard against archive bombs. Exceeding any of them ends the walk with
// kInvalidArgument, naming the limit; a truncated or damaged archive ends it with kCorruption,
// naming the member; a file that is not a supported archive gives kInvalidArgument.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "ingest/source.h"

namespace strata::ingest {

struct ArchiveLimits {
  uint64_t max_total_bytes = uint64_t{256} << 30;  // uncompressed bytes of all members
  uint64_t max_entry_bytes = uint64_t{16} << 30;   // uncompressed bytes of one member
  uint64_t max_entries = 1'000'000;                // members of every kind, rejected ones too
  // Uncompressed bytes produced / archive bytes read so far. Checked once more than
  // `ratio_grace_bytes` have been produced, so small, very compressible archives pass.
  double max_ratio = 250.0;
  uint64_t ratio_grace_bytes = uint64_t{16} << 20;
  size_t max_path_bytes = 4096;
};

struct ArchiveOptions {
  ArchiveLimits limits;
  // How the archive is named in Reject's `where` and in errors; defaults to the path
  // (ReadArchive) or "<memory>" (ReadArchiveFromMemory).
  std::string name;
};

// Walks the archive at `path`, read through `env` (positional reads, so a zip is read from its
// central directory).
Status ReadArchive(Env* env, const std::string& path, const ArchiveOptions& options, ItemSink* sink);
// The same over bytes in memory (which must outlive the call).
Status ReadArchiveFromMemory(std::string_view bytes, const ArchiveOptions& options, ItemSink* sink);

}  // namespace strata::ingest
