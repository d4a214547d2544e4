// Crash and concurrency tests of the `strata` command: real processes, killed with SIGKILL at
// random moments or run side by side, after which the repository must verify and every
// completed put must restore byte for byte.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testutil/testutil.h"

namespace strata::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kPass = "crash test passphrase";

EnvChanges BaseEnv() {
  return {std::string("STRATA_PASSWORD=") + kPass, "STRATA_REPO", "STRATA_NEW_PASSWORD", "STRATA_LOG"};
}

size_t Iterations() {
  const char* v = std::getenv("STRATA_CRASH_ITERATIONS");
  return v && *v ? std::strtoul(v, nullptr, 10) : 50;
}

size_t CountEntries(const std::string& dir) {
  size_t n = 0;
  for (auto& e : fs::recursive_directory_iterator(dir)) n += e.is_regular_file();
  return n;
}

class CrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    repo_ = dir_ / "repo";
    auto r = Run({"init", repo_, "--kdf-mem", "1", "--kdf-ops", "1", "--chunk-avg", "64", "--pack-size", "1048576"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
  }

  ProcessResult Run(const std::vector<std::string>& args, const std::string& input = "") {
    std::vector<std::string> argv = {STRATA_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProcess(argv, BaseEnv(), input);
  }
  // `strata -r REPO args...`
  ProcessResult S(const std::vector<std::string>& args) {
    std::vector<std::string> a = {"-r", repo_};
    a.insert(a.end(), args.begin(), args.end());
    return Run(a);
  }
  pid_t StartPut(const std::vector<std::string>& paths, const std::string& log, int stdin_fd = -1) {
    std::vector<std::string> argv = {STRATA_BINARY, "-r", repo_, "-q", "put"};
    argv.insert(argv.end(), paths.begin(), paths.end());
    return StartProcess(argv, BaseEnv(), log, stdin_fd);
  }

  std::string Put(const std::string& path) {
    auto r = S({"-q", "put", path});
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    return r.out.substr(0, 64);
  }

  // Restores `id` into a fresh directory and compares it with `want`.
  void ExpectRestores(const std::string& id, const TreeSnapshot& want, const std::string& what) {
    std::string dest = dir_ / ("restore-" + std::to_string(++restores_));
    auto r = S({"-q", "get", id, dest});
    ASSERT_EQ(r.exit_code, 0) << what << ": " << Describe(r);
    EXPECT_EQ(DiffTrees(want, SnapshotTree(dest)), "") << what;
    fs::remove_all(dest);
  }

  // Runs verify (with --json) and returns the report; errors fail the test.
  json Verify(bool read_data, const std::string& when) {
    auto r = read_data ? S({"--json", "verify", "--read-data"}) : S({"--json", "verify"});
    EXPECT_EQ(r.exit_code, 0) << when << ": " << Describe(r);
    json v = ParseJson(r);
    EXPECT_EQ(v.value("errors", json::array()), json::array()) << when;
    return v;
  }

  // Roots recorded in the repository, by their (single) input path.
  std::map<std::string, std::string> RootsByPath() {
    auto r = S({"--json", "ls"});
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    std::map<std::string, std::string> out;
    for (const auto& root : ParseJson(r)) {
      EXPECT_EQ(root["paths"].size(), 1u) << root.dump();
      std::string path = root["paths"][0];
      EXPECT_FALSE(out.count(path)) << "two roots for " << path;
      out[path] = root["id"];
    }
    return out;
  }

  TempDir dir_;
  std::string repo_;
  int restores_ = 0;
};

void SetMtime(const std::string& path, int64_t sec) {
  timespec times[2] = {{0, UTIME_OMIT}, {sec, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0) << path;
}

// The input of crash iteration `i`, as `dir`/data: 20-40 MiB of random data (new chunks every
// time) in one to three files, plus a small file shared with every other iteration. The same
// `i` always gives the same tree, mtimes included. Returns the path to put.
std::string MakeIterationInput(const std::string& dir, uint64_t i) {
  std::mt19937_64 rng(1000 + i);
  size_t total = (20 + rng() % 21) << 20;
  size_t files = 1 + rng() % 3;
  std::string data = dir + "/data";
  for (size_t f = 0; f < files; ++f) {
    WriteFile(data + "/part" + std::to_string(f), RandomBytes(i * 100 + f, total / files));
    SetMtime(data + "/part" + std::to_string(f), 1'500'000'000 + i);
  }
  WriteFile(data + "/shared.txt", "the same in every put\n");
  SetMtime(data + "/shared.txt", 1'500'000'000);
  SetMtime(data, 1'500'000'000 + i);
  return data;
}

TEST_F(CrashTest, KilledPutsLeaveRepositoryConsistent) {
  // A: the data that must survive everything that follows.
  std::string a = dir_ / "a/data";
  WriteFile(a + "/one.bin", RandomBytes(1, 2 << 20));
  WriteFile(a + "/sub/two.txt", std::string(100000, 'z'));
  WriteFile(a + "/sub/empty", "");
  fs::create_symlink("../one.bin", a + "/sub/link");
  TreeSnapshot want_a = SnapshotTree(dir_ / "a");
  std::string id_a = Put(a);
  ASSERT_EQ(id_a.size(), 64u);

  // Calibrate: how long an uninterrupted put of one iteration's input takes here (sanitizer
  // builds are several times slower), so kills spread over the whole of a put.
  std::string inputs = dir_ / "inputs";
  std::string calibration = MakeIterationInput(inputs + "/calibration", 999999);
  auto start = Clock::now();
  Put(calibration);
  double put_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  fs::remove_all(inputs + "/calibration");
  // Kills land from 0 to 130% of a put: at process start, during chunk writes and pack
  // commits, at the index and root writes, and after the end. The estimate follows the puts
  // that finish, in case the machine's speed drifts.
  double max_delay_ms = 0;

  std::mt19937_64 rng(20240611);
  std::map<std::string, uint64_t> completed;  // input dir -> iteration, for every put that finished
  std::map<std::string, std::string> seen_roots = RootsByPath();
  size_t killed_mid_way = 0, finished = 0, with_leftovers = 0, last_warnings = 0;
  const size_t iterations = Iterations();
  std::string log = dir_ / "put.log";

  for (size_t i = 0; i < iterations; ++i) {
    std::string parent = inputs + "/iter-" + std::to_string(i);
    std::string input = MakeIterationInput(parent, i);
    max_delay_ms = std::min(4000.0, 1.3 * put_ms);
    auto delay = std::chrono::microseconds(static_cast<int64_t>(
        std::uniform_real_distribution<double>(0, max_delay_ms * 1000)(rng)));
    auto started = Clock::now();
    pid_t pid = StartPut({input}, log);
    int status = -1, wait_status = 0;
    while (Clock::now() - started < delay) {
      if (waitpid(pid, &wait_status, WNOHANG) == pid) {
        status = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 128 + WTERMSIG(wait_status);
        if (status == 0) put_ms = 0.8 * put_ms + 0.2 * std::chrono::duration<double, std::milli>(Clock::now() - started).count();
        break;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    if (status == -1) {
      ASSERT_EQ(kill(pid, SIGKILL), 0);  // not reaped yet, so the pid is still ours
      status = WaitProcess(pid);
    }
    ASSERT_TRUE(status == 0 || status == 128 + SIGKILL) << "put exited with " << status << "; log:\n"
                                                         << ReadFile(log);
    std::string when = "after iteration " + std::to_string(i) + " (killed after " +
                       std::to_string(delay.count() / 1000) + " ms, exit " + std::to_string(status) + ")";
    status == 0 ? ++finished : ++killed_mid_way;

    json report = Verify(false, when);
    size_t warnings = report.value("warnings", json::array()).size();
    if (warnings > last_warnings) ++with_leftovers;
    last_warnings = warnings;
    for (const auto& w : report.value("warnings", json::array())) {
      EXPECT_NE(w.get<std::string>().find("not indexed"), std::string::npos) << when << ": unexpected warning " << w;
    }

    // A put is visible exactly when it completed: a root names it. One that exited 0 must have one.
    auto roots = RootsByPath();
    EXPECT_TRUE(status != 0 || roots.count(input)) << when << ": a put that succeeded left no root";
    for (const auto& [path, id] : roots) {
      if (seen_roots.count(path)) {
        EXPECT_EQ(seen_roots[path], id) << when;
        continue;
      }
      EXPECT_EQ(path, input) << when << ": a root appeared for an old input";
      seen_roots[path] = id;
      completed[parent] = i;
      // A new root: its content must be complete.
      ExpectRestores(id, SnapshotTree(parent), when + ": " + path);
    }
    // A is intact.
    ExpectRestores(id_a, want_a, when + ": A");
    if (::testing::Test::HasFatalFailure()) return;
    fs::remove_all(parent);

    if (i % 10 == 9 || i + 1 == iterations) {
      auto r = S({"--json", "cleanup"});
      ASSERT_EQ(r.exit_code, 0) << when << ": " << Describe(r);
      json after = Verify(true, when + ", after cleanup");
      EXPECT_EQ(after.value("warnings", json::array()), json::array()) << when << ": cleanup left leftovers";
      EXPECT_EQ(CountEntries(repo_ + "/tmp"), 0u) << when << ": cleanup left temporaries";
      EXPECT_EQ(CountEntries(repo_ + "/locks"), 0u) << when << ": a dead put's lock survived an exclusive lock";
      last_warnings = 0;
    }
  }

  // Every put that completed still restores byte for byte (their inputs are regenerated).
  for (const auto& [parent, i] : completed) {
    std::string input = MakeIterationInput(parent, i);
    ExpectRestores(seen_roots[input], SnapshotTree(parent), "at the end: " + input);
    fs::remove_all(parent);
  }
  ExpectRestores(id_a, want_a, "at the end: A");
  Verify(true, "at the end");
  std::printf("[ crash    ] %zu puts: %zu killed mid-way (%zu left unindexed packs), %zu finished; "
              "a put took %.0f ms, kills drawn from 0-%.0f ms\n",
              iterations, killed_mid_way, with_leftovers, finished, put_ms, max_delay_ms);
  std::fflush(stdout);
  // The test means something only if kills landed both during and after puts.
  if (iterations >= 20) {
    EXPECT_GT(killed_mid_way, iterations / 4);
    EXPECT_GT(with_leftovers, 0u);
  }
}

TEST_F(CrashTest, ConcurrentPutsAllSucceed) {
  // Three inputs that overlap pairwise (x, y, z shared), put at the same time, twice over.
  std::string x = RandomBytes(11, 6 << 20), y = RandomBytes(12, 5 << 20), z = RandomBytes(13, 7 << 20);
  const std::vector<std::vector<std::pair<std::string, const std::string*>>> sets = {
      {{"x", &x}, {"y", &y}}, {{"y", &y}, {"z", &z}}, {{"x", &x}, {"z", &z}, {"own", nullptr}}, {{"z", &z}}};
  std::vector<std::string> inputs;  // each in a parent of its own, to compare with a restore
  for (size_t s = 0; s < sets.size(); ++s) {
    std::string in = dir_ / ("in" + std::to_string(s) + "/data" + std::to_string(s));
    for (const auto& [name, data] : sets[s]) WriteFile(in + "/" + name, data ? *data : RandomBytes(14 + s, 3 << 20));
    inputs.push_back(in);
  }
  std::map<std::string, std::string> latest;  // input -> id of its second put
  for (int round = 0; round < 2; ++round) {
    std::vector<pid_t> pids;
    std::vector<std::string> logs;
    for (size_t s = 0; s < inputs.size(); ++s) {
      logs.push_back(dir_ / ("log" + std::to_string(round) + "-" + std::to_string(s)));
      pids.push_back(StartPut({inputs[s]}, logs.back()));
    }
    for (size_t s = 0; s < pids.size(); ++s) {
      EXPECT_EQ(WaitProcess(pids[s]), 0) << "round " << round << ", put " << s << ":\n" << ReadFile(logs[s]);
      latest[inputs[s]] = ReadFile(logs[s]).substr(0, 64);
    }
    // Change the inputs' metadata for the second round so its trees are new, not the data.
    if (round == 0) {
      for (const auto& in : inputs) SetMtime(in, 1'000'000'000);
    }
  }
  json v = Verify(true, "after concurrent puts");
  EXPECT_EQ(v.value("warnings", json::array()), json::array());
  auto r = S({"--json", "ls"});
  json roots = ParseJson(r);
  ASSERT_EQ(roots.size(), 2 * inputs.size()) << r.out;
  // Each input's second root restores it exactly; its first differs only in the input's mtime.
  std::set<std::string> ids;
  for (const auto& root : roots) ids.insert(root["id"].get<std::string>());
  EXPECT_EQ(ids.size(), roots.size()) << "every put made a distinct tree";
  for (const auto& in : inputs) {
    ASSERT_TRUE(ids.count(latest[in])) << in << ": " << latest[in];
    ExpectRestores(latest[in], SnapshotTree(fs::path(in).parent_path()), in);
  }
  for (const auto& root : roots) {
    std::string dest = dir_ / "check";
    ASSERT_EQ(S({"-q", "get", root["id"], dest}).exit_code, 0);
    std::string in = root["paths"][0];
    for (auto& e : fs::directory_iterator(in)) {
      EXPECT_TRUE(ReadFile(dest + "/" + fs::path(in).filename().string() + "/" + e.path().filename().string()) ==
                  ReadFile(e.path()))
          << e.path();
    }
    fs::remove_all(dest);
  }
  // Puts that ran at the same time may each have stored the same chunks; stats counts each
  // distinct chunk once all the same, and the second round stored no data at all.
  r = S({"--json", "stats"});
  json st = ParseJson(r);
  EXPECT_EQ(st["unique_bytes"], x.size() + y.size() + z.size() + (3 << 20));
  EXPECT_EQ(st["roots"], roots.size());
}

TEST_F(CrashTest, CleanupRefusedWhilePutHoldsLock) {
  // A put reading stdin holds its lock until we close the pipe, so the timing is ours.
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  std::string log = dir_ / "put.log";
  pid_t pid = StartPut({"-"}, log, fds[0]);
  close(fds[0]);
  std::string data = RandomBytes(5, 4 << 20);
  ASSERT_EQ(write(fds[1], data.data(), data.size() / 2), static_cast<ssize_t>(data.size() / 2));
  // Wait for the put's lock to appear.
  auto deadline = Clock::now() + std::chrono::seconds(60);
  while (CountEntries(repo_ + "/locks") == 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(CountEntries(repo_ + "/locks"), 1u);

  auto r = S({"cleanup"});
  EXPECT_EQ(r.exit_code, 6) << Describe(r);
  EXPECT_NE(r.err.find("locked"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(std::to_string(pid)), std::string::npos) << "the message names the owner: " << r.err;
  r = S({"repair", "index"});
  EXPECT_EQ(r.exit_code, 6) << Describe(r);
  // Readers and other writers are not blocked.
  r = S({"verify"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  WriteFile(dir_ / "other/f", "another writer");
  r = S({"-q", "put", dir_ / "other"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(CountEntries(repo_ + "/locks"), 1u) << "the second put released its lock";

  ASSERT_EQ(write(fds[1], data.data() + data.size() / 2, data.size() - data.size() / 2),
            static_cast<ssize_t>(data.size() - data.size() / 2));
  close(fds[1]);
  ASSERT_EQ(WaitProcess(pid), 0) << ReadFile(log);
  std::string id = ReadFile(log).substr(0, 64);
  EXPECT_EQ(CountEntries(repo_ + "/locks"), 0u);

  // Now cleanup runs, finds nothing to remove, and the put's data is intact.
  r = S({"--json", "cleanup"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ParseJson(r)["removed"], 0);
  r = S({"cat", id});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(r.out == data);
  json v = Verify(true, "after the locked put");
  EXPECT_EQ(v["warnings"], json::array());
}

TEST_F(CrashTest, StaleLockOfKilledProcessDoesNotBlockCleanup) {
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  pid_t pid = StartPut({"-"}, dir_ / "put.log", fds[0]);
  close(fds[0]);
  std::string data = RandomBytes(6, 2 << 20);
  ASSERT_EQ(write(fds[1], data.data(), data.size()), static_cast<ssize_t>(data.size()));
  auto deadline = Clock::now() + std::chrono::seconds(60);
  while (CountEntries(repo_ + "/locks") == 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // Give it time to write some packs, then kill it while it still waits for input.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  EXPECT_EQ(WaitProcess(pid), 128 + SIGKILL);
  close(fds[1]);
  EXPECT_EQ(CountEntries(repo_ + "/locks"), 1u) << "the dead put's lock stays behind";
  auto r = S({"--json", "cleanup"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(CountEntries(repo_ + "/locks"), 0u);
  EXPECT_EQ(CountEntries(repo_ + "/tmp"), 0u);
  json v = Verify(true, "after cleanup");
  EXPECT_EQ(v["warnings"], json::array());
  EXPECT_EQ(ParseJson(S({"--json", "ls"})), json::array());
}

}  // namespace
}  // namespace strata::testing
