// Curation: rules over a version's records and content -> a derived branch plus a quarantine.
#include <fnmatch.h>
#include <openssl/evp.h>
#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>

#include <fmt/format.h>
#include <png.h>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <xxhash.h>

#include "base/progress.h"
#include "base/thread_pool.h"
#include "ingest/image_probe.h"
#include "ingest/jpeg.h"
#include "ingest/labels.h"
#include "ingest/source.h"
#include "strata/curate.h"
#include "version/record_table.h"

namespace strata {

namespace {


std::string PathOf(const RecordMeta& row) { return std::get<std::string>(row.at("path")); }

const MetaValue* Get(const RecordMeta& row, const std::string& col) {
  auto it = row.find(col);
  return it == row.end() || std::holds_alternative<std::monostate>(it->second) ? nullptr : &it->second;
}

std::optional<double> Number(const MetaValue& v) {
  if (auto* i = std::get_if<int64_t>(&v)) return double(*i);
  if (auto* d = std::get_if<double>(&v)) return *d;
  return std::nullopt;
}

bool OfType(const MetaValue& v, const std::string& t) {
  if (t == "int") return std::holds_alternative<int64_t>(v);
  if (t == "float") return std::holds_alternative<double>(v);
  if (t == "number") return Number(v).has_value();
  if (t == "bool") return std::holds_alternative<bool>(v);
  return std::holds_alternative<std::string>(v);
}

bool Matches(const std::vector<std::string>& globs, const std::string& path) {
  std::string_view base(path);
  base = base.substr(base.rfind('/') == std::string_view::npos ? 0 : base.rfind('/') + 1);
  for (const auto& g : globs) {
    if (fnmatch(g.c_str(), path.c_str(), 0) == 0 || fnmatch(g.c_str(), std::string(base).c_str(), 0) == 0) return true;
  }
  return false;
}

Result<std::string> ReadAll(Lake* lake, const Resolved& version, const std::string& path, uint64_t limit) {
  STRATA_ASSIGN_OR_RETURN(auto rd, lake->OpenFile(version, path));
  uint64_t n = std::min<uint64_t>(rd->size(), limit);
  std::string out(n, '\0');
  size_t got = 0;
  STRATA_RETURN_IF_ERROR(rd->ReadAt(0, n, reinterpret_cast<uint8_t*>(out.data()), &got));
  out.resize(got);
  return out;
}

// Unicode NFC (utf8proc); `text` must be valid UTF-8.
std::string Nfc(const std::string& text) {
  utf8proc_uint8_t* out = utf8proc_NFC(reinterpret_cast<const utf8proc_uint8_t*>(text.c_str()));
  if (!out) return text;
  std::string s(reinterpret_cast<char*>(out));
  free(out);
  return s;
}

std::string CollapseWhitespace(const std::string& text) {
  std::string out;
  bool space = false;
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      space = !out.empty();
    } else {
      if (space) out += ' ';
      space = false;
      out += c;
    }
  }
  return out;
}

// MinHash over character shingles: 64 minima of (a*h + b) mod p of each shingle's hash.
constexpr int kHashes = 64, kBands = 16, kRows = kHashes / kBands;
using Signature = std::array<uint64_t, kHashes>;

Signature MinHash(const std::string& text, uint32_t k) {
  Signature sig;
  sig.fill(UINT64_MAX);
  constexpr uint64_t kPrime = (uint64_t{1} << 61) - 1;
  auto mix = [](uint64_t x) {  // splitmix64: fixed coefficients, so signatures are reproducible
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
  };
  size_t n = text.size() < k ? 1 : text.size() - k + 1;
  for (size_t i = 0; i < n; ++i) {
    uint64_t h = XXH64(text.data() + i, std::min<size_t>(k, text.size() - i), 0) % kPrime;
    for (int j = 0; j < kHashes; ++j) {
      uint64_t a = mix(2 * j + 1) % kPrime | 1, b = mix(2 * j + 2) % kPrime;
      uint64_t v = static_cast<uint64_t>((static_cast<unsigned __int128>(a) * h + b) % kPrime);
      sig[j] = std::min(sig[j], v);
    }
  }
  return sig;
}

double Similarity(const Signature& a, const Signature& b) {
  int same = 0;
  for (int i = 0; i < kHashes; ++i) same += a[i] == b[i];
  return double(same) / kHashes;
}

// Files larger than this are not decoded (an image bomb's file is small; its pixels are not,
// and the header check below bounds those).
constexpr uint64_t kMaxImageFileBytes = uint64_t{256} << 20;
constexpr uint64_t kMaxImagePixels = uint64_t{1} << 28;

enum class JpegDecode { kOk, kFailed, kNotGrey };

// Decodes a JPEG to grey at 1/`denom` of its size (libjpeg's DCT scaling: every block is still
// decoded, the inverse transforms are smaller). kFailed with `why` set when it does not decode;
// kNotGrey for a JPEG the strict decoder leaves to others (CMYK/YCCK, MJPEG without tables).
JpegDecode DecodeJpegGrey(const std::string& data, unsigned denom, cv::Mat* out, std::string* why) {
  static thread_local ingest::JpegDecoder decoder;
  ingest::JpegHeader h;
  switch (decoder.Start({reinterpret_cast<const uint8_t*>(data.data()), data.size()}, ingest::JpegColor::kGrey, denom,
                        &h, why)) {
    case ingest::JpegStatus::kOk: break;
    case ingest::JpegStatus::kFailed: return JpegDecode::kFailed;
    case ingest::JpegStatus::kUnsupported: return JpegDecode::kNotGrey;
  }
  out->create(static_cast<int>(h.height), static_cast<int>(h.width), CV_8U);
  return decoder.Finish(out->ptr(), out->step, why) ? JpegDecode::kOk : JpegDecode::kFailed;
}

// libpng's errors come back through OnPngError instead of being printed; its warnings (benign
// metadata, such as a colour profile it does not like) are ignored. Reads come from memory.
struct PngSource {
  const uint8_t* data;
  size_t size;
  size_t pos;
  char message[256];
};

[[noreturn]] void OnPngError(png_structp png, png_const_charp message) {
  auto* src = static_cast<PngSource*>(png_get_error_ptr(png));
  std::snprintf(src->message, sizeof(src->message), "%s", message);
  png_longjmp(png, 1);
}

void OnPngWarning(png_structp, png_const_charp) {}

void ReadPngBytes(png_structp png, png_bytep out, size_t n) {
  auto* src = static_cast<PngSource*>(png_get_io_ptr(png));
  if (n > src->size - src->pos) png_error(png, "truncated");
  std::memcpy(out, src->data + src->pos, n);
  src->pos += n;
}

// Decodes a PNG to 8-bit grey as OpenCV's reader does (16 bits stripped, alpha dropped,
// palettes and small depths expanded, colour weighted 0.299/0.587/0.114), reading on to the end
// chunk, so damage anywhere fails. False with `why` set when it does not decode. Only plain C
// objects live in this frame across setjmp; `out` belongs to the caller.
bool DecodePngGrey(const std::string& data, cv::Mat* out, std::string* why) {
  PngSource src{reinterpret_cast<const uint8_t*>(data.data()), data.size(), 0, ""};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, OnPngError, OnPngWarning);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (info == nullptr) {
    *why = "out of memory";
    png_destroy_read_struct(&png, nullptr, nullptr);
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    *why = src.message;
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  png_set_read_fn(png, &src, ReadPngBytes);
  png_read_info(png, info);
  const int colour = png_get_color_type(png, info);
  png_set_strip_16(png);
  png_set_strip_alpha(png);
  if (colour == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if ((colour & PNG_COLOR_MASK_COLOR) == 0 && png_get_bit_depth(png, info) < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (colour & PNG_COLOR_MASK_COLOR) png_set_rgb_to_gray(png, 1, 0.299, 0.587);  // palettes too
  const int passes = png_set_interlace_handling(png);
  png_read_update_info(png, info);
  out->create(static_cast<int>(png_get_image_height(png, info)), static_cast<int>(png_get_image_width(png, info)),
              CV_8U);
  for (int pass = 0; pass < passes; ++pass) {
    for (int y = 0; y < out->rows; ++y) png_read_row(png, out->ptr(y), nullptr);
  }
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

// Decodes the whole image to grey: every entropy-coded block is decoded, so a damaged body
// fails here, not only a damaged header. A JPEG is decoded at the smallest DCT scale that
// keeps 32 pixels a side for the hash. Empty with `why` set when it does not decode.
cv::Mat DecodeGrey(const std::string& data, const ingest::ImageInfo& info, std::string* why) {
  if (uint64_t{info.width} * info.height > kMaxImagePixels) {
    *why = fmt::format("{}x{} pixels is more than this check decodes", info.width, info.height);
    return {};
  }
  if (*why = ingest::PixelsMissing(data.size(), info); !why->empty()) return {};
  if (info.format == "png" && data.find("IEND", data.size() - std::min<size_t>(data.size(), 64)) == std::string::npos) {
    *why = "truncated: no end chunk";
    return {};
  }
  cv::Mat img;
  if (info.format == "png") {
    if (DecodePngGrey(data, &img, why)) return img;
    *why = fmt::format("does not decode: {}", *why);
    return {};
  }
  if (info.format == "jpeg") {
    uint32_t side = std::min(info.width, info.height);
    unsigned denom = side >= 256 ? 8 : side >= 128 ? 4 : side >= 64 ? 2 : 1;
    switch (DecodeJpegGrey(data, denom, &img, why)) {
      case JpegDecode::kOk: return img;
      case JpegDecode::kFailed: *why = fmt::format("does not decode: {}", *why); return {};
      case JpegDecode::kNotGrey: break;  // OpenCV converts it below
    }
  }
  try {
    img = cv::imdecode(cv::Mat(1, int(data.size()), CV_8U, const_cast<char*>(data.data())), cv::IMREAD_GRAYSCALE);
  } catch (const cv::Exception& e) {
    *why = fmt::format("does not decode ({})", e.err);
    return {};
  }
  if (img.empty()) *why = "the image data does not decode";
  return img;
}

// Perceptual hash: the grey image at 32x32 (area average), its 2-D DCT, and one bit per
// coefficient of the 8x8 lowest frequencies, set when it is above their median. Resizing,
// re-encoding and small edits move few bits; different images differ in about half.
uint64_t PHash(const cv::Mat& grey) {
  cv::Mat small, f, d;
  cv::resize(grey, small, cv::Size(32, 32), 0, 0, cv::INTER_AREA);
  small.convertTo(f, CV_32F);
  cv::dct(f, d);
  std::array<float, 64> low, sorted;
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 8; ++x) low[y * 8 + x] = d.at<float>(y, x);
  sorted = low;
  std::nth_element(sorted.begin(), sorted.begin() + 32, sorted.end());
  float hi = sorted[32];
  float lo = *std::max_element(sorted.begin(), sorted.begin() + 32);
  float median = (lo + hi) / 2;
  uint64_t bits = 0;
  for (float v : low) bits = bits << 1 | (v > median ? 1 : 0);
  return bits;
}

struct Item {
  RecordMeta row;        // as it will be written (label remapped, ...)
  std::string path;
  bool is_file = false;
  bool changed_meta = false;
  std::string new_content;  // normalised text, when it changed
  bool normalised = false;
  std::string rule, reason;  // first failure
  std::optional<Signature> minhash;
  std::optional<uint64_t> phash;
};

class Collector final : public ingest::RejectSink {
 public:
  void Reject(std::string_view where, std::string_view rule, std::string_view reason) override {
    problems.push_back(fmt::format("{}: {}", where, reason));
  }
  std::vector<std::string> problems;
};

// Which of a duplicate group survives.
bool Keeps(const std::string& keep, const Item& a, const Item& b) {  // true: a is kept over b
  auto size = [](const Item& x) {
    auto* v = Get(x.row, "size");
    return v ? std::get<int64_t>(*v) : int64_t(0);
  };
  if (keep == "last") return a.path > b.path;
  if (keep == "largest" && size(a) != size(b)) return size(a) > size(b);
  if (keep == "smallest" && size(a) != size(b)) return size(a) < size(b);
  return a.path < b.path;
}

void Fail(Item& item, std::string rule, std::string reason) {
  if (!item.rule.empty()) return;
  item.rule = std::move(rule);
  item.reason = std::move(reason);
}

Result<std::set<std::string>> PathsWhere(const std::vector<RecordMeta>& rows, const std::string& cond,
                                         const char* what) {
  auto q = version::RunQuery(rows, fmt::format("SELECT path FROM records WHERE {}", cond));
  if (!q.ok()) return q.status().WithContext(fmt::format("curation rule '{}'", what));
  std::set<std::string> out;
  for (const auto& r : q->rows) {
    if (auto* s = std::get_if<std::string>(&r[0])) out.insert(*s);
  }
  return out;
}

// The text or image checks of one file (other records pass untouched). Touches only `it`.
Status CheckContent(Lake* lake, const Resolved& from, const CurationRules& rules, Item& it, Progress& progress) {
  if (!it.is_file) return Status::OK();
  if (rules.text && Matches(rules.text->files, it.path)) {
    const auto& t = *rules.text;
    STRATA_ASSIGN_OR_RETURN(std::string text, ReadAll(lake, from, it.path, UINT64_MAX));
    progress.Add(text.size(), 1);
    if (t.utf8 && !ingest::IsValidUtf8(text)) {
      Fail(it, "utf8", "not valid UTF-8");
      return Status::OK();
    }
    std::string norm = text;
    if (t.nfc) norm = Nfc(norm);
    if (t.collapse_whitespace) norm = CollapseWhitespace(norm);
    if (t.min_bytes && norm.size() < t.min_bytes) Fail(it, "length", fmt::format("{} bytes, fewer than {}", norm.size(), t.min_bytes));
    if (t.max_bytes && norm.size() > t.max_bytes) Fail(it, "length", fmt::format("{} bytes, more than {}", norm.size(), t.max_bytes));
    if (norm != text) {
      it.new_content = norm;
      it.normalised = true;
    }
    if (rules.duplicates.near_text > 0) it.minhash = MinHash(norm, rules.duplicates.shingle);
  } else if (rules.images && Matches(rules.images->files, it.path)) {
    const auto& im = *rules.images;
    STRATA_ASSIGN_OR_RETURN(std::string data, ReadAll(lake, from, it.path, kMaxImageFileBytes + 1));
    progress.Add(data.size(), 1);
    if (data.size() > kMaxImageFileBytes) {
      Fail(it, "image-size", fmt::format("a file of more than {}", Progress::FormatBytes(kMaxImageFileBytes)));
      return Status::OK();
    }
    auto info = ingest::ProbeImage({reinterpret_cast<const uint8_t*>(data.data()), data.size()});
    if (!info.ok()) {
      Fail(it, "decode", std::string(info.status().message()));
      return Status::OK();
    }
    if ((im.min_width && info->width < im.min_width) || (im.min_height && info->height < im.min_height) ||
        (im.max_width && info->width > im.max_width) || (im.max_height && info->height > im.max_height)) {
      Fail(it, "image-size", fmt::format("{}x{} is outside the limits", info->width, info->height));
    }
    if (!im.channels.empty() && std::find(im.channels.begin(), im.channels.end(), info->channels) == im.channels.end()) {
      Fail(it, "channels", fmt::format("{} channels are not allowed", info->channels));
    }
    if (!it.rule.empty()) return Status::OK();
    std::string why;
    cv::Mat grey = DecodeGrey(data, *info, &why);
    if (grey.empty()) {
      Fail(it, "decode", why);
      return Status::OK();
    }
    if (rules.duplicates.near_image >= 0) it.phash = PHash(grey);
  }
  return Status::OK();
}

}  // namespace

Result<CurationReport> Curate(Lake* lake, std::string_view src, std::string_view dst, const CurationRules& rules,
                              const CurateOptions& options) {
  auto start = std::chrono::steady_clock::now();
  CurationReport report;
  report.source = std::string(src);
  report.target = std::string(dst);
  STRATA_ASSIGN_OR_RETURN(Resolved from, lake->Resolve(src));
  report.source_commit = from.commit.id;
  STRATA_ASSIGN_OR_RETURN(RefSpec to, ParseRefSpec(dst));
  if (to.dataset != from.spec.dataset) {
    return Status::InvalidArgument(fmt::format("curate within one dataset: '{}' and '{}' differ", src, dst));
  }
  if (!to.path.empty()) return Status::InvalidArgument("the target is a branch: NAME@BRANCH, without a path");
  std::string src_at = from.spec.dataset + "@" + from.commit.id.ToHex();
  if (auto r = lake->Resolve(dst); !r.ok()) {
    if (r.status().code() != StatusCode::kNotFound) return r.status();
    STRATA_RETURN_IF_ERROR(lake->CreateRef(dst, src_at, RefType::kBranch));
  }

  // The records to curate, with the rules' edits applied in memory.
  STRATA_ASSIGN_OR_RETURN(auto all, lake->Records(src_at));
  std::vector<RecordMeta> rows;
  for (auto& r : all) {
    if (!PathOf(r).starts_with(kQuarantineDir)) rows.push_back(std::move(r));
  }
  std::set<std::string> selected;
  if (!rules.select.empty()) {
    STRATA_ASSIGN_OR_RETURN(selected, PathsWhere(rows, rules.select, "select"));
  }
  std::vector<Item> items;
  for (auto& r : rows) {
    std::string path = PathOf(r);
    if (!rules.select.empty() && !selected.count(path)) continue;
    Item it;
    it.path = path;
    it.is_file = r.count("size") > 0;
    it.row = std::move(r);
    items.push_back(std::move(it));
  }
  report.records_before = items.size();
  Progress progress("curate", 0, options.progress);

  // Labels: a joined CSV, then remapping.
  if (!rules.labels_csv.empty()) {
    Collector problems;
    STRATA_ASSIGN_OR_RETURN(auto map, ingest::LoadLabels(Env::Default(), rules.labels_csv, {}, &problems));
    for (auto& it : items) {
      auto e = map.entries.find(it.path);
      if (e == map.entries.end()) {
        std::string base = it.path.substr(it.path.rfind('/') == std::string::npos ? 0 : it.path.rfind('/') + 1);
        e = map.entries.find(base);
      }
      if (e != map.entries.end()) {
        auto* old = Get(it.row, rules.label_column);
        if (!old || !std::holds_alternative<std::string>(*old) || std::get<std::string>(*old) != e->second.label) {
          it.row[rules.label_column] = e->second.label;
          it.changed_meta = true;
        }
      }
    }
  }
  for (auto& it : items) {
    auto* label = Get(it.row, rules.label_column);
    if (!label || !std::holds_alternative<std::string>(*label)) continue;
    auto m = rules.remap.find(std::get<std::string>(*label));
    if (m != rules.remap.end() && m->second != m->first) {
      it.row[rules.label_column] = m->second;
      it.changed_meta = true;
    }
  }

  // Metadata checks.
  std::set<std::string> allowed(rules.allowed_labels.begin(), rules.allowed_labels.end());
  for (auto& it : items) {
    for (const auto& col : rules.require) {
      if (!Get(it.row, col)) Fail(it, "required", fmt::format("column '{}' is missing", col));
    }
    for (const auto& [col, type] : rules.types) {
      if (auto* v = Get(it.row, col); v && !OfType(*v, type)) {
        Fail(it, "type", fmt::format("column '{}' is not of type {}", col, type));
      }
    }
    for (const auto& [col, range] : rules.ranges) {
      auto* v = Get(it.row, col);
      if (!v) continue;
      auto n = Number(*v);
      if (!n) Fail(it, "range", fmt::format("column '{}' is not a number", col));
      else if (range.min && *n < *range.min) Fail(it, "range", fmt::format("{} = {} is below {}", col, *n, *range.min));
      else if (range.max && *n > *range.max) Fail(it, "range", fmt::format("{} = {} is above {}", col, *n, *range.max));
    }
    if (!allowed.empty()) {
      auto* v = Get(it.row, rules.label_column);
      std::string label = v ? version::MetaValueText(*v) : "";
      if (!v) Fail(it, "label", "no label");
      else if (!allowed.count(label)) Fail(it, "label", fmt::format("label '{}' is not allowed", label));
    }
  }
  if (!rules.filter.empty()) {
    std::vector<RecordMeta> now;
    for (const auto& it : items) now.push_back(it.row);
    STRATA_ASSIGN_OR_RETURN(auto pass, PathsWhere(now, "(" + rules.filter + ")", "filter"));
    for (auto& it : items) {
      if (!pass.count(it.path)) Fail(it, "filter", fmt::format("does not satisfy: {}", rules.filter));
    }
  }

  // Content checks (text and images) on a pool: reading and decoding are most of the work.
  {
    constexpr size_t kPerTask = 32;
    std::mutex mu;
    Status first;
    std::atomic<bool> failed{false};
    ThreadPool pool(0, 64);
    for (size_t b = 0; b < items.size() && !failed; b += kPerTask) {
      pool.Submit([&, b] {
        for (size_t i = b; i < std::min(items.size(), b + kPerTask) && !failed; ++i) {
          Status s = CheckContent(lake, from, rules, items[i], progress);
          if (!s.ok()) {
            std::lock_guard<std::mutex> l(mu);
            if (!failed.exchange(true)) first = std::move(s);
          }
        }
      });
    }
    pool.Wait();
    STRATA_RETURN_IF_ERROR(first);
  }

  // Duplicates among the records that passed so far, in the keep rule's order.
  std::vector<Item*> order;
  for (auto& it : items) {
    if (it.rule.empty() && it.is_file) order.push_back(&it);
  }
  std::sort(order.begin(), order.end(), [&](const Item* a, const Item* b) { return Keeps(rules.duplicates.keep, *a, *b); });
  if (rules.duplicates.exact) {
    std::unordered_map<std::string, const Item*> first;
    for (Item* it : order) {
      auto* c = Get(it->row, "content");
      if (!c) continue;
      auto [pos, fresh] = first.emplace(std::get<std::string>(*c), it);
      if (!fresh) Fail(*it, "duplicate", fmt::format("same content as {}", pos->second->path));
    }
  }
  if (rules.duplicates.near_text > 0) {
    std::vector<std::unordered_map<uint64_t, std::vector<const Item*>>> bands(kBands);
    for (Item* it : order) {
      if (!it->minhash || !it->rule.empty()) continue;
      const Item* match = nullptr;
      std::vector<uint64_t> keys(kBands);
      for (int b = 0; b < kBands && !match; ++b) {
        keys[b] = XXH64(it->minhash->data() + b * kRows, kRows * sizeof(uint64_t), b);
        auto f = bands[b].find(keys[b]);
        if (f == bands[b].end()) continue;
        for (const Item* other : f->second) {
          if (Similarity(*it->minhash, *other->minhash) >= rules.duplicates.near_text) {
            match = other;
            break;
          }
        }
      }
      if (match) {
        Fail(*it, "near-duplicate", fmt::format("text similar to {} (Jaccard ~{:.2f})", match->path,
                                                 Similarity(*it->minhash, *match->minhash)));
        continue;
      }
      for (int b = 0; b < kBands; ++b) bands[b][keys[b]].push_back(it);
    }
  }
  if (rules.duplicates.near_image >= 0) {
    // Pigeonhole: within distance d < 8 of each other, two 64-bit hashes share one of 8 bytes
    // exactly when d < 8, so candidates come from 8 byte-keyed buckets.
    std::vector<std::unordered_map<uint8_t, std::vector<const Item*>>> buckets(8);
    std::vector<const Item*> kept;
    for (Item* it : order) {
      if (!it->phash || !it->rule.empty()) continue;
      const Item* match = nullptr;
      auto close = [&](const Item* o) { return std::popcount(*it->phash ^ *o->phash) <= rules.duplicates.near_image; };
      if (rules.duplicates.near_image < 8) {
        for (int b = 0; b < 8 && !match; ++b) {
          for (const Item* o : buckets[b][uint8_t(*it->phash >> (8 * b))]) {
            if (close(o)) {
              match = o;
              break;
            }
          }
        }
      } else {
        for (const Item* o : kept) {
          if (close(o)) {
            match = o;
            break;
          }
        }
      }
      if (match) {
        Fail(*it, "near-duplicate", fmt::format("image similar to {} (perceptual hash distance {})", match->path,
                                                 std::popcount(*it->phash ^ *match->phash)));
        continue;
      }
      for (int b = 0; b < 8; ++b) buckets[b][uint8_t(*it->phash >> (8 * b))].push_back(it);
      kept.push_back(it);
    }
  }

  // The derived commit: passing records as edited, failing ones moved below .quarantine/.
  STRATA_ASSIGN_OR_RETURN(auto stage, lake->Stage(dst, StageOptions{.from = src_at}));
  for (auto& it : items) {
    if (!it.rule.empty()) {
      std::string qpath = std::string(kQuarantineDir) + it.path;
      RecordMeta q = it.row;
      q.erase("path");
      q.erase("size");
      q.erase("content");
      q["quarantine_rule"] = it.rule;
      q["quarantine_reason"] = it.reason;
      if (it.is_file) {
        STRATA_RETURN_IF_ERROR(stage->Move(it.path, qpath));
      } else {
        STRATA_RETURN_IF_ERROR(stage->RemoveRecord(it.path));
      }
      STRATA_RETURN_IF_ERROR(stage->SetRecord(qpath, q));
      ++report.per_rule[it.rule];
      report.quarantined.push_back(CurationFinding{it.path, it.rule, it.reason});
      continue;
    }
    ++report.records_after;
    if (it.normalised) {
      // Keep the original's mode and mtime, so that curating again gives the same tree.
      STRATA_ASSIGN_OR_RETURN(auto entries, lake->List(src_at + ":" + it.path, false));
      FileAttrs attrs;
      if (entries.size() == 1) attrs = FileAttrs{.mode = entries[0].mode, .mtime_ns = entries[0].mtime_ns};
      STRATA_RETURN_IF_ERROR(stage->AddBytes(it.path, it.new_content, attrs));
      ++report.normalised;
    }
    if (it.changed_meta) {
      RecordMeta m = it.row;
      m.erase("path");
      m.erase("size");
      m.erase("content");
      STRATA_RETURN_IF_ERROR(stage->SetRecord(it.path, m));
      ++report.relabelled;
    }
  }
  CommitOptions co = options.commit;
  if (co.message.empty()) co.message = fmt::format("curate {}", src);
  co.meta["curate.source"] = from.commit.id.ToHex();
  co.meta["curate.records"] = std::to_string(report.records_before);
  co.meta["curate.passed"] = std::to_string(report.records_after);
  co.meta["curate.quarantined"] = std::to_string(report.quarantined.size());
  for (const auto& [rule, n] : report.per_rule) co.meta["curate.rule." + rule] = std::to_string(n);
  STRATA_ASSIGN_OR_RETURN(report.commit, stage->Commit(co));
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

std::string CurationReportJson(const CurationReport& r) {
  nlohmann::json q = nlohmann::json::array();
  for (const auto& f : r.quarantined) q.push_back({{"path", f.path}, {"rule", f.rule}, {"reason", f.reason}});
  nlohmann::json j{{"source", r.source},
                   {"source_commit", r.source_commit.ToHex()},
                   {"target", r.target},
                   {"commit", r.commit.commit.ToHex()},
                   {"unchanged", r.commit.unchanged},
                   {"records_before", r.records_before},
                   {"records_after", r.records_after},
                   {"relabelled", r.relabelled},
                   {"normalised", r.normalised},
                   {"per_rule", r.per_rule},
                   {"quarantined", q},
                   {"seconds", r.seconds}};
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string CurationReportText(const CurationReport& r) {
  std::string out = fmt::format("curation of {} ({}) into {}\n", r.source, r.source_commit.Short(), r.target);
  out += fmt::format("  records: {} before, {} passed, {} quarantined; {} relabelled, {} normalised\n", r.records_before,
                     r.records_after, r.quarantined.size(), r.relabelled, r.normalised);
  for (const auto& [rule, n] : r.per_rule) {
    out += fmt::format("  {:<16} {:>8}\n", rule, n);
    int shown = 0;
    for (const auto& f : r.quarantined) {
      if (f.rule != rule || shown++ >= 3) continue;
      out += fmt::format("      e.g. {}: {}\n", ingest::PrintableName(f.path), ingest::PrintableName(f.reason));
    }
  }
  out += r.commit.unchanged ? "  nothing changed: no commit made\n"
                            : fmt::format("  commit {} (quarantined records are below .quarantine/)\n", r.commit.commit.Short());
  return out;
}

namespace {

std::string HtmlEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string Base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  out.resize(n < 0 ? 0 : n);
  return out;
}

// A PNG thumbnail (longer side at most 112 pixels) of an image file; empty when it does not decode.
std::string Thumbnail(const std::string& data) {
  auto info = ingest::ProbeImage({reinterpret_cast<const uint8_t*>(data.data()), data.size()});
  if (!info.ok() || !ingest::PixelsMissing(data.size(), *info).empty()) return {};
  cv::Mat img;
  std::string why;
  // OpenCV's readers let libpng and libjpeg print what is wrong with a damaged file: only a file
  // that strata's own decoders read without complaint is given to them.
  if (info->format == "png" && !DecodePngGrey(data, &img, &why)) return {};
  if (info->format == "jpeg" && DecodeJpegGrey(data, 8, &img, &why) == JpegDecode::kFailed) return {};
  try {
    img = cv::imdecode(cv::Mat(1, int(data.size()), CV_8U, const_cast<char*>(data.data())), cv::IMREAD_COLOR);
    if (img.empty()) return {};
    double scale = 112.0 / std::max(img.cols, img.rows);
    if (scale < 1) cv::resize(img, img, cv::Size(), scale, scale, cv::INTER_AREA);
    std::vector<uint8_t> png;
    if (!cv::imencode(".png", img, png)) return {};
    return std::string(png.begin(), png.end());
  } catch (const cv::Exception&) {
    return {};
  }
}

}  // namespace

Result<std::string> CurationReportHtml(Lake* lake, const CurationReport& r) {
  std::string out = "<!doctype html><meta charset=utf-8><title>strata curation report</title>\n"
                    "<style>body{font-family:sans-serif}figure{display:inline-block;margin:6px;width:140px;"
                    "vertical-align:top;font-size:11px}img{width:112px;image-rendering:pixelated}</style>\n";
  out += "<pre>" + HtmlEscape(CurationReportText(r)) + "</pre>\n";
  auto target = lake->Resolve(r.target.substr(0, r.target.find('@')) + "@" + r.commit.commit.ToHex());
  if (!target.ok()) return target.status();
  const std::vector<std::string> image_files = CurationRules::Images{}.files;
  size_t shown = 0;
  for (const auto& f : r.quarantined) {
    if (shown >= 500) break;
    if (!Matches(image_files, f.path)) continue;
    auto data = ReadAll(lake, *target, std::string(kQuarantineDir) + f.path, 16 << 20);
    std::string img;
    if (data.ok()) {
      if (std::string png = Thumbnail(*data); !png.empty()) img = "data:image/png;base64," + Base64(png);
    }
    out += "<figure>";
    if (!img.empty()) out += "<img src=\"" + img + "\">";
    out += "<figcaption><b>" + HtmlEscape(f.rule) + "</b><br>" + HtmlEscape(f.path) + "<br>" + HtmlEscape(f.reason) +
           "</figcaption></figure>\n";
    ++shown;
  }
  return out;
}

}  // namespace strata
