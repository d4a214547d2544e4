#include "version/diff.h"

#include <algorithm>
#include <map>
#include <set>

#include "version/tree_edit.h"

namespace strata::version {

using store::EntryType;
using store::Tree;
using store::TreeEntry;

namespace {

std::string Join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "/" + name;
}

// What identifies content for rename detection: equal chunk lists are equal content.
std::string ContentKey(const TreeEntry& e) {
  std::string key(1, static_cast<char>(e.type));
  if (e.type == EntryType::kSymlink) return key + e.target;
  for (const auto& c : e.chunks) key.append(reinterpret_cast<const char*>(c.id.bytes.data()), c.id.bytes.size());
  return key;
}

class Differ {
 public:
  Differ(store::ObjectStore* store, bool expand) : store_(store), expand_(expand) {}

  Status Trees(const ObjectId& a, const ObjectId& b, const std::string& prefix) {
    if (a == b) {
      ++result_.subtrees_skipped;
      return Status::OK();
    }
    STRATA_ASSIGN_OR_RETURN(Tree ta, Read(a));
    STRATA_ASSIGN_OR_RETURN(Tree tb, Read(b));
    size_t i = 0, j = 0;
    while (i < ta.entries.size() || j < tb.entries.size()) {
      const TreeEntry* ea = i < ta.entries.size() ? &ta.entries[i] : nullptr;
      const TreeEntry* eb = j < tb.entries.size() ? &tb.entries[j] : nullptr;
      if (ea && (!eb || ea->name < eb->name)) {
        STRATA_RETURN_IF_ERROR(Entries(ea, nullptr, Join(prefix, ea->name)));
        ++i;
      } else if (eb && (!ea || eb->name < ea->name)) {
        STRATA_RETURN_IF_ERROR(Entries(nullptr, eb, Join(prefix, eb->name)));
        ++j;
      } else {
        STRATA_RETURN_IF_ERROR(Entries(ea, eb, Join(prefix, ea->name)));
        ++i, ++j;
      }
    }
    return Status::OK();
  }

  Status Entries(const TreeEntry* a, const TreeEntry* b, const std::string& path) {
    if (a && b) {
      if (a->type == EntryType::kDirectory && b->type == EntryType::kDirectory) {
        return Trees(a->subtree, b->subtree, path);
      }
      if (a->type == b->type) {
        if (!SameContent(*a, *b)) Add(DiffEntry::Kind::kModified, path, a, b);
        return Status::OK();
      }
    }
    if (a) STRATA_RETURN_IF_ERROR(Side(*a, path, /*removed=*/true));
    if (b) STRATA_RETURN_IF_ERROR(Side(*b, path, /*removed=*/false));
    return Status::OK();
  }

  DiffResult Finish() {
    // Pair removed and added files of equal content into renames, first come first paired.
    std::multimap<std::string, size_t> added;
    for (size_t k = 0; k < result_.entries.size(); ++k) {
      if (result_.entries[k].kind == DiffEntry::Kind::kAdded && !keys_[k].empty()) added.emplace(keys_[k], k);
    }
    std::vector<bool> drop(result_.entries.size(), false);
    for (size_t k = 0; k < result_.entries.size(); ++k) {
      auto& e = result_.entries[k];
      if (e.kind != DiffEntry::Kind::kRemoved || keys_[k].empty()) continue;
      auto it = added.find(keys_[k]);
      if (it == added.end()) continue;
      auto& to = result_.entries[it->second];
      to.kind = DiffEntry::Kind::kRenamed;
      to.old_path = e.path;
      to.old_size = e.old_size;
      drop[k] = true;
      added.erase(it);
    }
    DiffResult out;
    out.trees_read = result_.trees_read;
    out.subtrees_skipped = result_.subtrees_skipped;
    for (size_t k = 0; k < result_.entries.size(); ++k) {
      if (!drop[k]) out.entries.push_back(std::move(result_.entries[k]));
    }
    std::stable_sort(out.entries.begin(), out.entries.end(),
                     [](const DiffEntry& x, const DiffEntry& y) { return x.path < y.path; });
    return out;
  }

  std::vector<std::string> Paths() const {
    std::vector<std::string> out;
    for (const auto& e : result_.entries) out.push_back(e.path);
    return out;
  }

 private:
  Result<Tree> Read(const ObjectId& id) {
    ++result_.trees_read;
    return store_->ReadTree(id);
  }

  // An entry present on one side only: directories are listed file by file (unless only the
  // topmost changed paths are wanted).
  Status Side(const TreeEntry& e, const std::string& path, bool removed) {
    if (e.type == EntryType::kDirectory && expand_) {
      STRATA_ASSIGN_OR_RETURN(Tree t, Read(e.subtree));
      for (const auto& c : t.entries) STRATA_RETURN_IF_ERROR(Side(c, Join(path, c.name), removed));
      return Status::OK();
    }
    Add(removed ? DiffEntry::Kind::kRemoved : DiffEntry::Kind::kAdded, path, removed ? &e : nullptr,
        removed ? nullptr : &e);
    return Status::OK();
  }

  void Add(DiffEntry::Kind kind, const std::string& path, const TreeEntry* a, const TreeEntry* b) {
    DiffEntry d;
    d.kind = kind;
    d.path = path;
    if (a) d.old_size = a->size;
    if (b) d.new_size = b->size;
    const TreeEntry* e = b ? b : a;
    d.is_symlink = e->type == EntryType::kSymlink;
    // Empty files all look alike: pairing them would invent renames.
    bool pairable = kind != DiffEntry::Kind::kModified && e->type != EntryType::kDirectory &&
                    (e->type == EntryType::kSymlink || e->size > 0);
    keys_.push_back(pairable ? ContentKey(*e) : std::string());
    result_.entries.push_back(std::move(d));
  }

  store::ObjectStore* store_;
  bool expand_;
  DiffResult result_;
  std::vector<std::string> keys_;  // parallel to result_.entries
};

}  // namespace

Result<DiffResult> DiffTrees(store::ObjectStore* store, const ObjectId& a, const ObjectId& b,
                             const std::string& prefix) {
  Differ d(store, /*expand=*/true);
  STRATA_RETURN_IF_ERROR(d.Trees(a, b, prefix));
  return d.Finish();
}

Result<DiffResult> DiffEntries(store::ObjectStore* store, const std::optional<TreeEntry>& a,
                               const std::optional<TreeEntry>& b, const std::string& path) {
  Differ d(store, /*expand=*/true);
  if (a || b) STRATA_RETURN_IF_ERROR(d.Entries(a ? &*a : nullptr, b ? &*b : nullptr, path));
  return d.Finish();
}

Result<std::vector<std::string>> ChangedPaths(store::ObjectStore* store, const ObjectId& a, const ObjectId& b) {
  Differ d(store, /*expand=*/false);
  STRATA_RETURN_IF_ERROR(d.Trees(a, b, ""));
  return d.Paths();
}

bool PathsOverlap(const std::vector<std::string>& x, const std::vector<std::string>& y, std::string* where) {
  std::set<std::string> ys(y.begin(), y.end());
  for (const auto& p : x) {
    // p itself or one of its parent directories changed on the other side...
    for (std::string cur = p;;) {
      if (ys.count(cur)) {
        *where = cur;
        return true;
      }
      size_t slash = cur.rfind('/');
      if (slash == std::string::npos) break;
      cur.resize(slash);
    }
    // ...or something inside p did.
    auto it = ys.lower_bound(p + "/");
    if (it != ys.end() && it->compare(0, p.size() + 1, p + "/") == 0) {
      *where = *it;
      return true;
    }
  }
  return false;
}

}  // namespace strata::version
