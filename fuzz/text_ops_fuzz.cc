// Text records are files or columns of a dataset: anyone who can commit can write them. Bytes
// that pass the UTF-8 check go through every string op; each op's output must again be valid
// UTF-8 and collapsing white space twice must change nothing.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "ingest/source.h"
#include "transform/pipeline.h"
#include "transform/text_ops.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata::transform;
  static const Pipeline* pipeline = [] {
    auto p = ParsePipeline(
        "ops: [text, {unicode: {form: NFKC}}, {unicode: {form: NFD}}, lowercase, whitespace, "
        "{stopwords: {words: english}}]\n",
        "fuzz");
    if (!p.ok()) std::abort();
    return new Pipeline(std::move(*p));
  }();
  std::string text(reinterpret_cast<const char*>(data), size);
  if (!strata::ingest::IsValidUtf8(text)) return 0;
  std::string error;
  for (size_t k = 1; k < pipeline->ops.size(); ++k) {
    if (!ApplyTextOp(pipeline->ops[k], text, &error)) return 0;
    if (!strata::ingest::IsValidUtf8(text)) std::abort();
  }
  std::string again = text;
  if (!ApplyTextOp(pipeline->ops[4], again, &error) || again != text) std::abort();
  return 0;
}
