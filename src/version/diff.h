// Differences between two trees. Cost follows the size of the change: subtrees with equal ids
// are equal and never read.
#pragma once

#include <string>
#include <vector>

#include "store/object_store.h"
#include "strata/lake.h"

namespace strata::version {

// Differences from tree `a` to tree `b`, at file level, with renames (a removed and an added
// file of equal non-empty content) paired up. `prefix` is prepended to every path.
Result<DiffResult> DiffTrees(store::ObjectStore* store, const ObjectId& a, const ObjectId& b,
                             const std::string& prefix = "");

// Differences between two entries at `path` (either may be absent), for a diff below a path.
Result<DiffResult> DiffEntries(store::ObjectStore* store, const std::optional<store::TreeEntry>& a,
                               const std::optional<store::TreeEntry>& b, const std::string& path);

// The topmost paths at which `a` and `b` differ (a directory added or removed whole is one
// path): what a change touched, for rebasing and reverting.
Result<std::vector<std::string>> ChangedPaths(store::ObjectStore* store, const ObjectId& a, const ObjectId& b);

// True if some path of `x` equals, contains or lies inside some path of `y`.
bool PathsOverlap(const std::vector<std::string>& x, const std::vector<std::string>& y, std::string* where);

}  // namespace strata::version
