// The JPEG decoder's own parts: the EXIF orientation reader and its refusals. Decoded pixels are
// checked against OpenCV's in tests/transform/image_ops_test.cc.
#include "ingest/jpeg.h"

#include <string>

#include <gtest/gtest.h>

namespace strata::ingest {
namespace {

std::span<const uint8_t> Span(const std::string& s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

// "Exif\0\0", a TIFF header of the given byte order and one IFD0 of `entries` 12-byte entries.
std::string Exif(bool big, const std::string& entries, uint16_t count) {
  std::string s("Exif\0\0", 6);
  s += big ? std::string("MM\0*\0\0\0\x08", 8) : std::string("II*\0\x08\0\0\0", 8);
  s += big ? std::string{char(count >> 8), char(count & 0xFF)} : std::string{char(count & 0xFF), char(count >> 8)};
  return s + entries + std::string(4, '\0');
}

std::string Entry(bool big, uint16_t tag, uint16_t type, uint32_t n, uint16_t value) {
  auto u16 = [&](uint16_t v) { return big ? std::string{char(v >> 8), char(v & 0xFF)} : std::string{char(v & 0xFF), char(v >> 8)}; };
  auto u32 = [&](uint32_t v) { return big ? u16(uint16_t(v >> 16)) + u16(uint16_t(v)) : u16(uint16_t(v)) + u16(uint16_t(v >> 16)); };
  return u16(tag) + u16(type) + u32(n) + u16(value) + std::string(2, '\0');
}

TEST(ExifOrientationTest, ReadsEitherByteOrder) {
  for (bool big : {false, true}) {
    std::string other = Entry(big, 0x010F, 2, 4, 0);  // Make, not the orientation
    EXPECT_EQ(ExifOrientation(Span(Exif(big, other + Entry(big, 0x0112, 3, 1, 6), 2))), 6) << big;
    EXPECT_EQ(ExifOrientation(Span(Exif(big, Entry(big, 0x0112, 3, 1, 1), 1))), 1) << big;
    EXPECT_EQ(ExifOrientation(Span(Exif(big, other, 1))), 0) << big;  // no orientation
  }
}

TEST(ExifOrientationTest, AnythingUnusualIsUnreadable) {
  const bool le = false;
  // A value out of range, another type, a count of two, the tag twice.
  EXPECT_EQ(ExifOrientation(Span(Exif(le, Entry(le, 0x0112, 3, 1, 9), 1))), kUnreadableOrientation);
  EXPECT_EQ(ExifOrientation(Span(Exif(le, Entry(le, 0x0112, 4, 1, 6), 1))), kUnreadableOrientation);
  EXPECT_EQ(ExifOrientation(Span(Exif(le, Entry(le, 0x0112, 3, 2, 6), 1))), kUnreadableOrientation);
  std::string twice = Entry(le, 0x0112, 3, 1, 1) + Entry(le, 0x0112, 3, 1, 1);
  EXPECT_EQ(ExifOrientation(Span(Exif(le, twice, 2))), kUnreadableOrientation);
  // More entries than the segment holds, a cut header, another APP1 (XMP), a bad TIFF magic.
  EXPECT_EQ(ExifOrientation(Span(Exif(le, Entry(le, 0x0112, 3, 1, 1), 40))), kUnreadableOrientation);
  EXPECT_EQ(ExifOrientation(Span(Exif(le, "", 0).substr(0, 10))), kUnreadableOrientation);
  EXPECT_EQ(ExifOrientation(Span(std::string("http://ns.adobe.com/xap/1.0/\0<x:xmpmeta/>", 42))), kUnreadableOrientation);
  std::string bad = Exif(le, Entry(le, 0x0112, 3, 1, 1), 1);
  bad[8] = 43;
  EXPECT_EQ(ExifOrientation(Span(bad)), kUnreadableOrientation);
  // An IFD offset past the end.
  std::string far = Exif(le, Entry(le, 0x0112, 3, 1, 1), 1);
  far[10] = char(0xF0);
  EXPECT_EQ(ExifOrientation(Span(far)), kUnreadableOrientation);
}

TEST(JpegDecoderTest, NotAJpegFailsAndTheDecoderIsReusable) {
  JpegDecoder d;
  JpegHeader h;
  std::string why;
  EXPECT_EQ(d.Start(Span("not a jpeg at all"), JpegColor::kRgb, 1, &h, &why), JpegStatus::kFailed);
  EXPECT_FALSE(why.empty());
  why.clear();
  EXPECT_EQ(d.Start(Span(std::string("\xFF\xD8\xFF\xE0\x00\x10JFIF", 10)), JpegColor::kRgb, 1, &h, &why),
            JpegStatus::kFailed);  // ends inside its first segment
  EXPECT_FALSE(why.empty());
  why.clear();
  EXPECT_EQ(d.Start({}, JpegColor::kGrey, 1, &h, &why), JpegStatus::kFailed);
}

}  // namespace
}  // namespace strata::ingest
