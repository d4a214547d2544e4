// A throwaway PostgreSQL server for tests: initdb into a temporary directory, started on a free
// loopback port (and a socket in that directory), stopped (pg_ctl stop -m immediate) and
// removed by the destructor. PostgreSQL refuses to run as root, so as root the server programs
// run as the `postgres` system user (runuser), which then owns the directory.
//
// Logins over TCP need the password (scram-sha-256) of the superuser `strata`.
#pragma once

#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "testutil/testutil.h"

namespace strata::testing {

class PostgresServer {
 public:
  static constexpr const char* kUser = "strata";
  static constexpr const char* kPassword = "Pw-s3cret!x";

  PostgresServer() = default;
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;
  ~PostgresServer() { Stop(); }

  // Starts the server; false with skip_reason() set when this machine cannot run one.
  bool Start() {
    bin_ = FindBinDir();
    if (bin_.empty()) return Fail("no PostgreSQL server programs in /usr/lib/postgresql/*/bin (install postgresql)");
    if (geteuid() == 0) {
      passwd* pw = getpwnam("postgres");
      if (!pw) return Fail("running as root and there is no 'postgres' user to run the server as");
      if (access("/usr/sbin/runuser", X_OK) != 0) return Fail("running as root and /usr/sbin/runuser is missing");
      as_ = {"/usr/sbin/runuser", "-u", "postgres", "--"};
      if (chown(dir_.path().c_str(), pw->pw_uid, pw->pw_gid) != 0) return Fail("cannot give the temp dir to postgres");
    }
    WriteFile(dir_ / "pw", std::string(kPassword) + "\n");
    chmod((dir_ / "pw").c_str(), 0644);
    auto init = Server("initdb", {"-D", dir_ / "data", "-U", kUser, "--pwfile=" + (dir_ / "pw"), "--auth-local=trust",
                                  "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale", "-N"});
    if (init.exit_code != 0) return Fail("initdb failed: " + Describe(init));
    port_ = FreePort();
    if (port_ <= 0) return Fail("no free loopback port");
    auto start = Server("pg_ctl", {"start", "-w", "-t", "60", "-D", dir_ / "data", "-l", dir_ / "log", "-o",
                                   "-k " + dir_.path() + " -h 127.0.0.1 -p " + std::to_string(port_) +
                                       " -c fsync=off -c full_page_writes=off"});
    if (start.exit_code != 0) {
      return Fail("pg_ctl start failed: " + Describe(start) + "\nlog: " + ReadFileIfAny(dir_ / "log"));
    }
    running_ = true;
    return true;
  }

  void Stop() {
    if (!running_) return;
    running_ = false;
    Server("pg_ctl", {"stop", "-w", "-D", dir_ / "data", "-m", "immediate"});
  }

  const std::string& skip_reason() const { return skip_reason_; }
  int port() const { return port_; }
  // A URI with the password in it, as a user would write one.
  std::string Uri(const std::string& db = "postgres") const {
    return "postgresql://" + std::string(kUser) + ":" + kPassword + "@127.0.0.1:" + std::to_string(port_) + "/" + db;
  }

  // Runs SQL through psql over TCP (ON_ERROR_STOP); the result's out is psql's unaligned output.
  ProcessResult Psql(const std::string& sql, const std::string& db = "postgres") const {
    return RunProcess({bin_ + "/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
                       std::to_string(port_), "-U", kUser, "-d", db, "-f", "-"},
                      {std::string("PGPASSWORD=") + kPassword, "PGCONNECT_TIMEOUT=10"}, sql);
  }

  // A loopback port nothing listens on (bound and released).
  static int FreePort() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
      port = ntohs(a.sin_port);
    }
    close(fd);
    return port;
  }

 private:
  static std::string FindBinDir() {
    std::vector<std::string> found;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
      std::string bin = e.path().string() + "/bin";
      if (access((bin + "/initdb").c_str(), X_OK) == 0 && access((bin + "/pg_ctl").c_str(), X_OK) == 0) {
        found.push_back(bin);
      }
    }
    // The newest major version (compared as numbers: 9.6 < 15).
    std::sort(found.begin(), found.end(), [](const std::string& a, const std::string& b) {
      auto major = [](const std::string& s) { return std::atof(s.c_str() + strlen("/usr/lib/postgresql/")); };
      return major(a) < major(b);
    });
    return found.empty() ? "" : found.back();
  }

  static std::string ReadFileIfAny(const std::string& path) {
    std::error_code ec;
    return std::filesystem::exists(path, ec) ? ReadFile(path) : "";
  }

  ProcessResult Server(const std::string& program, const std::vector<std::string>& args) const {
    std::vector<std::string> argv = as_;
    argv.push_back(bin_ + "/" + program);
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProcess(argv, {"LC_ALL=C", "PGTZ=UTC"});
  }

  bool Fail(std::string why) {
    skip_reason_ = std::move(why);
    return false;
  }

  TempDir dir_;
  std::string bin_;
  std::vector<std::string> as_;
  int port_ = 0;
  bool running_ = false;
  std::string skip_reason_;
};

}  // namespace strata::testing
