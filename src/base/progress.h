// Progress reporting for long operations: a one-line bar with bytes, rate and ETA, redrawn at
// most ten times a second on a TTY (stderr); silent when quiet or when stderr is not a TTY.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace strata {

class Progress {
 public:
  // `total_bytes` == 0 means unknown (no ETA, no percentage).
  Progress(std::string label, uint64_t total_bytes, bool enabled);
  ~Progress();  // calls Finish()

  // Thread-safe; cheap enough to call per chunk.
  void Add(uint64_t bytes, uint64_t items = 0);
  void SetTotal(uint64_t total_bytes);
  // Clears the bar line.
  void Finish();

  // True when stderr is a terminal and STRATA_NO_PROGRESS is not set.
  static bool StderrIsTty();
  // "1.5 GiB", "12.0 MiB/s" — shared with reports.
  static std::string FormatBytes(double bytes);

 private:
  void MaybeDraw(bool force);
  std::string label_;
  std::atomic<uint64_t> total_;
  std::atomic<uint64_t> done_{0};
  std::atomic<uint64_t> items_{0};
  bool enabled_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::atomic<int64_t> last_draw_ns_{0};
  std::mutex draw_mu_;
};

}  // namespace strata
