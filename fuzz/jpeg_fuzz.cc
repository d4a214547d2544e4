// JPEGs come from the lake's raw data, written by anyone: the strict decoder that transform and
// curate use must refuse damaged files cleanly (no crash, no read outside the input, no write
// outside the rows it was given), and its EXIF reader likewise.
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "ingest/jpeg.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata::ingest;
  std::span<const uint8_t> bytes(data, size);
  const uint16_t o = ExifOrientation(bytes);
  if (o > 8 && o != kUnreadableOrientation) std::abort();

  static JpegDecoder decoder;  // reused, as the transform's workers reuse theirs
  const JpegColor colors[] = {JpegColor::kRgb, JpegColor::kGrey, JpegColor::kStored};
  const JpegColor color = colors[size % 3];
  JpegHeader h;
  std::string why;
  JpegStatus s = decoder.Start(bytes, color, size % 2 ? 1 : 4, &h, &why);
  if (s == JpegStatus::kFailed && why.empty()) std::abort();
  if (s != JpegStatus::kOk) return 0;
  if (h.channels != 1 && h.channels != 3) std::abort();
  if (color == JpegColor::kRgb && h.channels != 3) std::abort();
  if (color == JpegColor::kGrey && h.channels != 1) std::abort();
  if (h.orientation > 8 && h.orientation != kUnreadableOrientation) std::abort();
  if (uint64_t{h.width} * h.height > (uint64_t{1} << 22)) {  // large: the fuzzer's time is better spent elsewhere
    decoder.Abort();
    return 0;
  }
  const size_t stride = size_t{h.width} * h.channels;
  std::vector<uint8_t> rows(stride * h.height);
  if (!decoder.Finish(rows.data(), stride, &why) && why.empty()) std::abort();
  return 0;
}
