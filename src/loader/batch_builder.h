// Assembles a Batch from decoded records: first the layout (so the caller can wait for room
// in its memory budget before allocating), then one aligned buffer filled column by column.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "shard/format.h"
#include "strata/loader.h"

namespace strata::loader {

class BatchBuilder {
 public:
  // `records[i]` are the fields of sample i (pointing into buffers that outlive Build).
  BatchBuilder(const shard::Schema& schema, const std::vector<std::vector<shard::FieldView>>& records);
  uint64_t nbytes() const { return total_; }
  std::unique_ptr<Batch> Build(std::vector<uint64_t> indices, uint64_t epoch, uint64_t batch_index,
                               uint64_t skipped, LoaderState state_after) const;

 private:
  const shard::Schema& schema_;
  const std::vector<std::vector<shard::FieldView>>& records_;
  std::vector<Column> columns_;
  uint64_t total_ = 0;
};

}  // namespace strata::loader
