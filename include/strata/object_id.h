// ObjectId: the name of a stored object (chunk, tree, blob list) — a keyed hash of its
// plaintext (HMAC-SHA-256 under the repository's MAC key), so equal content gets the same id
// and an id reveals nothing about the content to someone without the key.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>

#include "strata/status.h"

namespace strata {

struct ObjectId {
  static constexpr size_t kSize = 32;
  std::array<uint8_t, kSize> bytes{};

  // 64 lowercase hex digits.
  std::string ToHex() const;
  // The first 12 hex digits, for messages.
  std::string Short() const { return ToHex().substr(0, 12); }
  static Result<ObjectId> FromHex(std::string_view hex);
  bool IsZero() const;

  auto operator<=>(const ObjectId&) const = default;
  bool operator==(const ObjectId&) const = default;
};

struct ObjectIdHash {
  // Ids are uniformly distributed keyed hashes: any 8 bytes are a good hash.
  size_t operator()(const ObjectId& id) const noexcept {
    size_t h;
    std::memcpy(&h, id.bytes.data(), sizeof(h));
    return h;
  }
};

// Lowercase hex of arbitrary bytes, and its inverse (fails on odd length or non-hex digits).
std::string ToHex(const uint8_t* data, size_t n);
Result<std::string> FromHex(std::string_view hex);

}  // namespace strata
