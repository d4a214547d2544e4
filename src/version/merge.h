// Three-way merges of trees. Cost follows the size of the change: a subtree equal on both sides
// (or unchanged on one side) is settled by its id without being read.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "store/object_store.h"
#include "strata/lake.h"

namespace strata::version {

struct TreeMerge {
  ObjectId tree;                         // zero when computed without a batch
  std::vector<MergeConflict> conflicts;  // sorted by path
  uint64_t trees_written = 0;
};

// Merges trees `ours` and `theirs` against their common `base` (nullopt: no common history,
// every path is an addition). Per path: a change made on one side only is taken; the same
// change on both sides is taken once; anything else is a conflict, settled by `strategy`
// (with kFail, ours is kept in the result, which the caller must then discard). Without a
// `batch` only the conflicts are computed and nothing is written.
Result<TreeMerge> MergeTrees(store::ObjectStore* store, store::WriteBatch* batch, const std::optional<ObjectId>& base,
                             const ObjectId& ours, const ObjectId& theirs, MergeStrategy strategy);

}  // namespace strata::version
