#include <nlohmann/json.hpp>

#include "strata/loader.h"

namespace strata::loader {

std::string LoaderState::ToJson() const {
  nlohmann::json j = {{"seed", seed}, {"epoch", epoch}, {"consumed", consumed}};
  return j.dump();
}

Result<LoaderState> LoaderState::FromJson(std::string_view text) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status::InvalidArgument("loader state: not a JSON object");
  LoaderState s;
  for (auto [name, out] : {std::pair<const char*, uint64_t*>{"seed", &s.seed}, {"epoch", &s.epoch}, {"consumed", &s.consumed}}) {
    auto it = j.find(name);
    if (it == j.end() || !it->is_number_unsigned()) {
      if (it != j.end() && it->is_number_integer() && it->get<int64_t>() >= 0) {
        *out = it->get<uint64_t>();
        continue;
      }
      return Status::InvalidArgument(std::string("loader state: '") + name + "' must be a non-negative integer");
    }
    *out = it->get<uint64_t>();
  }
  return s;
}

}  // namespace strata::loader
