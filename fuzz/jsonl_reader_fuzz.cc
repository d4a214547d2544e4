// The JSON Lines reader takes untrusted files: every input must end in OK or a clean error, every
// record must match the schema announced before it, and every rejected row must name a line.
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
  uint8_t knobs = data[0];
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  JsonlOptions options;
  options.infer_rows = (knobs & 1) ? 1 : 1000;
  options.max_line_bytes = (knobs & 2) ? 64 : 1 << 20;
  options.max_depth = (knobs & 4) ? 3 : 64;
  options.max_columns = (knobs & 8) ? 2 : 4096;
  MemorySequentialFile in(text);
  CheckingSink sink;
  Status st = ReadJsonl(&in, options, &sink);
  if (!st.ok()) std::abort();  // per-line problems are rejects; only the sink could fail the walk
  return 0;
}
