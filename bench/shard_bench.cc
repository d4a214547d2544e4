// Shard write and random-read benchmark, driven by bench/shard.py (which runs fio beside it).
//
//   shard_bench write DIR GIB [--encrypt]   records of 1-256 KiB (log-uniform) into 256 MiB shards
//   shard_bench read DIR SECONDS            single records by index, one thread, synchronous,
//                                           O_DIRECT; uniform over every record of every shard
// Each prints one line of JSON.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "strata/shard.h"

using namespace strata::shard;
using Clock = std::chrono::steady_clock;

namespace {

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

[[noreturn]] void Die(const strata::Status& s) {
  std::fprintf(stderr, "%s\n", s.ToString().c_str());
  std::exit(1);
}

Schema BenchSchema() {
  Field image;
  image.name = "image";
  image.type = FieldType::kTensor;
  image.dtype = DType::kUint8;
  image.shape = {-1};
  Field label;
  label.name = "label";
  label.type = FieldType::kLabel;
  label.num_classes = 1000;
  return Schema{{image, label}};
}

int Write(const std::string& dir, double gib, bool encrypt) {
  // A pool of records with log-uniform sizes between 1 KiB and 256 KiB (JPEG images and
  // small tensors), built before the clock starts; the writer sees them in a fixed order.
  std::mt19937_64 rng(42);
  std::vector<Record> pool;
  std::string noise(256 << 10, '\0');
  for (char& c : noise) c = static_cast<char>(rng());
  for (int i = 0; i < 1024; ++i) {
    size_t size = static_cast<size_t>(1024.0 * std::pow(256.0, std::uniform_real_distribution<>(0, 1)(rng)));
    size_t start = rng() % (noise.size() - size + 1);
    pool.push_back(Record{Tensor{DType::kUint8, {size}, noise.substr(start, size)},
                          Label{static_cast<uint32_t>(rng() % 1000)}});
  }
  ShardSetOptions options;
  options.dir = dir;
  options.schema = BenchSchema();
  if (encrypt) {
    Key key{};
    for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(i);
    options.writer.key = key;
  }
  const uint64_t target = static_cast<uint64_t>(gib * (1ull << 30));
  auto start = Clock::now();
  auto set = ShardSetWriter::Create(options);
  if (!set.ok()) Die(set.status());
  uint64_t bytes = 0, records = 0;
  while (bytes < target) {
    const Record& r = pool[records % pool.size()];
    strata::Status s = (*set)->Add(r);
    if (!s.ok()) Die(s);
    bytes += std::get<Tensor>(r[0]).data.size();
    ++records;
  }
  auto shards = (*set)->Finish();
  if (!shards.ok()) Die(shards.status());
  double secs = Seconds(start, Clock::now());
  uint64_t file_bytes = 0;
  for (const auto& s : *shards) file_bytes += s.bytes;
  std::printf("{\"records\": %llu, \"payload_bytes\": %llu, \"file_bytes\": %llu, \"shards\": %zu, "
              "\"seconds\": %.3f, \"file_mib_s\": %.1f, \"payload_mib_s\": %.1f}\n",
              static_cast<unsigned long long>(records), static_cast<unsigned long long>(bytes),
              static_cast<unsigned long long>(file_bytes), shards->size(), secs, file_bytes / secs / (1 << 20),
              bytes / secs / (1 << 20));
  return 0;
}

int Read(const std::string& dir, double seconds) {
  std::vector<std::string> paths;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".shard") paths.push_back(e.path());
  }
  std::sort(paths.begin(), paths.end());
  std::vector<std::unique_ptr<ShardReader>> readers;
  std::vector<uint64_t> first;  // set-wide index of each shard's record 0
  uint64_t total = 0, extent_sum = 0;
  bool direct = true;
  for (const auto& p : paths) {
    auto r = ShardReader::Open(p, {});
    if (!r.ok()) Die(r.status());
    direct = direct && (*r)->direct_io();
    first.push_back(total);
    for (uint64_t i = 0; i < (*r)->record_count(); ++i) extent_sum += (*r)->Locate(i).extent_length;
    total += (*r)->record_count();
    readers.push_back(std::move(*r));
  }
  if (total == 0) {
    std::fprintf(stderr, "no records in %s\n", dir.c_str());
    return 1;
  }
  std::mt19937_64 rng(7);
  std::vector<double> lat;
  uint64_t reads = 0, payload = 0, extents = 0;
  auto start = Clock::now(), now = start;
  while (Seconds(start, now) < seconds) {
    uint64_t g = rng() % total;
    size_t s = std::upper_bound(first.begin(), first.end(), g) - first.begin() - 1;
    uint64_t i = g - first[s];
    auto t0 = Clock::now();
    auto rec = readers[s]->Read(i);
    now = Clock::now();
    if (!rec.ok()) Die(rec.status());
    lat.push_back(Seconds(t0, now) * 1e6);
    payload += std::get<Tensor>((*rec)[0]).data.size();
    extents += readers[s]->Locate(i).extent_length;
    ++reads;
  }
  double secs = Seconds(start, now);
  std::sort(lat.begin(), lat.end());
  std::printf("{\"reads\": %llu, \"seconds\": %.3f, \"reads_s\": %.1f, \"payload_mib_s\": %.1f, "
              "\"extent_mib_s\": %.1f, \"mean_extent_bytes\": %.0f, \"all_mean_extent_bytes\": %.0f, "
              "\"p50_us\": %.1f, \"p99_us\": %.1f, \"direct\": %s, \"records\": %llu}\n",
              static_cast<unsigned long long>(reads), secs, reads / secs, payload / secs / (1 << 20),
              extents / secs / (1 << 20), static_cast<double>(extents) / reads,
              static_cast<double>(extent_sum) / total, lat[lat.size() / 2], lat[lat.size() * 99 / 100],
              direct ? "true" : "false", static_cast<unsigned long long>(total));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 4 && std::strcmp(argv[1], "write") == 0) {
    return Write(argv[2], std::atof(argv[3]), argc >= 5 && std::strcmp(argv[4], "--encrypt") == 0);
  }
  if (argc >= 4 && std::strcmp(argv[1], "read") == 0) return Read(argv[2], std::atof(argv[3]));
  std::fprintf(stderr, "usage: shard_bench write DIR GIB [--encrypt] | read DIR SECONDS\n");
  return 2;
}
