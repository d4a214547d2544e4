// A local directory tree read as files, depth first, each directory's entries in byte order of
// their names (so two walks of the same tree yield the same sequence).
//
// With `image_folder`, the tree has the ImageFolder layout (ROOT/<class>/.../<file>): the first
// path component becomes meta["label"], and a file directly under ROOT is rejected
// ("image-folder-layout").
//
// Rejected, and the walk goes on:
//   special-file       devices, fifos, sockets
//   symlink            any symlink, when follow_symlinks is off
//   symlink-outside    a symlink whose target is absolute or leads outside ROOT
//   symlink-directory  a symlink to a directory (never followed: no cycles, no duplicates)
//   symlink-dangling   a symlink to nothing, or a chain longer than 16 links
//   path-*             names that CheckItemPath refuses (control bytes, invalid UTF-8, ...)
// A symlink to a regular file inside ROOT is stored under the link's path with the target's
// content. Targets are resolved one component at a time through Env::Stat/ReadLink, so a
// symlinked directory on the way cannot lead out. (A tree changed during the walk can still
// race the resolution; ingest a tree nobody else writes.)
// An unreadable directory or file ends the walk with its error; so does a tree deeper than
// max_depth.
#pragma once

#include <cstdint>
#include <string>

#include "ingest/source.h"

namespace strata::ingest {

struct DirectoryOptions {
  bool image_folder = false;
  bool follow_symlinks = true;
  size_t max_depth = 256;
  size_t max_path_bytes = 4096;
  std::string name;  // names the source in Reject's `where`; defaults to the root path
};

Status ReadDirectory(Env* env, const std::string& root, const DirectoryOptions& options, ItemSink* sink);

}  // namespace strata::ingest
