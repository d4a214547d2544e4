// Per-core throughput of each stage a chunk passes through on its way into a pack:
// chunking (FastCDC), naming (HMAC-SHA-256), compression (zstd) and encryption (AES-256-GCM),
// plus memcpy as the machine's ceiling. Single-threaded: multiply by cores for a pipeline bound.
//
//   build/bench/stages_bench [seconds-per-stage]
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <unistd.h>

#include "codec/compress.h"
#include "crypto/aead.h"
#include "crypto/random.h"
#include "store/chunker.h"

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kChunk = 1 << 20;
double g_min_seconds = 1.0;
double g_memcpy_rate = 0;     // the ceiling, measured first; other stages print their share
volatile uint8_t g_sink = 0;  // keeps hash results alive so the calls are not optimised away

// Bytes per second of `pass`, which processes `bytes` bytes per call; repeats until
// g_min_seconds have passed so short stages are not measured on a cold cache alone.
double Measure(size_t bytes, const std::function<void()>& pass) {
  pass();  // warm up: thread-local contexts, page faults in output buffers
  size_t done = 0;
  auto start = Clock::now();
  double elapsed = 0;
  do {
    pass();
    done += bytes;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  } while (elapsed < g_min_seconds);
  return done / elapsed;
}

void Report(std::string_view stage, std::string_view data, double bytes_per_s, std::string_view note = "") {
  std::string share = g_memcpy_rate > 0 ? fmt::format("{:5.1f}%", 100 * bytes_per_s / g_memcpy_rate) : "";
  fmt::print("{:<24} {:<7} {:>9.0f} MB/s {:>6}  {}\n", stage, data, bytes_per_s / 1e6, share, note);
  std::fflush(stdout);
}

std::vector<uint8_t> RandomData(size_t n) {
  std::vector<uint8_t> v(n);
  crypto::RandomBytes(v);
  return v;
}

// Source text as a stand-in for compressible data: headers under /usr/include, up to `limit`.
std::vector<uint8_t> TextData(size_t limit) {
  std::vector<uint8_t> out;
  std::error_code ec;
  std::vector<std::filesystem::path> files;
  for (auto it = std::filesystem::recursive_directory_iterator(
           "/usr/include", std::filesystem::directory_options::skip_permission_denied, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());  // same data on every run
  for (const auto& path : files) {
    std::ifstream in(path, std::ios::binary);
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    out.insert(out.end(), s.begin(), s.end());
    if (out.size() >= limit) break;
  }
  out.resize(std::min(out.size(), limit) / kChunk * kChunk);
  return out;
}

// Calls fn(chunk) for every 1 MiB chunk of `data`.
template <class Fn>
void ForEachChunk(const std::vector<uint8_t>& data, Fn fn) {
  for (size_t off = 0; off + kChunk <= data.size(); off += kChunk) fn(std::span<const uint8_t>(data.data() + off, kChunk));
}

void BenchMemcpy(const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out(kChunk);
  g_memcpy_rate = Measure(data.size(), [&] {
    ForEachChunk(data, [&](auto c) { std::memcpy(out.data(), c.data(), c.size()); });
  });
  fmt::print("{:<24} {:<7} {:>9.0f} MB/s {:>6}  {}\n", "memcpy (ceiling)", "random", g_memcpy_rate / 1e6,
             "of it", "");
}

void BenchCrypto(const std::vector<uint8_t>& data) {
  crypto::Key256 key;
  crypto::RandomBytes(key);
  crypto::Aead aead(key);
  std::vector<uint8_t> sealed(kChunk + crypto::Aead::kOverhead), opened(kChunk);
  const uint8_t ad[] = "pack 0 chunk";
  Report("aes-256-gcm seal", "random", Measure(data.size(), [&] {
    ForEachChunk(data, [&](auto c) { aead.Seal(c, ad, sealed.data()); });
  }), "1 MiB per call");
  aead.Seal(std::span(data.data(), kChunk), ad, sealed.data());
  Report("aes-256-gcm open", "random", Measure(data.size(), [&] {
    for (size_t i = 0; i < data.size() / kChunk; ++i) {
      if (!aead.Open(sealed, ad, opened.data()).ok()) std::abort();
    }
  }), "1 MiB per call");

  crypto::KeyedHash hmac(key);
  Report("hmac-sha-256", "random", Measure(data.size(), [&] {
    ForEachChunk(data, [&](auto c) { g_sink = g_sink ^ hmac.Hash(c).bytes[0]; });
  }), "1 MiB per call");
  Report("sha-256", "random", Measure(data.size(), [&] {
    ForEachChunk(data, [&](auto c) { g_sink = g_sink ^ crypto::Sha256(c)[0]; });
  }), "1 MiB per call");
  // Small objects (tree entries, index records) are dominated by per-call cost.
  std::span<const uint8_t> small(data.data(), 256);
  constexpr int kSmallCalls = 100000;
  Report("hmac-sha-256 (256 B)", "random", Measure(256 * kSmallCalls, [&] {
    for (int i = 0; i < kSmallCalls; ++i) g_sink = g_sink ^ hmac.Hash(small).bytes[0];
  }), "per-call overhead included");
}

void BenchCodec(std::string_view name, const std::vector<uint8_t>& data) {
  for (int level : {1, 3}) {
    std::vector<std::string> compressed(data.size() / kChunk);
    std::vector<codec::Codec> codecs(compressed.size());
    size_t stored = 0;
    double c = Measure(data.size(), [&] {
      size_t i = 0;
      stored = 0;
      ForEachChunk(data, [&](auto chunk) {
        codecs[i] = codec::Compress(chunk, level, &compressed[i]);
        stored += codecs[i] == codec::Codec::kNone ? kChunk : compressed[i].size();
        ++i;
      });
    });
    size_t raw_chunks = std::count(codecs.begin(), codecs.end(), codec::Codec::kNone);
    std::string note = fmt::format("ratio {:.2f}, {}/{} chunks stored raw{}", double(data.size()) / stored,
                                   raw_chunks, codecs.size(),
                                   raw_chunks == codecs.size() ? " (cost: the sample check only)" : "");
    Report(fmt::format("zstd-{} compress", level), name, c, note);

    std::vector<uint8_t> out(kChunk);
    double d = Measure(data.size(), [&] {
      for (size_t i = 0; i < compressed.size(); ++i) {
        std::span<const uint8_t> in =
            codecs[i] == codec::Codec::kNone
                ? std::span<const uint8_t>(data.data() + i * kChunk, kChunk)
                : std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(compressed[i].data()), compressed[i].size());
        if (!codec::Decompress(codecs[i], in, out.data(), kChunk).ok()) std::abort();
      }
    });
    Report(fmt::format("zstd-{} decompress", level), name, d,
           raw_chunks == codecs.size() ? "raw chunks: a copy" : "");
  }
}

// ---- chunking (FastCDC, src/store/chunker.h) ----
void BenchChunker() {
  std::vector<uint8_t> data = RandomData(256 << 20);
  crypto::Key256 secret;
  crypto::RandomBytes(secret);
  store::ChunkerParams params;
  store::Chunker chunker(params, store::DeriveGearTable(secret));
  size_t chunks = 0;
  double rate = Measure(data.size(), [&] {
    chunks = 0;
    for (size_t pos = 0; pos < data.size();) {
      // All remaining bytes are in memory, so every call may see the end of the input.
      pos += chunker.NextCut(data.data() + pos, data.size() - pos, /*eof=*/true);
      ++chunks;
    }
  });
  Report("fastcdc NextCut", "random", rate,
         fmt::format("{} chunks, mean {:.0f} KiB (min {} / avg {} / max {} KiB)", chunks,
                     data.size() / 1024.0 / chunks, params.min_size >> 10, params.avg_size >> 10,
                     params.max_size >> 10));
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  using namespace strata;
  if (argc > 1) g_min_seconds = std::atof(argv[1]);
  char host[256] = "?";
  gethostname(host, sizeof(host));
  std::string cpu = "?";
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  }
  std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof(date), "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  fmt::print("stages_bench: one core, 1 MiB chunks; host {}, {}, {}\n", host, cpu, date);

  std::vector<uint8_t> random = RandomData(64 << 20);
  std::vector<uint8_t> text = TextData(64 << 20);
  fmt::print("data: random {} MiB, text (/usr/include) {} MiB\n\n", random.size() >> 20, text.size() >> 20);

  BenchMemcpy(random);
  BenchChunker();
  BenchCrypto(random);
  BenchCodec("random", random);
  BenchCodec("text", text);
  return 0;
}
