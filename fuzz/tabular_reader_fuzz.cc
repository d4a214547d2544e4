// The CSV and JSON Lines readers take untrusted files: every input must end in OK or a clean
// error, every record must match the schema announced before it, and every rejected row must name
// a line.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "ingest/tabular_reader.h"

namespace {

using namespace strata;
using namespace strata::ingest;

class CheckingSink final : public ItemSink {
 public:
  Status AddFile(const FileItem&, SequentialFile*) override { std::abort(); }
  Status StartTable(std::string_view, const Schema& schema) override {
    if (started_) std::abort();
    started_ = true;
    schema_ = schema;
    return Status::OK();
  }
  Status AddRecord(const Record& r) override {
    if (!started_ || r.fields.size() != schema_.columns.size() || r.line == 0) std::abort();
    for (size_t i = 0; i < r.fields.size(); ++i) {
      const Value& v = r.fields[i].second;
      if (r.fields[i].first != schema_.columns[i].name) std::abort();
      if (IsNull(v)) continue;
      if (static_cast<size_t>(v.index()) != static_cast<size_t>(schema_.columns[i].type) + 1) std::abort();
      if (auto* s = std::get_if<std::string>(&v); s && !IsValidUtf8(*s)) std::abort();
    }
    return Status::OK();
  }
  void Reject(std::string_view where, std::string_view rule, std::string_view) override {
    if (where.empty() || rule.empty()) std::abort();
  }

 private:
  bool started_ = false;
  Schema schema_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  // The first byte picks the reader (the top bit) and its options, so delimiters, headers and
  // small limits are explored.
  uint8_t knobs = data[0];
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  MemorySequentialFile in(text);
  CheckingSink sink;
  if (knobs & 128) {
    JsonlOptions options;
    options.infer_rows = (knobs & 1) ? 1 : 1000;
    options.max_line_bytes = (knobs & 2) ? 64 : 1 << 20;
    options.max_depth = (knobs & 4) ? 3 : 64;
    options.max_columns = (knobs & 8) ? 2 : 4096;
    // Per-line problems are rejects; only the sink could fail the walk.
    if (!ReadJsonl(&in, options, &sink).ok()) std::abort();
    return 0;
  }
  CsvOptions options;
  options.delimiter = (knobs & 1) ? ';' : ',';
  options.header = (knobs & 2) == 0;
  options.infer_rows = (knobs & 4) ? 2 : 1000;
  options.max_field_bytes = (knobs & 8) ? 16 : 1 << 20;
  options.max_line_bytes = (knobs & 16) ? 64 : 1 << 20;
  options.max_columns = (knobs & 32) ? 4 : 4096;
  Status st = ReadCsv(&in, options, &sink);
  if (!st.ok() && st.code() != StatusCode::kInvalidArgument) std::abort();
  return 0;
}
