#include "ingest/jpeg.h"

#include <csetjmp>
#include <cstdio>  // before jpeglib.h, which uses FILE
#include <cstring>

#include <jpeglib.h>

namespace strata::ingest {

namespace {

// Images of more pixels are left to others (and their limits): libjpeg would hold a progressive
// one's coefficients, 128 bytes a pixel, in memory.
constexpr uint64_t kMaxPixels = uint64_t{1} << 28;

struct ErrorManager {
  jpeg_error_mgr mgr;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

[[noreturn]] void OnError(j_common_ptr c) {
  auto* e = reinterpret_cast<ErrorManager*>(c->err);
  (*c->err->format_message)(c, e->message);
  longjmp(e->jump, 1);
}

void OnMessage(j_common_ptr c, int level) {
  if (level < 0) OnError(c);  // a warning; trace messages (level >= 0) are ignored
}

uint16_t Get16(const uint8_t* p, bool big) { return big ? uint16_t(p[0] << 8 | p[1]) : uint16_t(p[1] << 8 | p[0]); }

uint32_t Get32(const uint8_t* p, bool big) {
  return big ? uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]
             : uint32_t(p[3]) << 24 | uint32_t(p[2]) << 16 | uint32_t(p[1]) << 8 | p[0];
}

}  // namespace

uint16_t ExifOrientation(std::span<const uint8_t> app1) {
  static constexpr uint8_t kSignature[6] = {'E', 'x', 'i', 'f', 0, 0};
  if (app1.size() < sizeof(kSignature) + 8 || std::memcmp(app1.data(), kSignature, sizeof(kSignature)) != 0) {
    return kUnreadableOrientation;
  }
  std::span<const uint8_t> tiff = app1.subspan(sizeof(kSignature));
  bool big;
  if (tiff[0] == 'I' && tiff[1] == 'I') big = false;
  else if (tiff[0] == 'M' && tiff[1] == 'M') big = true;
  else return kUnreadableOrientation;
  if (Get16(&tiff[2], big) != 42) return kUnreadableOrientation;
  const uint32_t ifd = Get32(&tiff[4], big);
  if (ifd < 8 || ifd > tiff.size() || tiff.size() - ifd < 2) return kUnreadableOrientation;
  const uint32_t entries = Get16(&tiff[ifd], big);
  if ((tiff.size() - ifd - 2) / 12 < entries) return kUnreadableOrientation;
  uint16_t orientation = 0;
  for (uint32_t i = 0; i < entries; ++i) {
    const uint8_t* e = &tiff[ifd + 2 + 12 * i];
    if (Get16(e, big) != 0x0112) continue;
    const uint16_t value = Get16(e + 8, big);
    // One SHORT, 1-8, given once: anything else is left to readers with their own rules.
    if (orientation != 0 || Get16(e + 2, big) != 3 || Get32(e + 4, big) != 1 || value < 1 || value > 8) {
      return kUnreadableOrientation;
    }
    orientation = value;
  }
  return orientation;
}

struct JpegDecoder::State {
  jpeg_decompress_struct cinfo;
  ErrorManager err;
};

JpegDecoder::JpegDecoder() : s_(std::make_unique<State>()) {
  s_->cinfo.err = jpeg_std_error(&s_->err.mgr);
  s_->err.mgr.error_exit = OnError;
  s_->err.mgr.emit_message = OnMessage;
  jpeg_create_decompress(&s_->cinfo);  // allocates only its permanent pool: an error here is out of memory
}

JpegDecoder::~JpegDecoder() { jpeg_destroy_decompress(&s_->cinfo); }

// Only plain C objects live in these frames across setjmp.
JpegStatus JpegDecoder::Start(std::span<const uint8_t> bytes, JpegColor color, unsigned denom, JpegHeader* header,
                              std::string* why) {
  jpeg_decompress_struct* c = &s_->cinfo;
  if (setjmp(s_->err.jump)) {
    *why = s_->err.message;
    jpeg_abort_decompress(c);
    return JpegStatus::kFailed;
  }
  jpeg_abort_decompress(c);  // a decode its caller left started (no Finish or Abort) ends here
  jpeg_mem_src(c, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_save_markers(c, JPEG_APP0 + 1, 0xFFFF);
  jpeg_read_header(c, TRUE);
  header->orientation = 0;
  for (jpeg_saved_marker_ptr m = c->marker_list; m; m = m->next) {
    if (m->marker != JPEG_APP0 + 1) continue;
    header->orientation = ExifOrientation({m->data, m->data_length});
    break;
  }
  const bool tables = c->ac_huff_tbl_ptrs[0] || c->ac_huff_tbl_ptrs[1] || c->dc_huff_tbl_ptrs[0] ||
                      c->dc_huff_tbl_ptrs[1] || c->arith_code;
  const bool known = c->jpeg_color_space == JCS_GRAYSCALE || c->jpeg_color_space == JCS_YCbCr ||
                     c->jpeg_color_space == JCS_RGB;
  if (!tables || !known || (c->num_components != 1 && c->num_components != 3) ||
      uint64_t{c->image_width} * c->image_height > kMaxPixels) {
    jpeg_abort_decompress(c);
    return JpegStatus::kUnsupported;
  }
  const bool grey = color == JpegColor::kGrey || (color == JpegColor::kStored && c->num_components == 1);
  c->out_color_space = grey ? JCS_GRAYSCALE : JCS_RGB;
  c->scale_num = 1;
  c->scale_denom = denom;
  jpeg_start_decompress(c);
  header->width = c->output_width;
  header->height = c->output_height;
  header->channels = static_cast<uint32_t>(c->output_components);
  return JpegStatus::kOk;
}

bool JpegDecoder::Finish(uint8_t* dst, size_t stride, std::string* why) {
  jpeg_decompress_struct* c = &s_->cinfo;
  if (setjmp(s_->err.jump)) {
    *why = s_->err.message;
    jpeg_abort_decompress(c);
    return false;
  }
  JSAMPROW rows[16];
  while (c->output_scanline < c->output_height) {
    const JDIMENSION left = c->output_height - c->output_scanline;
    const JDIMENSION n = left < 16 ? left : 16;
    for (JDIMENSION i = 0; i < n; ++i) rows[i] = dst + (c->output_scanline + i) * stride;
    if (jpeg_read_scanlines(c, rows, n) == 0) {  // a memory source never suspends
      std::strcpy(s_->err.message, "the decoder stopped before the last row");
      longjmp(s_->err.jump, 1);
    }
  }
  jpeg_finish_decompress(c);  // reads on to the end marker: a truncated file warns here
  return true;
}

void JpegDecoder::Abort() { jpeg_abort_decompress(&s_->cinfo); }

}  // namespace strata::ingest
