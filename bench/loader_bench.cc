// Training loader benchmark, driven by bench/loader.py (which runs fio beside it).
//
//   loader_bench write DIR RECORDS SIZE [--sealed]
//                                            RECORDS records of SIZE stored bytes each (a uint8
//                                            tensor and a label) into 256 MiB shards
//   loader_bench read DIR [--batch B] [--queue-depth Q] [--seconds S] [--prefetch-mib M] [--sealed]
//                                            one epoch (or S seconds) in global shuffle order
// --sealed: every record sealed with AES-256-GCM under a fixed benchmark key (its 28 bytes of
// nonce and tag come out of the tensor, so a record still takes SIZE bytes), and opened by the
// loader. Each prints one line of JSON.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "strata/loader.h"
#include "strata/shard.h"

using namespace strata;
using Clock = std::chrono::steady_clock;

namespace {

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

[[noreturn]] void Die(const Status& s) {
  std::fprintf(stderr, "%s\n", s.ToString().c_str());
  std::exit(1);
}

uint64_t StatusKib(const char* field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(field, 0) == 0) return std::strtoull(line.c_str() + std::strlen(field), nullptr, 10);
  }
  return 0;
}

// The benchmark's key: what is measured is the cost of opening sealed records, not key handling.
shard::Key BenchKey() {
  shard::Key k;
  k.fill(0x5a);
  return k;
}

int Write(const std::string& dir, uint64_t records, uint64_t size, bool sealed) {
  // A record's stored bytes: 8 (shape) + data + 4 (label) [+ 28 sealed], so SIZE bytes exactly.
  if (size < 128) return 2;
  const uint64_t data = size - 12 - (sealed ? 28 : 0);  // nonce (12) + tag (16)
  shard::Field image;
  image.name = "image";
  image.type = shard::FieldType::kTensor;
  image.dtype = shard::DType::kUint8;
  image.shape = {static_cast<int64_t>(data)};
  shard::Field label;
  label.name = "label";
  label.type = shard::FieldType::kLabel;
  label.num_classes = 1000;
  shard::ShardSetOptions options;
  options.dir = dir;
  options.schema = shard::Schema{{image, label}};
  if (sealed) options.writer.key = BenchKey();
  std::mt19937_64 rng(42);
  std::string noise(data + 4096, '\0');
  for (char& c : noise) c = static_cast<char>(rng());
  auto start = Clock::now();
  auto set = shard::ShardSetWriter::Create(options);
  if (!set.ok()) Die(set.status());
  for (uint64_t i = 0; i < records; ++i) {
    shard::Record r{shard::Tensor{shard::DType::kUint8, {data}, noise.substr(i % 4096, data)},
                    shard::Label{static_cast<uint32_t>(i % 1000)}};
    Status s = (*set)->Add(r);
    if (!s.ok()) Die(s);
  }
  auto shards = (*set)->Finish();
  if (!shards.ok()) Die(shards.status());
  uint64_t bytes = 0;
  for (const auto& s : *shards) bytes += s.bytes;
  std::printf("{\"records\": %llu, \"record_bytes\": %llu, \"file_bytes\": %llu, \"shards\": %zu, \"seconds\": %.3f}\n",
              static_cast<unsigned long long>(records), static_cast<unsigned long long>(size),
              static_cast<unsigned long long>(bytes), shards->size(), Seconds(start, Clock::now()));
  return 0;
}

int Read(const std::string& dir, uint64_t batch, uint32_t qd, double seconds, uint64_t prefetch_mib, bool sealed) {
  loader::LoaderOptions o;
  if (sealed) o.key = BenchKey();
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".shard") o.shards.push_back(e.path());
  }
  std::sort(o.shards.begin(), o.shards.end());
  o.batch_size = batch;
  o.queue_depth = qd;
  o.seed = 1;
  o.prefetch_bytes = prefetch_mib << 20;
  auto t_open = Clock::now();
  auto l = loader::Loader::Open(o);
  if (!l.ok()) Die(l.status());
  const double open_s = Seconds(t_open, Clock::now());
  rusage ru0, ru1;
  getrusage(RUSAGE_SELF, &ru0);
  auto start = Clock::now();
  Status st = (*l)->Start({1, 0, 0});
  if (!st.ok()) Die(st);
  std::vector<double> lat;
  uint64_t samples = 0, bytes = 0, sink = 0;
  auto now = start;
  while (Seconds(start, now) < seconds) {
    auto t0 = Clock::now();
    auto b = (*l)->Next();
    now = Clock::now();
    if (!b.ok()) Die(b.status());
    if (*b == nullptr) break;
    lat.push_back(Seconds(t0, now) * 1e6);
    samples += (*b)->size();
    bytes += (*b)->nbytes();
    sink += (*b)->data()[(*b)->nbytes() / 2];
  }
  const double secs = Seconds(start, now);
  getrusage(RUSAGE_SELF, &ru1);
  auto cpu = [](const rusage& a, const rusage& b) {
    auto tv = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
    return tv(b.ru_utime) - tv(a.ru_utime) + tv(b.ru_stime) - tv(a.ru_stime);
  };
  loader::LoaderStats s = (*l)->stats();
  std::sort(lat.begin(), lat.end());
  std::printf("{\"samples\": %llu, \"batches\": %zu, \"batch\": %llu, \"queue_depth\": %u, \"seconds\": %.3f, "
              "\"open_seconds\": %.3f, \"samples_s\": %.1f, \"read_mib_s\": %.1f, \"batch_mib_s\": %.1f, "
              "\"reads\": %llu, \"p50_batch_us\": %.1f, \"p99_batch_us\": %.1f, \"cpu_seconds\": %.2f, "
              "\"rss_mib\": %.1f, \"peak_rss_mib\": %.1f, \"peak_buffered_mib\": %.1f, \"prefetch_mib\": %llu, "
              "\"direct\": %s, \"sealed\": %s, \"sink\": %llu}\n",
              static_cast<unsigned long long>(samples), lat.size(), static_cast<unsigned long long>(batch), qd, secs,
              open_s, samples / secs, s.bytes_read / secs / (1 << 20), bytes / secs / (1 << 20),
              static_cast<unsigned long long>(s.reads), lat.empty() ? 0 : lat[lat.size() / 2],
              lat.empty() ? 0 : lat[lat.size() * 99 / 100], cpu(ru0, ru1), StatusKib("VmRSS:") / 1024.0,
              StatusKib("VmHWM:") / 1024.0, s.peak_buffered_bytes / 1048576.0,
              static_cast<unsigned long long>(prefetch_mib), s.direct_io ? "true" : "false",
              sealed ? "true" : "false", static_cast<unsigned long long>(sink));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const auto sealed_at = std::find(args.begin(), args.end(), "--sealed");
  const bool sealed = sealed_at != args.end();
  if (sealed) args.erase(sealed_at);
  if (args.size() == 4 && args[0] == "write") {
    return Write(args[1], std::strtoull(args[2].c_str(), nullptr, 10), std::strtoull(args[3].c_str(), nullptr, 10), sealed);
  }
  if (args.size() >= 2 && args[0] == "read") {
    uint64_t batch = 256, prefetch = 256;
    uint32_t qd = 64;
    double seconds = 1e9;
    for (size_t i = 2; i < args.size(); i += 2) {
      if (i + 1 == args.size()) return 2;
      const std::string& flag = args[i];
      const char* value = args[i + 1].c_str();
      if (flag == "--batch") batch = std::strtoull(value, nullptr, 10);
      else if (flag == "--queue-depth") qd = static_cast<uint32_t>(std::strtoul(value, nullptr, 10));
      else if (flag == "--seconds") seconds = std::atof(value);
      else if (flag == "--prefetch-mib") prefetch = std::strtoull(value, nullptr, 10);
      else return 2;
    }
    return Read(args[1], batch, qd, seconds, prefetch, sealed);
  }
  std::fprintf(stderr,
               "usage: loader_bench write DIR RECORDS SIZE [--sealed] | read DIR [--batch B] [--queue-depth Q] "
               "[--seconds S] [--prefetch-mib M] [--sealed]\n");
  return 2;
}
