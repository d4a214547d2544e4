#include <bit>

#include "strata/loader.h"

namespace strata::loader {
namespace {

// SplitMix64's finalizer: a cheap bijective mixer with full avalanche.
uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

// A keyed permutation of [0, n): a balanced Feistel network on the smallest even number of
// bits covering n (a domain of less than 4n), with cycle walking to stay inside [0, n).
class Feistel {
 public:
  Feistel(uint64_t n, uint64_t key) : n_(n) {
    const int bits = n <= 1 ? 2 : std::bit_width(n - 1);
    half_ = (bits + 1) / 2;
    mask_ = (uint64_t{1} << half_) - 1;
    for (int r = 0; r < kRounds; ++r) keys_[r] = Mix(key + 0x9e3779b97f4a7c15ull * (r + 1));
  }
  uint64_t operator()(uint64_t x) const {
    do x = Round(x);
    while (x >= n_);
    return x;
  }

 private:
  static constexpr int kRounds = 6;
  uint64_t Round(uint64_t x) const {
    uint64_t l = x >> half_, r = x & mask_;
    for (int i = 0; i < kRounds; ++i) {
      uint64_t t = l ^ (Mix(r ^ keys_[i]) & mask_);
      l = r;
      r = t;
    }
    return (l << half_) | r;
  }
  uint64_t n_;
  int half_;
  uint64_t mask_;
  uint64_t keys_[kRounds];
};

}  // namespace

Shuffle::Shuffle(uint64_t num_records, uint64_t seed, uint64_t epoch, const ShuffleOptions& options)
    : n_(num_records), options_(options), key_(Mix(Mix(seed) ^ Mix(epoch + 0x5851f42d4c957f2dull))) {
  if (options_.block_records == 0) options_.block_records = 1;
  if (options_.window_blocks == 0) options_.window_blocks = 1;
}

uint64_t Shuffle::Position(uint64_t p) const {
  switch (options_.mode) {
    case ShuffleMode::kNone:
      return p;
    case ShuffleMode::kGlobal:
      return Feistel(n_, key_)(p);
    case ShuffleMode::kBlock: {
      // Full blocks are permuted; a partial last block stays in the last slot, so every slot
      // before it holds exactly S records and a position maps to its slot by division. Then
      // the records of each window of slots are shuffled among themselves.
      const uint64_t s = options_.block_records;
      const uint64_t full = n_ / s;
      const uint64_t window = s * options_.window_blocks;
      const uint64_t w = p / window;
      const uint64_t start = w * window;
      const uint64_t len = std::min(window, n_ - start);
      const uint64_t q = start + Feistel(len, Mix(key_ ^ Mix(w + 1)))(p - start);
      const uint64_t slot = q / s, offset = q % s;
      const uint64_t block = slot < full ? Feistel(full, Mix(key_ ^ 0x2545f4914f6cdd1dull))(slot) : slot;
      return block * s + offset;
    }
  }
  return p;
}

}  // namespace strata::loader
