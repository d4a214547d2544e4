#include "base/logging.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

namespace strata {
namespace {

LogLevel LevelFromEnvironment() {
  const char* v = std::getenv("STRATA_LOG");
  if (v == nullptr) return LogLevel::kWarning;
  std::string s(v);
  if (s == "debug") return LogLevel::kDebug;
  if (s == "info") return LogLevel::kInfo;
  if (s == "warning" || s == "warn") return LogLevel::kWarning;
  if (s == "error") return LogLevel::kError;
  if (s == "off") return LogLevel::kOff;
  return LogLevel::kWarning;  // an unknown value must not silence warnings
}

std::atomic<int>& LevelVar() {
  static std::atomic<int> level{static_cast<int>(LevelFromEnvironment())};
  return level;
}

const char* Prefix(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "strata: debug: ";
    case LogLevel::kInfo: return "strata: info: ";
    case LogLevel::kWarning: return "strata: warning: ";
    case LogLevel::kError: return "strata: error: ";
    case LogLevel::kOff: break;
  }
  return "strata: ";
}

}  // namespace

void SetLogLevel(LogLevel level) { LevelVar().store(static_cast<int>(level), std::memory_order_relaxed); }

LogLevel GetLogLevel() { return static_cast<LogLevel>(LevelVar().load(std::memory_order_relaxed)); }

void Log(LogLevel level, std::string_view message) {
  if (level == LogLevel::kOff || static_cast<int>(level) < LevelVar().load(std::memory_order_relaxed)) return;
  std::string line = Prefix(level);
  line.append(message);
  line.push_back('\n');
  // One write per line, under a lock, so lines from several threads never interleave.
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace strata
