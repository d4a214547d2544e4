// IDX files (the format of MNIST and Fashion-MNIST), plain or compressed (gzip, ...): an images
// file (unsigned bytes, 3 dimensions: count, rows, columns) and optionally a labels file
// (unsigned bytes, 1 dimension: count). Each image becomes one file, a binary PGM (P5, maxval
// 255: lossless, readable by every image tool) named PREFIX + zero-padded index + ".pgm", with
// meta "index" and, with labels, "label".
//
// Errors end the walk: a header that is not IDX or a type other than unsigned byte
// (kInvalidArgument / kUnsupported), counts that differ between the two files or an image over
// max_image_bytes (kInvalidArgument), a file shorter or longer than its header says
// (kCorruption). A label with no entry in label_names is rejected ("idx-label").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ingest/source.h"

namespace strata::ingest {

struct IdxOptions {
  std::string prefix;                    // "train/" gives train/00000.pgm, ...
  std::vector<std::string> label_names;  // label byte -> meta["label"]; empty: the number
  uint64_t max_image_bytes = uint64_t{16} << 20;
  std::string name;                      // names the source in Reject; default: images path
};

// `labels_path` may be empty (images only).
Status ReadIdx(Env* env, const std::string& images_path, const std::string& labels_path, const IdxOptions& options,
               ItemSink* sink);

// Fashion-MNIST's ten class names, in label order.
const std::vector<std::string>& FashionMnistLabels();

}  // namespace strata::ingest
