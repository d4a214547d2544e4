#include "ingest/directory_reader.h"

#include <algorithm>
#include <deque>
#include <optional>
#include <vector>

#include <fmt/format.h>

namespace strata::ingest {
namespace {

constexpr int kMaxSymlinkHops = 16;

std::vector<std::string> SplitPath(std::string_view p) {
  std::vector<std::string> parts;
  size_t pos = 0;
  while (pos <= p.size()) {
    size_t end = p.find('/', pos);
    if (end == std::string_view::npos) end = p.size();
    std::string_view part = p.substr(pos, end - pos);
    if (!part.empty() && part != ".") parts.emplace_back(part);
    pos = end + 1;
  }
  return parts;
}

std::string JoinParts(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) out += '/';
    out += p;
  }
  return out;
}

struct Resolved {
  std::string target;  // relative to the root, when ok
  FileInfo info;
  std::string rule, reason;  // when not ok
};

class Walker {
 public:
  Walker(Env* env, std::string root, const DirectoryOptions& options, ItemSink* sink)
      : env_(env), root_(std::move(root)), options_(options), sink_(sink),
        name_(options.name.empty() ? root_ : options.name) {}

  Status Run() {
    STRATA_ASSIGN_OR_RETURN(FileInfo info, env_->Stat(root_));
    if (info.type != FileType::kDirectory) {
      return Status::InvalidArgument(fmt::format("{} is not a directory", root_));
    }
    return Visit("", 0);
  }

 private:
  std::string Abs(const std::string& rel) const { return rel.empty() ? root_ : JoinPath(root_, rel); }

  Status Visit(const std::string& rel_dir, size_t depth) {
    if (depth > options_.max_depth) {
      return Status::InvalidArgument(
          fmt::format("{}: directories nested deeper than {} levels at '{}'", name_, options_.max_depth, rel_dir));
    }
    STRATA_ASSIGN_OR_RETURN(auto names, env_->ListDir(Abs(rel_dir)));
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
      std::string rel = rel_dir.empty() ? n : rel_dir + "/" + n;
      std::string where = fmt::format("{}:{}", name_, PrintableName(rel));
      PathCheck check = CheckItemPath(rel, options_.max_path_bytes);
      if (!check.ok) {
        sink_->Reject(where, check.rule, check.reason);
        continue;
      }
      STRATA_ASSIGN_OR_RETURN(FileInfo info, env_->Stat(Abs(rel)));
      std::string content_path = Abs(rel);
      switch (info.type) {
        case FileType::kDirectory:
          STRATA_RETURN_IF_ERROR(Visit(rel, depth + 1));
          continue;
        case FileType::kOther:
          sink_->Reject(where, "special-file", "device, fifo or socket entries are not stored");
          continue;
        case FileType::kSymlink: {
          if (!options_.follow_symlinks) {
            sink_->Reject(where, "symlink", "symbolic links are not followed");
            continue;
          }
          STRATA_ASSIGN_OR_RETURN(Resolved r, Resolve(rel));
          if (!r.rule.empty()) {
            sink_->Reject(where, r.rule, r.reason);
            continue;
          }
          info = r.info;
          content_path = Abs(r.target);
          break;
        }
        case FileType::kRegular:
          break;
      }
      FileItem item;
      item.path = check.path;
      if (options_.image_folder) {
        size_t slash = item.path.find('/');
        if (slash == std::string::npos) {
          sink_->Reject(where, "image-folder-layout", "the file is not inside a class folder");
          continue;
        }
        item.meta["label"] = item.path.substr(0, slash);
      }
      item.size = info.size;
      item.mtime_ns = info.mtime_ns;
      item.mode = info.mode & 0777;
      STRATA_ASSIGN_OR_RETURN(auto file, env_->NewSequentialFile(content_path));
      STRATA_RETURN_IF_ERROR(sink_->AddFile(item, file.get()));
    }
    return Status::OK();
  }

  // Follows the symlink at `rel` one component at a time, never leaving the root.
  Result<Resolved> Resolve(const std::string& rel) {
    Resolved out;
    auto refuse = [&](std::string rule, std::string reason) {
      out.rule = std::move(rule);
      out.reason = std::move(reason);
      return out;
    };
    std::vector<std::string> stack = SplitPath(Dirname(rel));
    STRATA_ASSIGN_OR_RETURN(std::string target, env_->ReadLink(Abs(rel)));
    if (!target.empty() && target[0] == '/') {
      return refuse("symlink-outside", fmt::format("absolute target '{}' is not followed", PrintableName(target)));
    }
    std::deque<std::string> pending;
    for (auto& p : SplitPath(target)) pending.push_back(std::move(p));
    int hops = 0;
    FileInfo info;
    info.type = FileType::kDirectory;  // the root
    while (!pending.empty()) {
      std::string c = std::move(pending.front());
      pending.pop_front();
      if (c == ".") continue;
      if (c == "..") {
        if (stack.empty()) {
          return refuse("symlink-outside", fmt::format("target '{}' leads outside the source", PrintableName(target)));
        }
        stack.pop_back();
        info.type = FileType::kDirectory;
        continue;
      }
      if (info.type != FileType::kDirectory) {
        return refuse("symlink-dangling", fmt::format("target '{}' does not exist", PrintableName(target)));
      }
      stack.push_back(c);
      auto st = env_->Stat(Abs(JoinParts(stack)));
      if (!st.ok()) {
        if (st.status().IsNotFound()) {
          return refuse("symlink-dangling", fmt::format("target '{}' does not exist", PrintableName(target)));
        }
        return st.status();
      }
      info = *st;
      if (info.type == FileType::kSymlink) {
        if (++hops > kMaxSymlinkHops) {
          return refuse("symlink-dangling", "more than 16 symbolic links in a chain");
        }
        STRATA_ASSIGN_OR_RETURN(std::string next, env_->ReadLink(Abs(JoinParts(stack))));
        if (!next.empty() && next[0] == '/') {
          return refuse("symlink-outside", fmt::format("absolute target '{}' is not followed", PrintableName(next)));
        }
        stack.pop_back();
        auto parts = SplitPath(next);
        pending.insert(pending.begin(), parts.begin(), parts.end());
        info.type = FileType::kDirectory;  // we are back in the link's directory
      }
    }
    if (stack.empty() || info.type == FileType::kDirectory) {
      return refuse("symlink-directory", "symbolic links to directories are not followed");
    }
    if (info.type != FileType::kRegular) {
      return refuse("special-file", "the link's target is a device, fifo or socket");
    }
    out.target = JoinParts(stack);
    out.info = info;
    return out;
  }

  Env* env_;
  std::string root_;
  const DirectoryOptions& options_;
  ItemSink* sink_;
  std::string name_;
};

}  // namespace

Status ReadDirectory(Env* env, const std::string& root, const DirectoryOptions& options, ItemSink* sink) {
  return Walker(env, root, options, sink).Run();
}

}  // namespace strata::ingest
