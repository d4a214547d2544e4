// Decompress reads stored bytes. The first 5 input bytes choose the codec and the claimed raw
// size (capped at 1 MiB); the rest is the frame. The output buffer is exactly raw_size bytes,
// so ASan catches any write past it. A frame that decodes must also survive a round trip.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "codec/compress.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata::codec;
  if (size < 5) return 0;
  auto codec = static_cast<Codec>(data[0] % 3);  // kNone, kZstd, and one unknown value
  uint32_t raw_size;
  std::memcpy(&raw_size, data + 1, 4);
  raw_size %= (1u << 20) + 1;
  std::span<const uint8_t> frame(data + 5, size - 5);

  auto out = std::make_unique<uint8_t[]>(raw_size);
  strata::Status s = Decompress(codec, frame, out.get(), raw_size);
  if (!s.ok()) {
    if (s.code() != strata::StatusCode::kCorruption) std::abort();
    return 0;
  }
  std::string compressed;
  std::span<const uint8_t> raw(out.get(), raw_size);
  Codec c = Compress(raw, 1, &compressed);
  std::span<const uint8_t> stored = c == Codec::kNone ? raw : std::span<const uint8_t>(
      reinterpret_cast<const uint8_t*>(compressed.data()), compressed.size());
  auto back = std::make_unique<uint8_t[]>(raw_size);
  if (!Decompress(c, stored, back.get(), raw_size).ok()) std::abort();
  if (raw_size > 0 && std::memcmp(back.get(), out.get(), raw_size) != 0) std::abort();
  return 0;
}
