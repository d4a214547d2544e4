// The training tier on the command line: `strata tier stage` copies the shard files of a dataset
// version onto a local disk for the data loader, verifying each copy as a shard, and records
// them in a manifest (docs/FORMAT.md, "Tier manifest"); `strata tier evict` removes exactly
// what that manifest lists.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <set>

#include <fmt/format.h>

#include "base/progress.h"
#include "cli/commands.h"
#include "shard/block_file.h"
#include "shard/format.h"
#include "strata/lake.h"
#include "strata/shard.h"

namespace strata::cli {
namespace {

using nlohmann::json;

constexpr std::string_view kManifestName = ".strata-tier.json";
constexpr std::string_view kManifestFormat = "strata-tier/1";
constexpr std::string_view kShardExtension = ".shard";
constexpr std::string_view kTmpSuffix = ".strata-tmp";
constexpr size_t kCopyBuffer = 8u << 20;

struct TierFile {
  std::string path;  // relative to DIR, '/'-separated
  uint64_t size = 0;
  uint32_t crc32c = 0;  // of the whole file, as verified
  uint64_t records = 0;
  bool encrypted = false;
  int64_t verified_unix = 0;
};

struct Manifest {
  std::string source;   // the spec as given
  std::string dataset;
  std::string commit;   // hex
  std::string path;     // below the commit's root
  bool complete = false;
  int64_t staged_unix = 0;
  std::vector<TierFile> files;
  std::vector<std::string> dirs;  // directories stage created, relative to DIR
};

int64_t NowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string ManifestPath(const std::string& dir) { return JoinPath(dir, kManifestName); }

// A relative path that stays inside DIR: no empty, "." or ".." component, not absolute. Paths
// come from the repository's tree (stage) or from a manifest anyone could have edited (evict).
bool SafeRelative(std::string_view p) {
  if (p.empty() || p.front() == '/' || p.back() == '/') return false;
  size_t start = 0;
  while (start <= p.size()) {
    size_t slash = p.find('/', start);
    if (slash == std::string_view::npos) slash = p.size();
    std::string_view part = p.substr(start, slash - start);
    if (part.empty() || part == "." || part == ".." || part.find('\0') != std::string_view::npos) return false;
    start = slash + 1;
  }
  return true;
}

json ManifestJson(const Manifest& m) {
  json files = json::array();
  for (const TierFile& f : m.files) {
    files.push_back({{"path", f.path}, {"size", f.size}, {"crc32c", fmt::format("{:08x}", f.crc32c)},
                     {"records", f.records}, {"encrypted", f.encrypted}, {"verified_unix", f.verified_unix}});
  }
  return {{"format", kManifestFormat}, {"source", m.source},   {"dataset", m.dataset},
          {"commit", m.commit},        {"path", m.path},       {"complete", m.complete},
          {"staged_unix", m.staged_unix}, {"files", files},    {"dirs", m.dirs}};
}

Status BadManifest(const std::string& dir, std::string_view why) {
  return Status::Corruption(fmt::format("tier manifest {} is damaged ({}); remove it and stage again",
                                        ManifestPath(dir), why));
}

// The manifest in `dir`, or nullopt when there is none.
Result<std::optional<Manifest>> ReadManifest(Env* env, const std::string& dir) {
  const std::string path = ManifestPath(dir);
  if (!env->FileExists(path)) return std::optional<Manifest>();
  STRATA_ASSIGN_OR_RETURN(std::string text, ReadFileToString(env, path));
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return BadManifest(dir, "not JSON");
  Manifest m;
  try {
    const std::string format = j.at("format").get<std::string>();
    if (format != kManifestFormat) {
      return Status::Unsupported(fmt::format("tier manifest {} has format '{}' (this build knows {})", path,
                                             format, kManifestFormat));
    }
    m.source = j.at("source").get<std::string>();
    m.dataset = j.at("dataset").get<std::string>();
    m.commit = j.at("commit").get<std::string>();
    m.path = j.at("path").get<std::string>();
    m.complete = j.at("complete").get<bool>();
    m.staged_unix = j.at("staged_unix").get<int64_t>();
    for (const json& f : j.at("files")) {
      TierFile t;
      t.path = f.at("path").get<std::string>();
      t.size = f.at("size").get<uint64_t>();
      t.crc32c = static_cast<uint32_t>(std::stoul(f.at("crc32c").get<std::string>(), nullptr, 16));
      t.records = f.at("records").get<uint64_t>();
      t.encrypted = f.at("encrypted").get<bool>();
      t.verified_unix = f.at("verified_unix").get<int64_t>();
      if (!SafeRelative(t.path)) return BadManifest(dir, fmt::format("file path '{}' leaves the directory", t.path));
      m.files.push_back(std::move(t));
    }
    for (const json& d : j.at("dirs")) {
      std::string p = d.get<std::string>();
      if (!SafeRelative(p)) return BadManifest(dir, fmt::format("directory '{}' leaves the directory", p));
      m.dirs.push_back(std::move(p));
    }
  } catch (const std::exception& e) {
    return BadManifest(dir, e.what());
  }
  return std::optional<Manifest>(std::move(m));
}

Status WriteManifest(Env* env, const std::string& dir, const Manifest& m) {
  return WriteFileAtomic(env, ManifestPath(dir), ManifestJson(m).dump(2) + "\n");
}

// CRC32C of a whole local file (the check that lets a re-stage skip a file).
Result<uint32_t> FileCrc(Env* env, const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(auto file, env->NewSequentialFile(path));
  shard::AlignedBuffer buf(kCopyBuffer);
  uint32_t crc = 0;
  for (;;) {
    size_t got = 0;
    STRATA_RETURN_IF_ERROR(file->Read(kCopyBuffer, buf.data(), &got));
    if (got == 0) break;
    crc = shard::Crc32cExtend(crc, {buf.data(), got});
  }
  return crc;
}

// Whether every directory between DIR and DIR/rel is a real directory (no symlink a manifest
// or a planted link could use to reach outside DIR). False when one is missing.
bool ParentsAreDirs(Env* env, const std::string& dir, const std::string& rel) {
  size_t slash = 0;
  while ((slash = rel.find('/', slash)) != std::string::npos) {
    auto st = env->Stat(JoinPath(dir, rel.substr(0, slash++)));
    if (!st.ok() || st->type != FileType::kDirectory) return false;
  }
  return true;
}

// Creates the parents of DIR/rel that are missing, refusing to go through anything that is not
// a real directory (a symlink planted in DIR could send the copy elsewhere). Adds the ones it
// created to `created` (relative to DIR).
Status MakeParents(Env* env, const std::string& dir, const std::string& rel, std::vector<std::string>* created) {
  size_t slash = 0;
  while ((slash = rel.find('/', slash)) != std::string::npos) {
    std::string part = rel.substr(0, slash++);
    std::string full = JoinPath(dir, part);
    auto st = env->Stat(full);
    if (st.ok()) {
      if (st->type != FileType::kDirectory) {
        return Status::FailedPrecondition(fmt::format("{} is in the way: not a directory", full));
      }
      continue;
    }
    if (st.status().code() != StatusCode::kNotFound) return st.status();
    STRATA_RETURN_IF_ERROR(env->CreateDir(full));
    STRATA_RETURN_IF_ERROR(env->SyncDir(std::string(Dirname(full))));
    created->push_back(part);
  }
  return Status::OK();
}

struct StageArgs {
  std::string spec, dir, key_file;
};

struct FileOutcome {
  std::string path;
  uint64_t size = 0;
  std::string status;  // "copied", "skipped", "failed"
  std::string error;
};

std::optional<shard::Key> ReadShardKey(const std::string& file) {
  if (file.empty()) return std::nullopt;
  auto text = ReadFileToString(Env::Default(), file);
  if (!text.ok()) throw Failure{text.status().WithContext("--shard-key-file")};
  std::string t = *text;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
  shard::Key key;
  if (t.size() == key.size()) {
    std::copy(t.begin(), t.end(), key.begin());
    return key;
  }
  if (t.size() == 2 * key.size() && t.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos) {
    for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(std::stoul(t.substr(2 * i, 2), nullptr, 16));
    return key;
  }
  throw Failure{Status::InvalidArgument(
      fmt::format("--shard-key-file {}: expected 32 bytes or 64 hex digits, found {} bytes", file, t.size()))};
}

// Copies one shard from the lake to DIR/rel through a temporary file, verifies the copy as a
// shard (read back with O_DIRECT where the file system allows, so from the disk rather than
// the page cache) and only then renames it into place. A copy that fails verification is
// deleted: kCorruption. Other errors (the local disk) are returned as they are.
Result<TierFile> StageOne(Env* env, Lake* lake, const std::string& source_spec, const std::string& dir,
                          const std::string& rel, const std::optional<shard::Key>& key, Progress* progress) {
  const std::string target = JoinPath(dir, rel);
  const std::string tmp = target + std::string(kTmpSuffix);
  if (env->FileExists(tmp)) STRATA_RETURN_IF_ERROR(env->DeleteFile(tmp));  // an interrupted stage's
  STRATA_ASSIGN_OR_RETURN(auto reader, lake->OpenFile(source_spec));
  TierFile out;
  out.path = rel;
  {
    // O_DIRECT where possible: the copy does not fill the page cache, and whole aligned blocks go
    // from the buffer to the disk without another copy.
    STRATA_ASSIGN_OR_RETURN(auto file, env->NewStreamingFile(tmp));
    shard::AlignedBuffer buf(kCopyBuffer);
    uint64_t offset = 0;
    Status s;
    while (offset < reader->size()) {
      size_t got = 0;
      size_t want = static_cast<size_t>(std::min<uint64_t>(kCopyBuffer, reader->size() - offset));
      s = reader->ReadAt(offset, want, buf.data(), &got);
      if (s.ok() && got == 0) s = Status::Corruption(fmt::format("{}: ends at {} of {} bytes", source_spec, offset, reader->size()));
      if (s.ok()) s = file->Append({buf.data(), got});
      if (!s.ok()) break;
      out.crc32c = shard::Crc32cExtend(out.crc32c, {buf.data(), got});
      offset += got;
      progress->Add(got);
    }
    if (s.ok()) s = file->Sync();
    if (s.ok()) s = file->Close();
    if (!s.ok()) {
      file.reset();
      (void)env->DeleteFile(tmp);
      return s;
    }
    out.size = offset;
  }
  shard::ReaderOptions ro;
  ro.key = key;
  auto shard = shard::ShardReader::Open(tmp, ro);
  Status v = shard.ok() ? (*shard)->Verify() : shard.status();
  if (!v.ok()) {
    (void)env->DeleteFile(tmp);
    // kCorruption for damage; a missing or wrong key is reported as such, not as damage.
    return v;
  }
  out.records = (*shard)->record_count();
  out.encrypted = (*shard)->encrypted();
  shard->reset();
  STRATA_RETURN_IF_ERROR(env->RenameFile(tmp, target));
  STRATA_RETURN_IF_ERROR(env->SyncDir(std::string(Dirname(target))));
  out.verified_unix = NowUnix();
  return out;
}

void Stage(const Globals& g, const StageArgs& o, int& exit_code) {
  Env* env = Env::Default();
  const auto start = std::chrono::steady_clock::now();
  RefSpec parsed = Check(ParseRefSpec(o.spec));
  std::optional<shard::Key> key = ReadShardKey(o.key_file);
  auto session = OpenLake(g);
  Lake* lake = session.lake.get();
  Resolved resolved = Check(lake->Resolve(o.spec));
  const std::string commit = resolved.commit.id.ToHex();
  // Everything below reads the resolved commit, so a branch moving meanwhile changes nothing.
  const std::string base = fmt::format("{}@{}", parsed.dataset, commit);
  const std::string listed = parsed.path.empty() ? base : base + ":" + parsed.path;

  std::vector<EntryInfo> shards;
  for (EntryInfo& e : Check(lake->List(listed, true))) {
    if (e.type != EntryInfo::Type::kFile) continue;
    if (e.path.size() <= kShardExtension.size() || !e.path.ends_with(kShardExtension)) continue;
    if (!SafeRelative(e.path)) {
      throw Failure{Status::Corruption(fmt::format("{}: path '{}' is not a plain relative path", o.spec, e.path))};
    }
    shards.push_back(std::move(e));
  }
  std::sort(shards.begin(), shards.end(), [](const EntryInfo& a, const EntryInfo& b) { return a.path < b.path; });
  if (shards.empty()) {
    throw Failure{Status::NotFound(fmt::format("no {} files in {} (commit {})", kShardExtension, o.spec, commit.substr(0, 12)))};
  }

  Check(env->CreateDirs(o.dir));
  auto dir_info = Check(env->Stat(o.dir));
  if (dir_info.type != FileType::kDirectory) {
    throw Failure{Status::FailedPrecondition(fmt::format("{} is not a directory", o.dir))};
  }
  std::optional<Manifest> old = Check(ReadManifest(env, o.dir));
  if (old && (old->dataset != parsed.dataset || old->commit != commit || old->path != parsed.path)) {
    throw Failure{Status::FailedPrecondition(fmt::format(
        "{} holds {} (commit {}); run `strata tier evict {}` before staging another version there", o.dir,
        old->source, old->commit.substr(0, 12), o.dir))};
  }
  Manifest m;
  m.source = o.spec;
  m.dataset = parsed.dataset;
  m.commit = commit;
  m.path = parsed.path;
  m.staged_unix = NowUnix();
  if (old) m.dirs = old->dirs;

  // Files already staged and verified are kept if they are still byte for byte what was
  // verified (size and CRC32C of the whole file).
  std::vector<FileOutcome> outcomes;
  std::vector<const EntryInfo*> to_copy;
  uint64_t copy_bytes = 0;
  for (const EntryInfo& e : shards) {
    const TierFile* known = nullptr;
    if (old) {
      for (const TierFile& f : old->files) {
        if (f.path == e.path) known = &f;
      }
    }
    if (known != nullptr && known->size == e.size) {
      const std::string local = JoinPath(o.dir, e.path);
      auto st = env->Stat(local);
      if (st.ok() && st->type == FileType::kRegular && st->size == known->size && ParentsAreDirs(env, o.dir, e.path)) {
        auto crc = FileCrc(env, local);
        if (crc.ok() && *crc == known->crc32c) {
          m.files.push_back(*known);
          outcomes.push_back({e.path, e.size, "skipped", ""});
          continue;
        }
      }
    }
    to_copy.push_back(&e);
    copy_bytes += e.size;
  }

  Progress progress("staging", copy_bytes, !g.quiet && !g.json);
  uint64_t copied_bytes = 0;
  size_t failed = 0;
  for (const EntryInfo* e : to_copy) {
    std::vector<std::string> created;
    Check(MakeParents(env, o.dir, e->path, &created));
    m.dirs.insert(m.dirs.end(), created.begin(), created.end());
    const std::string source_spec = base + ":" + (parsed.path.empty() ? e->path : parsed.path + "/" + e->path);
    auto staged = StageOne(env, lake, source_spec, o.dir, e->path, key, &progress);
    if (!staged.ok()) {
      if (staged.status().code() != StatusCode::kCorruption) {
        // The local disk, a missing or wrong shard key: every other file would fail the same way.
        Check(WriteManifest(env, o.dir, m));  // what is staged so far stays listed, for evict
        Status s = staged.status();
        if (s.code() == StatusCode::kInvalidArgument && key == std::nullopt && s.message().find("encrypted") != std::string::npos) {
          s = Status::InvalidArgument(s.message() + " (pass --shard-key-file)");
        }
        throw Failure{s};
      }
      // A damaged shard: nothing of it stays, under any name. An older copy this directory's
      // manifest listed is no longer known to be the verified one either.
      const std::string local = JoinPath(o.dir, e->path);
      bool listed = false;
      if (old) {
        for (const TierFile& f : old->files) listed = listed || f.path == e->path;
      }
      if (listed && env->FileExists(local)) Check(env->DeleteFile(local));
      outcomes.push_back({e->path, e->size, "failed", staged.status().message()});
      ++failed;
      if (!g.json) std::cerr << "strata: error: " << staged.status().message() << "\n";
      continue;
    }
    copied_bytes += staged->size;
    m.files.push_back(*staged);
    outcomes.push_back({e->path, e->size, "copied", ""});
    // Listed as soon as it is in place, so an interrupted stage is resumed, and evicted, exactly.
    Check(WriteManifest(env, o.dir, m));
  }
  progress.Finish();
  m.complete = failed == 0;
  Check(WriteManifest(env, o.dir, m));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  size_t copied = 0, skipped = 0;
  for (const FileOutcome& f : outcomes) {
    if (f.status == "copied") ++copied;
    if (f.status == "skipped") ++skipped;
  }
  if (g.json) {
    json files = json::array();
    for (const FileOutcome& f : outcomes) {
      json j = {{"path", f.path}, {"size", f.size}, {"status", f.status}};
      if (!f.error.empty()) j["error"] = f.error;
      files.push_back(std::move(j));
    }
    PrintJson({{"source", o.spec}, {"dataset", parsed.dataset}, {"commit", commit}, {"dir", o.dir},
               {"manifest", ManifestPath(o.dir)}, {"copied", copied}, {"skipped", skipped}, {"failed", failed},
               {"bytes_copied", copied_bytes}, {"seconds", seconds}, {"files", files}});
  } else if (!g.quiet) {
    std::cerr << fmt::format("{} (commit {}) -> {}: {} copied ({}), {} already staged, {} failed in {:.1f} s\n",
                             o.spec, commit.substr(0, 12), o.dir, copied, Bytes(copied_bytes), skipped, failed, seconds);
  }
  if (failed > 0) exit_code = kExitIntegrity;
}

void Evict(const Globals& g, const std::string& dir) {
  Env* env = Env::Default();
  std::optional<Manifest> m = Check(ReadManifest(env, dir));
  if (!m) throw Failure{Status::NotFound(fmt::format("no tier manifest ({}) in {}", kManifestName, dir))};
  std::vector<std::string> removed, missing, skipped;
  uint64_t bytes = 0;
  std::set<std::string> parents;
  for (const TierFile& f : m->files) {
    const std::string path = JoinPath(dir, f.path);
    if (!ParentsAreDirs(env, dir, f.path)) {  // gone with its directory, or reached through a link
      (env->FileExists(path) ? skipped : missing).push_back(f.path);
      continue;
    }
    auto st = env->Stat(path);
    if (!st.ok()) {
      if (st.status().code() != StatusCode::kNotFound) throw Failure{st.status()};
      missing.push_back(f.path);
      continue;
    }
    if (st->type != FileType::kRegular) {  // replaced by something evict did not make
      skipped.push_back(f.path);
      continue;
    }
    Check(env->DeleteFile(path));
    bytes += st->size;
    removed.push_back(f.path);
    parents.insert(std::string(Dirname(path)));
  }
  // Directories stage created, deepest first, if nothing else has been put in them.
  std::vector<std::string> dirs = m->dirs;
  std::sort(dirs.begin(), dirs.end(), [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  std::vector<std::string> removed_dirs;
  for (const std::string& d : dirs) {
    const std::string path = JoinPath(dir, d);
    auto st = env->Stat(path);
    if (!st.ok() || st->type != FileType::kDirectory) continue;
    auto entries = env->ListDir(path);
    if (!entries.ok() || !entries->empty()) continue;
    if (env->DeleteDir(path).ok()) {
      removed_dirs.push_back(d);
      parents.insert(std::string(Dirname(path)));
    }
  }
  Check(env->DeleteFile(ManifestPath(dir)));
  // The deletions become durable with their directories; those removed themselves need none.
  parents.insert(dir);
  for (const std::string& p : parents) {
    if (env->FileExists(p)) Check(env->SyncDir(p));
  }
  if (g.json) {
    PrintJson({{"dir", dir}, {"source", m->source}, {"commit", m->commit}, {"removed", removed},
               {"missing", missing}, {"skipped", skipped}, {"removed_dirs", removed_dirs}, {"bytes_freed", bytes}});
  } else if (!g.quiet) {
    std::cerr << fmt::format("{}: removed {} files ({}) of {}", dir, removed.size(), Bytes(bytes), m->source);
    if (!missing.empty()) std::cerr << fmt::format("; {} were already gone", missing.size());
    if (!skipped.empty()) std::cerr << fmt::format("; {} left alone (no longer regular files)", skipped.size());
    std::cerr << "\n";
  }
}

}  // namespace

void AddTierCommands(CLI::App& app, Globals& g, int& exit_code) {
  auto* tier = app.add_subcommand("tier", "The training tier: shard files of a dataset version on a local disk");
  tier->require_subcommand(1);

  auto* stage = tier->add_subcommand(
      "stage",
      "Copy every *.shard file of NAME@REF[:PATH] into DIR (subdirectories kept), verify each copy\n"
      "as a shard (header, index and every record's checksum, read back from the disk), and list\n"
      "them in DIR/.strata-tier.json. A copy that fails verification is deleted and reported (exit\n"
      "code 5). Staging the same version again copies only what is missing or changed.\n"
      "  strata tier stage imagenet@v3:shards /nvme/train");
  static StageArgs so;
  stage->add_option("spec", so.spec, "NAME@REF[:PATH]")->required();
  stage->add_option("dir", so.dir, "Local directory (created if missing)")->required();
  stage->add_option("--shard-key-file", so.key_file,
                    "Key of encrypted shards: a file of 32 bytes or 64 hex digits");
  stage->callback([&] { Stage(g, so, exit_code); });

  auto* evict = tier->add_subcommand(
      "evict", "Remove the files DIR/.strata-tier.json lists (nothing else in DIR), then the manifest");
  static std::string evict_dir;
  evict->add_option("dir", evict_dir, "A directory `strata tier stage` wrote")->required();
  evict->callback([&] { Evict(g, evict_dir); });
}

}  // namespace strata::cli
