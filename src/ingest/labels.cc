#include "ingest/labels.h"

#include <algorithm>

#include <fmt/format.h>

namespace strata::ingest {
namespace {

class LabelCollector final : public ItemSink {
 public:
  LabelCollector(const LabelsOptions& options, std::string name, RejectSink* rejects, LabelMap* out)
      : options_(options), name_(std::move(name)), rejects_(rejects), out_(out) {}

  Status AddFile(const FileItem&, SequentialFile*) override {
    return Status::Internal("labels file: unexpected file item");
  }
  Status StartTable(std::string_view, const Schema& schema) override {
    file_col_ = schema.Find(options_.file_column);
    label_col_ = schema.Find(options_.label_column);
    if (file_col_ < 0 || label_col_ < 0) {
      return Status::InvalidArgument(fmt::format("labels file {} needs columns '{}' and '{}' in its header", name_,
                                                 options_.file_column, options_.label_column));
    }
    return Status::OK();
  }
  Status AddRecord(const Record& record) override {
    std::string where = fmt::format("{}:{}", name_, record.line);
    std::string file = ValueToString(record.fields[file_col_].second);
    std::string label = ValueToString(record.fields[label_col_].second);
    PathCheck check = CheckItemPath(file);
    if (!check.ok) {
      Reject(where, check.rule, "file name: " + check.reason);
      return Status::OK();
    }
    if (label.empty()) {
      Reject(where, "label-empty", fmt::format("no label for '{}'", PrintableName(check.path)));
      return Status::OK();
    }
    auto [it, inserted] = out_->entries.try_emplace(check.path, LabelMap::Entry{label, false});
    if (!inserted) {
      if (it->second.label != label) {
        Reject(where, "label-conflict",
               fmt::format("'{}' was labelled '{}' earlier, not '{}'", PrintableName(check.path),
                           PrintableName(it->second.label), PrintableName(label)));
      }
      return Status::OK();
    }
    if (out_->entries.size() > options_.max_entries) {
      return Status::InvalidArgument(
          fmt::format("labels file {} has more than {} entries (max_entries)", name_, options_.max_entries));
    }
    return Status::OK();
  }
  void Reject(std::string_view where, std::string_view rule, std::string_view reason) override {
    rejects_->Reject(where, rule, reason);
  }

 private:
  const LabelsOptions& options_;
  std::string name_;
  RejectSink* rejects_;
  LabelMap* out_;
  int file_col_ = -1, label_col_ = -1;
};

}  // namespace

Result<LabelMap> LoadLabels(Env* env, const std::string& path, const LabelsOptions& options, RejectSink* rejects) {
  CsvOptions csv = options.csv;
  csv.header = true;
  csv.schema.reset();
  csv.infer_types = false;  // "007.png" must stay "007.png"
  if (csv.name.empty()) csv.name = path;
  LabelMap map;
  LabelCollector collector(options, csv.name, rejects, &map);
  STRATA_RETURN_IF_ERROR(ReadCsvFile(env, path, csv, &collector));
  return map;
}

Status LabelJoinSink::AddFile(const FileItem& item, SequentialFile* content) {
  auto it = labels_->entries.find(item.path);
  if (it == labels_->entries.end()) it = labels_->entries.find(std::string(Basename(item.path)));
  if (it == labels_->entries.end()) {
    ++unmatched_;
    if (unmatched_examples_.size() < 100) unmatched_examples_.push_back(item.path);
    if (reject_unmatched_) {
      next_->Reject(item.path, "label-missing", "the labels file has no entry for this file");
      return Status::OK();
    }
    return next_->AddFile(item, content);
  }
  ++matched_;
  it->second.used = true;
  FileItem labelled = item;
  labelled.meta["label"] = it->second.label;
  return next_->AddFile(labelled, content);
}

std::vector<std::string> LabelJoinSink::UnusedNames(size_t max) const {
  std::vector<std::string> out;
  for (const auto& [name, entry] : labels_->entries) {
    if (!entry.used) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  if (out.size() > max) out.resize(max);
  return out;
}

}  // namespace strata::ingest
