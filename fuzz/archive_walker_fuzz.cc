// Archives are untrusted: whatever the bytes, the walk ends in OK or a clean error, every file
// it yields has a safe path, and the limits hold.
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>

#include "ingest/archive_reader.h"

namespace {

using namespace strata;
using namespace strata::ingest;

constexpr uint64_t kMaxTotal = 8 << 20;

class CheckingSink final : public ItemSink {
 public:
  Status AddFile(const FileItem& item, SequentialFile* content) override {
    PathCheck check = CheckItemPath(item.path);
    if (!check.ok || check.path != item.path || !paths_.insert(item.path).second) std::abort();
    if (item.mode > 0777) std::abort();
    uint8_t buf[4096];
    size_t got = 0;
    do {
      STRATA_RETURN_IF_ERROR(content->Read(sizeof buf, buf, &got));
      total_ += got;
      if (total_ > kMaxTotal) std::abort();
    } while (got > 0);
    return Status::OK();
  }
  Status StartTable(std::string_view, const Schema&) override { std::abort(); }
  Status AddRecord(const Record&) override { std::abort(); }
  void Reject(std::string_view where, std::string_view rule, std::string_view) override {
    if (where.empty() || rule.empty()) std::abort();
  }

 private:
  std::set<std::string> paths_;
  uint64_t total_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ArchiveOptions options;
  options.limits.max_total_bytes = kMaxTotal;
  options.limits.max_entry_bytes = 1 << 20;
  options.limits.max_entries = 1000;
  options.limits.ratio_grace_bytes = 1 << 20;
  options.limits.max_ratio = 100;
  CheckingSink sink;
  Status st = ReadArchiveFromMemory(std::string_view(reinterpret_cast<const char*>(data), size), options, &sink);
  if (!st.ok() && st.code() != StatusCode::kInvalidArgument && st.code() != StatusCode::kCorruption) std::abort();
  return 0;
}
