#include "base/progress.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

namespace strata {
namespace {

constexpr int64_t kRedrawIntervalNs = 100'000'000;  // at most ten redraws a second
constexpr int kBarWidth = 20;

std::string FormatDuration(double seconds) {
  if (seconds < 0 || seconds > 99 * 3600.0) return "--:--";
  auto s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
  return fmt::format("{:02}:{:02}", s / 60, s % 60);
}

}  // namespace

Progress::Progress(std::string label, uint64_t total_bytes, bool enabled)
    : label_(std::move(label)),
      total_(total_bytes),
      enabled_(enabled && StderrIsTty()),
      start_(std::chrono::steady_clock::now()) {}

Progress::~Progress() { Finish(); }

void Progress::Add(uint64_t bytes, uint64_t items) {
  done_.fetch_add(bytes, std::memory_order_relaxed);
  if (items != 0) items_.fetch_add(items, std::memory_order_relaxed);
  if (enabled_) MaybeDraw(false);
}

void Progress::SetTotal(uint64_t total_bytes) { total_.store(total_bytes, std::memory_order_relaxed); }

void Progress::Finish() {
  if (!enabled_) return;
  std::lock_guard<std::mutex> lock(draw_mu_);
  if (finished_) return;
  finished_ = true;
  // Only clear a line we drew on; otherwise we would erase someone else's output.
  if (last_draw_ns_.load(std::memory_order_relaxed) != 0) {
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
  }
}

bool Progress::StderrIsTty() {
  const char* off = std::getenv("STRATA_NO_PROGRESS");
  if (off != nullptr && *off != '\0') return false;
  return ::isatty(STDERR_FILENO) == 1;
}

std::string Progress::FormatBytes(double bytes) {
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return fmt::format("{:.0f} B", bytes < 0 ? 0.0 : bytes);
  double v = bytes / 1024;
  size_t u = 0;
  // Stay on the smaller unit until the rounded figure would read "1024.0".
  while (v >= 1023.95 && u + 1 < std::size(kUnits)) {
    v /= 1024;
    ++u;
  }
  return fmt::format("{:.1f} {}", v, kUnits[u]);
}

void Progress::MaybeDraw(bool force) {
  const int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::steady_clock::now() - start_).count() + 1;  // never 0
  int64_t last = last_draw_ns_.load(std::memory_order_relaxed);
  if (!force && last != 0 && now_ns - last < kRedrawIntervalNs) return;
  // One thread wins the right to draw this interval; the others return at once.
  if (!last_draw_ns_.compare_exchange_strong(last, now_ns, std::memory_order_relaxed) && !force) return;

  std::lock_guard<std::mutex> lock(draw_mu_);
  if (finished_) return;
  const uint64_t done = done_.load(std::memory_order_relaxed);
  const uint64_t total = total_.load(std::memory_order_relaxed);
  const uint64_t items = items_.load(std::memory_order_relaxed);
  const double secs = static_cast<double>(now_ns) / 1e9;
  // A rate measured over the first instants is noise (a first chunk in microseconds reads as
  // TiB/s), so rate and ETA wait for a quarter second of history.
  const double rate = secs >= 0.25 ? static_cast<double>(done) / secs : 0;

  std::string line = "\r\033[K" + label_;
  if (total > 0) {
    double frac = std::min(1.0, static_cast<double>(done) / static_cast<double>(total));
    int filled = static_cast<int>(frac * kBarWidth);
    line += fmt::format(" [{}{}] {:3.0f}% {} / {}", std::string(filled, '#'), std::string(kBarWidth - filled, '.'),
                        frac * 100, FormatBytes(static_cast<double>(done)), FormatBytes(static_cast<double>(total)));
  } else {
    line += " " + FormatBytes(static_cast<double>(done));
  }
  if (items > 0) line += fmt::format(", {} items", items);
  if (rate > 0) line += fmt::format(", {}/s", FormatBytes(rate));
  if (total > 0 && done < total && rate > 0) {
    line += ", ETA " + FormatDuration(static_cast<double>(total - done) / rate);
  }
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
}

}  // namespace strata
