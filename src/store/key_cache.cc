#include "store/key_cache.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "strata/object_id.h"

namespace strata::store {

namespace {

// A hex string whose bytes are wiped when it goes away.
struct Wiped {
  std::string s;
  ~Wiped() { OPENSSL_cleanse(s.data(), s.size()); }
};

std::string Hex(const uint8_t* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = d[p[i] >> 4];
    out[2 * i + 1] = d[p[i] & 15];
  }
  return out;
}

bool Unhex(std::string_view h, uint8_t* out, size_t n) {
  if (h.size() != 2 * n) return false;
  auto v = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (size_t i = 0; i < n; ++i) {
    int a = v(h[2 * i]), b = v(h[2 * i + 1]);
    if (a < 0 || b < 0) return false;
    out[i] = static_cast<uint8_t>(a << 4 | b);
  }
  return true;
}

bool ValidRepoId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

Status Errno(std::string_view op, const std::string& path) {
  int e = errno;
  std::string msg = fmt::format("{} {}: {}", op, path, std::strerror(e));
  if (e == ENOENT) return Status::NotFound(msg);
  if (e == EACCES || e == EPERM || e == ELOOP) return Status::PermissionDenied(msg);
  return Status::IOError(msg);
}

// Owned by us, not a symlink, nothing for group or others.
Status CheckPrivate(const struct stat& st, const std::string& path, bool dir) {
  if (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
    return Status::PermissionDenied(fmt::format("{} is not a {}: refusing to use it for unlocked keys", path,
                                                dir ? "directory" : "regular file"));
  }
  if (st.st_uid != ::getuid()) {
    return Status::PermissionDenied(fmt::format("{} is owned by uid {}, not by you: refusing to use it for unlocked keys",
                                                path, st.st_uid));
  }
  if ((st.st_mode & 077) != 0) {
    return Status::PermissionDenied(fmt::format("{} is accessible to other users (mode {:o}): refusing to use it for "
                                                "unlocked keys",
                                                path, st.st_mode & 0777));
  }
  return Status::OK();
}

std::string EntryPath(const std::string& dir, const std::string& repo_id) { return dir + "/" + repo_id + ".keys"; }

std::string DirPath() {
  if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x && *x == '/') return std::string(x) + "/strata";
  return fmt::format("/dev/shm/strata-{}", ::getuid());
}

}  // namespace

Result<std::string> KeyCacheDir(bool create) {
  std::string dir = DirPath();
  if (create && ::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return Errno("create", dir);
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0) return Errno("stat", dir);
  STRATA_RETURN_IF_ERROR(CheckPrivate(st, dir, /*dir=*/true));
  return dir;
}

Status SaveCachedKeys(const CachedKeys& k) {
  if (!ValidRepoId(k.repo_id)) return Status::InvalidArgument("bad repository id");
  STRATA_ASSIGN_OR_RETURN(std::string dir, KeyCacheDir(/*create=*/true));
  Wiped body;
  {
    Wiped keys{Hex(k.keys.encryption.data(), 32) + Hex(k.keys.mac.data(), 32) + Hex(k.keys.chunker.data(), 32)};
    nlohmann::json j = {{"v", 1}, {"repo", k.repo_id}, {"slot", k.slot_id}, {"expires", k.expires_unix}, {"keys", keys.s}};
    body.s = j.dump();
  }
  std::string path = EntryPath(dir, k.repo_id);
  std::string tmp = fmt::format("{}.tmp-{}", path, ::getpid());
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("create", tmp);
  size_t done = 0;
  while (done < body.s.size()) {
    ssize_t n = ::write(fd, body.s.data() + done, body.s.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      Status s = Errno("write", tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return s;
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Status s = Errno("rename", tmp);
    ::unlink(tmp.c_str());
    return s;
  }
  return Status::OK();
}

Result<CachedKeys> LoadCachedKeys(const std::string& repo_id, int64_t now_unix) {
  if (!ValidRepoId(repo_id)) return Status::NotFound("bad repository id");
  STRATA_ASSIGN_OR_RETURN(std::string dir, KeyCacheDir(/*create=*/false));
  std::string path = EntryPath(dir, repo_id);
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return Errno("open", path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    Status s = Errno("stat", path);
    ::close(fd);
    return s;
  }
  if (Status s = CheckPrivate(st, path, /*dir=*/false); !s.ok() || st.st_size > 4096) {
    ::close(fd);
    return s.ok() ? Status::Corruption(fmt::format("{} is too large", path)) : s;
  }
  Wiped body;
  body.s.resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < body.s.size()) {
    ssize_t n = ::read(fd, body.s.data() + got, body.s.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  body.s.resize(got);
  auto j = nlohmann::json::parse(body.s, nullptr, /*allow_exceptions=*/false);
  auto bad = [&] { return Status::Corruption(fmt::format("unlocked keys {} are malformed (run `strata lock`)", path)); };
  if (j.is_discarded() || !j.is_object() || !j.contains("v") || j["v"] != 1 || !j.contains("repo") ||
      !j["repo"].is_string() || !j.contains("slot") || !j["slot"].is_string() || !j.contains("expires") ||
      !j["expires"].is_number_integer() || !j.contains("keys") || !j["keys"].is_string()) {
    return bad();
  }
  CachedKeys k;
  k.repo_id = j["repo"].get<std::string>();
  k.slot_id = j["slot"].get<std::string>();
  k.expires_unix = j["expires"].get<int64_t>();
  if (k.repo_id != repo_id) return bad();
  if (k.expires_unix <= now_unix) {
    ::unlink(path.c_str());
    return Status::NotFound("the unlocked keys expired");
  }
  Wiped keys{j["keys"].get<std::string>()};
  j = nullptr;
  std::string_view h = keys.s;
  if (h.size() != 192 || !Unhex(h.substr(0, 64), k.keys.encryption.data(), 32) ||
      !Unhex(h.substr(64, 64), k.keys.mac.data(), 32) || !Unhex(h.substr(128, 64), k.keys.chunker.data(), 32)) {
    return bad();
  }
  return k;
}

Status RemoveCachedKeys(const std::string& repo_id) {
  if (!ValidRepoId(repo_id)) return Status::OK();
  std::string path = EntryPath(DirPath(), repo_id);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Errno("remove", path);
  return Status::OK();
}

}  // namespace strata::store
