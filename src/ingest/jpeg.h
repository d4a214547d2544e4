// JPEG decoding with libjpeg(-turbo), strict and quiet: libjpeg's warnings (damaged data it would
// otherwise paper over with grey blocks or a made-up end) fail a decode as its errors do, and
// nothing is printed. The bytes are untrusted.
//
//   JpegDecoder d;  // one libjpeg object, reused image after image
//   JpegHeader h;
//   if (d.Start(bytes, JpegColor::kRgb, 1, &h, &why) == JpegStatus::kOk) {
//     buffer.resize(size_t{h.height} * h.width * h.channels);
//     ok = d.Finish(buffer.data(), size_t{h.width} * h.channels, &why);
//   }
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace strata::ingest {

enum class JpegColor {
  kGrey,    // one channel
  kRgb,     // three channels, R G B
  kStored,  // one channel for a greyscale JPEG, three (RGB) for a colour one
};

enum class JpegStatus {
  kOk,
  kFailed,       // not a JPEG libjpeg decodes cleanly: `why` says what is wrong
  kUnsupported,  // a JPEG this decoder leaves to others: CMYK/YCCK, no Huffman tables (MJPEG)
};

struct JpegHeader {
  uint32_t width = 0, height = 0;  // of the output, after scaling
  uint32_t channels = 0;           // of the output
  // The EXIF orientation (1-8) of the first APP1 segment, 0 when there is none or it has no
  // orientation; kUnreadableOrientation when that segment is not an EXIF block this parser reads
  // cleanly (another APP1 first, such as XMP; a damaged or unusual EXIF block).
  uint16_t orientation = 0;
};
inline constexpr uint16_t kUnreadableOrientation = 0xFFFF;

class JpegDecoder {
 public:
  JpegDecoder();
  ~JpegDecoder();
  JpegDecoder(const JpegDecoder&) = delete;
  JpegDecoder& operator=(const JpegDecoder&) = delete;

  // Reads the header of `bytes` and starts decoding them to `color` at 1/`denom` of the size
  // (libjpeg's DCT scaling, denom 1, 2, 4 or 8). `bytes` must stay valid until Finish or Abort.
  // On kOk the decoder is started: Finish or Abort must follow.
  JpegStatus Start(std::span<const uint8_t> bytes, JpegColor color, unsigned denom, JpegHeader* header,
                   std::string* why);
  // Decodes every row into `dst` (rows `stride` bytes apart, each width x channels bytes) and
  // reads on to the end marker. false with `why` set when the data is damaged.
  bool Finish(uint8_t* dst, size_t stride, std::string* why);
  // Ends a started decode without reading the rows.
  void Abort();

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// The EXIF orientation in an APP1 segment's data ("Exif\0\0" then a TIFF block): as
// JpegHeader::orientation says. Exposed for the fuzz target.
uint16_t ExifOrientation(std::span<const uint8_t> app1);

}  // namespace strata::ingest
