// strata._strata: the native half of the `strata` package (python/strata/ is the other).
#include <Python.h>

#include <array>

#include "common.h"

namespace strata::python {
namespace {

struct ErrorClass {
  StatusCode code;
  const char* name;
  PyObject* builtin;  // a second base, so `except KeyError` etc. also catch it; may be null
  PyObject* type = nullptr;
};

std::array<ErrorClass, 12> error_classes = {{
    {StatusCode::kInvalidArgument, "InvalidArgumentError", PyExc_ValueError},
    {StatusCode::kNotFound, "NotFoundError", PyExc_LookupError},
    {StatusCode::kAlreadyExists, "AlreadyExistsError", nullptr},
    {StatusCode::kCorruption, "CorruptionError", nullptr},
    {StatusCode::kIOError, "IOError", PyExc_OSError},
    {StatusCode::kPermissionDenied, "PermissionDeniedError", PyExc_PermissionError},
    {StatusCode::kNoSpace, "NoSpaceError", PyExc_OSError},
    {StatusCode::kUnauthenticated, "AuthenticationError", nullptr},
    {StatusCode::kFailedPrecondition, "PreconditionError", nullptr},
    {StatusCode::kAborted, "AbortedError", nullptr},
    {StatusCode::kUnsupported, "UnsupportedError", nullptr},
    {StatusCode::kInternal, "InternalError", nullptr},
}};
PyObject* base_error = nullptr;

}  // namespace

void RegisterErrors(nb::module_& m) {
  base_error = PyErr_NewExceptionWithDoc("strata.Error", "Any error strata reports (a Status that is not OK).",
                                         PyExc_Exception, nullptr);
  m.attr("Error") = nb::borrow(base_error);
  for (auto& e : error_classes) {
    nb::object bases = e.builtin ? nb::make_tuple(nb::handle(base_error), nb::handle(e.builtin))
                                 : nb::make_tuple(nb::handle(base_error));
    std::string qualified = std::string("strata.") + e.name;
    e.type = PyErr_NewException(qualified.c_str(), bases.ptr(), nullptr);
    m.attr(e.name) = nb::borrow(e.type);
  }
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const StatusError& err) {
      PyObject* type = base_error;
      for (const auto& e : error_classes) {
        if (e.code == err.status().code()) type = e.type;
      }
      PyErr_SetString(type, err.what());
    }
  });
}

}  // namespace strata::python

NB_MODULE(_strata, m) {
  using namespace strata::python;
  m.doc() = "strata's native extension; use the `strata` package.";
  RegisterErrors(m);
  BindRepository(m);
  BindShard(m);
  BindLoader(m);
  BindCheckpoint(m);
  BindRegistry(m);
}
