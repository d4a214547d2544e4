#include "ingest/image_probe.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include <fmt/format.h>

namespace strata::ingest {
namespace {

uint32_t Be32(const uint8_t* p) { return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3]; }
uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

Status Short(std::string_view fmt_name) {
  return Status::NotFound(fmt::format("{} header ends before the image dimensions", fmt_name));
}

void SkipSpaceAndComments(std::span<const uint8_t> b, size_t& pos) {
  while (pos < b.size()) {
    if (b[pos] == '#') {
      while (pos < b.size() && b[pos] != '\n') ++pos;
    } else if (b[pos] == ' ' || b[pos] == '\t' || b[pos] == '\n' || b[pos] == '\r') {
      ++pos;
    } else {
      return;
    }
  }
}

// Netpbm: magic, then width, height (and maxval) as decimal numbers separated by whitespace
// and '#' comments.
Result<ImageInfo> ProbeNetpbm(std::span<const uint8_t> b) {
  ImageInfo info;
  char kind = static_cast<char>(b[1]);
  bool grey = kind == '2' || kind == '5';
  info.format = grey ? "pgm" : "ppm";
  info.channels = grey ? 1 : 3;
  size_t pos = 2;
  uint64_t dims[2];
  for (uint64_t& d : dims) {
    SkipSpaceAndComments(b, pos);
    if (pos >= b.size()) return Short(info.format);
    if (b[pos] < '0' || b[pos] > '9') return Status::Corruption(info.format + " header: dimension is not a number");
    d = 0;
    while (pos < b.size() && b[pos] >= '0' && b[pos] <= '9') {
      d = d * 10 + (b[pos] - '0');
      if (d > UINT32_MAX) return Status::Corruption(info.format + " header: dimension out of range");
      ++pos;
    }
    if (pos >= b.size()) return Short(info.format);
  }
  if (dims[0] == 0 || dims[1] == 0) return Status::Corruption(info.format + " header: zero dimension");
  info.width = static_cast<uint32_t>(dims[0]);
  info.height = static_cast<uint32_t>(dims[1]);
  if (kind == '5' || kind == '6') {
    // Binary: maxval, one whitespace byte, then the pixels, 1 or 2 bytes per sample.
    SkipSpaceAndComments(b, pos);
    uint64_t maxval = 0;
    size_t start = pos;
    while (pos < b.size() && b[pos] >= '0' && b[pos] <= '9' && pos - start < 6) maxval = maxval * 10 + (b[pos++] - '0');
    if (pos >= b.size()) return info;  // the header continues past what was given
    if (pos == start || maxval == 0 || maxval > 65535) return Status::Corruption(info.format + " header: bad maximum value");
    info.data_offset = pos + 1;
    info.data_bytes = uint64_t{info.width} * info.height * info.channels * (maxval > 255 ? 2 : 1);
  }
  return info;
}

Result<ImageInfo> ProbePng(std::span<const uint8_t> b) {
  // Signature (8), IHDR length (4) and type (4), width (4), height (4), depth (1), colour type (1).
  if (b.size() < 26) return Short("png");
  if (Be32(b.data() + 8) != 13 || std::memcmp(b.data() + 12, "IHDR", 4) != 0) {
    return Status::Corruption("png: the first chunk is not IHDR");
  }
  ImageInfo info;
  info.format = "png";
  info.width = Be32(b.data() + 16);
  info.height = Be32(b.data() + 20);
  if (info.width == 0 || info.height == 0 || info.width > 0x7FFFFFFF || info.height > 0x7FFFFFFF) {
    return Status::Corruption("png: IHDR dimensions out of range");
  }
  switch (b[25]) {
    case 0: info.channels = 1; break;
    case 2: info.channels = 3; break;
    case 3: info.channels = 3; break;  // palette
    case 4: info.channels = 2; break;
    case 6: info.channels = 4; break;
    default: return Status::Corruption("png: unknown colour type");
  }
  return info;
}

Result<ImageInfo> ProbeJpeg(std::span<const uint8_t> b) {
  size_t pos = 2;  // after SOI
  for (;;) {
    // Markers may be padded with extra 0xFF bytes.
    while (pos < b.size() && b[pos] == 0xFF && pos + 1 < b.size() && b[pos + 1] == 0xFF) ++pos;
    if (pos + 4 > b.size()) return Short("jpeg");
    if (b[pos] != 0xFF) return Status::Corruption("jpeg: expected a marker");
    uint8_t marker = b[pos + 1];
    if (marker == 0xD9 || marker == 0xDA) return Status::Corruption("jpeg: no frame header before the image data");
    if ((marker >= 0xD0 && marker <= 0xD7) || marker == 0x01) {  // markers without a length
      pos += 2;
      continue;
    }
    uint16_t len = Be16(b.data() + pos + 2);
    if (len < 2) return Status::Corruption("jpeg: segment length below 2");
    bool sof = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (sof) {
      // length (2), precision (1), height (2), width (2), components (1)
      if (len < 8) return Status::Corruption("jpeg: frame header too short");
      if (pos + 10 > b.size()) return Short("jpeg");
      ImageInfo info;
      info.format = "jpeg";
      info.height = Be16(b.data() + pos + 5);
      info.width = Be16(b.data() + pos + 7);
      info.channels = b[pos + 9];
      if (info.width == 0 || info.height == 0 || info.channels == 0 || info.channels > 4) {
        return Status::Corruption("jpeg: frame header out of range");
      }
      return info;
    }
    pos += 2 + static_cast<size_t>(len);
  }
}

}  // namespace

Result<ImageInfo> ProbeImage(std::span<const uint8_t> b) {
  static const uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (b.size() >= 8 && std::memcmp(b.data(), kPng, 8) == 0) return ProbePng(b);
  if (b.size() >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return ProbeJpeg(b);
  if (b.size() >= 3 && b[0] == 'P' && (b[1] == '2' || b[1] == '3' || b[1] == '5' || b[1] == '6') &&
      (b[2] == ' ' || b[2] == '\t' || b[2] == '\n' || b[2] == '\r' || b[2] == '#')) {
    return ProbeNetpbm(b);
  }
  return Status::NotFound("not a PGM, PPM, PNG or JPEG image");
}

Result<ImageInfo> ProbeImageFile(Env* env, const std::string& path, size_t max_bytes) {
  STRATA_ASSIGN_OR_RETURN(auto file, env->NewSequentialFile(path));
  std::vector<uint8_t> head(max_bytes);
  size_t done = 0;
  while (done < head.size()) {
    size_t got = 0;
    STRATA_RETURN_IF_ERROR(file->Read(head.size() - done, head.data() + done, &got));
    if (got == 0) break;
    done += got;
  }
  auto info = ProbeImage({head.data(), done});
  if (!info.ok()) return info.status().WithContext(path);
  return info;
}

std::string PixelsMissing(uint64_t size, const ImageInfo& info) {
  uint64_t have = size - std::min<uint64_t>(size, info.data_offset);
  if (have >= info.data_bytes) return {};
  return fmt::format("pixel data truncated: {} of {} bytes", have, info.data_bytes);
}

void AddImageMeta(std::span<const uint8_t> head, FileItem* item) {
  auto info = ProbeImage(head);
  if (!info.ok()) return;
  item->meta["format"] = info->format;
  item->meta["width"] = std::to_string(info->width);
  item->meta["height"] = std::to_string(info->height);
  item->meta["channels"] = std::to_string(info->channels);
}

}  // namespace strata::ingest
