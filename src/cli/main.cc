// The `strata` command.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <filesystem>
#include <optional>
#include <string_view>
#include <unordered_set>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/logging.h"
#include "base/progress.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "strata/lake.h"
#include "strata/repository.h"

namespace strata::cli {
namespace {

// "ID" or "ID:PATH" -> (id, path).
std::pair<ObjectId, std::string> ParseRef(Repository& repo, const std::string& ref) {
  size_t colon = ref.find(':');
  std::string id = ref.substr(0, colon);
  std::string path = colon == std::string::npos ? "" : ref.substr(colon + 1);
  return {Check(repo.ResolveId(id)), path};
}

// init, put, get, cat, ls, verify, stats, key, unlock, lock, repair, cleanup: the store itself.
// Option values live in function-level statics, as in the other Add*Commands.
void AddStoreCommands(CLI::App& app, Globals& g, int& exit_code) {
  // init
  auto* init = app.add_subcommand("init", "Create a new repository at URL");
  static std::string init_url;
  static InitOptions io;
  static uint32_t avg_kib = 1024;
  static uint64_t kdf_mem_mib = 64;
  init->add_option("url", init_url, "Where to create it (a new or empty directory); default -r/$STRATA_REPO");
  init->add_option("--chunk-avg", avg_kib, "Average chunk size in KiB (power of two; min = avg/4, max = avg*4)")
      ->check(CLI::Range(1u, 65536u / 4));
  init->add_option("--compression", io.compression_level, "zstd level, 0 (off) to 22")->check(CLI::Range(0, 22));
  init->add_option("--pack-size", io.pack_size, "Target pack size in bytes")->capture_default_str();
  init->add_option("--kdf-ops", io.kdf_ops, "Argon2id passes")->capture_default_str()->check(CLI::Range(1, 64));
  init->add_option("--kdf-mem", kdf_mem_mib, "Argon2id memory in MiB (lower only for tests)")
      ->capture_default_str()->check(CLI::Range(1, 4096));
  init->add_option("--label", io.key_label, "Label of the first key slot (default user@host)");
  init->callback([&] {
    std::string url = init_url.empty() ? RepoUrl(g) : init_url;
    io.chunk_avg = avg_kib << 10;
    io.chunk_min = io.chunk_avg / 4;
    io.chunk_max = io.chunk_avg * 4;
    io.kdf_mem = kdf_mem_mib << 20;
    std::string pass = Passphrase(g, true);
    auto repo = Check(Repository::Create(url, pass, io));
    if (g.json) {
      PrintJson({{"url", repo->url()}, {"created", true}});
    } else if (!g.quiet) {
      std::cout << "created strata repository at " << repo->url() << "\n"
                << "Keep the passphrase safe: without it the data cannot be read.\n";
    }
  });

  // put
  auto* put = app.add_subcommand("put", "Store files and directories (or '-' for stdin); prints an id");
  static std::vector<std::string> put_paths;
  put->add_option("paths", put_paths, "Files and directories to store")->required();
  put->callback([&] {
    auto repo = OpenRepo(g);
    PutStats st;
    ObjectId id;
    if (put_paths.size() == 1 && put_paths[0] == "-") {
      struct StdinFile : SequentialFile {
        Status Read(size_t n, uint8_t* dst, size_t* got) override {
          ssize_t r;
          do { r = ::read(0, dst, n); } while (r < 0 && errno == EINTR);
          if (r < 0) return Status::FromErrno(errno, "stdin");
          *got = static_cast<size_t>(r);
          return Status::OK();
        }
      } in;
      id = Check(repo->PutStream(&in, &st));
    } else {
      id = Check(repo->PutPaths(put_paths, &st));
    }
    double mbps = st.seconds > 0 ? st.bytes / st.seconds / 1e6 : 0;
    if (g.json) {
      PrintJson({{"id", id.ToHex()}, {"files", st.files}, {"dirs", st.dirs}, {"bytes", st.bytes},
                 {"chunks", st.chunks}, {"new_chunks", st.new_chunks}, {"new_bytes", st.new_bytes},
                 {"stored_bytes", st.stored_bytes}, {"seconds", st.seconds}, {"skipped", st.skipped}});
    } else {
      if (!g.quiet) {
        std::cerr << fmt::format("{} files, {} read in {:.2f}s ({:.0f} MB/s); {} new of {} chunks, {} added to the repository\n",
                                 st.files, Bytes(st.bytes), st.seconds, mbps, st.new_chunks, st.chunks, Bytes(st.stored_bytes));
      }
      std::cout << id.ToHex() << "\n";
    }
  });

  // get
  auto* get = app.add_subcommand("get", "Restore ID[:PATH] into directory DEST");
  static std::string get_ref, get_dest;
  get->add_option("ref", get_ref, "ID or ID:PATH (a unique id prefix is enough)")->required();
  get->add_option("dest", get_dest, "Destination directory (created if missing)")->required();
  get->callback([&] {
    auto repo = OpenRepo(g);
    auto [id, path] = ParseRef(*repo, get_ref);
    uint64_t bytes = 0;
    // Only a stream opens as a file without a path (a tree needs one): it restores as one file
    // named after its id.
    auto stream = path.empty() ? repo->OpenFile(id, "") : Result<std::unique_ptr<BlobReader>>(Status::NotFound(""));
    if (stream.ok()) {
      std::filesystem::create_directories(get_dest);
      std::string out_path = get_dest + "/" + id.ToHex().substr(0, 12);
      std::unique_ptr<FILE, int (*)(FILE*)> out(fopen(out_path.c_str(), "wb"), &fclose);
      if (!out) throw Failure{Status::FromErrno(errno, "cannot create " + out_path)};
      CopyBlob(stream->get(), out.get(), out_path);
      bytes = (*stream)->size();
    } else {
      Check(repo->Restore(id, path, get_dest, &bytes));
    }
    if (g.json) PrintJson({{"id", id.ToHex()}, {"path", path}, {"dest", get_dest}, {"bytes", bytes}});
    else if (!g.quiet) std::cerr << fmt::format("restored {} into {}\n", Bytes(bytes), get_dest);
  });

  // cat
  auto* cat = app.add_subcommand("cat", "Write the content of NAME@REF:PATH, ID:PATH or a stream ID to stdout");
  static std::string cat_ref;
  cat->add_option("ref", cat_ref, "NAME@REF:PATH or ID:PATH of a file, or the ID of a stream")->required();
  cat->callback([&] {
    if (IsDatasetRef(cat_ref)) return LakeCat(g, cat_ref);
    auto repo = OpenRepo(g);
    auto [id, path] = ParseRef(*repo, cat_ref);
    CopyBlob(Check(repo->OpenFile(id, path)).get(), stdout, "stdout");
  });

  // ls
  auto* ls = app.add_subcommand("ls", "List NAME@REF[:PATH] or ID[:PATH]; without either, list the recorded puts");
  static std::string ls_ref;
  static bool ls_recursive = false, ls_long = false;
  ls->add_option("ref", ls_ref, "NAME@REF[:PATH] (a dataset version) or ID[:PATH] (a put)");
  ls->add_flag("-R,--recursive", ls_recursive, "List subdirectories too");
  ls->add_flag("-l,--long", ls_long, "Show mode, size and time");
  ls->callback([&] {
    if (IsDatasetRef(ls_ref)) return LakeLs(g, ls_ref, ls_recursive, ls_long);
    auto repo = OpenRepo(g);
    if (ls_ref.empty()) {
      auto roots = Check(repo->Roots());
      if (g.json) {
        nlohmann::json arr = nlohmann::json::array();
        for (const auto& r : roots) {
          arr.push_back({{"id", r.id.ToHex()}, {"time", r.time_unix}, {"host", r.host}, {"paths", r.paths},
                         {"bytes", r.bytes}, {"files", r.files}, {"stream", r.is_stream}});
        }
        PrintJson(arr);
        return;
      }
      for (const auto& r : roots) {
        std::string paths;
        for (const auto& p : r.paths) paths += (paths.empty() ? "" : " ") + p;
        std::cout << fmt::format("{}  {}  {:>10}  {:>7} files  {}\n", r.id.ToHex().substr(0, 16), TimeString(r.time_unix),
                                 Bytes(r.bytes), r.files, paths);
      }
      return;
    }
    auto [id, path] = ParseRef(*repo, ls_ref);
    PrintEntries(g, Check(repo->List(id, path, ls_recursive)), ls_long);
  });

  // verify
  auto* verify = app.add_subcommand("verify", "Check the repository's packs, index and trees");
  static bool read_data = false;
  verify->add_flag("--read-data", read_data, "Also decrypt every object and check its keyed hash");
  verify->callback([&] {
    auto repo = OpenRepo(g);
    auto rep = Check(repo->Verify(read_data));
    if (g.json) {
      PrintJson({{"ok", rep.ok()}, {"packs", rep.packs_checked}, {"objects", rep.objects_checked},
                 {"trees", rep.trees_checked}, {"bytes_read", rep.bytes_read}, {"errors", rep.errors},
                 {"warnings", rep.warnings}});
    } else {
      for (const auto& w : rep.warnings) std::cerr << "warning: " << w << "\n";
      for (const auto& e : rep.errors) std::cerr << "error: " << e << "\n";
      std::cout << fmt::format("{}: {} packs, {} trees{} checked, {} errors, {} warnings\n",
                               rep.ok() ? "ok" : "FAILED", rep.packs_checked, rep.trees_checked,
                               read_data ? fmt::format(", {} objects ({})", rep.objects_checked, Bytes(rep.bytes_read)) : "",
                               rep.errors.size(), rep.warnings.size());
    }
    if (!rep.ok()) exit_code = kExitIntegrity;
  });

  // stats
  auto* stats = app.add_subcommand("stats", "Show sizes, dedup and compression ratios");
  stats->callback([&] {
    auto repo = OpenRepo(g);
    auto st = Check(repo->Stats());
    // Dataset versions count in full too, like puts: every commit a ref reaches by first
    // parents, once each, at the size of its whole tree. A repository without a catalog has none
    // (and stats does not create one).
    uint64_t versions = 0;
    uint64_t version_bytes = 0;
    if (Lake::Exists(repo.get())) {
      auto lake = Check(Lake::Open(repo.get()));
      std::unordered_set<ObjectId, ObjectIdHash> seen;
      for (const auto& ds : Check(lake->ListDatasets())) {
        for (const auto& ref : Check(lake->ListRefs(ds))) {
          for (const auto& c : Check(lake->Log(ds + "@" + ref.name, SIZE_MAX))) {
            if (!seen.insert(c.id).second) continue;
            ++versions;
            for (const auto& e : Check(repo->List(c.tree, "", false))) version_bytes += e.size;
          }
        }
      }
    }
    st.logical_bytes += version_bytes;
    if (g.json) {
      PrintJson({{"logical_bytes", st.logical_bytes}, {"unique_bytes", st.unique_bytes}, {"stored_bytes", st.stored_bytes},
                 {"dedup_ratio", st.dedup_ratio()}, {"compression_ratio", st.compression_ratio()},
                 {"objects", st.objects}, {"data_chunks", st.data_chunks}, {"trees", st.trees},
                 {"packs", st.packs}, {"index_files", st.index_files}, {"roots", st.roots},
                 {"versions", versions}, {"version_bytes", version_bytes}});
      return;
    }
    std::cout << fmt::format(
        "logical bytes   {} in {} puts and {} dataset versions\n"
        "unique bytes    {} (dedup ratio {:.2f}x)\n"
        "stored bytes    {} (compression ratio {:.2f}x, overall {:.2f}x)\n"
        "objects         {} ({} data chunks, {} trees)\n"
        "packs           {} ({} index files)\n",
        Bytes(st.logical_bytes), st.roots, versions, Bytes(st.unique_bytes), st.dedup_ratio(), Bytes(st.stored_bytes),
        st.compression_ratio(), st.stored_bytes ? double(st.logical_bytes) / st.stored_bytes : 1.0, st.objects,
        st.data_chunks, st.trees, st.packs, st.index_files);
  });

  // key
  auto* key = app.add_subcommand("key", "Manage passphrases (key slots); no data is rewritten");
  key->require_subcommand(1);
  auto* key_list = key->add_subcommand("list", "List key slots");
  key_list->callback([&] {
    auto repo = OpenRepo(g);
    auto keys = Check(repo->ListKeys());
    if (g.json) {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& k : keys) arr.push_back({{"id", k.id}, {"label", k.label}, {"created", k.created_unix}, {"current", k.current}});
      PrintJson(arr);
      return;
    }
    for (const auto& k : keys) {
      std::cout << fmt::format("{} {}  {}  {}\n", k.current ? "*" : " ", k.id, TimeString(k.created_unix), k.label);
    }
  });
  auto* key_add = key->add_subcommand("add", "Add a passphrase");
  static std::string new_pass_file, key_label;
  key_add->add_option("--new-password-file", new_pass_file, "Read the new passphrase from FILE");
  key_add->add_option("--label", key_label, "Label for the new slot");
  key_add->callback([&] {
    auto repo = OpenRepo(g);
    std::string id = Check(repo->AddKey(NewPassphrase(new_pass_file), key_label));
    RecordAuditEvent(*repo, "key.add", "key " + id, {{"label", key_label}});
    if (g.json) PrintJson({{"id", id}});
    else std::cout << "added key slot " << id << "\n";
  });
  auto* key_rm = key->add_subcommand("remove", "Remove a key slot");
  static std::string key_id;
  key_rm->add_option("id", key_id, "Slot id (see `strata key list`)")->required();
  key_rm->callback([&] {
    auto repo = OpenRepo(g);
    Check(repo->RemoveKey(key_id));
    RecordAuditEvent(*repo, "key.remove", "key " + key_id, nlohmann::json::object());
    if (g.json) PrintJson({{"removed", key_id}});
    else std::cout << "removed key slot " << key_id << "\n";
  });
  auto* key_passwd = key->add_subcommand("passwd", "Change the passphrase of the slot in use");
  key_passwd->add_option("--new-password-file", new_pass_file, "Read the new passphrase from FILE");
  key_passwd->callback([&] {
    auto repo = OpenRepo(g);
    Check(repo->ChangePassphrase(NewPassphrase(new_pass_file)));
    RecordAuditEvent(*repo, "key.passwd", "current key", nlohmann::json::object());
    if (g.json) PrintJson({{"changed", true}});
    else std::cout << "passphrase changed\n";
  });

  // unlock / lock
  auto* unlock = app.add_subcommand(
      "unlock", "Keep this repository's keys for the current user for a while, so commands need no passphrase");
  static std::string unlock_for = "15m";
  unlock->add_option("--for", unlock_for, "How long: a number with s, m, h or d (default 15m, at most 7d)");
  unlock->callback([&] {
    int64_t seconds = Check(ParseDuration(unlock_for));
    if (seconds > 7 * 86400) throw Failure{Status::InvalidArgument("--for may not exceed 7d")};
    OpenOptions o;
    auto repo = Check(Repository::Open(RepoUrl(g), Passphrase(g, false), o));
    Check(repo->Unlock(seconds));
    if (g.json) PrintJson({{"unlocked", true}, {"seconds", seconds}});
    else std::cout << fmt::format("unlocked for {}; `strata lock` forgets the keys sooner\n", unlock_for);
  });
  auto* lock_cmd = app.add_subcommand("lock", "Forget the keys `strata unlock` kept for this repository");
  lock_cmd->callback([&] {
    Check(Repository::Lock(RepoUrl(g)));
    if (g.json) PrintJson({{"locked", true}});
    else std::cout << "locked\n";
  });

  // repair
  auto* repair = app.add_subcommand("repair", "Rebuild derived data from the packs");
  repair->require_subcommand(1);
  auto* repair_index = repair->add_subcommand("index", "Rebuild the chunk index from the packs' own indexes");
  repair_index->callback([&] {
    auto repo = OpenRepo(g);
    auto rep = Check(repo->RepairIndex());
    if (g.json) {
      PrintJson({{"packs", rep.packs_checked}, {"objects", rep.objects_checked}, {"errors", rep.errors}});
    } else {
      for (const auto& e : rep.errors) std::cerr << "error: " << e << "\n";
      std::cout << fmt::format("index rebuilt from {} packs ({} objects), {} unreadable packs\n", rep.packs_checked,
                               rep.objects_checked, rep.errors.size());
    }
    if (!rep.ok()) exit_code = kExitIntegrity;
  });

  // cleanup
  auto* cleanup = app.add_subcommand("cleanup", "Remove leftovers of interrupted puts (needs an exclusive lock)");
  cleanup->callback([&] {
    auto repo = OpenRepo(g);
    size_t n = Check(repo->CleanLeftovers());
    if (g.json) PrintJson({{"removed", n}});
    else std::cout << fmt::format("removed {} leftover files\n", n);
  });
}

// The first word of the command line that is not a global option or its value: the command's
// name, or "" when there is none.
std::string_view CommandWord(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--") return {};
    if (a == "-r" || a == "--repo" || a == "--password-file" || a == "--threads") {
      ++i;
    } else if (a.empty() || a[0] != '-') {
      return a;
    }
  }
  return {};
}

int Run(int argc, char** argv) {
  CLI::App app{
      "strata: an encrypted, deduplicated, verified store for the data of a model's whole life.\n\n"
      "  strata init /srv/lake                 create a repository (asks for a passphrase)\n"
      "  strata -r /srv/lake put ~/data        store files and directories; prints an id\n"
      "  strata -r /srv/lake ls ID             list what an id holds\n"
      "  strata -r /srv/lake get ID:dir out/   restore part of it\n"
      "  strata -r /srv/lake dataset create fm  a versioned dataset (branch fm@main)\n"
      "  strata -r /srv/lake commit fm@main ~/data -m import   record a version of it\n"
      "  strata -r /srv/lake verify --read-data  check every byte\n\n"
      "The repository comes from -r/--repo or $STRATA_REPO; the passphrase from $STRATA_PASSWORD,\n"
      "--password-file, or a prompt.",
      "strata"};
  app.footer(std::string(kGlobalOptionsHelp) + kExitCodesHelp);
  app.require_subcommand(1);
  Globals g;
  app.add_option("-r,--repo", g.repo, "Repository URL (a directory); default $STRATA_REPO");
  app.add_option("--password-file", g.password_file, "Read the passphrase from the first line of FILE");
  app.add_flag("--json", g.json, "Machine-readable output on stdout");
  app.add_flag("-q,--quiet", g.quiet, "No progress bars or informational output");
  app.add_option("--threads", g.threads, "Worker threads (default: one per core)");
  app.fallthrough();
  int exit_code = kExitOk;

  // Building every command's options is ~1 ms of a command that takes a few; only the groups that
  // define the command named on the line are built. The names below only pick the groups: a name
  // missing here builds every group (as --help and typos do). `repair` has subcommands in two.
  using Adder = void (*)(CLI::App&, Globals&, int&);
  struct Group {
    std::initializer_list<std::string_view> commands;
    Adder add;
  };
  static const Group kGroups[] = {
      {{"init", "put", "get", "cat", "ls", "verify", "stats", "key", "unlock", "lock", "repair", "cleanup"},
       AddStoreCommands},
      {{"dataset", "commit", "log", "show", "checkout", "branch", "tag", "diff", "reset", "revert", "merge", "policy",
        "forget", "gc", "audit", "catalog"},
       AddVersionCommands},
      {{"query", "meta"}, [](CLI::App& a, Globals& gl, int&) { AddRecordCommands(a, gl); }},
      {{"ingest", "curate"}, [](CLI::App& a, Globals& gl, int&) { AddIngestCommands(a, gl); }},
      {{"tier"}, AddTierCommands},
      {{"volume", "scrub", "repair"}, AddVolumeCommands},
      {{"run", "ckpt"}, AddCheckpointCommands},
      {{"model", "retention", "lineage", "report"}, AddRegistryCommands},
      {{"archive", "restore"}, [](CLI::App& a, Globals& gl, int&) { AddArchiveCommands(a, gl); }},
      {{"transform"}, [](CLI::App& a, Globals& gl, int&) { AddTransformCommands(a, gl); }},
  };
  std::string_view word = CommandWord(argc, argv);
  std::vector<bool> added(std::size(kGroups));
  for (size_t i = 0; i < std::size(kGroups); ++i) {
    const auto& names = kGroups[i].commands;
    if (std::find(names.begin(), names.end(), word) == names.end()) continue;
    kGroups[i].add(app, g, exit_code);
    added[i] = true;
  }
  auto defined = [&] {
    return !app.get_subcommands([&](const CLI::App* c) { return c->check_name(std::string(word)); }).empty();
  };
  if (word.empty() || !defined()) {
    for (size_t i = 0; i < std::size(kGroups); ++i) {
      if (!added[i]) kGroups[i].add(app, g, exit_code);
    }
    if (!word.empty() && !defined()) {
      std::cerr << fmt::format("strata: error: unknown command '{}' (`strata --help` lists the commands)\n", word);
      return kExitUsage;
    }
  }

  app.footer(kExitCodesHelp);  // the top level lists the global options itself

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  } catch (const Failure& f) {
    if (g.json) {
      std::cout << nlohmann::json({{"error", f.status.message()}, {"code", std::string(StatusCodeName(f.status.code()))}}).dump(2)
                << "\n";
    }
    std::cerr << "strata: error: " << f.status.message() << "\n";
    return ExitCodeFor(f.status);
  }
  return exit_code;
}

}  // namespace
}  // namespace strata::cli

int main(int argc, char** argv) { return strata::cli::Run(argc, argv); }
