// Minimal leveled logging to stderr. Warnings are for people ("degraded read of pack …");
// debug output is enabled with STRATA_LOG=debug.
#pragma once

#include <string_view>

namespace strata {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3, kOff = 4 };

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
// Thread-safe; one line per call, prefixed "strata: warning: " etc.
void Log(LogLevel level, std::string_view message);

inline void LogWarning(std::string_view m) { Log(LogLevel::kWarning, m); }
inline void LogInfo(std::string_view m) { Log(LogLevel::kInfo, m); }
inline void LogDebug(std::string_view m) { Log(LogLevel::kDebug, m); }

}  // namespace strata
