// Checkpoint benchmark: save stall against a memcpy of the same bytes, persist throughput
// against the disk's sequential write limit and load throughput against its read limit, both
// measured with fio in the same run (page cache dropped before every read; needs root).
//
//   checkpoint_bench DIR MIB [--bf16] [--saves N] [--threads N]
//
// The model is a state_dict-like set of tensors of many sizes (embeddings, square and
// rectangular matrices, biases and norms) of random float32 (or bfloat16) values. Each measured
// save changes every tensor, so every byte is hashed, sealed and written (nothing deduplicates).
// fio runs before and after the saves (the virtual disks this runs on vary between runs); the
// ratios are taken against the faster of the two. --threads sets the checkpointer's hashing and
// sealing workers (0: one per core). Prints a table and one line of JSON.
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
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
    std::fprintf(stderr, "usage: checkpoint_bench DIR MIB [--bf16] [--saves N] [--threads N]\n");
    return 2;
  }
  std::string dir = argv[1];
  uint64_t total = std::stoull(argv[2]) << 20;
  bool bf16 = false;
  int saves = 3;
  size_t workers = 0;
  for (int i = 3; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--bf16") bf16 = true;
    else if (a == "--saves" && i + 1 < argc) saves = std::stoi(argv[++i]);
    else if (a == "--threads" && i + 1 < argc) workers = std::stoul(argv[++i]);
  }
  const size_t elem = bf16 ? 2 : 4;
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::vector<Tensor> model = MakeModel(total, elem, 1);
  uint64_t bytes = 0;
  for (const auto& t : model) bytes += t.bytes.size();

  // Disk limits, with the same amount of data: before the saves here, after them below.
  std::string fio_file = dir + "/fio.tmp";
  uint64_t fio_bytes = std::max<uint64_t>(bytes, 256ull << 20) >> 20 << 20;
  auto fio_pair = [&](double* w, double* r) {
    *w = Fio(fio_file, "write", fio_bytes);
    DropCaches();
    *r = Fio(fio_file, "read", fio_bytes);
    fs::remove(fio_file);
  };
  double fio_write_before, fio_read_before, fio_write_after, fio_read_after;
  fio_pair(&fio_write_before, &fio_read_before);

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
  co.threads = workers;
  auto ck = Get(Checkpointer::Open(repo.get(), "bench", co));
  std::vector<long> stall_faults, stall_waits, stall_preempted;
  auto save = [&](int64_t step, double* stall, double* total_s) {
    SaveRequest r;
    r.step = step;
    for (const auto& t : model) {
      r.tensors.push_back({t.name, bf16 ? DType::kBF16 : DType::kF32, t.shape, t.bytes.data(), t.bytes.size(), {}, {}});
    }
    rusage u0, u1;
    getrusage(RUSAGE_THREAD, &u0);
    auto t0 = Clock::now();
    Status s = ck->Save(r);
    auto t1 = Clock::now();
    getrusage(RUSAGE_THREAD, &u1);
    // What the caller's thread did meanwhile: page faults, waits (on a full staging buffer or
    // a lock) and preemptions (other runnable threads on the cores).
    stall_faults.push_back(u1.ru_minflt - u0.ru_minflt + u1.ru_majflt - u0.ru_majflt);
    stall_waits.push_back(u1.ru_nvcsw - u0.ru_nvcsw);
    stall_preempted.push_back(u1.ru_nivcsw - u0.ru_nivcsw);
    if (!s.ok()) Die(s);
    s = ck->Wait();
    auto t2 = Clock::now();
    if (!s.ok()) Die(s);
    *stall = Seconds(t0, t1);
    *total_s = Seconds(t0, t2);
  };
  auto touch = [&](uint64_t k) {
    // The save's number written at the start of every 4 KiB: every chunk of every tensor differs
    // from every earlier save. (Not an XOR with k: k = 1, 2, 3 would bring the third save back to
    // the first one's bytes, and it would deduplicate.)
    for (auto& t : model) {
      for (size_t i = 0; i + 8 <= t.bytes.size(); i += 4096) std::memcpy(&t.bytes[i], &k, 8);
    }
  };
  double stall, persist;
  save(0, &stall, &persist);  // first touch of the staging buffer
  double best_stall = 1e9, best_persist = 1e9, sum_stall = 0, sum_persist = 0;
  std::vector<double> stalls, persists;
  for (int i = 1; i <= saves; ++i) {
    touch(i);
    sync();  // nothing of the previous save or of the model's pages left to write back
    save(i, &stall, &persist);
    stalls.push_back(stall);
    persists.push_back(persist);
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
  fio_pair(&fio_write_after, &fio_read_after);
  double fio_write = std::max(fio_write_before, fio_write_after);
  double fio_read = std::max(fio_read_before, fio_read_after);

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
  bool exact = true;
  for (size_t i = 0; i < model.size(); ++i) exact = exact && out[i] == model[i].bytes;

  auto gib = [](double bps) { return bps / double(1ull << 30); };
  double mean_stall = sum_stall / saves, mean_persist = sum_persist / saves;
  std::printf("model: %zu tensors, %.1f MiB %s; fio write %.2f / %.2f GiB/s, read %.2f / %.2f GiB/s (before / after)\n",
              model.size(), bytes / 1048576.0, bf16 ? "bf16" : "f32", gib(fio_write_before), gib(fio_write_after),
              gib(fio_read_before), gib(fio_read_after));
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
                      {"unchanged_save_s", dedup_total}, {"exact", exact},
                      {"stalls_s", stalls},       {"stall_faults", stall_faults},
                      {"stall_waits", stall_waits}, {"stall_preempted", stall_preempted},       {"persists_s", persists},       {"threads", workers},
                      {"fio_write_before_Bps", fio_write_before}, {"fio_write_after_Bps", fio_write_after},
                      {"fio_read_before_Bps", fio_read_before},   {"fio_read_after_Bps", fio_read_after}};
  std::printf("%s\n", j.dump().c_str());
  fs::remove_all(dir);
  return exact ? 0 : 1;
}
