// Shared by the binding files: Status -> Python exceptions, and small conversions.
#pragma once

#include <nanobind/nanobind.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include "strata/status.h"

namespace strata {
class Repository;
}

namespace strata::python {

namespace nb = nanobind;

// Carries a non-OK Status out of a binding; translated into the strata.Error subclass for its
// code (module.cc), with the Status message as the exception's text.
class StatusError : public std::runtime_error {
 public:
  explicit StatusError(Status status) : std::runtime_error(status.message()), status_(std::move(status)) {}
  const Status& status() const { return status_; }

 private:
  Status status_;
};

inline void Check(const Status& s) {
  if (!s.ok()) throw StatusError(s);
}
template <class T>
T Check(Result<T> r) {
  if (!r.ok()) throw StatusError(std::move(r).status());
  return std::move(r).value();
}

void RegisterErrors(nb::module_& m);
void BindRepository(nb::module_& m);
void BindShard(nb::module_& m);
void BindLoader(nb::module_& m);
void BindCheckpoint(nb::module_& m);
void BindRegistry(nb::module_& m);

// The repository of a strata._Repository, shared (it stays open while the caller holds it).
std::shared_ptr<Repository> SharedRepository(nb::handle repository);

}  // namespace strata::python
