#include "loader/shard_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include <fmt/format.h>

namespace strata::loader {
namespace {
std::atomic<bool> refuse_direct{false};
}  // namespace

void RefuseDirectIoForTesting(bool refuse) { refuse_direct = refuse; }

Result<ShardFile> OpenShardFile(const std::string& path, bool direct) {
  ShardFile f;
  if (direct) {
    if (refuse_direct) {
      errno = EINVAL;
    } else {
      do f.fd = ::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
      while (f.fd < 0 && errno == EINTR);
    }
    if (f.fd >= 0) {
      f.direct = true;
      return f;
    }
    if (errno != EINVAL) return Status::FromErrno(errno, fmt::format("cannot open shard {}", path));
  }
  do f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  while (f.fd < 0 && errno == EINTR);
  if (f.fd < 0) return Status::FromErrno(errno, fmt::format("cannot open shard {}", path));
  return f;
}

}  // namespace strata::loader
