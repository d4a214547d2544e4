// Helpers shared by the test suites.
#pragma once

#include <cstdint>
#include <string>

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

}  // namespace strata::testing
