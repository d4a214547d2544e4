#include "version/tree_edit.h"

#include <algorithm>
#include <map>
#include <unordered_map>

#include <fmt/format.h>

namespace strata::version {

using store::EntryType;
using store::Tree;
using store::TreeEntry;

Result<std::vector<std::string>> SplitPath(std::string_view path) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(pos, end - pos);
    if (!part.empty()) {
      if (!store::ValidEntryName(part)) {
        return Status::InvalidArgument(fmt::format("'{}' is not a valid path component in '{}'", part, path));
      }
      out.emplace_back(part);
    }
    pos = end + 1;
  }
  return out;
}

Result<std::optional<TreeEntry>> LookupEntry(store::ObjectStore* store, const ObjectId& root, std::string_view path) {
  STRATA_ASSIGN_OR_RETURN(auto parts, SplitPath(path));
  TreeEntry cur;
  cur.type = EntryType::kDirectory;
  cur.mode = 0755;
  cur.subtree = root;
  std::string walked;
  for (const auto& part : parts) {
    if (cur.type != EntryType::kDirectory) {
      return Status::InvalidArgument(fmt::format("'{}' is not a directory", walked));
    }
    STRATA_ASSIGN_OR_RETURN(Tree tree, store->ReadTree(cur.subtree));
    const TreeEntry* e = tree.Find(part);
    if (!e) return std::optional<TreeEntry>();
    cur = *e;
    walked += (walked.empty() ? "" : "/") + part;
  }
  return std::optional<TreeEntry>(std::move(cur));
}

bool SameContent(const TreeEntry& a, const TreeEntry& b) {
  if (a.type != b.type || a.mode != b.mode) return false;
  switch (a.type) {
    case EntryType::kDirectory: return a.subtree == b.subtree;
    case EntryType::kSymlink: return a.target == b.target;
    case EntryType::kFile:
      if (a.size != b.size || a.chunks.size() != b.chunks.size()) return false;
      for (size_t i = 0; i < a.chunks.size(); ++i) {
        if (a.chunks[i].id != b.chunks[i].id || a.chunks[i].size != b.chunks[i].size) return false;
      }
      return true;
  }
  return false;
}

namespace {

struct PendingEdit {
  std::vector<std::string> parts;
  const std::optional<TreeEntry>* entry;
  std::string path;
};

struct Edited {
  ObjectId id;
  uint64_t size = 0;       // bytes below
  int64_t max_mtime = 0;   // the newest entry's mtime: a created directory's own, so that the
                           // same edits give the same tree whenever they are made
};

// Rewrites one directory level: edits that end here replace or remove entries; the others are
// grouped by their next component and applied to that child first.
Result<Edited> EditTree(store::ObjectStore* store, store::WriteBatch* batch,
                                               const ObjectId* id, const std::vector<PendingEdit*>& edits,
                                               size_t depth, uint64_t* written) {
  Tree tree;
  if (id) {
    STRATA_ASSIGN_OR_RETURN(tree, store->ReadTree(*id));
  }
  // Edits keep their order within a child, so "add dir, then add a file inside it" works.
  std::map<std::string, std::vector<PendingEdit*>> deeper;
  std::vector<std::string> order;
  // Entries by name (a directory may have millions); removed ones are dropped at the end.
  std::unordered_map<std::string, size_t> pos;
  std::vector<bool> removed(tree.entries.size(), false);
  for (size_t i = 0; i < tree.entries.size(); ++i) pos.emplace(tree.entries[i].name, i);
  auto find = [&](const std::string& name) -> TreeEntry* {
    auto it = pos.find(name);
    return it == pos.end() ? nullptr : &tree.entries[it->second];
  };
  auto append = [&](TreeEntry entry) -> TreeEntry* {
    pos[entry.name] = tree.entries.size();
    tree.entries.push_back(std::move(entry));
    removed.push_back(false);
    return &tree.entries.back();
  };
  auto apply_children = [&]() -> Status {
    for (auto& [name, list] : deeper) {
      TreeEntry* child = find(name);
      if (child && child->type != EntryType::kDirectory) {
        return Status::InvalidArgument(
            fmt::format("cannot edit '{}': '{}' is not a directory", list.front()->path, name));
      }
      bool only_removals = true;
      for (auto* e : list) only_removals = only_removals && !e->entry->has_value();
      if (!child && only_removals) {
        return Status::NotFound(fmt::format("cannot remove '{}': no such path", list.front()->path));
      }
      STRATA_ASSIGN_OR_RETURN(auto sub, EditTree(store, batch, child ? &child->subtree : nullptr, list, depth + 1, written));
      if (!child) {
        TreeEntry dir;
        dir.name = name;
        dir.type = EntryType::kDirectory;
        dir.mode = 0755;
        dir.mtime_ns = sub.max_mtime;
        child = append(std::move(dir));
      }
      child->subtree = sub.id;
      child->size = sub.size;
    }
    deeper.clear();
    return Status::OK();
  };
  for (PendingEdit* e : edits) {
    const std::string& name = e->parts[depth];
    if (e->parts.size() > depth + 1) {
      deeper[name].push_back(e);
      continue;
    }
    // An edit of this entry itself: pending edits below it happen first (they came first).
    if (deeper.count(name)) STRATA_RETURN_IF_ERROR(apply_children());
    TreeEntry* existing = find(name);
    if (e->entry->has_value()) {
      TreeEntry entry = **e->entry;
      entry.name = name;
      if (existing) *existing = std::move(entry);
      else append(std::move(entry));
    } else {
      if (!existing) return Status::NotFound(fmt::format("cannot remove '{}': no such path", e->path));
      auto it = pos.find(name);
      removed[it->second] = true;
      pos.erase(it);
    }
  }
  STRATA_RETURN_IF_ERROR(apply_children());
  if (std::find(removed.begin(), removed.end(), true) != removed.end()) {
    std::vector<TreeEntry> kept;
    kept.reserve(pos.size());
    for (size_t i = 0; i < tree.entries.size(); ++i) {
      if (!removed[i]) kept.push_back(std::move(tree.entries[i]));
    }
    tree.entries = std::move(kept);
  }
  std::sort(tree.entries.begin(), tree.entries.end(),
            [](const TreeEntry& a, const TreeEntry& b) { return a.name < b.name; });
  uint64_t total = 0;
  for (const auto& e : tree.entries) total += e.size;
  ++*written;
  int64_t newest = 0;
  for (const auto& e : tree.entries) newest = std::max(newest, e.mtime_ns);
  return Edited{batch->PutTree(tree), total, newest};
}

}  // namespace

Result<ObjectId> ApplyEdits(store::ObjectStore* store, store::WriteBatch* batch, const ObjectId& root,
                            const std::vector<TreeEdit>& edits, uint64_t* trees_written) {
  std::vector<PendingEdit> pending;
  pending.reserve(edits.size());
  for (const auto& e : edits) {
    STRATA_ASSIGN_OR_RETURN(auto parts, SplitPath(e.path));
    if (parts.empty()) return Status::InvalidArgument("a change needs a path inside the dataset, not its root");
    pending.push_back(PendingEdit{std::move(parts), &e.entry, e.path});
  }
  std::vector<PendingEdit*> ptrs;
  for (auto& p : pending) ptrs.push_back(&p);
  uint64_t written = 0;
  STRATA_ASSIGN_OR_RETURN(auto result, EditTree(store, batch, root.IsZero() ? nullptr : &root, ptrs, 0, &written));
  if (trees_written) *trees_written += written;
  return result.id;
}

Status WalkFiles(store::ObjectStore* store, const ObjectId& root, const std::string& prefix,
                 const std::function<Status(const std::string& path, const TreeEntry& entry)>& visit) {
  STRATA_ASSIGN_OR_RETURN(Tree tree, store->ReadTree(root));
  for (const auto& e : tree.entries) {
    std::string path = prefix.empty() ? e.name : prefix + "/" + e.name;
    if (e.type == EntryType::kDirectory) {
      STRATA_RETURN_IF_ERROR(WalkFiles(store, e.subtree, path, visit));
    } else {
      STRATA_RETURN_IF_ERROR(visit(path, e));
    }
  }
  return Status::OK();
}

}  // namespace strata::version
