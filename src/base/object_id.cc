#include "strata/object_id.h"

#include <algorithm>

namespace strata {

namespace {
constexpr char kHexDigits[] = "0123456789abcdef";
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::string ToHex(const uint8_t* data, size_t n) {
  std::string s(2 * n, '\0');
  for (size_t i = 0; i < n; ++i) {
    s[2 * i] = kHexDigits[data[i] >> 4];
    s[2 * i + 1] = kHexDigits[data[i] & 15];
  }
  return s;
}

Result<std::string> FromHex(std::string_view hex) {
  if (hex.size() % 2 != 0) return Status::InvalidArgument("hex string has odd length");
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = HexValue(hex[2 * i]), lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return Status::InvalidArgument("not a hex string: '" + std::string(hex) + "'");
    out[i] = static_cast<char>(hi << 4 | lo);
  }
  return out;
}

std::string ObjectId::ToHex() const { return strata::ToHex(bytes.data(), bytes.size()); }

bool ObjectId::IsZero() const {
  return std::all_of(bytes.begin(), bytes.end(), [](uint8_t b) { return b == 0; });
}

Result<ObjectId> ObjectId::FromHex(std::string_view hex) {
  if (hex.size() != 2 * kSize) {
    return Status::InvalidArgument("an object id has 64 hex digits, got '" + std::string(hex) + "'");
  }
  STRATA_ASSIGN_OR_RETURN(std::string raw, strata::FromHex(hex));
  ObjectId id;
  std::copy(raw.begin(), raw.end(), id.bytes.begin());
  return id;
}

}  // namespace strata
