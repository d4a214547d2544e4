// An ItemSink that keeps everything it is given, for assertions.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "ingest/source.h"

namespace strata::ingest::testing {

struct SeenFile {
  FileItem item;
  std::string content;
};
struct SeenReject {
  std::string where, rule, reason;
};

class CollectingSink : public ItemSink {
 public:
  // When false, AddFile reads nothing (the reader must still drain and count the content).
  bool read_content = true;

  Status AddFile(const FileItem& item, SequentialFile* content) override {
    SeenFile f{item, {}};
    if (read_content) {
      char buf[4096];
      size_t got = 0;
      do {
        STRATA_RETURN_IF_ERROR(content->Read(sizeof buf, reinterpret_cast<uint8_t*>(buf), &got));
        f.content.append(buf, got);
      } while (got > 0);
    }
    files.push_back(std::move(f));
    return Status::OK();
  }
  Status StartTable(std::string_view source, const Schema& s) override {
    tables.emplace_back(source);
    schema = s;
    return Status::OK();
  }
  Status AddRecord(const Record& r) override {
    records.push_back(r);
    return Status::OK();
  }
  void Reject(std::string_view where, std::string_view rule, std::string_view reason) override {
    rejects.push_back({std::string(where), std::string(rule), std::string(reason)});
  }

  std::vector<std::string> Paths() const {
    std::vector<std::string> out;
    for (const auto& f : files) out.push_back(f.item.path);
    return out;
  }
  std::vector<std::string> RejectRules() const {
    std::vector<std::string> out;
    for (const auto& r : rejects) out.push_back(r.rule);
    return out;
  }
  std::vector<std::string> RejectWheres() const {
    std::vector<std::string> out;
    for (const auto& r : rejects) out.push_back(r.where);
    return out;
  }

  std::vector<SeenFile> files;
  std::vector<std::string> tables;
  Schema schema;
  std::vector<Record> records;
  std::vector<SeenReject> rejects;
};

}  // namespace strata::ingest::testing
