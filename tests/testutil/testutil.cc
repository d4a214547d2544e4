#include "testutil/testutil.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace strata::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/strata-test-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) std::abort();
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string RandomBytes(uint64_t seed, size_t n) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    std::memcpy(&s[i], &v, 8);
  }
  for (; i < n; ++i) s[i] = static_cast<char>(rng());
  return s;
}

void WriteFile(const std::string& path, const std::string& data) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!f) std::abort();
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

int RunCommand(const std::string& cmd, std::string* out) {
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) {
    if (out) out->append(buf, n);
  }
  int rc = pclose(p);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

namespace {

std::vector<std::string> MergedEnvironment(const EnvChanges& changes) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
  for (const auto& change : changes) {
    size_t eq = change.find('=');
    std::string name = change.substr(0, eq);
    std::erase_if(env, [&](const std::string& e) { return e.compare(0, name.size() + 1, name + "=") == 0; });
    if (eq != std::string::npos) env.push_back(change);
  }
  return env;
}

std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> p;
  for (auto& s : strings) p.push_back(s.data());
  p.push_back(nullptr);
  return p;
}

// posix_spawn with the given file actions, in a new session; aborts if it cannot start.
pid_t Spawn(const std::vector<std::string>& argv, const EnvChanges& changes, posix_spawn_file_actions_t* actions) {
  std::vector<std::string> args = argv;
  std::vector<std::string> env = MergedEnvironment(changes);
  auto arg_ptrs = Pointers(args);
  auto env_ptrs = Pointers(env);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Default signal dispositions and mask in the child, whatever the test runner set.
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, args[0].c_str(), actions, &attr, arg_ptrs.data(), env_ptrs.data());
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    std::fprintf(stderr, "cannot start %s: %s\n", args[0].c_str(), std::strerror(rc));
    std::abort();
  }
  return pid;
}

}  // namespace

int WaitProcess(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

ProcessResult RunProcess(const std::vector<std::string>& argv, const EnvChanges& env, const std::string& input) {
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) std::abort();
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  pid_t pid = Spawn(argv, env, &actions);
  posix_spawn_file_actions_destroy(&actions);
  close(in[0]);
  close(out[1]);
  close(err[1]);

  // Feed stdin and drain stdout/stderr together, so a chatty child never blocks on a full pipe.
  ProcessResult result;
  size_t written = 0;
  int in_fd = in[1];
  if (input.empty()) {
    close(in_fd);
    in_fd = -1;
  } else {
    fcntl(in_fd, F_SETFL, O_NONBLOCK);
  }
  int out_fd = out[0], err_fd = err[0];
  // A child that exits without reading stdin must not kill us with SIGPIPE.
  struct sigaction ignore {}, old {};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ignore, &old);
  while (out_fd >= 0 || err_fd >= 0) {
    pollfd fds[3];
    int n = 0;
    if (out_fd >= 0) fds[n++] = {out_fd, POLLIN, 0};
    if (err_fd >= 0) fds[n++] = {err_fd, POLLIN, 0};
    if (in_fd >= 0) fds[n++] = {in_fd, POLLOUT, 0};
    if (poll(fds, n, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      int fd = fds[i].fd;
      if (fd == in_fd) {
        ssize_t w = write(fd, input.data() + written, input.size() - written);
        if (w > 0) written += static_cast<size_t>(w);
        if (w < 0 && errno != EAGAIN && errno != EINTR) written = input.size();
        if (written == input.size()) {
          close(in_fd);
          in_fd = -1;
        }
        continue;
      }
      char buf[65536];
      ssize_t r = read(fd, buf, sizeof(buf));
      if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (r <= 0) {
        close(fd);
        (fd == out_fd ? out_fd : err_fd) = -1;
        continue;
      }
      (fd == out_fd ? result.out : result.err).append(buf, static_cast<size_t>(r));
    }
  }
  if (in_fd >= 0) close(in_fd);
  sigaction(SIGPIPE, &old, nullptr);
  result.exit_code = WaitProcess(pid);
  return result;
}

pid_t StartProcess(const std::vector<std::string>& argv, const EnvChanges& env, const std::string& output_path,
                   int stdin_fd) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (stdin_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, stdin_fd, 0);
  } else {
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  }
  posix_spawn_file_actions_addopen(&actions, 1, output_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = Spawn(argv, env, &actions);
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

TreeSnapshot SnapshotTree(const std::string& root, bool dir_mtimes) {
  namespace fs = std::filesystem;
  TreeSnapshot out;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
    std::string path = it->path().string();
    struct stat st;
    TreeItem item;
    if (lstat(path.c_str(), &st) == 0) {
      item.mode = st.st_mode & 07777;
      item.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
      if (S_ISREG(st.st_mode)) {
        item.type = 'f';
        item.content = ReadFile(path);
      } else if (S_ISDIR(st.st_mode)) {
        item.type = 'd';
        if (!dir_mtimes) item.mtime_ns = 0;
      } else if (S_ISLNK(st.st_mode)) {
        item.type = 'l';
        item.mode = 0;
        item.content = fs::read_symlink(it->path()).string();
      }
    }
    out[it->path().lexically_relative(root).string()] = std::move(item);
  }
  return out;
}

std::string DiffTrees(const TreeSnapshot& want, const TreeSnapshot& got) {
  std::ostringstream diff;
  for (const auto& [path, w] : want) {
    auto it = got.find(path);
    if (it == got.end()) {
      diff << path << ": missing\n";
      continue;
    }
    const TreeItem& g = it->second;
    if (g.type != w.type) diff << path << ": type " << g.type << ", want " << w.type << "\n";
    if (g.mode != w.mode) diff << path << ": mode " << std::oct << g.mode << ", want " << w.mode << std::dec << "\n";
    if (g.mtime_ns != w.mtime_ns) diff << path << ": mtime " << g.mtime_ns << " ns, want " << w.mtime_ns << "\n";
    if (g.content != w.content) {
      diff << path << ": content differs (" << g.content.size() << " bytes, want " << w.content.size() << ")\n";
    }
  }
  for (const auto& [path, g] : got) {
    if (!want.count(path)) diff << path << ": unexpected\n";
  }
  return diff.str();
}

std::map<std::string, uint64_t> ListTree(const std::string& root) {
  namespace fs = std::filesystem;
  std::map<std::string, uint64_t> out;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
    out[it->path().lexically_relative(root).string()] =
        it->is_regular_file() && !it->is_symlink() ? static_cast<uint64_t>(it->file_size()) : 0;
  }
  return out;
}

InitOptions FastInitOptions() {
  InitOptions o;
  o.chunk_min = 16 << 10;
  o.chunk_avg = 64 << 10;
  o.chunk_max = 256 << 10;
  o.pack_size = 1 << 20;
  o.kdf_ops = 1;
  o.kdf_mem = 8192;
  o.key_label = "test";
  return o;
}

std::string Describe(const ProcessResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\n--- stdout:\n" + r.out.substr(0, 4000) + "\n--- stderr:\n" + r.err;
}

nlohmann::json ParseJson(const ProcessResult& r) {
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << "not JSON: " << Describe(r);
  return j.is_discarded() ? nlohmann::json() : j;
}

std::string Safetensors(const std::map<std::string, std::pair<std::vector<uint64_t>, std::string>>& tensors) {
  nlohmann::json h = nlohmann::json::object();
  std::string data;
  for (const auto& [name, t] : tensors) {
    h[name] = {{"dtype", "F32"}, {"shape", t.first}, {"data_offsets", {data.size(), data.size() + t.second.size()}}};
    data += t.second;
  }
  std::string header = h.dump();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = char(uint64_t(header.size()) >> (8 * i));
  return out + header + data;
}

std::map<std::string, std::string> ReadSafetensors(const std::string& file) {
  std::string bytes = ReadFile(file);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(bytes[i]);
  nlohmann::json h = nlohmann::json::parse(bytes.substr(8, n));
  std::map<std::string, std::string> out;
  for (auto& [name, v] : h.items()) {
    if (name == "__metadata__") continue;
    uint64_t b = v["data_offsets"][0], e = v["data_offsets"][1];
    out[name] = bytes.substr(8 + n + b, e - b);
  }
  return out;
}

std::string JoinLines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

void ExpectVerifies(Repository* repo, bool allow_warnings) {
  auto report = repo->Verify(true);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->ok()) << JoinLines(report->errors);
  if (!allow_warnings) {
    EXPECT_TRUE(report->warnings.empty()) << JoinLines(report->warnings);
  }
}

void ExpectRestores(Repository* repo, const ObjectId& id, const std::string& src, const std::string& out,
                    const std::string& sub) {
  Status s = repo->Restore(id, "", out);
  ASSERT_TRUE(s.ok()) << s.ToString();
  std::string got = sub.empty() ? out : out + "/" + sub;
  EXPECT_EQ(DiffTrees(SnapshotTree(src, false), SnapshotTree(got, false)), "");
  std::filesystem::remove_all(out);
}

}  // namespace strata::testing
