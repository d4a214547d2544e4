// Helpers shared by the `strata` command's source files: global options, exit codes, errors
// (a Failure thrown in a command handler stops the command with its status), repository open and
// output formatting.
#pragma once

#include <cstdio>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "strata/repository.h"
#include "strata/status.h"

namespace strata::cli {

// Exit codes (documented in `strata --help` and README.md).
enum Exit : int {
  kExitOk = 0,
  kExitError = 1,         // I/O and other failures
  kExitUsage = 2,         // bad arguments
  kExitNotFound = 3,      // no such repository, object or path
  kExitAuth = 4,          // wrong passphrase
  kExitIntegrity = 5,     // corruption detected (or verify found problems)
  kExitLocked = 6,        // locked, or a precondition failed
  kExitNoSpace = 7,
  kExitPermission = 8,
  kExitUnsupported = 9,   // newer format
};

// Subcommands inherit the footer when they are created, so their --help shows the global options
// (which CLI11 lists only under the top-level command) as well as the exit codes.
inline constexpr const char* kGlobalOptionsHelp =
    "Global options (before or after the command):\n"
    "  -r,--repo URL        Repository URL (a directory); default $STRATA_REPO\n"
    "  --password-file FILE Read the passphrase from FILE; default $STRATA_PASSWORD or a prompt\n"
    "  --json, -q, --threads N   machine-readable output, quiet, worker threads\n\n";

inline constexpr const char* kExitCodesHelp =
    "Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 wrong passphrase, 5 corruption detected,\n"
    "6 locked or refused, 7 disk full, 8 permission denied, 9 unsupported (newer format).";

struct Globals {
  std::string repo;
  std::string password_file;
  bool json = false;
  bool quiet = false;
  size_t threads = 0;
  // The passphrase typed at the prompt, if one was (so a command started in the background can
  // be given it: StartDetached).
  mutable std::string typed_passphrase;
};

// Thrown inside command handlers to stop with a status; caught in main.
struct Failure {
  Status status;
};

inline void Check(const Status& s) {
  if (!s.ok()) throw Failure{s};
}
template <class T>
T Check(Result<T> r) {
  if (!r.ok()) throw Failure{r.status()};
  return std::move(r).value();
}

int ExitCodeFor(const Status& s);

std::string ReadPasswordFile(const std::string& path);
// The repository passphrase: --password-file, then $STRATA_PASSWORD, then a prompt.
std::string Passphrase(const Globals& g, bool confirm);
// A new passphrase: FILE, then $STRATA_NEW_PASSWORD, then a prompt (asked twice).
std::string NewPassphrase(const std::string& file);
std::string RepoUrl(const Globals& g);
// "90", "90s", "15m", "2h", "1d" -> seconds (kInvalidArgument otherwise).
Result<int64_t> ParseDuration(std::string_view text);
std::unique_ptr<Repository> OpenRepo(const Globals& g);
// Starts `strata ARGS...` (this binary) detached from this process and its terminal, on the same
// repository with the same credentials (a passphrase typed at the prompt goes over a pipe, never
// on the command line), quiet, its output appended to `log`. Returns its pid.
Result<int> StartDetached(const Globals& g, const std::vector<std::string>& args, const std::string& log);

void PrintJson(const nlohmann::json& j);
std::string Bytes(uint64_t b);
std::string TimeString(int64_t seconds);  // local time, "YYYY-MM-DD HH:MM:SS"
std::string ModeString(const EntryInfo& e);  // "drwxr-xr-x"
// A listing as `ls` prints it (JSON with --json; mode, size and time with `long_format`).
void PrintEntries(const Globals& g, const std::vector<EntryInfo>& entries, bool long_format);
// Copies a file's content to `out` (`name` is for messages), every chunk authenticated first.
void CopyBlob(BlobReader* reader, FILE* out, const std::string& name);

}  // namespace strata::cli
