#include "version/merge.h"

#include <algorithm>
#include <set>

#include "version/tree_edit.h"

namespace strata::version {

using store::EntryType;
using store::Tree;
using store::TreeEntry;

namespace {

using Entry = std::optional<TreeEntry>;

bool Same(const Entry& a, const Entry& b) {
  return a.has_value() == b.has_value() && (!a || SameContent(*a, *b));
}

bool IsDir(const Entry& e) { return e && e->type == EntryType::kDirectory; }

class Merger {
 public:
  Merger(store::ObjectStore* store, store::WriteBatch* batch, MergeStrategy strategy)
      : store_(store), batch_(batch), strategy_(strategy) {}

  // The merged entry at `path` (nullopt: absent).
  Result<Entry> MergeEntry(const Entry& base, const Entry& ours, const Entry& theirs, const std::string& path) {
    if (Same(ours, theirs)) return ours;
    if (Same(base, ours)) return theirs;
    if (Same(base, theirs)) return ours;
    if (IsDir(ours) && IsDir(theirs)) {
      std::optional<ObjectId> base_tree;
      if (IsDir(base)) base_tree = base->subtree;
      STRATA_ASSIGN_OR_RETURN(auto merged, MergeDir(base_tree, *ours, theirs->subtree, path));
      return Entry(std::move(merged));
    }
    std::string kind;
    if (ours && theirs) {
      kind = IsDir(ours) != IsDir(theirs) ? "file/directory" : base ? "modify/modify" : "add/add";
    } else {
      kind = ours ? "modify/delete" : "delete/modify";
    }
    result_.conflicts.push_back(MergeConflict{path, std::move(kind)});
    return strategy_ == MergeStrategy::kTheirs ? theirs : ours;
  }

  // `ours` (a directory entry) with its subtree merged.
  Result<TreeEntry> MergeDir(const std::optional<ObjectId>& base, const TreeEntry& ours, const ObjectId& theirs,
                             const std::string& path) {
    Tree b, o, t;
    if (base) {
      STRATA_ASSIGN_OR_RETURN(b, store_->ReadTree(*base));
    }
    STRATA_ASSIGN_OR_RETURN(o, store_->ReadTree(ours.subtree));
    STRATA_ASSIGN_OR_RETURN(t, store_->ReadTree(theirs));
    std::set<std::string> names;
    for (const Tree* tree : {&b, &o, &t}) {
      for (const auto& e : tree->entries) names.insert(e.name);
    }
    auto find = [](const Tree& tree, const std::string& name) -> Entry {
      const TreeEntry* e = tree.Find(name);
      return e ? Entry(*e) : Entry();
    };
    Tree out;
    bool changed = false;
    for (const auto& name : names) {
      Entry eo = find(o, name);
      STRATA_ASSIGN_OR_RETURN(Entry merged, MergeEntry(find(b, name), eo, find(t, name),
                                                       path.empty() ? name : path + "/" + name));
      if (!Same(merged, eo)) changed = true;
      if (merged) {
        merged->name = name;
        out.entries.push_back(std::move(*merged));
      }
    }
    TreeEntry dir = ours;
    if (!changed) return dir;  // ours as it was: no tree to write
    uint64_t total = 0;
    for (const auto& e : out.entries) total += e.size;
    dir.size = total;
    if (batch_) {
      dir.subtree = batch_->PutTree(out);
      ++result_.trees_written;
    } else {
      dir.subtree = ObjectId();
    }
    return dir;
  }

  TreeMerge& result() { return result_; }

 private:
  store::ObjectStore* store_;
  store::WriteBatch* batch_;
  MergeStrategy strategy_;
  TreeMerge result_;
};

}  // namespace

Result<TreeMerge> MergeTrees(store::ObjectStore* store, store::WriteBatch* batch, const std::optional<ObjectId>& base,
                             const ObjectId& ours, const ObjectId& theirs, MergeStrategy strategy) {
  Merger m(store, batch, strategy);
  TreeEntry root;
  root.type = EntryType::kDirectory;
  root.mode = 0755;
  root.subtree = ours;
  Entry base_entry;
  if (base) {
    base_entry = root;
    base_entry->subtree = *base;
  }
  Entry theirs_entry = root;
  theirs_entry->subtree = theirs;
  STRATA_ASSIGN_OR_RETURN(Entry merged, m.MergeEntry(base_entry, Entry(root), theirs_entry, ""));
  TreeMerge out = std::move(m.result());
  // The root is a directory on every side, so the merge always yields one.
  out.tree = merged ? merged->subtree : ObjectId();
  std::sort(out.conflicts.begin(), out.conflicts.end(),
            [](const MergeConflict& a, const MergeConflict& b) { return a.path < b.path; });
  return out;
}

}  // namespace strata::version
