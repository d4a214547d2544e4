// End-to-end tests of the `strata` command: each runs the real binary in a child process and
// checks exit codes, messages, --json output and what ends up on disk.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testutil/testutil.h"

namespace strata::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kPass = "correct horse battery staple";

// Runs `strata args...` with the test passphrase and none of the caller's STRATA_* settings;
// `env` is applied after those, so it may override them.
ProcessResult Strata(const std::vector<std::string>& args, const EnvChanges& env = {}, const std::string& input = "") {
  std::vector<std::string> argv = {STRATA_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  EnvChanges e = {std::string("STRATA_PASSWORD=") + kPass, "STRATA_REPO", "STRATA_NEW_PASSWORD", "STRATA_LOG"};
  e.insert(e.end(), env.begin(), env.end());
  return RunProcess(argv, e, input);
}

// Parses stdout as JSON, failing the test (and returning null) if it is not.
void SetMtime(const std::string& path, int64_t sec, int64_t nsec) {
  timespec times[2] = {{0, UTIME_OMIT}, {sec, nsec}};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0) << path;
}

// A tree with what a restore must reproduce: nested and empty directories, empty, small,
// multi-chunk and duplicate files, unusual names, several modes, relative and dangling
// symlinks, and distinct mtimes with nanoseconds. Returns the size of all file content.
uint64_t MakeTree(const std::string& root, uint64_t seed) {
  uint64_t total = 0;
  auto file = [&](const std::string& rel, const std::string& data, mode_t mode) {
    std::string p = root + "/" + rel;
    WriteFile(p, data);
    EXPECT_EQ(chmod(p.c_str(), mode), 0);
    total += data.size();
  };
  std::string big = RandomBytes(seed, 700 * 1024 + 123);  // ~11 chunks of 64 KiB on average
  file("hello.txt", "hello, strata\n", 0644);
  file("empty", "", 0644);
  file("big.bin", big, 0644);
  file("copy of big.bin", big, 0640);  // same content: deduplicated
  file("text.log", std::string(300 * 1024, 'x') + RandomBytes(seed + 1, 999), 0600);  // compressible
  file("sub/deeper/deep.bin", RandomBytes(seed + 2, 70 * 1024), 0600);
  file("sub/run.sh", "#!/bin/sh\necho hi\n", 0755);
  file("sub/read-only", "ro", 0444);
  file("sub/ünïcödé & space.txt", "unicode name", 0644);
  fs::create_directories(root + "/emptydir");
  EXPECT_EQ(symlink("hello.txt", (root + "/link").c_str()), 0);
  EXPECT_EQ(symlink("../big.bin", (root + "/sub/uplink").c_str()), 0);
  EXPECT_EQ(symlink("/nonexistent/dangling target", (root + "/dangling").c_str()), 0);
  EXPECT_EQ(chmod((root + "/sub/deeper").c_str(), 0700), 0);
  EXPECT_EQ(chmod((root + "/emptydir").c_str(), 0750), 0);
  // Distinct mtimes, children before parents (setting a child's never changes its parent's).
  int64_t t = 1'000'000'000;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
    if (!it->is_directory() || it->is_symlink()) SetMtime(it->path(), t += 1111, 123456789);
  }
  for (const char* d : {"sub/deeper", "sub", "emptydir"}) SetMtime(root + "/" + d, t += 1111, 987654321);
  SetMtime(root, t += 1111, 5);
  return total;
}

size_t CountFiles(const TreeSnapshot& s) {
  return std::count_if(s.begin(), s.end(), [](const auto& kv) { return kv.second.type == 'f'; });
}

// Paths of pack files in a repository.
std::vector<std::string> PackFiles(const std::string& repo) {
  std::vector<std::string> packs;
  for (auto& e : fs::recursive_directory_iterator(repo + "/packs")) {
    if (e.is_regular_file()) packs.push_back(e.path());
  }
  std::sort(packs.begin(), packs.end());
  return packs;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    repo_ = dir_ / "repo";
    src_ = dir_ / "src";
    InitRepo(repo_);
  }

  static void InitRepo(const std::string& repo, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"init", repo, "--kdf-mem", "1", "--kdf-ops", "1", "--chunk-avg", "64",
                                     "--pack-size", "1048576"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = Strata(args);
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
  }

  // `strata -r REPO args...`
  ProcessResult S(const std::vector<std::string>& args, const EnvChanges& env = {}, const std::string& input = "") {
    std::vector<std::string> a = {"-r", repo_};
    a.insert(a.end(), args.begin(), args.end());
    return Strata(a, env, input);
  }

  // Puts `paths` (quietly) and returns the printed id.
  std::string Put(const std::vector<std::string>& paths) {
    std::vector<std::string> a = {"-q", "put"};
    a.insert(a.end(), paths.begin(), paths.end());
    auto r = S(a);
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    std::string id = r.out.substr(0, r.out.find('\n'));
    EXPECT_EQ(id.size(), 64u) << Describe(r);
    return id;
  }

  // Restores `ref` into a fresh directory and returns it.
  std::string Get(const std::string& ref, int want_exit = 0) {
    std::string dest = dir_ / ("restore" + std::to_string(++restores_));
    auto r = S({"-q", "get", ref, dest});
    EXPECT_EQ(r.exit_code, want_exit) << Describe(r);
    return dest;
  }

  TempDir dir_;
  std::string repo_, src_;
  int restores_ = 0;
};

TEST_F(CliTest, RoundTripRestoresTreeByteForByte) {
  MakeTree(src_ + "/data", 1);
  TreeSnapshot want = SnapshotTree(src_);
  std::string id = Put({src_ + "/data"});

  // Whole tree: DEST receives the put's entries (here the one directory "data").
  std::string dest = Get(id);
  EXPECT_EQ(DiffTrees(want, SnapshotTree(dest)), "");

  // A subdirectory and a single file.
  dest = Get(id + ":data/sub");
  TreeSnapshot want_sub;
  for (const auto& [p, item] : want) {
    if (p.rfind("data/sub", 0) == 0) want_sub[p.substr(5)] = item;
  }
  EXPECT_EQ(DiffTrees(want_sub, SnapshotTree(dest)), "");
  dest = Get(id + ":data/big.bin");
  EXPECT_EQ(DiffTrees({{"big.bin", want.at("data/big.bin")}}, SnapshotTree(dest)), "");

  // cat writes the exact bytes to stdout.
  auto r = S({"cat", id + ":data/text.log"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(r.out == want.at("data/text.log").content);
  r = S({"cat", id + ":data/empty"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "");
  // cat of a directory or a missing path is an error, not empty output.
  r = S({"cat", id + ":data/sub"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("not a file"), std::string::npos) << r.err;
  r = S({"cat", id + ":data/nope"});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  EXPECT_NE(r.err.find("data/nope"), std::string::npos) << r.err;

  // ls without an id lists the put; with one, its entries; -R recurses.
  r = S({"ls"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find(id.substr(0, 16)), std::string::npos) << r.out;
  r = S({"ls", id + ":data"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("sub/\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("link -> hello.txt\n"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("deep.bin"), std::string::npos) << r.out;
  r = S({"ls", "-R", "-l", id});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("data/sub/deeper/deep.bin"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("-r--r--r--"), std::string::npos) << r.out;  // sub/read-only
  EXPECT_NE(r.out.find("drwx------"), std::string::npos) << r.out;  // sub/deeper

  r = S({"stats"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("dedup ratio"), std::string::npos) << r.out;
  r = S({"verify", "--read-data"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out.rfind("ok:", 0), 0u) << r.out;
}

TEST_F(CliTest, StreamPutRoundTrip) {
  std::string data = RandomBytes(7, 300 * 1024);
  auto r = S({"-q", "put", "-"}, {}, data);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  std::string id = r.out.substr(0, 64);
  r = S({"cat", id.substr(0, 10)});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(r.out == data) << r.out.size() << " bytes";
  // get of a stream writes one file named after the id.
  std::string dest = Get(id);
  EXPECT_TRUE(ReadFile(dest + "/" + id.substr(0, 12)) == data);
  r = S({"--json", "ls"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  json j = ParseJson(r);
  ASSERT_EQ(j.size(), 1u) << r.out;
  EXPECT_EQ(j[0]["stream"], true);
  EXPECT_EQ(j[0]["bytes"], data.size());
}

TEST_F(CliTest, JsonOutputHasDocumentedFields) {
  uint64_t total = MakeTree(src_ + "/data", 2);
  TreeSnapshot local = SnapshotTree(src_);

  auto r = S({"--json", "put", src_ + "/data"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  json put = ParseJson(r);
  for (const char* k : {"id", "files", "dirs", "bytes", "chunks", "new_chunks", "new_bytes", "stored_bytes", "seconds",
                        "skipped"}) {
    EXPECT_TRUE(put.contains(k)) << k << " missing in " << r.out;
  }
  std::string id = put.value("id", "");
  EXPECT_EQ(id.size(), 64u);
  EXPECT_EQ(put["files"], CountFiles(local));
  EXPECT_GE(put["dirs"].get<uint64_t>(), 4u);  // data, data/sub, data/sub/deeper, data/emptydir
  EXPECT_EQ(put["bytes"], total);
  EXPECT_LT(put["new_chunks"].get<uint64_t>(), put["chunks"].get<uint64_t>());  // "copy of big.bin" deduplicated
  EXPECT_LT(put["new_bytes"].get<uint64_t>(), total);
  EXPECT_GT(put["stored_bytes"].get<uint64_t>(), 0u);
  EXPECT_TRUE(put["skipped"].is_array() && put["skipped"].empty());
  // No progress or chatter on stdout with --json: it parsed as one document.

  // The same tree again: the same id, nothing new stored.
  r = S({"--json", "put", src_ + "/data"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  json again = ParseJson(r);
  EXPECT_EQ(again["id"], id);
  EXPECT_EQ(again["new_chunks"], 0);
  EXPECT_EQ(again["stored_bytes"], 0);

  r = S({"--json", "ls"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  json roots = ParseJson(r);
  ASSERT_TRUE(roots.is_array());
  ASSERT_EQ(roots.size(), 2u) << r.out;
  for (const auto& root : roots) {
    for (const char* k : {"id", "time", "host", "paths", "bytes", "files", "stream"}) EXPECT_TRUE(root.contains(k)) << k;
    EXPECT_EQ(root["id"], id);
    EXPECT_EQ(root["paths"], json::array({src_ + "/data"}));
    EXPECT_EQ(root["bytes"], total);
    EXPECT_EQ(root["files"], CountFiles(local));
    EXPECT_EQ(root["stream"], false);
    EXPECT_NEAR(root["time"].get<double>(), double(time(nullptr)), 120);
  }

  r = S({"--json", "ls", "-R", id});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  json entries = ParseJson(r);
  ASSERT_TRUE(entries.is_array());
  EXPECT_EQ(entries.size(), local.size()) << r.out;
  for (const auto& e : entries) {
    std::string path = e.value("path", "");
    ASSERT_TRUE(local.count(path)) << path;
    const TreeItem& want = local.at(path);
    for (const char* k : {"path", "type", "size", "mode", "mtime_ns", "chunks"}) EXPECT_TRUE(e.contains(k)) << k;
    std::string type = e.value("type", "");
    EXPECT_EQ(type, want.type == 'f' ? "file" : want.type == 'd' ? "dir" : "symlink") << path;
    EXPECT_EQ(e["mtime_ns"], want.mtime_ns) << path;
    if (want.type == 'f') {
      EXPECT_EQ(e["size"], want.content.size()) << path;
      EXPECT_EQ(e["mode"], want.mode) << path;
      EXPECT_EQ(e["chunks"].get<uint64_t>() == 0, want.content.empty()) << path;
    }
    if (want.type == 'l') {
      EXPECT_EQ(e.value("target", ""), want.content) << path;
    } else {
      EXPECT_FALSE(e.contains("target")) << path;
    }
  }

  r = S({"--json", "stats"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  json st = ParseJson(r);
  for (const char* k : {"logical_bytes", "unique_bytes", "stored_bytes", "dedup_ratio", "compression_ratio", "objects",
                        "data_chunks", "trees", "packs", "index_files", "roots"}) {
    EXPECT_TRUE(st.contains(k)) << k << " missing in " << r.out;
  }
  uint64_t big = local.at("data/big.bin").content.size();
  EXPECT_EQ(st["logical_bytes"], 2 * total);
  EXPECT_EQ(st["unique_bytes"], total - big);
  EXPECT_EQ(st["roots"], 2);
  EXPECT_EQ(st["trees"], 5);  // the put's root, data, sub, deeper, emptydir
  EXPECT_EQ(st["packs"], PackFiles(repo_).size());
  EXPECT_EQ(st["index_files"], 1);  // the second put wrote nothing
  EXPECT_GT(st["dedup_ratio"].get<double>(), 2.0);
  EXPECT_GT(st["compression_ratio"].get<double>(), 1.0);  // text.log compresses
  uint64_t pack_bytes = 0;
  for (const auto& p : PackFiles(repo_)) pack_bytes += fs::file_size(p);
  EXPECT_EQ(st["stored_bytes"], pack_bytes);

  for (bool read_data : {false, true}) {
    r = read_data ? S({"--json", "verify", "--read-data"}) : S({"--json", "verify"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    json v = ParseJson(r);
    for (const char* k : {"ok", "packs", "objects", "trees", "bytes_read", "errors", "warnings"}) {
      EXPECT_TRUE(v.contains(k)) << k << " missing in " << r.out;
    }
    EXPECT_EQ(v["ok"], true);
    EXPECT_EQ(v["packs"], PackFiles(repo_).size());
    EXPECT_EQ(v["trees"], 5);
    EXPECT_EQ(v["errors"], json::array());
    EXPECT_EQ(v["warnings"], json::array());
    if (read_data) {
      EXPECT_EQ(v["objects"], st["objects"]);
      EXPECT_EQ(v["bytes_read"].get<uint64_t>() > 0, true);
    } else {
      EXPECT_EQ(v["objects"], 0);
    }
  }

  // Errors in --json mode are JSON too, with a code.
  r = S({"--json", "ls", "ffffffffffff"});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  json err = ParseJson(r);
  EXPECT_TRUE(err.contains("error") && err.contains("code")) << r.out;
}

TEST_F(CliTest, RepositoryFromOptionBeforeOrAfterSubcommandOrEnvironment) {
  MakeTree(src_ + "/data", 3);
  std::string id = Put({src_ + "/data"});
  auto before = Strata({"-r", repo_, "ls"});
  auto after = Strata({"ls", "-r", repo_});
  auto long_after = Strata({"ls", "--repo", repo_});
  auto env = Strata({"ls"}, {"STRATA_REPO=" + repo_});
  for (const auto* r : {&before, &after, &long_after, &env}) {
    EXPECT_EQ(r->exit_code, 0) << Describe(*r);
    EXPECT_NE(r->out.find(id.substr(0, 16)), std::string::npos) << Describe(*r);
  }
  // -r wins over STRATA_REPO.
  TempDir other;
  auto r = Strata({"-r", repo_, "ls"}, {"STRATA_REPO=" + other.path()});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  // Global flags after the subcommand, too.
  r = Strata({"ls", "--json", "-r", repo_});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ParseJson(r).size(), 1u);
  // No repository at all: a usage error that says how to give one.
  r = Strata({"ls"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("--repo"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("STRATA_REPO"), std::string::npos) << r.err;
}

TEST_F(CliTest, IdPrefixes) {
  MakeTree(src_ + "/data", 4);
  std::string id = Put({src_ + "/data"});
  // Unique prefixes of several lengths, in either case.
  for (size_t n : {4, 8, 17, 63}) {
    auto r = S({"ls", id.substr(0, n)});
    EXPECT_EQ(r.exit_code, 0) << n << ": " << Describe(r);
    EXPECT_NE(r.out.find("data/"), std::string::npos) << r.out;
  }
  std::string upper = id.substr(0, 12);
  std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
  auto r = S({"ls", upper});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  r = S({"cat", id.substr(0, 8) + ":data/hello.txt"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "hello, strata\n");

  // Too short.
  r = S({"ls", id.substr(0, 3)});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("too short"), std::string::npos) << r.err;
  // Not hex.
  r = S({"ls", "zzzzzzzz"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("hex"), std::string::npos) << r.err;
  // Unknown prefix and unknown full id.
  std::string unknown = id.substr(0, 16);
  unknown[0] = unknown[0] == '0' ? '1' : '0';
  r = S({"ls", unknown});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  EXPECT_NE(r.err.find(unknown), std::string::npos) << r.err;
  std::string unknown_full = id;
  unknown_full[0] = unknown[0];
  r = S({"get", unknown_full, dir_ / "x"});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  EXPECT_FALSE(fs::exists(dir_ / "x/data"));
  // A put of paths is a tree: `cat` needs a path inside it.
  r = S({"cat", id});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
}

TEST_F(CliTest, AmbiguousIdPrefix) {
  // Many trees make some 4-digit prefix shared: 16000 directories, each a distinct tree
  // (one symlink with a distinct target), give each of the 65536 prefixes a ~2.5% chance.
  // They live in memory when /dev/shm allows: deleting 32000 entries from a busy disk is slow.
  std::string base = access("/dev/shm", W_OK) == 0 ? "/dev/shm/strata-cli-XXXXXX" : src_ + "-XXXXXX";
  ASSERT_NE(mkdtemp(base.data()), nullptr);
  struct Remove {
    std::string path;
    ~Remove() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  } remove{base};
  std::string big = base + "/many";
  fs::create_directories(big);
  for (int i = 0; i < 16000; ++i) {
    std::string d = big + "/" + std::to_string(i);
    ASSERT_EQ(mkdir(d.c_str(), 0755), 0);
    ASSERT_EQ(symlink(std::to_string(i).c_str(), (d + "/l").c_str()), 0);
  }
  std::string id = Put({big});
  std::mt19937 rng(42);
  bool found = false;
  for (int attempt = 0; attempt < 1000 && !found; ++attempt) {
    char prefix[5];
    snprintf(prefix, sizeof(prefix), "%04x", static_cast<unsigned>(rng() & 0xffff));
    auto r = S({"ls", prefix});
    if (r.exit_code == 0 || r.exit_code == 3) continue;  // one tree, or none, starts with it
    EXPECT_EQ(r.exit_code, 2) << Describe(r);
    EXPECT_NE(r.err.find("ambiguous"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(prefix), std::string::npos) << r.err;
    found = true;
  }
  EXPECT_TRUE(found) << "no ambiguous 4-digit prefix among 16001 trees (chance ~1e-11)";
  // The put's own id still resolves by a longer prefix.
  auto r = S({"ls", id.substr(0, 12)});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
}

TEST_F(CliTest, WrongPassphrase) {
  MakeTree(src_ + "/data", 5);
  std::string id = Put({src_ + "/data"});
  for (const std::vector<std::string>& cmd :
       std::vector<std::vector<std::string>>{{"ls"}, {"get", id, dir_ / "out"}, {"verify"}, {"put", src_ + "/data"}}) {
    auto r = S(cmd, {"STRATA_PASSWORD=not the passphrase"});
    EXPECT_EQ(r.exit_code, 4) << cmd[0] << ": " << Describe(r);
    EXPECT_NE(r.err.find("wrong passphrase"), std::string::npos) << r.err;
  }
  EXPECT_FALSE(fs::exists(dir_ / "out/data"));
  // The failed put stored nothing.
  auto r = S({"--json", "ls"});
  EXPECT_EQ(ParseJson(r).size(), 1u);
  // No passphrase at all and no terminal: a usage error, not a hang.
  r = S({"ls"}, {"STRATA_PASSWORD"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("STRATA_PASSWORD"), std::string::npos) << r.err;
}

TEST_F(CliTest, PasswordFile) {
  MakeTree(src_ + "/data", 6);
  std::string id = Put({src_ + "/data"});
  std::string good = dir_ / "pass", crlf = dir_ / "pass-crlf", bad = dir_ / "bad";
  WriteFile(good, std::string(kPass) + "\nignored second line\n");
  WriteFile(crlf, std::string(kPass) + "\r\n");
  WriteFile(bad, "nope\n");
  for (const auto& f : {good, crlf}) {
    auto r = S({"--password-file", f, "cat", id + ":data/hello.txt"}, {"STRATA_PASSWORD"});
    EXPECT_EQ(r.exit_code, 0) << f << ": " << Describe(r);
    EXPECT_EQ(r.out, "hello, strata\n");
  }
  auto r = S({"--password-file", bad, "ls"}, {"STRATA_PASSWORD"});
  EXPECT_EQ(r.exit_code, 4) << Describe(r);
  r = S({"ls", "--password-file", dir_ / "missing"}, {"STRATA_PASSWORD"});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  EXPECT_NE(r.err.find("missing"), std::string::npos) << r.err;
  // init with a password file creates a repository that opens with it.
  std::string repo2 = dir_ / "repo2";
  r = Strata({"--password-file", good, "init", repo2, "--kdf-mem", "1", "--kdf-ops", "1"}, {"STRATA_PASSWORD"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  r = Strata({"-r", repo2, "ls"});  // STRATA_PASSWORD is the same passphrase
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
}

TEST_F(CliTest, NotARepository) {
  TempDir empty;
  auto r = Strata({"-r", empty.path(), "ls"});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  EXPECT_NE(r.err.find("not a strata repository"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::is_empty(empty.path())) << "opening must not create anything";
  r = Strata({"-r", empty / "does-not-exist", "verify"});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  EXPECT_NE(r.err.find("does-not-exist"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(empty / "does-not-exist"));
  // A file where the directory should be.
  WriteFile(empty / "file", "x");
  r = Strata({"-r", empty / "file", "ls"});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
}

TEST_F(CliTest, NewerFormatVersionIsUnsupported) {
  std::string config_path = repo_ + "/config";
  json config = json::parse(ReadFile(config_path));
  ASSERT_EQ(config["version"], 1);
  config["version"] = 2;
  WriteFile(config_path, config.dump(2));
  auto r = S({"ls"});
  EXPECT_EQ(r.exit_code, 9) << Describe(r);
  EXPECT_NE(r.err.find("version 2"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("upgrade"), std::string::npos) << r.err;
  // Any other change to the config is caught by its MAC.
  config["version"] = 1;
  config["pack_size"] = 2 * 1048576;
  WriteFile(config_path, config.dump(2));
  r = S({"ls"});
  EXPECT_EQ(r.exit_code, 5) << Describe(r);
  EXPECT_NE(r.err.find("config"), std::string::npos) << r.err;
}

TEST_F(CliTest, DeletedPackFailsVerify) {
  MakeTree(src_ + "/data", 8);
  Put({src_ + "/data"});
  auto packs = PackFiles(repo_);
  ASSERT_GE(packs.size(), 1u);
  std::string victim = packs[0];
  std::string name = fs::path(victim).filename();
  fs::remove(victim);
  auto r = S({"verify"});
  EXPECT_EQ(r.exit_code, 5) << Describe(r);
  EXPECT_NE(r.err.find(name), std::string::npos) << "verify must name the pack: " << r.err;
  EXPECT_NE(r.out.find("FAILED"), std::string::npos) << r.out;
  r = S({"--json", "verify"});
  EXPECT_EQ(r.exit_code, 5) << Describe(r);
  json v = ParseJson(r);
  EXPECT_EQ(v["ok"], false);
  ASSERT_FALSE(v["errors"].empty());
  EXPECT_NE(v["errors"].dump().find(name), std::string::npos);
}

TEST_F(CliTest, TruncatedPackFailsVerify) {
  MakeTree(src_ + "/data", 9);
  Put({src_ + "/data"});
  auto packs = PackFiles(repo_);
  ASSERT_GE(packs.size(), 1u);
  for (uintmax_t keep : {uintmax_t{0}, uintmax_t{100}}) {
    std::string victim = packs[keep == 0 ? 0 : packs.size() - 1];
    std::string name = fs::path(victim).filename();
    uintmax_t size = fs::file_size(victim);
    fs::resize_file(victim, keep ? size - keep : size / 2);
    auto r = S({"verify"});
    EXPECT_EQ(r.exit_code, 5) << Describe(r);
    EXPECT_NE(r.err.find(name), std::string::npos) << r.err;
  }
}

TEST_F(CliTest, FlippedBitFailsReadDataAndGet) {
  // One big incompressible file: a byte in the middle of a pack lies in its content.
  std::string content = RandomBytes(10, 3 * 1024 * 1024);
  WriteFile(src_ + "/data/big.bin", content);
  WriteFile(src_ + "/data/small.txt", "small");
  std::string id = Put({src_ + "/data"});
  auto packs = PackFiles(repo_);
  ASSERT_GE(packs.size(), 2u);
  // Packs are named at random; the largest holds most of big.bin.
  std::string victim = *std::max_element(packs.begin(), packs.end(), [](const auto& a, const auto& b) {
    return fs::file_size(a) < fs::file_size(b);
  });
  uintmax_t size = fs::file_size(victim);
  ASSERT_GT(size, 100000u);
  {
    std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(size / 3);
    char c;
    f.get(c);
    f.seekp(size / 3);
    f.put(static_cast<char>(c ^ 0x10));
    ASSERT_TRUE(f.good());
  }
  auto r = S({"verify", "--read-data"});
  EXPECT_EQ(r.exit_code, 5) << Describe(r);
  EXPECT_NE(r.err.find(fs::path(victim).filename().string()), std::string::npos) << r.err;

  // get of the file fails and leaves neither the file nor its temporary behind.
  std::string dest = dir_ / "out";
  r = S({"get", id + ":data/big.bin", dest});
  EXPECT_EQ(r.exit_code, 5) << Describe(r);
  EXPECT_FALSE(fs::exists(dest + "/big.bin"));
  EXPECT_TRUE(!fs::exists(dest) || fs::is_empty(dest)) << "leftovers in " << dest;
  // The same for a whole-tree get; an existing file of that name is left untouched.
  WriteFile(dest + "/data/big.bin", "old content");
  r = S({"get", id, dest});
  EXPECT_EQ(r.exit_code, 5) << Describe(r);
  EXPECT_EQ(ReadFile(dest + "/data/big.bin"), "old content");
  for (auto& e : fs::recursive_directory_iterator(dest)) {
    EXPECT_NE(e.path().filename().string()[0], '.') << "a temporary left behind: " << e.path();
  }
  // cat fails too, and stops before the corrupt chunk: what it wrote is a true prefix.
  r = S({"cat", id + ":data/big.bin"});
  EXPECT_EQ(r.exit_code, 5) << Describe(r);
  EXPECT_LT(r.out.size(), content.size());
  EXPECT_TRUE(content.compare(0, r.out.size(), r.out) == 0);
  // Unaffected files still restore.
  r = S({"cat", id + ":data/small.txt"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "small");
}

TEST_F(CliTest, RepairIndexAfterLosingIndexFiles) {
  MakeTree(src_ + "/data", 11);
  TreeSnapshot want = SnapshotTree(src_);
  std::string id = Put({src_ + "/data"});
  std::string id2 = Put({src_ + "/data/sub"});
  ASSERT_FALSE(fs::is_empty(repo_ + "/index"));
  for (auto& e : fs::directory_iterator(repo_ + "/index")) fs::remove(e.path());

  auto r = S({"ls", id});
  EXPECT_NE(r.exit_code, 0) << "nothing is indexed, the tree cannot be found: " << Describe(r);
  r = S({"verify"});
  EXPECT_EQ(r.exit_code, 5) << Describe(r);

  r = S({"repair", "index"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("0 unreadable"), std::string::npos) << r.out;
  EXPECT_EQ(std::distance(fs::directory_iterator(repo_ + "/index"), fs::directory_iterator()), 1);

  EXPECT_EQ(DiffTrees(want, SnapshotTree(Get(id))), "");
  EXPECT_EQ(ReadFile(Get(id2) + "/sub/run.sh"), "#!/bin/sh\necho hi\n");
  r = S({"--json", "verify", "--read-data"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ParseJson(r)["warnings"], json::array());
  // Running it again is harmless and still leaves one index file.
  r = S({"--json", "repair", "index"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  json j = ParseJson(r);
  EXPECT_EQ(j["packs"], PackFiles(repo_).size());
  EXPECT_EQ(j["errors"], json::array());
  EXPECT_EQ(std::distance(fs::directory_iterator(repo_ + "/index"), fs::directory_iterator()), 1);
}

TEST_F(CliTest, KeyManagement) {
  WriteFile(src_ + "/data/f", "secret content");
  std::string id = Put({src_ + "/data"});
  auto cat_with = [&](const std::string& pass) { return S({"cat", id + ":data/f"}, {"STRATA_PASSWORD=" + pass}); };

  auto r = S({"--json", "key", "list"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  json keys = ParseJson(r);
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys[0]["current"], true);
  std::string first = keys[0]["id"];

  // Add a second passphrase from a file, and a third from STRATA_NEW_PASSWORD.
  WriteFile(dir_ / "p2", "second pass\n");
  r = S({"--json", "key", "add", "--new-password-file", dir_ / "p2", "--label", "backup key"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  std::string second = ParseJson(r)["id"];
  r = S({"key", "add", "--label", "third"}, {"STRATA_NEW_PASSWORD=third pass"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  r = S({"key", "list"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("backup key"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("* " + first), std::string::npos) << r.out;
  r = S({"--json", "key", "list"}, {"STRATA_PASSWORD=second pass"});
  keys = ParseJson(r);
  ASSERT_EQ(keys.size(), 3u) << r.out;
  for (const auto& k : keys) EXPECT_EQ(k["current"], k["id"] == second) << k.dump();
  for (const char* p : {kPass, "second pass", "third pass"}) {
    r = cat_with(p);
    EXPECT_EQ(r.exit_code, 0) << p << ": " << Describe(r);
    EXPECT_EQ(r.out, "secret content");
  }

  // The slot in use cannot remove itself; another one can remove it.
  r = S({"key", "remove", first});
  EXPECT_EQ(r.exit_code, 6) << Describe(r);
  EXPECT_NE(r.err.find("in use"), std::string::npos) << r.err;
  r = S({"key", "remove", "nosuchslot"});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  r = S({"key", "remove", first}, {"STRATA_PASSWORD=second pass"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  r = cat_with(kPass);
  EXPECT_EQ(r.exit_code, 4) << Describe(r);

  // passwd replaces the current slot's passphrase, keeping the data readable.
  WriteFile(dir_ / "p4", "fourth pass\n");
  r = S({"key", "passwd", "--new-password-file", dir_ / "p4"}, {"STRATA_PASSWORD=second pass"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(cat_with("second pass").exit_code, 4);
  r = cat_with("fourth pass");
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "secret content");
  r = S({"--json", "key", "list"}, {"STRATA_PASSWORD=fourth pass"});
  keys = ParseJson(r);
  ASSERT_EQ(keys.size(), 2u) << r.out;
  bool kept_label = false;
  std::string third;
  for (const auto& k : keys) {
    kept_label |= k["label"] == "backup key" && k["current"] == true;
    if (k["label"] == "third") third = k["id"];
  }
  EXPECT_TRUE(kept_label) << r.out;

  // Down to one slot; the last one is never removed.
  r = S({"key", "remove", third}, {"STRATA_PASSWORD=fourth pass"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  r = S({"--json", "key", "list"}, {"STRATA_PASSWORD=fourth pass"});
  keys = ParseJson(r);
  ASSERT_EQ(keys.size(), 1u) << r.out;
  std::string last = keys[0]["id"];
  r = S({"key", "remove", last}, {"STRATA_PASSWORD=fourth pass"});
  EXPECT_EQ(r.exit_code, 6) << Describe(r);
  EXPECT_NE(r.err.find("last"), std::string::npos) << r.err;
  EXPECT_EQ(cat_with("fourth pass").exit_code, 0);
  // An empty new passphrase is refused.
  WriteFile(dir_ / "empty", "\n");
  r = S({"key", "add", "--new-password-file", dir_ / "empty"}, {"STRATA_PASSWORD=fourth pass"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
}

TEST_F(CliTest, UnlockSkipsThePassphraseUntilLockOrKeyChange) {
  WriteFile(src_ + "/data/f", "secret content");
  std::string id = Put({src_ + "/data"});
  std::string run = dir_ / "run";
  ASSERT_EQ(mkdir(run.c_str(), 0700), 0);
  const std::string xdg = "XDG_RUNTIME_DIR=" + run;
  auto cat_without_passphrase = [&] { return S({"cat", id + ":data/f"}, {xdg, "STRATA_PASSWORD"}); };

  EXPECT_EQ(cat_without_passphrase().exit_code, 2);  // no passphrase and nothing unlocked
  auto r = S({"unlock", "--for", "1h"}, {xdg});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  r = cat_without_passphrase();
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "secret content");
  r = S({"lock"}, {xdg});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(cat_without_passphrase().exit_code, 2);

  // Changing the passphrase forgets the unlocked keys.
  ASSERT_EQ(S({"unlock"}, {xdg}).exit_code, 0);
  ASSERT_EQ(cat_without_passphrase().exit_code, 0);
  r = S({"key", "passwd"}, {xdg, "STRATA_NEW_PASSWORD=new pass"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(cat_without_passphrase().exit_code, 2);

  for (const char* bad : {"0", "abc", "10x", "8d"}) {
    r = S({"unlock", "--for", bad}, {xdg, "STRATA_PASSWORD=new pass"});
    EXPECT_EQ(r.exit_code, 2) << bad << ": " << Describe(r);
  }
}

TEST_F(CliTest, InitRefusesNonEmptyDirectory) {
  std::string dir = dir_ / "occupied";
  WriteFile(dir + "/precious.txt", "keep me");
  auto before = ListTree(dir);
  auto r = Strata({"init", dir, "--kdf-mem", "1", "--kdf-ops", "1"});
  EXPECT_EQ(r.exit_code, 6) << Describe(r);
  EXPECT_NE(r.err.find("not empty"), std::string::npos) << r.err;
  EXPECT_EQ(ListTree(dir), before);
  EXPECT_EQ(ReadFile(dir + "/precious.txt"), "keep me");
  // Nor over an existing repository.
  MakeTree(src_ + "/data", 12);
  std::string id = Put({src_ + "/data"});
  auto repo_before = ListTree(repo_);
  std::string config = ReadFile(repo_ + "/config");
  r = Strata({"init", repo_, "--kdf-mem", "1", "--kdf-ops", "1"}, {"STRATA_PASSWORD=other"});
  EXPECT_EQ(r.exit_code, 6) << Describe(r);
  EXPECT_EQ(ListTree(repo_), repo_before);
  EXPECT_EQ(ReadFile(repo_ + "/config"), config);
  EXPECT_EQ(S({"ls", id}).exit_code, 0);
  // Bad parameters are usage errors and create nothing.
  r = Strata({"init", dir_ / "bad", "--chunk-avg", "100"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_FALSE(fs::exists(dir_ / "bad/config"));
  r = Strata({"init", dir_ / "bad2", "--pack-size", "1000"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_FALSE(fs::exists(dir_ / "bad2"));
  // An empty existing directory is fine.
  fs::create_directories(dir_ / "fresh");
  r = Strata({"--json", "init", dir_ / "fresh", "--kdf-mem", "1", "--kdf-ops", "1"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ParseJson(r)["created"], true);
  for (const char* d : {"config", "keys", "packs", "index", "roots", "locks", "tmp"}) {
    EXPECT_TRUE(fs::exists(dir_ / ("fresh/" + std::string(d)))) << d;
  }
}

TEST_F(CliTest, PermissionDenied) {
  if (geteuid() == 0) GTEST_SKIP() << "root ignores file permissions";
  MakeTree(src_ + "/data", 13);
  std::string id = Put({src_ + "/data"});
  // Unreadable input: the put fails with exit 8 and records nothing.
  WriteFile(src_ + "/secret/f", "x");
  ASSERT_EQ(chmod((src_ + "/secret/f").c_str(), 0), 0);
  auto r = S({"put", src_ + "/secret"});
  EXPECT_EQ(r.exit_code, 8) << Describe(r);
  EXPECT_EQ(ParseJson(S({"--json", "ls"})).size(), 1u);
  // Unwritable packs directory.
  ASSERT_EQ(chmod((repo_ + "/packs").c_str(), 0), 0);
  r = S({"get", id, dir_ / "out"});
  EXPECT_EQ(r.exit_code, 8) << Describe(r);
  r = S({"put", src_ + "/data/hello.txt"});
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  chmod((repo_ + "/packs").c_str(), 0755);
  chmod((src_ + "/secret/f").c_str(), 0644);
}

TEST_F(CliTest, PutOfMissingPathStoresNothing) {
  MakeTree(src_ + "/data", 14);
  Put({src_ + "/data"});
  auto before = ListTree(repo_);
  auto r = S({"put", src_ + "/data", src_ + "/no such file"});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  EXPECT_NE(r.err.find("no such file"), std::string::npos) << r.err;
  EXPECT_EQ(ListTree(repo_), before);
  // Two paths with the same name are a usage error, also storing nothing.
  WriteFile(src_ + "/other/data", "same basename");
  r = S({"put", src_ + "/data", src_ + "/other/data"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_EQ(ListTree(repo_), before);
  // A missing argument is a usage error.
  r = S({"put"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_EQ(ListTree(repo_), before);
}

TEST_F(CliTest, HelpForEveryCommand) {
  const std::vector<std::vector<std::string>> commands = {
      {},           {"init"},        {"put"},         {"get"},          {"cat"},          {"ls"},
      {"verify"},   {"stats"},       {"key"},         {"key", "list"},  {"key", "add"},   {"key", "remove"},
      {"key", "passwd"}, {"repair"}, {"repair", "index"}, {"cleanup"}};
  for (const auto& cmd : commands) {
    std::vector<std::string> args = cmd;
    args.push_back("--help");
    auto r = Strata(args, {"STRATA_PASSWORD"});
    std::string what = cmd.empty() ? "strata" : cmd.back();
    EXPECT_EQ(r.exit_code, 0) << what << ": " << Describe(r);
    std::string all = r.out + r.err;
    EXPECT_NE(all.find("--repo"), std::string::npos) << what << " --help does not mention --repo:\n" << all;
    if (!cmd.empty()) {
      EXPECT_NE(all.find(cmd.back()), std::string::npos) << all;
    }
  }
  auto r = Strata({"--help"});
  EXPECT_NE(r.out.find("Exit codes"), std::string::npos) << r.out;
  // Every command the top level lists has its own help (a command builds only its group's
  // options: this holds whichever group a command is in).
  std::istringstream listing(r.out.substr(r.out.find("Subcommands:")));
  std::string line;
  std::getline(listing, line);
  size_t listed = 0;
  while (std::getline(listing, line) && line.rfind("  ", 0) == 0) {
    std::string name = line.substr(2, line.find(' ', 2) - 2);
    auto h = Strata({"-r", repo_, name, "--help"});
    EXPECT_EQ(h.exit_code, 0) << name << ": " << Describe(h);
    EXPECT_NE(h.out.find("strata " + name), std::string::npos) << name << ":\n" << h.out;
    ++listed;
  }
  EXPECT_GT(listed, 40u) << r.out;
  // An unknown command or option is a usage error that names it.
  r = Strata({"frobnicate"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("unknown command 'frobnicate'"), std::string::npos) << Describe(r);
  r = Strata({"ls", "--no-such-option"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
}

TEST_F(CliTest, CleanupRemovesLeftovers) {
  MakeTree(src_ + "/data", 15);
  std::string id = Put({src_ + "/data"});
  // Fake the leftovers of a put that died: a pack no index lists and a temporary file.
  auto packs = PackFiles(repo_);
  ASSERT_FALSE(packs.empty());
  std::string orphan_name = "ab" + std::string(30, '0');
  fs::create_directories(repo_ + "/packs/ab");
  fs::copy_file(packs[0], repo_ + "/packs/ab/" + orphan_name);
  WriteFile(repo_ + "/tmp/" + orphan_name + "-999999-0", "partial");
  auto r = S({"--json", "verify"});
  EXPECT_EQ(r.exit_code, 0) << "leftovers are warnings, not errors: " << Describe(r);
  json v = ParseJson(r);
  ASSERT_EQ(v["warnings"].size(), 1u) << r.out;
  EXPECT_NE(v["warnings"][0].get<std::string>().find(orphan_name), std::string::npos);
  r = S({"--json", "cleanup"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ParseJson(r)["removed"], 2);
  EXPECT_FALSE(fs::exists(repo_ + "/packs/ab/" + orphan_name));
  EXPECT_TRUE(fs::is_empty(repo_ + "/tmp"));
  r = S({"--json", "verify", "--read-data"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ParseJson(r)["warnings"], json::array());
  EXPECT_EQ(S({"ls", id}).exit_code, 0);
}

}  // namespace
}  // namespace strata::testing
