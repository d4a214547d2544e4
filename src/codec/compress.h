// Compression of chunk payloads (zstd). Chunks that do not shrink are stored raw.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "strata/status.h"

namespace strata::codec {

enum class Codec : uint8_t { kNone = 0, kZstd = 1 };

// Compression must save at least 1/kDefaultMinSaving of a chunk's size to be kept.
inline constexpr uint32_t kDefaultMinSaving = 32;

// Compresses `in` with zstd at `level` into `out` (replaced). Returns kNone (and leaves `out`
// empty) when compression would save less than 1/min_saving of the size, or level is 0, so
// callers store the raw bytes. Cheap on incompressible input: it samples before compressing in
// full. A larger bar (a smaller min_saving) suits data whose few percent of savings are not
// worth the CPU on every later read, such as float tensors of trained weights.
Codec Compress(std::span<const uint8_t> in, int level, std::string* out, uint32_t min_saving = kDefaultMinSaving);

// Decompresses into exactly `raw_size` bytes at `out`. Returns kCorruption if the input is not
// a valid frame of exactly that size. Never writes past out + raw_size.
Status Decompress(Codec codec, std::span<const uint8_t> in, uint8_t* out, size_t raw_size);

}  // namespace strata::codec
