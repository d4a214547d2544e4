// Peak memory of garbage collection against the size of the index.
//
//   gc_memory_bench DIR [OBJECTS]      (default 1,000,000 objects)
//
// Builds a repository of OBJECTS tiny data chunks (64-byte average: eight streams of random
// bytes), removes the roots of half the streams, then runs gc in a child process and reports the
// child's peak RSS (getrusage ru_maxrss) with its anonymous and file-backed parts at the end
// (/proc/self/status), next to the size of the index files and of the index cache. For
// comparison, a second child loads every index file into an in-memory ChunkIndex (what every
// open, and gc, did before the index cache).
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "store/chunk_index.h"
#include "store/object_store.h"
#include "store/repository_impl.h"
#include "strata/repository.h"

namespace {

using namespace strata;
namespace fs = std::filesystem;

constexpr char kPass[] = "bench";

class RandomSource : public SequentialFile {
 public:
  RandomSource(uint64_t seed, uint64_t size) : rng_(seed), left_(size) {}
  Status Read(size_t n, uint8_t* dst, size_t* got) override {
    n = std::min<uint64_t>(n, left_);
    for (size_t i = 0; i < n; ++i) dst[i] = static_cast<uint8_t>(rng_());
    left_ -= n;
    *got = n;
    return Status::OK();
  }

 private:
  std::mt19937_64 rng_;
  uint64_t left_;
};

uint64_t StatusKb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(key, 0) == 0) return std::strtoull(line.c_str() + std::strlen(key), nullptr, 10);
  }
  return 0;
}

uint64_t DirBytes(const std::string& dir) {
  uint64_t n = 0;
  if (!fs::exists(dir)) return 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) n += e.file_size();
  }
  return n;
}

// Runs this binary again with `mode` (a fresh process, so nothing of the builder's memory is
// counted) and returns the child's peak RSS in KiB (0 on failure).
long InChild(const char* self, const char* mode, const std::string& repo) {
  std::fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    execl(self, self, mode, repo.c_str(), static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  int status = 0;
  struct rusage ru {};
  if (wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return 0;
  return ru.ru_maxrss;
}

int MeasureOld(const std::string& repo) {
  OpenOptions x;
  x.index_cache_fold_entries = 0;  // never write a cache
  auto r = Repository::Open(repo, kPass, x);
  if (!r.ok()) return 1;
  auto* impl = dynamic_cast<store::RepositoryImpl*>(r->get());
  // Everything in memory, as every open did before the cache: listings, then the hash table.
  std::vector<store::PackListing> all;
  auto names = impl->backend_->List(volume::ObjectType::kIndex);
  if (!names.ok()) return 1;
  for (const auto& n : *names) {
    auto bytes = impl->backend_->Get(volume::ObjectType::kIndex, n);
    if (!bytes.ok()) return 1;
    auto p = store::ParseIndexFile(impl->aead_, n, *bytes);
    if (!p.ok()) return 1;
    for (auto& l : *p) all.push_back(std::move(l));
  }
  store::ChunkIndex index;
  index.Reset(all);
  std::printf("in-memory index (as before the cache): %zu objects, RssAnon %llu KiB\n", index.size(),
              static_cast<unsigned long long>(StatusKb("RssAnon:")));
  return 0;
}

int MeasureGc(const std::string& repo) {
  auto start = std::chrono::steady_clock::now();
  auto r = Repository::Open(repo, kPass, OpenOptions{});
  if (!r.ok()) return 1;
  uint64_t open_kb = StatusKb("VmHWM:");
  store::GcOptions g;
  g.grace_seconds = 0;
  auto rep = (*r)->objects()->CollectGarbage(g);
  if (!rep.ok()) {
    std::fprintf(stderr, "gc: %s\n", rep.status().ToString().c_str());
    return 1;
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("gc: %llu objects, %llu live, %llu packs deleted, %llu repacked, %.1f s; peak RSS after open %llu KiB; "
              "at the end RssAnon %llu KiB, RssFile %llu KiB\n",
              static_cast<unsigned long long>(rep->objects_total), static_cast<unsigned long long>(rep->objects_live),
              static_cast<unsigned long long>(rep->packs_deleted), static_cast<unsigned long long>(rep->packs_repacked), s,
              static_cast<unsigned long long>(open_kb), static_cast<unsigned long long>(StatusKb("RssAnon:")),
              static_cast<unsigned long long>(StatusKb("RssFile:")));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DIR [OBJECTS]\n", argv[0]);
    return 2;
  }
  if (argc == 3 && std::string(argv[1]) == "--measure-old") return MeasureOld(argv[2]);
  if (argc == 3 && std::string(argv[1]) == "--measure-gc") return MeasureGc(argv[2]);
  std::string repo = std::string(argv[1]) + "/repo";
  uint64_t objects = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1'000'000;
  fs::remove_all(repo);
  InitOptions init;
  init.chunk_min = 32;
  init.chunk_avg = 64;
  init.chunk_max = 256;
  init.compression_level = 0;
  init.kdf_ops = 1;
  init.kdf_mem = 8192;
  init.key_label = "bench";
  OpenOptions o;
  auto t0 = std::chrono::steady_clock::now();
  {
    auto r = Repository::Create(repo, kPass, init, o);
    if (!r.ok()) {
      std::fprintf(stderr, "create: %s\n", r.status().ToString().c_str());
      return 1;
    }
    constexpr int kStreams = 8;
    for (int s = 0; s < kStreams; ++s) {
      RandomSource src(s + 1, objects * 64 / kStreams);
      auto root = (*r)->PutStream(&src);
      if (!root.ok()) {
        std::fprintf(stderr, "put: %s\n", root.status().ToString().c_str());
        return 1;
      }
    }
    // Half the streams become garbage.
    auto roots = (*r)->Roots();
    for (size_t i = 0; roots.ok() && i < roots->size(); i += 2) fs::remove(repo + "/roots/" + (*roots)[i].name);
  }
  double build_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  uint64_t index_bytes = DirBytes(repo + "/index");
  std::printf("repository: %llu objects requested, built in %.1f s; index files %.1f MB\n",
              static_cast<unsigned long long>(objects), build_s, index_bytes / 1e6);

  long old_kb = InChild("/proc/self/exe", "--measure-old", repo);
  long gc_kb = InChild("/proc/self/exe", "--measure-gc", repo);
  uint64_t cache_bytes = fs::exists(repo + "/catalog/index.cache") ? fs::file_size(repo + "/catalog/index.cache") : 0;
  std::printf("peak RSS: in-memory index load %.1f MB; gc (open, fold, mark, sweep, reload) %.1f MB; "
              "index files before gc %.1f MB; index cache after gc %.1f MB\n",
              old_kb / 1024.0, gc_kb / 1024.0, index_bytes / 1e6, cache_bytes / 1e6);
  return gc_kb > 0 && old_kb > 0 ? 0 : 1;
}
