// The tabular ops of a pipeline, over the rows of a dataset's records file (one row per record,
// `table.csv#17`): fill missing values, standardise, min-max scale, one-hot encode and
// bucketise, with every statistic fitted on the selected rows and kept for the manifest.
//
// A table is small next to images (a million rows of ten columns is 80 MB), so it is held whole:
// each op fits on the rows that are still good, then applies to all of them, in pipeline order.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "strata/shard.h"
#include "transform/pipeline.h"

namespace strata::transform {

// A cell: missing, a number or a category.
using Cell = std::variant<std::monostate, double, std::string>;

struct Table {
  std::vector<std::string> columns;      // the current columns, in output order
  std::vector<std::vector<Cell>> rows;   // rows[i][j]: row i, column j
  std::vector<std::string> errors;       // per row: empty, or why the row is dropped
  std::vector<std::string> error_ops;    // per row: the op that dropped it
};

// Fits `op` on the good rows of `table` and applies it to them. Returns the fitted statistics
// ({} when the op fits none), e.g. {"age": {"mean": 38.2, "std": 11.1}}. A row the op cannot
// take (a column that is not a number) is marked in table->errors; an op the table cannot take
// (a column it does not have) is kInvalidArgument.
Result<nlohmann::json> FitAndApply(const Op& op, Table* table);

// Row i as a float32 tensor of shape [columns]; false (and the row's error set) when a cell is
// missing or not a number.
bool RowToTensor(Table* table, size_t i, shard::DType dtype, shard::Tensor* out);

}  // namespace strata::transform
