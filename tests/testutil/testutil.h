// Helpers shared by the test suites.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "strata/repository.h"

namespace strata {
class Lake;
}

namespace strata::testing {

// A fresh directory under $TMPDIR, removed (recursively) by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Deterministic pseudo-random bytes.
std::string RandomBytes(uint64_t seed, size_t n);
// Writes `data` to `path` (creating parent directories), aborting the test binary on failure.
void WriteFile(const std::string& path, const std::string& data);
std::string ReadFile(const std::string& path);

// Runs a shell command; returns its exit status (-1 if it could not run) and its stdout.
int RunCommand(const std::string& cmd, std::string* out = nullptr);

// A finished child process.
struct ProcessResult {
  int exit_code = -1;  // exit status, or 128 + signal number when killed by a signal
  std::string out;     // everything it wrote to stdout
  std::string err;     // everything it wrote to stderr
};

// Changes to the inherited environment: "NAME=VALUE" sets NAME, a bare "NAME" unsets it.
using EnvChanges = std::vector<std::string>;

// Runs argv (argv[0] is a path, not searched in $PATH) with `env` applied to this process's
// environment, feeding `input` on stdin. The child runs in a new session without a controlling
// terminal, so a program that would prompt on /dev/tty fails instead of waiting.
ProcessResult RunProcess(const std::vector<std::string>& argv, const EnvChanges& env = {},
                         const std::string& input = "");

// Starts argv in the background like RunProcess, with stdout and stderr appended to
// `output_path` and stdin from `stdin_fd` (the caller keeps and closes it), or from /dev/null
// when it is -1. Returns the pid (aborts the test binary if it cannot start).
pid_t StartProcess(const std::vector<std::string>& argv, const EnvChanges& env = {},
                   const std::string& output_path = "/dev/null", int stdin_fd = -1);
// Waits for a process started with StartProcess; returns its exit status, or 128 + signal.
int WaitProcess(pid_t pid);

// One entry of a directory tree as lstat sees it.
struct TreeItem {
  char type = '?';       // 'f' file, 'd' directory, 'l' symlink, '?' other
  uint32_t mode = 0;     // permission bits (0 for symlinks, which have none on Linux)
  int64_t mtime_ns = 0;
  std::string content;   // a file's bytes or a symlink's target
  bool operator==(const TreeItem&) const = default;
};
using TreeSnapshot = std::map<std::string, TreeItem>;  // by path relative to the root

// Every entry below `root` (not `root` itself). Directory mtimes are zeroed unless asked for
// (reading the files below a directory does not change it, but creating entries does).
TreeSnapshot SnapshotTree(const std::string& root, bool dir_mtimes = true);
// "" when equal; otherwise one line per difference, naming the path and what differs.
std::string DiffTrees(const TreeSnapshot& want, const TreeSnapshot& got);
// Every path below `root` with its size (0 for non-files): to check that nothing changed.
std::map<std::string, uint64_t> ListTree(const std::string& root);

// Repository options that keep tests fast: small chunks (16/64/256 KiB), 1 MiB packs, and the
// cheapest Argon2id parameters libsodium accepts.
InitOptions FastInitOptions();

// Each line followed by a newline: for failure messages.
std::string JoinLines(const std::vector<std::string>& lines);
// Expects `repo->Verify(read_data=true)` to find no error (nor warning, unless allowed).
void ExpectVerifies(Repository* repo, bool allow_warnings = false);
// Expects tree `id` restored into the scratch directory `out` (below `sub` of it, when given)
// to equal the directory `src`; removes `out`.
void ExpectRestores(Repository* repo, const ObjectId& id, const std::string& src, const std::string& out,
                    const std::string& sub = "");

// A process result for failure messages: exit code, stdout (first 4000 bytes), stderr.
std::string Describe(const ProcessResult& r);
// Its stdout as JSON; a test failure (and null) if it is not JSON.
nlohmann::json ParseJson(const ProcessResult& r);

// A safetensors file written independently of strata: F32 tensors (name -> shape, bytes) in
// name order; and the tensors' bytes by name of such a file (what an export holds).
std::string Safetensors(const std::map<std::string, std::pair<std::vector<uint64_t>, std::string>>& tensors);
std::map<std::string, std::string> ReadSafetensors(const std::string& file);

// The content of the file NAME@REF:PATH names; a test failure (and "") if it cannot be read.
// (lake_testutil.cc: only the suites that call it link the lake.)
std::string ReadLakeFile(Lake& lake, const std::string& spec);

// A new repository at `dir` (FastInitOptions, passphrase "pw") and a lake over it (actor
// tester@host) holding the empty dataset `dataset`; test failures (and nulls) if any step fails.
struct TestLake {
  std::unique_ptr<Repository> repo;
  std::unique_ptr<Lake> lake;
};
TestLake CreateTestLake(const std::string& dir, const std::string& dataset);

}  // namespace strata::testing
