// Labels from a side file: a CSV that maps file names to labels, joined to the files another
// reader yields (meta["label"]).
//
// A file matches an entry by its whole item path first ("train/cat/1.png"), then by its base
// name ("1.png"). A label from the file replaces one the reader set (ImageFolder's folder).
// Files no entry matches are counted and listed (the first 100) and, with reject_unmatched,
// rejected ("label-missing") instead of stored; entries no file used are listed after the walk.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "ingest/source.h"
#include "ingest/tabular_reader.h"

namespace strata::ingest {

struct LabelsOptions {
  CsvOptions csv;                    // delimiter, limits; the file must have a header row
  std::string file_column = "file";  // header names of the two columns used; others are ignored
  std::string label_column = "label";
  size_t max_entries = 10'000'000;
};

struct LabelMap {
  struct Entry {
    std::string label;
    bool used = false;
  };
  std::unordered_map<std::string, Entry> entries;  // by normalised file name
};

// Loads the labels file. Rows with an invalid or empty name, an empty label, or a name already
// given a different label ("label-conflict"; the first wins) go to `rejects`, as do malformed
// CSV rows. A missing column or more than max_entries entries is an error (kInvalidArgument).
Result<LabelMap> LoadLabels(Env* env, const std::string& path, const LabelsOptions& options, RejectSink* rejects);

// An ItemSink that labels files and forwards everything to `next`. Not thread-safe.
class LabelJoinSink final : public ItemSink {
 public:
  LabelJoinSink(LabelMap* labels, ItemSink* next, bool reject_unmatched = false)
      : labels_(labels), next_(next), reject_unmatched_(reject_unmatched) {}

  Status AddFile(const FileItem& item, SequentialFile* content) override;
  Status StartTable(std::string_view source, const Schema& schema) override {
    return next_->StartTable(source, schema);
  }
  Status AddRecord(const Record& record) override { return next_->AddRecord(record); }
  void Reject(std::string_view where, std::string_view rule, std::string_view reason) override {
    next_->Reject(where, rule, reason);
  }

  uint64_t matched() const { return matched_; }
  uint64_t unmatched() const { return unmatched_; }
  const std::vector<std::string>& unmatched_examples() const { return unmatched_examples_; }
  // Names in the labels file that no file matched, sorted, at most `max`.
  std::vector<std::string> UnusedNames(size_t max = 100) const;

 private:
  LabelMap* labels_;
  ItemSink* next_;
  bool reject_unmatched_;
  uint64_t matched_ = 0;
  uint64_t unmatched_ = 0;
  std::vector<std::string> unmatched_examples_;
};

}  // namespace strata::ingest
