// Checkpoint benchmark: save stall against a memcpy of the same bytes, persist throughput
// against the disk's sequential write limit and load throughput against its read limit, both
// measured with fio in the same run (page cache dropped before every read; needs root).
//
//   checkpoint_bench DIR MIB [--bf16] [--saves N]
//
// The model is a state_dict-like set of tensors of many sizes (embeddings, square and
// rectangular matrices, biases and norms) of random float32 (or bfloat16) values. Each measured
// save changes every tensor, so every byte is hashed, sealed and written (nothing deduplicates).
// Prints a table and one line of JSON.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "strata/checkpoint.h"
#include "strata/repository.h"

using namespace strata;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

[[noreturn]] void Die(const Status& s) {
  std::fprintf(stderr, "%s\n", s.ToString().c_str());
  std::exit(1);
}
template <class T>
T Get(Result<T> r) {
  if (!r.ok()) Die(r.status());
  return std::move(r).value();
}

struct Tensor {
  std::string name;
  std::vector<uint64_t> shape;
  std::vector<uint8_t> bytes;
};

// About `total` bytes of tensors shaped like a transformer's state_dict.
std::vector<Tensor> MakeModel(uint64_t total, size_t elem, uint64_t seed) {
  std::vector<Tensor> out;
  std::mt19937_64 rng(seed);
  uint64_t d = 256;
  while (d * d * elem * 12 * 8 < total && d < 4096) d *= 2;
  uint64_t used = 0;
  auto add = [&](std::string name, std::vector<uint64_t> shape) {
    uint64_t n = elem;
    for (auto s : shape) n *= s;
    Tensor t{std::move(name), std::move(shape), std::vector<uint8_t>(n)};
    for (size_t i = 0; i + 8 <= n; i += 8) {
      uint64_t v = rng();
      std::memcpy(&t.bytes[i], &v, 8);
    }
    used += n;
    out.push_back(std::move(t));
  };
  add("embed.weight", {total / 10 / elem / d, d});
  for (int layer = 0; used < total * 9 / 10; ++layer) {
    std::string p = fmt::format("layers.{}.", layer);
    add(p + "attn.qkv.weight", {3 * d, d});
    add(p + "attn.qkv.bias", {3 * d});
    add(p + "attn.out.weight", {d, d});
    add(p + "mlp.up.weight", {4 * d, d});
    add(p + "mlp.up.bias", {4 * d});
    add(p + "mlp.down.weight", {d, 4 * d});
    add(p + "norm1.weight", {d});
    add(p + "norm2.weight", {d});
  }
  return out;
}

// fio's bandwidth in bytes/s for one sequential job (direct I/O, 1 MiB blocks).
double Fio(const std::string& file, const char* rw, uint64_t bytes) {
  std::string cmd = fmt::format(
      "fio --name=seq --filename={} --rw={} --bs=1M --size={} --direct=1 --ioengine=libaio --iodepth=16 "
      "--end_fsync=1 --output-format=json 2>/dev/null",
      file, rw, bytes);
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return 0;
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  auto j = nlohmann::json::parse(out, nullptr, false);
  if (j.is_discarded()) return 0;
  const char* key = std::strcmp(rw, "write") == 0 ? "write" : "read";
  return j["jobs"][0][key]["bw_bytes"].get<double>();
}

bool DropCaches() {
  sync();
  FILE* f = std::fopen("/proc/sys/vm/drop_caches", "w");
  if (!f) return false;
  bool ok = std::fputs("3\n", f) >= 0;
  return std::fclose(f) == 0 && ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: checkpoint_bench DIR MIB [--bf16] [--saves N]\n");
    return 2;
  }
  std::string dir = argv[1];
  uint64_t total = std::stoull(argv[2]) << 20;
  bool bf16 = false;
  int saves = 3;
  for (int i = 3; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--bf16") bf16 = true;
    else if (a == "--saves" && i + 1 < argc) saves = std::stoi(argv[++i]);
  }
  const size_t elem = bf16 ? 2 : 4;
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::vector<Tensor> model = MakeModel(total, elem, 1);
  uint64_t bytes = 0;
  for (const auto& t : model) bytes += t.bytes.size();

  // Disk limits first, with the same amount of data.
  std::string fio_file = dir + "/fio.tmp";
  double fio_write = Fio(fio_file, "write", std::max<uint64_t>(bytes, 256ull << 20));
  DropCaches();
  double fio_read = Fio(fio_file, "read", std::max<uint64_t>(bytes, 256ull << 20));
  fs::remove(fio_file);

  // memcpy of the same bytes into a buffer already touched (as the staging buffer is after the
  // first save).
  std::vector<uint8_t> dst(bytes);
  std::memset(dst.data(), 1, dst.size());
  double memcpy_s = 1e9;
  for (int r = 0; r < 3; ++r) {
    auto t0 = Clock::now();
    uint64_t off = 0;
    for (const auto& t : model) {
      std::memcpy(dst.data() + off, t.bytes.data(), t.bytes.size());
      off += t.bytes.size();
    }
    memcpy_s = std::min(memcpy_s, Seconds(t0, Clock::now()));
  }
  dst = {};

  InitOptions init;
  init.kdf_mem = 8192;
  init.kdf_ops = 1;
  auto repo = Get(Repository::Create(dir + "/repo", "bench", init));
  CheckpointerOptions co;
  co.staging_bytes = bytes + (16ull << 20);
  auto ck = Get(Checkpointer::Open(repo.get(), "bench", co));
  auto save = [&](int64_t step, double* stall, double* total_s) {
    SaveRequest r;
    r.step = step;
    for (const auto& t : model) {
      r.tensors.push_back({t.name, bf16 ? DType::kBF16 : DType::kF32, t.shape, t.bytes.data(), t.bytes.size(), {}, {}});
    }
    auto t0 = Clock::now();
    Status s = ck->Save(r);
    auto t1 = Clock::now();
    if (!s.ok()) Die(s);
    s = ck->Wait();
    auto t2 = Clock::now();
    if (!s.ok()) Die(s);
    *stall = Seconds(t0, t1);
    *total_s = Seconds(t0, t2);
  };
  auto touch = [&](uint64_t k) {
    // A different value in every 4 KiB: every chunk of every tensor changes.
    for (auto& t : model) {
      for (size_t i = 0; i < t.bytes.size(); i += 4096) t.bytes[i] ^= uint8_t(k);
    }
  };
  double stall, persist;
  save(0, &stall, &persist);  // first touch of the staging buffer
  double best_stall = 1e9, best_persist = 1e9, sum_stall = 0, sum_persist = 0;
  for (int i = 1; i <= saves; ++i) {
    touch(i);
    save(i, &stall, &persist);
    best_stall = std::min(best_stall, stall);
    best_persist = std::min(best_persist, persist);
    sum_stall += stall;
    sum_persist += persist;
  }
  // Unchanged model: what a checkpoint of frozen weights costs.
  double dedup_stall, dedup_total;
  save(saves + 1, &dedup_stall, &dedup_total);
  ck.reset();
  repo.reset();

  // Load: a fresh process state, cache dropped, every tensor read into its own buffer by two
  // threads.
  bool dropped = DropCaches();
  auto t0 = Clock::now();
  repo = Get(Repository::Open(dir + "/repo", "bench"));
  auto rd = Get(CheckpointReader::Open(repo.get(), "bench", saves));
  std::vector<std::vector<uint8_t>> out(model.size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < model.size();) {
      out[i].resize(model[i].bytes.size());
      Status s = rd->ReadTensor(model[i].name, out[i]);
      if (!s.ok()) Die(s);
    }
  };
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < std::max(1u, std::thread::hardware_concurrency()); ++i) threads.emplace_back(work);
  for (auto& t : threads) t.join();
  double load_s = Seconds(t0, Clock::now());
  touch(0);  // no-op; the model at `saves` is what was loaded
  bool exact = true;
  for (size_t i = 0; i < model.size(); ++i) exact = exact && out[i] == model[i].bytes;

  auto gib = [](double bps) { return bps / double(1ull << 30); };
  double mean_stall = sum_stall / saves, mean_persist = sum_persist / saves;
  std::printf("model: %zu tensors, %.1f MiB %s\n", model.size(), bytes / 1048576.0, bf16 ? "bf16" : "f32");
  std::printf("memcpy                %8.3f s  %6.2f GiB/s\n", memcpy_s, gib(bytes / memcpy_s));
  std::printf("save stall (mean)     %8.3f s  %6.2f x memcpy (best %.3f s, %.2f x)\n", mean_stall, mean_stall / memcpy_s,
              best_stall, best_stall / memcpy_s);
  std::printf("persist (mean)        %8.3f s  %6.2f GiB/s = %3.0f%% of fio write %.2f GiB/s\n", mean_persist,
              gib(bytes / mean_persist), 100 * bytes / mean_persist / fio_write, gib(fio_write));
  std::printf("unchanged model       %8.3f s  stall %.3f s\n", dedup_total, dedup_stall);
  std::printf("load (cache %s)  %8.3f s  %6.2f GiB/s = %3.0f%% of fio read %.2f GiB/s  exact=%s\n",
              dropped ? "dropped" : "warm!  ", load_s, gib(bytes / load_s), 100 * bytes / load_s / fio_read, gib(fio_read),
              exact ? "yes" : "NO");
  nlohmann::json j = {{"bytes", bytes},           {"tensors", model.size()},      {"dtype", bf16 ? "bf16" : "f32"},
                      {"memcpy_s", memcpy_s},     {"stall_s", mean_stall},        {"stall_best_s", best_stall},
                      {"persist_s", mean_persist}, {"persist_best_s", best_persist}, {"fio_write_Bps", fio_write},
                      {"fio_read_Bps", fio_read}, {"load_s", load_s},             {"cache_dropped", dropped},
                      {"unchanged_save_s", dedup_total}, {"exact", exact}};
  std::printf("%s\n", j.dump().c_str());
  fs::remove_all(dir);
  return exact ? 0 : 1;
}
