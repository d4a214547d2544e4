// The implementation of StagedCommit (strata/lake.h): files streamed into a write batch, edits
// and metadata rows collected, the trees written once at Commit.
#pragma once

#include <functional>
#include <memory>

#include "store/object_store.h"
#include "strata/lake.h"

namespace strata::version {

// Moves the branch to a commit of `tree`, given the batch that holds its objects (Lake's
// compare-and-swap, audit entry and record).
using StageCommitFn = std::function<Result<CommitResult>(std::unique_ptr<store::WriteBatch> batch,
                                                         const ObjectId& tree, const CommitOptions& options)>;

// `base_tree` is the head's tree the stage starts from (zero with StageOptions::replace).
std::unique_ptr<StagedCommit> NewStagedCommit(store::ObjectStore* objects, std::unique_ptr<store::WriteBatch> batch,
                                              const ObjectId& base_tree, StageCommitFn commit);

}  // namespace strata::version
