// `NAME@REF[:PATH]` references.
#include <fmt/format.h>

#include "catalog/catalog.h"
#include "strata/lake.h"
#include "version/tree_edit.h"

namespace strata {

std::string RefSpec::ToString() const {
  return path.empty() ? fmt::format("{}@{}", dataset, ref) : fmt::format("{}@{}:{}", dataset, ref, path);
}

Result<RefSpec> ParseRefSpec(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument(fmt::format(
        "bad reference '{}': {}; write NAME@REF[:PATH] (REF = branch, tag or commit id prefix), "
        "e.g. fmnist@main:train/",
        text, why));
  };
  size_t at = text.find('@');
  if (at == std::string_view::npos) return bad("no '@'");
  RefSpec spec;
  spec.dataset = std::string(text.substr(0, at));
  std::string_view rest = text.substr(at + 1);
  size_t colon = rest.find(':');
  spec.ref = std::string(rest.substr(0, colon));
  if (spec.dataset.empty()) return bad("the dataset name is empty");
  if (spec.ref.empty()) return bad("the ref is empty");
  if (auto s = catalog::ValidateDatasetName(spec.dataset); !s.ok()) return bad(s.message());
  if (auto s = catalog::ValidateRefName(spec.ref); !s.ok()) return bad(s.message());
  if (colon != std::string_view::npos) {
    auto parts = version::SplitPath(rest.substr(colon + 1));
    if (!parts.ok()) return bad(parts.status().message());
    for (const auto& p : *parts) spec.path += (spec.path.empty() ? "" : "/") + p;
  }
  return spec;
}

}  // namespace strata
