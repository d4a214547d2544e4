// Image dimensions from the first bytes of a file, without decoding it: binary and plain PGM/PPM
// (P2, P3, P5, P6), PNG (the IHDR chunk) and JPEG (the first SOFn marker). Every read is
// bounds-checked: the bytes are untrusted.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "ingest/source.h"

namespace strata::ingest {

struct ImageInfo {
  std::string format;  // "pgm", "ppm", "png", "jpeg"
  uint32_t width = 0;
  uint32_t height = 0;
  uint32_t channels = 0;  // 1 grey, 2 grey+alpha, 3 colour, 4 colour+alpha
  // Binary PGM/PPM, when the header was complete: where the pixels start and how many bytes
  // they take, so a truncated file is known without decoding it. 0 otherwise.
  uint64_t data_offset = 0;
  uint64_t data_bytes = 0;
};

// kNotFound when `head` is no known image or ends before its dimensions; kCorruption when
// it is a known format whose header is damaged.
Result<ImageInfo> ProbeImage(std::span<const uint8_t> head);

// Why a binary PGM/PPM of `size` bytes is shorter than its header says (a decoder would fail,
// OpenCV's after printing to stderr); empty when it is not, or `info` is no binary PGM/PPM.
std::string PixelsMissing(uint64_t size, const ImageInfo& info);

// Reads at most `max_bytes` from the start of `path` and probes them.
Result<ImageInfo> ProbeImageFile(Env* env, const std::string& path, size_t max_bytes = 64 << 10);

// Adds "width", "height", "channels" and "format" to item.meta when `head` is an image;
// leaves it unchanged otherwise.
void AddImageMeta(std::span<const uint8_t> head, FileItem* item);

}  // namespace strata::ingest
