#include "strata/status.h"

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace strata {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalidArgument: return "invalid argument";
    case StatusCode::kNotFound: return "not found";
    case StatusCode::kAlreadyExists: return "already exists";
    case StatusCode::kCorruption: return "corruption";
    case StatusCode::kIOError: return "I/O error";
    case StatusCode::kPermissionDenied: return "permission denied";
    case StatusCode::kNoSpace: return "no space";
    case StatusCode::kUnauthenticated: return "unauthenticated";
    case StatusCode::kFailedPrecondition: return "failed precondition";
    case StatusCode::kAborted: return "aborted";
    case StatusCode::kUnsupported: return "unsupported";
    case StatusCode::kInternal: return "internal error";
  }
  return "unknown";
}

const std::string& Status::message() const noexcept {
  static const std::string kEmpty;
  return rep_ ? rep_->message : kEmpty;
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return fmt::format("{}: {}", StatusCodeName(code()), message());
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  return Status(rep_->code, fmt::format("{}: {}", context, rep_->message), rep_->retryable);
}

Status Status::FromErrno(int err, std::string_view what) {
  std::string msg = fmt::format("{}: {}", what, std::strerror(err));
  switch (err) {
    case ENOENT: case ENOTDIR: return NotFound(std::move(msg));
    case EEXIST: return AlreadyExists(std::move(msg));
    case EACCES: case EPERM: case EROFS: return PermissionDenied(std::move(msg));
    case ENOSPC: case EDQUOT: case EFBIG: return NoSpace(std::move(msg));
    case EINVAL: case ENAMETOOLONG: return InvalidArgument(std::move(msg));
    case EINTR: case EAGAIN: case EBUSY: case ETIMEDOUT: return IOError(std::move(msg), true);
    default: return IOError(std::move(msg));
  }
}

}  // namespace strata
