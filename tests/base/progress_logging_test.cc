#include <cstdio>
#include <string>

#include <gtest/gtest.h>

#include "base/logging.h"
#include "base/progress.h"

namespace strata {
namespace {

TEST(ProgressTest, FormatBytes) {
  EXPECT_EQ(Progress::FormatBytes(0), "0 B");
  EXPECT_EQ(Progress::FormatBytes(1023), "1023 B");
  EXPECT_EQ(Progress::FormatBytes(1024), "1.0 KiB");
  EXPECT_EQ(Progress::FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(Progress::FormatBytes(12.0 * 1024 * 1024), "12.0 MiB");
  EXPECT_EQ(Progress::FormatBytes(1.5 * 1024 * 1024 * 1024), "1.5 GiB");
  EXPECT_EQ(Progress::FormatBytes(3.0 * (1ull << 40)), "3.0 TiB");
  // Never "1024.0 KiB": the next unit takes over before rounding reaches it.
  EXPECT_EQ(Progress::FormatBytes(1024.0 * 1024 - 1), "1.0 MiB");
}

TEST(ProgressTest, DisabledProgressIsSilentAndSafe) {
  // Not a TTY under the test runner, and disabled anyway: must accept calls and draw nothing.
  Progress p("test", 100, false);
  p.Add(10, 1);
  p.SetTotal(200);
  p.Add(190);
  p.Finish();
  p.Finish();
}

TEST(ProgressTest, NoProgressEnvDisablesTty) {
  setenv("STRATA_NO_PROGRESS", "1", 1);
  EXPECT_FALSE(Progress::StderrIsTty());
  unsetenv("STRATA_NO_PROGRESS");
}

TEST(LoggingTest, LevelFiltersMessages) {
  LogLevel old = GetLogLevel();
  SetLogLevel(LogLevel::kError);
  EXPECT_EQ(GetLogLevel(), LogLevel::kError);
  ::testing::internal::CaptureStderr();
  LogWarning("hidden");
  Log(LogLevel::kError, "shown");
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(err, "strata: error: shown\n");

  SetLogLevel(LogLevel::kOff);
  ::testing::internal::CaptureStderr();
  Log(LogLevel::kError, "nothing");
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");

  SetLogLevel(LogLevel::kDebug);
  ::testing::internal::CaptureStderr();
  LogDebug("d");
  LogInfo("i");
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "strata: debug: d\nstrata: info: i\n");
  SetLogLevel(old);
}

}  // namespace
}  // namespace strata
