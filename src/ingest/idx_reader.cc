#include "ingest/idx_reader.h"

#include <fmt/format.h>

#include "ingest/archive_source.h"

namespace strata::ingest {
namespace {

// Reads exactly n bytes; *complete is false at a short read (end of input).
Status ReadFull(SequentialFile* f, uint8_t* dst, size_t n, bool* complete) {
  size_t done = 0;
  while (done < n) {
    size_t got = 0;
    STRATA_RETURN_IF_ERROR(f->Read(n - done, dst + done, &got));
    if (got == 0) break;
    done += got;
  }
  *complete = done == n;
  return Status::OK();
}

struct IdxHeader {
  std::vector<uint32_t> dims;
};

Result<IdxHeader> ReadHeader(SequentialFile* f, const std::string& path, size_t want_dims) {
  uint8_t magic[4];
  bool complete = false;
  STRATA_RETURN_IF_ERROR(ReadFull(f, magic, 4, &complete));
  if (!complete || magic[0] != 0 || magic[1] != 0) {
    return Status::InvalidArgument(fmt::format("{} is not an IDX file (bad magic)", path));
  }
  if (magic[2] != 0x08) {
    return Status::Unsupported(
        fmt::format("{}: IDX element type 0x{:02x} is not supported (only unsigned bytes, 0x08)", path, magic[2]));
  }
  if (magic[3] != want_dims) {
    return Status::InvalidArgument(
        fmt::format("{}: IDX file has {} dimensions, expected {}", path, magic[3], want_dims));
  }
  IdxHeader h;
  for (size_t i = 0; i < want_dims; ++i) {
    uint8_t b[4];
    STRATA_RETURN_IF_ERROR(ReadFull(f, b, 4, &complete));
    if (!complete) return Status::Corruption(fmt::format("{}: IDX header is truncated", path));
    h.dims.push_back(uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | b[3]);
  }
  return h;
}

Status ExpectEnd(SequentialFile* f, const std::string& path) {
  uint8_t b;
  size_t got = 0;
  STRATA_RETURN_IF_ERROR(f->Read(1, &b, &got));
  if (got != 0) return Status::Corruption(fmt::format("{}: bytes after the last item the header counts", path));
  return Status::OK();
}

}  // namespace

const std::vector<std::string>& FashionMnistLabels() {
  static const std::vector<std::string> kNames = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                  "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return kNames;
}

Status ReadIdx(Env* env, const std::string& images_path, const std::string& labels_path, const IdxOptions& options,
               ItemSink* sink) {
  const std::string name = options.name.empty() ? images_path : options.name;
  STRATA_ASSIGN_OR_RETURN(auto images, OpenDecompressed(env, images_path));
  STRATA_ASSIGN_OR_RETURN(IdxHeader ih, ReadHeader(images.get(), images_path, 3));
  const uint64_t count = ih.dims[0], rows = ih.dims[1], cols = ih.dims[2];
  if (rows == 0 || cols == 0) {
    return Status::InvalidArgument(fmt::format("{}: images of {}x{} pixels", images_path, rows, cols));
  }
  if (rows * cols > options.max_image_bytes) {
    return Status::InvalidArgument(fmt::format("{}: images of {}x{} pixels are over the limit of {} bytes",
                                               images_path, rows, cols, options.max_image_bytes));
  }
  std::unique_ptr<SequentialFile> labels;
  if (!labels_path.empty()) {
    STRATA_ASSIGN_OR_RETURN(labels, OpenDecompressed(env, labels_path));
    STRATA_ASSIGN_OR_RETURN(IdxHeader lh, ReadHeader(labels.get(), labels_path, 1));
    if (lh.dims[0] != count) {
      return Status::InvalidArgument(fmt::format("{} holds {} images but {} holds {} labels", images_path, count,
                                                 labels_path, lh.dims[0]));
    }
  }
  const size_t width = std::to_string(count > 0 ? count - 1 : 0).size();
  const std::string pgm_header = fmt::format("P5\n{} {}\n255\n", cols, rows);
  std::string pgm(pgm_header.size() + rows * cols, '\0');
  std::copy(pgm_header.begin(), pgm_header.end(), pgm.begin());
  auto* pixels = reinterpret_cast<uint8_t*>(pgm.data() + pgm_header.size());
  for (uint64_t i = 0; i < count; ++i) {
    bool complete = false;
    STRATA_RETURN_IF_ERROR(ReadFull(images.get(), pixels, rows * cols, &complete));
    if (!complete) {
      return Status::Corruption(
          fmt::format("{}: truncated: image {} of {} is incomplete", images_path, i, count));
    }
    FileItem item;
    item.path = fmt::format("{}{:0{}}.pgm", options.prefix, i, width);
    item.size = pgm.size();
    item.meta["index"] = std::to_string(i);
    if (labels) {
      uint8_t label = 0;
      STRATA_RETURN_IF_ERROR(ReadFull(labels.get(), &label, 1, &complete));
      if (!complete) {
        return Status::Corruption(fmt::format("{}: truncated: label {} of {} is missing", labels_path, i, count));
      }
      if (!options.label_names.empty()) {
        if (label >= options.label_names.size()) {
          sink->Reject(fmt::format("{}:{}", name, i), "idx-label",
                       fmt::format("label {} has no name (the names cover 0 to {})", label,
                                   options.label_names.size() - 1));
          continue;
        }
        item.meta["label"] = options.label_names[label];
      } else {
        item.meta["label"] = std::to_string(label);
      }
    }
    MemorySequentialFile content(pgm);
    STRATA_RETURN_IF_ERROR(sink->AddFile(item, &content));
  }
  STRATA_RETURN_IF_ERROR(ExpectEnd(images.get(), images_path));
  if (labels) STRATA_RETURN_IF_ERROR(ExpectEnd(labels.get(), labels_path));
  return Status::OK();
}

}  // namespace strata::ingest
