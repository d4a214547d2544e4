// Editing trees without a directory scan: a change list rewrites only the trees on the paths it
// touches (O(depth) new tree objects per path), reusing every other subtree by id.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/object_store.h"

namespace strata::version {

// Splits "a/b/c" (leading, trailing and repeated '/' ignored) into validated components;
// "" gives none. kInvalidArgument for "." / ".." or names a tree can't hold.
Result<std::vector<std::string>> SplitPath(std::string_view path);

// The entry at `path` below tree `root`; nullopt when absent. kInvalidArgument when a parent on
// the path is not a directory. An empty path is the root itself (a directory entry).
Result<std::optional<store::TreeEntry>> LookupEntry(store::ObjectStore* store, const ObjectId& root,
                                                    std::string_view path);

// Sets the entry at `path` (its name is replaced by the last component) or, when `entry` is
// empty, removes it. Missing parent directories are created.
struct TreeEdit {
  std::string path;
  std::optional<store::TreeEntry> entry;
};

// Applies `edits` in order to tree `root` (zero: an empty tree) and returns the new root's id. Only the trees on the
// edited paths are rewritten, bottom-up, through `batch`; `*trees_written` counts them.
// kNotFound when removing a path that is not there.
Result<ObjectId> ApplyEdits(store::ObjectStore* store, store::WriteBatch* batch, const ObjectId& root,
                            const std::vector<TreeEdit>& edits, uint64_t* trees_written);

// Calls `visit` for every file and symlink below tree `root`, depth first in name order, with
// its path ('/'-joined, under `prefix`).
Status WalkFiles(store::ObjectStore* store, const ObjectId& root, const std::string& prefix,
                 const std::function<Status(const std::string& path, const store::TreeEntry& entry)>& visit);

// Equal content: type, mode, chunk list, subtree, symlink target (mtime is not content).
bool SameContent(const store::TreeEntry& a, const store::TreeEntry& b);

}  // namespace strata::version
