// Status and Result<T>: errors as values.
//
// A Status is either OK (holds nothing, costs one null pointer) or carries a code and a message
// written for a person ("pack 3f2a… failed authentication: wrong key or corrupted file").
// Callers decide by code; people read the message. Both types are [[nodiscard]].
#pragma once

#include <cassert>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace strata {

enum class StatusCode : unsigned char {
  kOk = 0,
  // The caller passed something malformed (bad flag value, bad reference syntax, bad config).
  kInvalidArgument = 1,
  // A named thing does not exist (repository, object, path, key slot).
  kNotFound = 2,
  // Creating something that is already there.
  kAlreadyExists = 3,
  // Stored bytes are damaged or inconsistent. Never retry: the data is wrong.
  kCorruption = 4,
  // An I/O call failed. `retryable()` says whether trying the same call again may succeed.
  kIOError = 5,
  // The operating system refused access.
  kPermissionDenied = 6,
  // The disk (or quota) is full.
  kNoSpace = 7,
  // A passphrase or key does not open the repository, or authentication of a key slot failed.
  kUnauthenticated = 8,
  // The repository is in a state that forbids the operation (locked, newer format, protected).
  kFailedPrecondition = 9,
  // A concurrent writer won a race; the caller may retry the whole operation.
  kAborted = 10,
  // The stored format or the request needs a feature this build lacks.
  kUnsupported = 11,
  // A bug in strata: an invariant was broken.
  kInternal = 12,
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK

  static Status OK() { return Status(); }
  static Status InvalidArgument(std::string msg) { return Status(StatusCode::kInvalidArgument, std::move(msg)); }
  static Status NotFound(std::string msg) { return Status(StatusCode::kNotFound, std::move(msg)); }
  static Status AlreadyExists(std::string msg) { return Status(StatusCode::kAlreadyExists, std::move(msg)); }
  static Status Corruption(std::string msg) { return Status(StatusCode::kCorruption, std::move(msg)); }
  static Status IOError(std::string msg, bool retryable = false) {
    return Status(StatusCode::kIOError, std::move(msg), retryable);
  }
  static Status PermissionDenied(std::string msg) { return Status(StatusCode::kPermissionDenied, std::move(msg)); }
  static Status NoSpace(std::string msg) { return Status(StatusCode::kNoSpace, std::move(msg)); }
  static Status Unauthenticated(std::string msg) { return Status(StatusCode::kUnauthenticated, std::move(msg)); }
  static Status FailedPrecondition(std::string msg) { return Status(StatusCode::kFailedPrecondition, std::move(msg)); }
  static Status Aborted(std::string msg) { return Status(StatusCode::kAborted, std::move(msg)); }
  static Status Unsupported(std::string msg) { return Status(StatusCode::kUnsupported, std::move(msg)); }
  static Status Internal(std::string msg) { return Status(StatusCode::kInternal, std::move(msg)); }
  // Maps an errno value from a failed system call on `what` (usually a path) to a Status.
  static Status FromErrno(int err, std::string_view what);

  bool ok() const noexcept { return rep_ == nullptr; }
  StatusCode code() const noexcept { return rep_ ? rep_->code : StatusCode::kOk; }
  const std::string& message() const noexcept;
  bool retryable() const noexcept { return rep_ && rep_->retryable; }
  bool IsNotFound() const noexcept { return code() == StatusCode::kNotFound; }
  bool IsCorruption() const noexcept { return code() == StatusCode::kCorruption; }

  // "Corruption: pack 3f2a…: bad magic", or "OK".
  std::string ToString() const;
  // Returns a status with the same code and "context: message" as its message.
  Status WithContext(std::string_view context) const;

 private:
  struct Rep {
    StatusCode code;
    bool retryable;
    std::string message;
  };
  Status(StatusCode code, std::string msg, bool retryable = false)
      : rep_(std::make_shared<const Rep>(Rep{code, retryable, std::move(msg)})) {}
  std::shared_ptr<const Rep> rep_;
};

// A value or a non-OK Status. Constructing a Result from an OK Status is a bug (asserted).
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    assert(!std::get<Status>(v_).ok() && "Result constructed from an OK status");
    if (std::get<Status>(v_).ok()) v_ = Status::Internal("Result constructed from an OK status");
  }

  bool ok() const noexcept { return std::holds_alternative<T>(v_); }
  const Status& status() const& {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  Status status() && { return ok() ? Status() : std::get<Status>(std::move(v_)); }

  T& value() & { assert(ok()); return std::get<T>(v_); }
  const T& value() const& { assert(ok()); return std::get<T>(v_); }
  T&& value() && { assert(ok()); return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace strata

#define STRATA_CONCAT_INNER_(a, b) a##b
#define STRATA_CONCAT_(a, b) STRATA_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` (a Status) is not OK.
#define STRATA_RETURN_IF_ERROR(expr)              \
  do {                                            \
    ::strata::Status strata_status_ = (expr);     \
    if (!strata_status_.ok()) return strata_status_; \
  } while (0)

// `lhs = value of expr` (a Result<T>), or returns its Status from the enclosing function.
#define STRATA_ASSIGN_OR_RETURN(lhs, expr) \
  STRATA_ASSIGN_OR_RETURN_IMPL_(STRATA_CONCAT_(strata_result_, __LINE__), lhs, expr)
#define STRATA_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return std::move(tmp).status();      \
  lhs = std::move(tmp).value()
