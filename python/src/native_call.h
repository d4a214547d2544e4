// How another extension of this package (strata._strata_data: transforms and curation, which
// bring OpenCV and SentencePiece and so stay out of `import strata`) runs code on an open
// repository of strata._strata: it passes a NativeLakeCall in a capsule named
// kNativeLakeCallName to _Repository._run_native, which calls `fn` without the GIL under the
// lake's lock and raises `status` as strata.Error like any other call. Both extensions are
// built from this tree together, so the types are the same.
#pragma once

#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <map>
#include <optional>
#include <string>

#include "common.h"
#include "strata/lake.h"
#include "strata/repository.h"
#include "strata/status.h"

namespace strata::python {

inline constexpr const char* kNativeLakeCallName = "strata.native_lake_call.v1";

struct NativeLakeCall {
  void (*fn)(Repository* repo, Lake* lake, void* ctx, Status* status) = nullptr;
  void* ctx = nullptr;
  Status status;
};

// Shared by both extensions: a commit's result as a dict, and commit metadata from a dict.
inline nb::dict CommitResultDict(const CommitResult& r) {
  nb::dict d;
  d["commit"] = r.unchanged ? std::string() : r.commit.ToHex();
  d["parent"] = r.parent.ToHex();
  d["tree"] = r.tree.ToHex();
  d["unchanged"] = r.unchanged;
  d["files"] = r.put.files;
  d["bytes"] = r.put.bytes;
  d["unchanged_files"] = r.put.unchanged_files;
  d["new_bytes"] = r.put.new_bytes;
  d["stored_bytes"] = r.put.stored_bytes;
  d["seconds"] = r.put.seconds;
  return d;
}

inline std::map<std::string, std::string> MetaStrings(const std::optional<nb::dict>& meta) {
  std::map<std::string, std::string> out;
  if (!meta) return out;
  for (auto [k, v] : *meta) out[nb::cast<std::string>(nb::str(k))] = nb::cast<std::string>(nb::str(v));
  return out;
}

}  // namespace strata::python
