#include "cli/common.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <climits>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>

#include <fmt/format.h>

#include "base/progress.h"

namespace strata::cli {

int ExitCodeFor(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk: return kExitOk;
    case StatusCode::kInvalidArgument: return kExitUsage;
    case StatusCode::kNotFound: return kExitNotFound;
    case StatusCode::kUnauthenticated: return kExitAuth;
    case StatusCode::kCorruption: return kExitIntegrity;
    case StatusCode::kFailedPrecondition:
    case StatusCode::kAborted:
    case StatusCode::kAlreadyExists: return kExitLocked;
    case StatusCode::kNoSpace: return kExitNoSpace;
    case StatusCode::kPermissionDenied: return kExitPermission;
    case StatusCode::kUnsupported: return kExitUnsupported;
    default: return kExitError;
  }
}

std::string ReadPasswordFile(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw Failure{Status::NotFound(fmt::format("cannot read password file '{}'", path))};
  std::string line;
  std::getline(f, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

namespace {
std::string Prompt(const std::string& question) {
  FILE* tty = fopen("/dev/tty", "r+");
  if (!tty) {
    throw Failure{Status::InvalidArgument(
        "no passphrase: set STRATA_PASSWORD, pass --password-file FILE, or run on a terminal")};
  }
  fputs(question.c_str(), tty);
  fflush(tty);
  termios old{};
  bool restore = tcgetattr(fileno(tty), &old) == 0;
  if (restore) {
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(fileno(tty), TCSAFLUSH, &quiet);
  }
  char buf[1024];
  std::string answer = fgets(buf, sizeof(buf), tty) ? buf : "";
  if (restore) tcsetattr(fileno(tty), TCSAFLUSH, &old);
  fputs("\n", tty);
  fclose(tty);
  while (!answer.empty() && (answer.back() == '\n' || answer.back() == '\r')) answer.pop_back();
  return answer;
}

}  // namespace

std::string Passphrase(const Globals& g, bool confirm) {
  // An explicit option beats the environment.
  if (!g.password_file.empty()) return ReadPasswordFile(g.password_file);
  if (const char* env = std::getenv("STRATA_PASSWORD"); env && *env) return env;
  std::string p = Prompt("Passphrase: ");
  if (confirm && Prompt("Repeat passphrase: ") != p) {
    throw Failure{Status::InvalidArgument("the passphrases do not match")};
  }
  if (p.empty()) throw Failure{Status::InvalidArgument("the passphrase is empty")};
  g.typed_passphrase = p;
  return p;
}

Result<int> StartDetached(const Globals& g, const std::vector<std::string>& args, const std::string& log) {
  char exe[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) return Status::FromErrno(errno, "cannot find this program's path");
  exe[n] = '\0';
  const bool typed = !g.typed_passphrase.empty();
  std::vector<std::string> argv = {exe, "-r", RepoUrl(g), "-q"};
  if (!g.password_file.empty() || typed) argv.insert(argv.end(), {"--password-file", typed ? "/dev/fd/3" : g.password_file});
  if (g.threads) argv.insert(argv.end(), {"--threads", std::to_string(g.threads)});
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);

  // Everything the children need is ready before fork: between fork and exec they make only
  // async-signal-safe calls. The middle child starts a new session and exits, so the command
  // runs on with no controlling terminal and is no child of this process; it reports the pid.
  int secret[2] = {-1, -1}, report[2];
  if (typed && ::pipe2(secret, O_CLOEXEC) != 0) return Status::FromErrno(errno, "pipe");
  if (::pipe2(report, O_CLOEXEC) != 0) return Status::FromErrno(errno, "pipe");
  const char* log_path = log.c_str();
  pid_t middle = ::fork();
  if (middle < 0) return Status::FromErrno(errno, "fork");
  if (middle == 0) {
    ::setsid();
    pid_t worker = ::fork();
    if (worker == 0) {
      int out = ::open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (out < 0 || in < 0) ::_exit(127);
      ::dup2(in, 0);
      ::dup2(out, 1);
      ::dup2(out, 2);
      if (typed && secret[0] == 3) ::fcntl(3, F_SETFD, 0);
      else if (typed) ::dup2(secret[0], 3);  // the copy is not close-on-exec
      ::close_range(typed ? 4 : 3, ~0u, 0);
      ::execv(cargv[0], cargv.data());
      ::_exit(127);
    }
    (void)!::write(report[1], &worker, sizeof(worker));
    ::_exit(worker > 0 ? 0 : 1);
  }
  ::close(report[1]);
  if (typed) {
    ::close(secret[0]);
    std::string line = g.typed_passphrase + "\n";
    (void)!::write(secret[1], line.data(), line.size());  // far below a pipe's capacity
    ::close(secret[1]);
  }
  pid_t worker = -1;
  ssize_t got = ::read(report[0], &worker, sizeof(worker));
  ::close(report[0]);
  int status = 0;
  ::waitpid(middle, &status, 0);
  if (got != sizeof(worker) || worker <= 0) return Status::IOError("could not start a background process");
  return static_cast<int>(worker);
}

std::string NewPassphrase(const std::string& file) {
  if (!file.empty()) return ReadPasswordFile(file);
  if (const char* env = std::getenv("STRATA_NEW_PASSWORD"); env && *env) return env;
  std::string p = Prompt("New passphrase: ");
  if (Prompt("Repeat new passphrase: ") != p) throw Failure{Status::InvalidArgument("the passphrases do not match")};
  return p;
}

std::string RepoUrl(const Globals& g) {
  if (!g.repo.empty()) return g.repo;
  if (const char* env = std::getenv("STRATA_REPO"); env && *env) return env;
  throw Failure{Status::InvalidArgument("no repository given: use -r/--repo URL or set STRATA_REPO")};
}

Result<int64_t> ParseDuration(std::string_view text) {
  auto bad = [&] { return Status::InvalidArgument(fmt::format("'{}' is not a duration (e.g. 90s, 15m, 2h, 1d)", text)); };
  if (text.empty()) return bad();
  int64_t unit = 1;
  switch (text.back()) {
    case 's': unit = 1; text.remove_suffix(1); break;
    case 'm': unit = 60; text.remove_suffix(1); break;
    case 'h': unit = 3600; text.remove_suffix(1); break;
    case 'd': unit = 86400; text.remove_suffix(1); break;
    default: break;
  }
  if (text.empty() || text.size() > 9) return bad();
  int64_t n = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return bad();
    n = n * 10 + (c - '0');
  }
  if (n == 0) return bad();
  return n * unit;
}

std::unique_ptr<Repository> OpenRepo(const Globals& g) {
  OpenOptions o;
  o.threads = g.threads;
  o.progress = !g.quiet && !g.json;
  std::string url = RepoUrl(g);
  // Keys cached by `strata unlock` first: no passphrase, no key derivation.
  auto unlocked = Repository::OpenUnlocked(url, o);
  if (unlocked.ok()) return std::move(*unlocked);
  if (unlocked.status().code() == StatusCode::kPermissionDenied || unlocked.status().code() == StatusCode::kCorruption) {
    std::cerr << "warning: not using unlocked keys: " << unlocked.status().message() << "\n";
  }
  return Check(Repository::Open(url, Passphrase(g, false), o));
}

void PrintJson(const nlohmann::json& j) { std::cout << j.dump(2) << "\n"; }

std::string Bytes(uint64_t b) { return Progress::FormatBytes(static_cast<double>(b)); }

std::string TimeString(int64_t seconds) {
  std::time_t t = seconds;
  char buf[64];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", std::localtime(&t));
  return buf;
}

std::string ModeString(const EntryInfo& e) {
  std::string s = e.type == EntryInfo::Type::kDirectory ? "d" : e.type == EntryInfo::Type::kSymlink ? "l" : "-";
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i) s += (e.mode >> (8 - i)) & 1 ? rwx[i] : '-';
  return s;
}


void PrintEntries(const Globals& g, const std::vector<EntryInfo>& entries, bool long_format) {
  if (g.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& e : entries) {
      const char* type = e.type == EntryInfo::Type::kDirectory ? "dir" : e.type == EntryInfo::Type::kSymlink ? "symlink" : "file";
      nlohmann::json j = {{"path", e.path}, {"type", type}, {"size", e.size}, {"mode", e.mode},
                          {"mtime_ns", e.mtime_ns}, {"chunks", e.chunks}};
      if (e.type == EntryInfo::Type::kSymlink) j["target"] = e.target;
      arr.push_back(j);
    }
    PrintJson(arr);
    return;
  }
  for (const auto& e : entries) {
    std::string name = e.path + (e.type == EntryInfo::Type::kDirectory ? "/" : "");
    if (e.type == EntryInfo::Type::kSymlink) name += " -> " + e.target;
    if (long_format) {
      std::cout << fmt::format("{} {:>12} {} {}\n", ModeString(e), e.size, TimeString(e.mtime_ns / 1'000'000'000), name);
    } else {
      std::cout << name << "\n";
    }
  }
}

void CopyBlob(BlobReader* rd, FILE* out, const std::string& name) {
  std::string buf(1 << 20, '\0');
  for (uint64_t off = 0; off < rd->size();) {
    size_t got = 0;
    Check(rd->ReadAt(off, buf.size(), reinterpret_cast<uint8_t*>(buf.data()), &got));
    if (fwrite(buf.data(), 1, got, out) != got) throw Failure{Status::IOError("writing to " + name)};
    if (got == 0) break;
    off += got;
  }
  if (fflush(out) != 0) throw Failure{Status::IOError("writing to " + name)};
}

}  // namespace strata::cli
