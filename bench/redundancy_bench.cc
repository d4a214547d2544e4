// Redundancy costs, peers side by side in one run:
//   1. ISA-L Reed–Solomon encode and decode (2 fragments lost) of K+M against memcpy of the same
//      bytes;
//   2. writing and reading packs through the RedundantBackend with rs:K+M over K+M directories
//      against the local backend alone (one volume, no redundancy), reads healthy and with M
//      volumes gone;
//   3. repair of the fragments of M lost volumes (throughput of the bytes it writes), to compare
//      with the disk's write limit measured by fio in the same run (bench/redundancy.sh);
//   4. what a user sees: `Repository::PutPaths` of a directory of incompressible files (chunk,
//      hash, seal, pack, and the fragments' writes) into a repository without volumes and into
//      one with rs:K+M over K+M directories, the source in the page cache for both.
//
// Usage: redundancy_bench DIR [MiB=512] [K=4] [M=2]   (DIR on the disk to measure)
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <fmt/format.h>

#include "strata/repository.h"
#include "strata/volumes.h"
#include "volume/erasure.h"
#include "volume/redundant_backend.h"

using namespace strata;
using namespace strata::volume;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double Seconds(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string Random(size_t n, uint64_t seed) {
  std::string s(n, '\0');
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    std::memcpy(&s[i], &v, 8);
  }
  return s;
}

// Seconds to put `src` into a new repository at `url`, spread over `volumes` directories under
// `policy` when it is not empty. The source was just written, so every run finds it cached.
double TimedRepositoryPut(const std::string& url, const std::string& src, const std::string& volumes_dir, int volumes,
                          const std::string& policy) {
  InitOptions init;
  init.kdf_ops = 1;
  init.kdf_mem = 8u << 20;
  auto repo = Repository::Create(url, "bench", init);
  if (!repo.ok()) {
    std::cerr << repo.status().ToString() << "\n";
    return -1;
  }
  if (!policy.empty()) {
    for (int i = 1; i <= volumes; ++i) {
      auto v = (*repo)->volumes()->AddVolume({fmt::format("{}/vol{}", volumes_dir, i), fmt::format("disk{}", i), 0});
      if (!v.ok()) {
        std::cerr << v.status().ToString() << "\n";
        return -1;
      }
    }
    if (Status s = (*repo)->volumes()->SetPolicy(policy); !s.ok()) {
      std::cerr << s.ToString() << "\n";
      return -1;
    }
  }
  sync();
  auto t0 = Clock::now();
  auto id = (*repo)->PutPaths({src});
  double s = Seconds(t0);
  if (!id.ok()) {
    std::cerr << id.status().ToString() << "\n";
    return -1;
  }
  return s;
}

void DropCaches() {
  // Best effort: reads below are then from the disk where the process may drop caches.
  sync();
  if (FILE* f = fopen("/proc/sys/vm/drop_caches", "w")) {
    fputs("3\n", f);
    fclose(f);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: redundancy_bench DIR [MiB=512] [K=4] [M=2]\n";
    return 2;
  }
  const std::string dir = argv[1];
  const size_t total_mib = argc > 2 ? std::stoul(argv[2]) : 512;
  const int k = argc > 3 ? std::stoi(argv[3]) : 4;
  const int m = argc > 4 ? std::stoi(argv[4]) : 2;
  const size_t pack = 32u << 20;
  const size_t packs = std::max<size_t>(1, (total_mib << 20) / pack);
  const double total_mb = double(packs * pack) / 1e6;
  fs::remove_all(dir);
  fs::create_directories(dir);

  // 1. Codec against memcpy, in memory: one 32 MiB pack, repeated.
  {
    std::string data = Random(pack, 1);
    const size_t f = FragmentBodySize(Scheme::kErasure, k, pack);
    std::vector<std::string> parity(m, std::string(f, '\0'));
    std::vector<const uint8_t*> in(k);
    std::vector<uint8_t*> out(m);
    for (int i = 0; i < k; ++i) in[i] = reinterpret_cast<const uint8_t*>(data.data()) + i * f;
    for (int i = 0; i < m; ++i) out[i] = reinterpret_cast<uint8_t*>(parity[i].data());
    ErasureCode code(k, m);
    const int reps = 16;
    std::string copy(pack, '\0');
    auto t0 = Clock::now();
    for (int r = 0; r < reps; ++r) {
      std::memcpy(copy.data(), data.data(), pack);
      asm volatile("" : : "r"(copy.data()) : "memory");
    }
    double memcpy_s = Seconds(t0);
    t0 = Clock::now();
    for (int r = 0; r < reps; ++r) code.Encode(in.data(), out.data(), f);
    double enc_s = Seconds(t0);
    // Decode data fragments 0 and 1 from 2..k-1 and the parity.
    std::vector<int> have;
    std::vector<const uint8_t*> src;
    for (int i = 2; i < k; ++i) {
      have.push_back(i);
      src.push_back(in[i]);
    }
    for (int i = 0; i < m && static_cast<int>(have.size()) < k; ++i) {
      have.push_back(k + i);
      src.push_back(out[i]);
    }
    std::vector<std::string> rebuilt(2, std::string(f, '\0'));
    uint8_t* dst[2] = {reinterpret_cast<uint8_t*>(rebuilt[0].data()), reinterpret_cast<uint8_t*>(rebuilt[1].data())};
    t0 = Clock::now();
    for (int r = 0; r < reps; ++r) {
      if (!code.Decode(have, src.data(), {0, 1}, dst, f).ok()) return 1;
    }
    double dec_s = Seconds(t0);
    if (std::memcmp(rebuilt[0].data(), data.data(), f) != 0) {
      std::cerr << "decode mismatch\n";
      return 1;
    }
    double mb = reps * pack / 1e6;
    fmt::print("codec rs:{}+{} (32 MiB packs, data MB/s, one core)\n", k, m);
    fmt::print("  memcpy            {:8.0f} MB/s\n", mb / memcpy_s);
    fmt::print("  ISA-L encode      {:8.0f} MB/s  ({:.2f}x memcpy)\n", mb / enc_s, memcpy_s / enc_s);
    fmt::print("  ISA-L decode 2    {:8.0f} MB/s  ({:.2f}x memcpy)\n", mb / dec_s, memcpy_s / dec_s);
  }

  // 2. Backends: one local directory vs rs:k+m over k+m directories.
  std::vector<std::string> bodies;
  for (size_t i = 0; i < packs; ++i) bodies.push_back(Random(pack, 100 + i));
  auto name_of = [](size_t i) { return fmt::format("{:02x}{:030x}", i % 256, i); };

  auto local = CreateLocalBackend(Env::Default(), dir + "/plain");
  if (!local.ok()) return 1;
  auto t0 = Clock::now();
  for (size_t i = 0; i < packs; ++i) {
    if (!(*local)->Put(ObjectType::kPack, name_of(i), bodies[i]).ok()) return 1;
  }
  double plain_put = Seconds(t0);
  DropCaches();
  std::string buf(pack, '\0');
  t0 = Clock::now();
  for (size_t i = 0; i < packs; ++i) {
    if (!(*local)->ReadAt(ObjectType::kPack, name_of(i), 0, pack, reinterpret_cast<uint8_t*>(buf.data())).ok()) return 1;
  }
  double plain_get = Seconds(t0);

  VolumeLayout layout;
  layout.repository_id = "bench";
  layout.policy = *RedundancyPolicy::Parse(fmt::format("rs:{}+{}", k, m));
  for (int i = 1; i <= k + m; ++i) {
    VolumeConfig v{fmt::format("v{}", i), fmt::format("{}/vol{}", dir, i), fmt::format("disk{}", i), 0, false};
    if (!InitVolumeDirectory(Env::Default(), v.path, "bench", v.id).ok()) return 1;
    layout.volumes.push_back(v);
  }
  auto primary = CreateLocalBackend(Env::Default(), dir + "/repo");
  if (!primary.ok()) return 1;
  RedundantBackend red(Env::Default(), std::move(*primary), layout);
  t0 = Clock::now();
  for (size_t i = 0; i < packs; ++i) {
    if (!red.Put(ObjectType::kPack, name_of(i), bodies[i]).ok()) return 1;
  }
  double rs_put = Seconds(t0);
  DropCaches();
  t0 = Clock::now();
  for (size_t i = 0; i < packs; ++i) {
    if (!red.ReadAt(ObjectType::kPack, name_of(i), 0, pack, reinterpret_cast<uint8_t*>(buf.data())).ok()) return 1;
  }
  double rs_get = Seconds(t0);
  // M volumes gone: the first data fragments, so every read decodes.
  for (int i = 1; i <= m; ++i) fs::remove_all(fmt::format("{}/vol{}", dir, i));
  DropCaches();
  t0 = Clock::now();
  for (size_t i = 0; i < packs; ++i) {
    if (!red.ReadAt(ObjectType::kPack, name_of(i), 0, pack, reinterpret_cast<uint8_t*>(buf.data())).ok()) return 1;
    if (std::memcmp(buf.data(), bodies[i].data(), pack) != 0) {
      std::cerr << "degraded read mismatch\n";
      return 1;
    }
  }
  double rs_degraded = Seconds(t0);
  // 3. Repair onto replaced (empty) volumes: first with the surviving fragments read from the
  // disk, then again with them in the page cache (the first repair read them): what repair
  // costs when its reads do not share the disk its writes go to, as when the fragments it reads
  // are on other disks than the volume it rebuilds. Seconds, or -1 on failure.
  auto timed_repair = [&](bool cached, RepairReport* report) -> double {
    for (int i = 1; i <= m; ++i) {
      fs::remove_all(fmt::format("{}/vol{}", dir, i));
      if (!InitVolumeDirectory(Env::Default(), fmt::format("{}/vol{}", dir, i), "bench", fmt::format("v{}", i)).ok()) {
        return -1;
      }
    }
    if (cached) sync();
    else DropCaches();
    auto start = Clock::now();
    auto r = red.Repair({});
    double s = Seconds(start);
    if (!r.ok() || !r->ok()) return -1;
    *report = *r;
    return s;
  };
  RepairReport rep, warm;
  const double repair_s = timed_repair(/*cached=*/false, &rep);
  const double warm_s = timed_repair(/*cached=*/true, &warm);
  if (repair_s < 0 || warm_s < 0) {
    std::cerr << "repair failed\n";
    return 1;
  }
  fmt::print("backends, {} packs of 32 MiB ({:.0f} MB of pack data)\n", packs, total_mb);
  fmt::print("  put  1 volume, no redundancy   {:8.0f} MB/s\n", total_mb / plain_put);
  fmt::print("  put  rs:{}+{} over {} dirs        {:8.0f} MB/s  ({:.2f}x)\n", k, m, k + m, total_mb / rs_put,
             plain_put / rs_put);
  fmt::print("  get  1 volume, no redundancy   {:8.0f} MB/s\n", total_mb / plain_get);
  fmt::print("  get  rs:{}+{} healthy            {:8.0f} MB/s  ({:.2f}x)\n", k, m, total_mb / rs_get, plain_get / rs_get);
  fmt::print("  get  rs:{}+{} {} volumes gone     {:8.0f} MB/s  ({:.2f}x healthy)\n", k, m, m, total_mb / rs_degraded,
             rs_get / rs_degraded);
  for (const auto& [r, secs, how] : {std::tuple{&rep, repair_s, "its reads from the same disk"},
                                      std::tuple{&warm, warm_s, "its reads cached, as from other disks"}}) {
    fmt::print("  repair: {} fragments, {:.0f} MB written in {:.2f} s = {:.0f} MB/s written ({})\n",
               r->fragments_rebuilt, r->bytes_written / 1e6, secs, r->bytes_written / 1e6 / secs, how);
  }

  // 4. The store's put, end to end, without and with redundancy (alternating, twice each).
  std::string src = dir + "/src";
  fs::create_directories(src);
  for (size_t i = 0; i < packs; ++i) {
    std::ofstream(fmt::format("{}/f{:03}", src, i), std::ios::binary) << bodies[i];
  }
  sync();
  double put_plain = 1e9, put_rs = 1e9;
  for (int round = 0; round < 2; ++round) {
    std::string base = fmt::format("{}/store{}", dir, round);
    double a = TimedRepositoryPut(base + "-plain", src, "", 0, "");
    double b = TimedRepositoryPut(base + "-rs", src, base + "-vols", k + m, fmt::format("rs:{}+{}", k, m));
    if (a < 0 || b < 0) return 1;
    put_plain = std::min(put_plain, a);
    put_rs = std::min(put_rs, b);
    fs::remove_all(base + "-plain");
    fs::remove_all(base + "-rs");
    fs::remove_all(base + "-vols");
  }
  fmt::print("repository put of {} files of 32 MiB ({:.0f} MB, incompressible), best of 2\n", packs, total_mb);
  fmt::print("  put  no volumes               {:8.0f} MB/s\n", total_mb / put_plain);
  fmt::print("  put  rs:{}+{} over {} dirs        {:8.0f} MB/s  ({:.2f}x)\n", k, m, k + m, total_mb / put_rs,
             put_plain / put_rs);
  fs::remove_all(dir);
  return 0;
}
