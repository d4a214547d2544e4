// The files the loader reads: one descriptor per shard, opened with O_DIRECT where the file
// system allows it.
#pragma once

#include <string>

#include "strata/status.h"

namespace strata::loader {

struct ShardFile {
  int fd = -1;
  bool direct = false;
};

// Opens `path` read-only; with `direct`, tries O_DIRECT first and falls back to buffered
// reads when the file system refuses it (EINVAL), setting `direct` false.
Result<ShardFile> OpenShardFile(const std::string& path, bool direct);

// Tests: make every O_DIRECT open fail with EINVAL, as on a file system without it.
void RefuseDirectIoForTesting(bool refuse);

}  // namespace strata::loader
