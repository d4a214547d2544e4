#include "store/chunker.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "testutil/testutil.h"

namespace strata::store {
namespace {

using strata::testing::RandomBytes;

crypto::Key256 KeyFromSeed(uint8_t seed) {
  crypto::Key256 key{};
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(seed * 31 + i);
  return key;
}

// Small sizes so that a few MiB of data give hundreds of chunks.
ChunkerParams SmallParams() {
  ChunkerParams p;
  p.min_size = 2 << 10;
  p.avg_size = 8 << 10;
  p.max_size = 32 << 10;
  return p;
}

const uint8_t* Bytes(std::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()); }

// Chunk lengths as a caller that holds the whole input in memory sees them.
std::vector<size_t> CutWhole(const Chunker& c, std::string_view data) {
  std::vector<size_t> lengths;
  size_t pos = 0;
  while (pos < data.size()) {
    size_t len = c.NextCut(Bytes(data) + pos, data.size() - pos, /*eof=*/true);
    EXPECT_GE(len, 1u);
    EXPECT_LE(len, data.size() - pos);
    if (len == 0) break;
    lengths.push_back(len);
    pos += len;
  }
  return lengths;
}

// Chunk lengths as a streaming caller sees them: it never holds more than `window` bytes ahead
// of the current position (window >= max_size, as the contract demands), and says eof only
// when the window reaches the end of the input.
std::vector<size_t> CutStreaming(const Chunker& c, std::string_view data, size_t window) {
  std::vector<size_t> lengths;
  size_t pos = 0;
  while (pos < data.size()) {
    size_t n = std::min(window, data.size() - pos);
    bool eof = pos + n == data.size();
    size_t len = c.NextCut(Bytes(data) + pos, n, eof);
    EXPECT_GE(len, 1u);
    EXPECT_LE(len, n);
    if (len == 0) break;
    lengths.push_back(len);
    pos += len;
  }
  return lengths;
}

std::vector<std::string_view> Slices(std::string_view data, const std::vector<size_t>& lengths) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  for (size_t len : lengths) {
    out.push_back(data.substr(pos, len));
    pos += len;
  }
  return out;
}

// Fraction of `b`'s chunks (by count) whose content also occurs among `a`'s chunks, and the
// number that do not.
struct Reuse {
  double fraction;
  size_t new_chunks;
};
Reuse MeasureReuse(std::string_view a, const std::vector<size_t>& cuts_a, std::string_view b,
                   const std::vector<size_t>& cuts_b) {
  std::unordered_set<std::string_view> old_chunks;
  for (std::string_view s : Slices(a, cuts_a)) old_chunks.insert(s);
  size_t reused = 0;
  auto slices_b = Slices(b, cuts_b);
  for (std::string_view s : slices_b) reused += old_chunks.count(s);
  return {static_cast<double>(reused) / static_cast<double>(slices_b.size()),
          slices_b.size() - reused};
}

// The textbook byte-at-a-time FastCDC loop, written independently of the optimized one, with
// the mask layout the implementation documents (bits spread evenly over bits 62..15).
uint64_t ReferenceMask(int bits) {
  uint64_t mask = 0;
  for (int i = 0; i < bits; ++i) mask |= uint64_t{1} << (62 - (i * 48) / bits);
  return mask;
}
size_t ReferenceNextCut(const ChunkerParams& p, const GearTable& gear, const uint8_t* data,
                        size_t n) {
  if (n <= p.min_size) return n;
  const int avg_bits = std::bit_width(p.avg_size) - 1;
  const uint64_t mask_s = ReferenceMask(avg_bits + 2);
  const uint64_t mask_l = ReferenceMask(avg_bits - 2);
  const size_t limit = std::min<size_t>(n, p.max_size);
  uint64_t fp = 0;
  for (size_t i = p.min_size; i < limit; ++i) {
    fp = (fp << 1) + gear[data[i]];
    uint64_t mask = i < p.avg_size ? mask_s : mask_l;
    if ((fp & mask) == 0) return i + 1;
  }
  return limit;
}

TEST(ChunkerParamsTest, AcceptsDefaultsAndSaneValues) {
  EXPECT_TRUE(ChunkerParams{}.Validate().ok());
  EXPECT_TRUE(SmallParams().Validate().ok());
  ChunkerParams fixed;
  fixed.fixed_size = 1 << 20;
  EXPECT_TRUE(fixed.Validate().ok());
  fixed.fixed_size = 64u << 20;
  EXPECT_TRUE(fixed.Validate().ok());
  ChunkerParams largest;
  largest.min_size = 1u << 20;
  largest.avg_size = 16u << 20;
  largest.max_size = 64u << 20;
  EXPECT_TRUE(largest.Validate().ok());
}

TEST(ChunkerParamsTest, RejectsBadValues) {
  auto expect_invalid = [](ChunkerParams p, const char* why) {
    Status s = p.Validate();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << why;
    EXPECT_FALSE(s.message().empty()) << why;
  };
  ChunkerParams p;
  p.avg_size = (1u << 20) + 1;
  expect_invalid(p, "avg not a power of two");
  p = {};
  p.min_size = p.avg_size;
  expect_invalid(p, "min == avg");
  p = {};
  p.min_size = 2u << 20;
  expect_invalid(p, "min > avg");
  p = {};
  p.max_size = p.avg_size;
  expect_invalid(p, "max == avg");
  p = {};
  p.max_size = (64u << 20) + 1;
  p.avg_size = 32u << 20;
  expect_invalid(p, "max over 64 MiB");
  p = {};
  p.min_size = 0;
  p.avg_size = 32;
  p.max_size = 128;
  expect_invalid(p, "avg too small for the masks");
  p = {};
  p.avg_size = 0;
  expect_invalid(p, "avg zero");
  p = {};
  p.fixed_size = (64u << 20) + 1;
  expect_invalid(p, "fixed over 64 MiB");
}

TEST(GearTableTest, DeterministicAndKeyed) {
  GearTable a = DeriveGearTable(KeyFromSeed(1));
  GearTable b = DeriveGearTable(KeyFromSeed(1));
  GearTable c = DeriveGearTable(KeyFromSeed(2));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  // Every entry distinct and well mixed: a repeated or zero entry would mean a counter or
  // offset bug in the expansion.
  std::unordered_set<uint64_t> seen(a.begin(), a.end());
  EXPECT_EQ(seen.size(), a.size());
  int ones = 0;
  for (uint64_t v : a) ones += std::popcount(v);
  EXPECT_NEAR(ones / 256.0, 32.0, 1.0);
}

// Frozen values: the table and the cut points are part of the repository format in effect
// (changing them moves every chunk boundary and breaks dedup against existing data). The
// table entries were checked independently with Python's hashlib:
//   sha256(bytes(32) + b"strata-gear" + struct.pack("<I", counter)), read as 4 x le64.
TEST(GearTableTest, FrozenDerivation) {
  GearTable zero_key = DeriveGearTable(crypto::Key256{});
  EXPECT_EQ(zero_key[0], 0x23fbf6e7547e7257ULL) << std::hex << zero_key[0];
  EXPECT_EQ(zero_key[255], 0x8875ff619d6971e1ULL) << std::hex << zero_key[255];
}

TEST(ChunkerTest, FrozenCutPoints) {
  Chunker c(SmallParams(), DeriveGearTable(crypto::Key256{}));
  std::string data = RandomBytes(7, 256 << 10);
  std::vector<size_t> cuts = CutWhole(c, data);
  std::vector<size_t> first(cuts.begin(), cuts.begin() + std::min<size_t>(cuts.size(), 8));
  EXPECT_EQ(first, (std::vector<size_t>{7160, 8854, 9381, 5550, 10664, 10456, 5344, 9083}));
}

TEST(ChunkerTest, MatchesByteAtATimeReference) {
  for (ChunkerParams p : {SmallParams(), ChunkerParams{}}) {
    GearTable gear = DeriveGearTable(KeyFromSeed(3));
    Chunker c(p, gear);
    std::string data = RandomBytes(11, p.max_size * 40ull);
    size_t pos = 0;
    size_t chunks = 0;
    while (pos < data.size()) {
      size_t n = data.size() - pos;
      size_t want = ReferenceNextCut(p, gear, Bytes(data) + pos, n);
      size_t got = c.NextCut(Bytes(data) + pos, n, true);
      ASSERT_EQ(got, want) << "chunk " << chunks << " at offset " << pos;
      pos += got;
      ++chunks;
    }
    EXPECT_GT(chunks, 20u);
  }
}

TEST(ChunkerTest, EveryChunkWithinBoundsExceptTheLast) {
  ChunkerParams p = SmallParams();
  Chunker c(p, DeriveGearTable(KeyFromSeed(1)));
  std::string data = RandomBytes(1, 8 << 20);
  std::vector<size_t> cuts = CutWhole(c, data);
  ASSERT_GT(cuts.size(), 100u);
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    EXPECT_GE(cuts[i], p.min_size) << "chunk " << i;
    EXPECT_LE(cuts[i], p.max_size) << "chunk " << i;
  }
  EXPECT_GE(cuts.back(), 1u);
  EXPECT_LE(cuts.back(), p.max_size);
}

TEST(ChunkerTest, ConstantInputGivesEqualChunks) {
  // In a run of one byte value the fingerprint after min_size is the same for every chunk, so
  // every chunk ends at the same length (a boundary or max_size) and a zero-filled file
  // dedups to one chunk plus the tail.
  ChunkerParams p = SmallParams();
  Chunker c(p, DeriveGearTable(KeyFromSeed(1)));
  std::string data(1 << 20, '\0');
  std::vector<size_t> cuts = CutWhole(c, data);
  ASSERT_GT(cuts.size(), 2u);
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    EXPECT_GE(cuts[i], p.min_size);
    EXPECT_LE(cuts[i], p.max_size);
    EXPECT_EQ(cuts[i], cuts[0]);
  }
}

TEST(ChunkerTest, ConcatenationOfChunksIsTheInput) {
  Chunker c(SmallParams(), DeriveGearTable(KeyFromSeed(5)));
  std::string data = RandomBytes(5, (3 << 20) + 123);
  std::string joined;
  for (std::string_view s : Slices(data, CutStreaming(c, data, SmallParams().max_size))) {
    joined.append(s);
  }
  EXPECT_EQ(joined.size(), data.size());
  EXPECT_TRUE(joined == data);
}

TEST(ChunkerTest, DeterministicForASecretAndDifferentForAnother) {
  std::string data = RandomBytes(9, 4 << 20);
  Chunker a1(SmallParams(), DeriveGearTable(KeyFromSeed(1)));
  Chunker a2(SmallParams(), DeriveGearTable(KeyFromSeed(1)));
  Chunker b(SmallParams(), DeriveGearTable(KeyFromSeed(2)));
  std::vector<size_t> cuts_a1 = CutWhole(a1, data);
  std::vector<size_t> cuts_a2 = CutWhole(a2, data);
  std::vector<size_t> cuts_b = CutWhole(b, data);
  EXPECT_EQ(cuts_a1, cuts_a2);
  EXPECT_NE(cuts_a1, cuts_b);
  // Not just shifted: with another secret almost no boundary falls at the same offset.
  std::unordered_set<size_t> offsets_a;
  size_t pos = 0;
  for (size_t len : cuts_a1) offsets_a.insert(pos += len);
  size_t common = 0;
  pos = 0;
  for (size_t len : cuts_b) common += offsets_a.count(pos += len);
  EXPECT_LT(common, cuts_b.size() / 10);
}

TEST(ChunkerTest, StreamingWindowsGiveTheSameCutsAsWholeInput) {
  for (ChunkerParams p : {SmallParams(), ChunkerParams{}}) {
    Chunker c(p, DeriveGearTable(KeyFromSeed(4)));
    std::string data = RandomBytes(4, p.avg_size == SmallParams().avg_size ? (4 << 20) + 17 : (64 << 20) + 17);
    std::vector<size_t> whole = CutWhole(c, data);
    EXPECT_EQ(CutStreaming(c, data, p.max_size), whole);
    EXPECT_EQ(CutStreaming(c, data, p.max_size + 1), whole);
    EXPECT_EQ(CutStreaming(c, data, 3 * p.max_size + 4097), whole);
  }
}

TEST(ChunkerTest, AverageSizeNearTarget) {
  // Default parameters (1 MiB average) on 256 MiB of random data: about 250 chunks.
  ChunkerParams p;
  Chunker c(p, DeriveGearTable(KeyFromSeed(6)));
  std::string data = RandomBytes(6, 256u << 20);
  std::vector<size_t> cuts = CutStreaming(c, data, p.max_size);
  double avg = static_cast<double>(data.size()) / static_cast<double>(cuts.size());
  EXPECT_GT(avg, 0.75 * p.avg_size) << cuts.size() << " chunks";
  EXPECT_LT(avg, 1.25 * p.avg_size) << cuts.size() << " chunks";

  ChunkerParams small = SmallParams();
  Chunker cs(small, DeriveGearTable(KeyFromSeed(6)));
  std::vector<size_t> small_cuts = CutWhole(cs, std::string_view(data).substr(0, 64 << 20));
  double small_avg = static_cast<double>(64 << 20) / static_cast<double>(small_cuts.size());
  EXPECT_GT(small_avg, 0.75 * small.avg_size);
  EXPECT_LT(small_avg, 1.25 * small.avg_size);
}

TEST(ChunkerTest, FixedSizeMode) {
  ChunkerParams p;
  p.fixed_size = 1000;
  ASSERT_TRUE(p.Validate().ok());
  Chunker c(p, DeriveGearTable(KeyFromSeed(1)));
  std::string data = RandomBytes(2, 10500);
  std::vector<size_t> cuts = CutStreaming(c, data, 1000);
  ASSERT_EQ(cuts.size(), 11u);
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(cuts[i], 1000u);
  EXPECT_EQ(cuts[10], 500u);
  EXPECT_EQ(CutWhole(c, data), cuts);
  // Content does not matter, only position.
  std::string zeros(10500, '\0');
  EXPECT_EQ(CutWhole(c, zeros), cuts);
  EXPECT_EQ(c.NextCut(Bytes(data), 0, true), 0u);
  EXPECT_EQ(c.NextCut(Bytes(data), 1, true), 1u);
}

TEST(ChunkerTest, SmallInputs) {
  ChunkerParams p = SmallParams();
  Chunker c(p, DeriveGearTable(KeyFromSeed(1)));
  std::string data = RandomBytes(3, p.max_size * 2);
  const uint8_t* d = Bytes(data);
  EXPECT_EQ(c.NextCut(d, 0, true), 0u);
  EXPECT_TRUE(CutWhole(c, std::string_view()).empty());
  EXPECT_EQ(c.NextCut(d, 1, true), 1u);
  EXPECT_EQ(c.NextCut(d, p.min_size - 1, true), p.min_size - 1);
  EXPECT_EQ(c.NextCut(d, p.min_size, true), p.min_size);
  // At max_size and max_size+1 bytes a cut is somewhere in [min, max]; the input then ends in
  // one or two chunks that together are the whole input.
  for (size_t n : {size_t{p.max_size}, size_t{p.max_size} + 1}) {
    size_t first = c.NextCut(d, n, true);
    EXPECT_GE(first, p.min_size);
    EXPECT_LE(first, p.max_size);
    std::vector<size_t> cuts = CutWhole(c, std::string_view(data).substr(0, n));
    size_t total = 0;
    for (size_t len : cuts) total += len;
    EXPECT_EQ(total, n);
    EXPECT_EQ(cuts[0], first);
  }
  // More than max_size available: the chunk never exceeds max_size.
  EXPECT_LE(c.NextCut(d, data.size(), false), p.max_size);
  // A run with no boundary is cut at exactly max_size.
  std::string zeros(p.max_size + 1, '\0');
  size_t z = c.NextCut(Bytes(zeros), zeros.size(), true);
  EXPECT_GE(z, p.min_size);
  EXPECT_LE(z, p.max_size);
}

// The spec's shift test: inserting one byte at the start of a 64 MiB file must leave at least
// 90% of the chunks reusable (fixed-size chunking would reuse none).
TEST(ChunkerTest, InsertAtStartReusesAlmostAllChunks) {
  ChunkerParams p;
  Chunker c(p, DeriveGearTable(KeyFromSeed(8)));
  std::string original = RandomBytes(8, 64u << 20);
  std::string shifted = "x" + original;
  std::vector<size_t> cuts_o = CutStreaming(c, original, p.max_size);
  std::vector<size_t> cuts_s = CutStreaming(c, shifted, p.max_size);
  EXPECT_EQ(CutWhole(c, shifted), cuts_s);
  Reuse r = MeasureReuse(original, cuts_o, shifted, cuts_s);
  std::printf("[ shift    ] %zu chunks, %.1f%% reused, %zu new\n", cuts_s.size(),
              100 * r.fraction, r.new_chunks);
  EXPECT_GE(r.fraction, 0.90);
  EXPECT_LE(r.new_chunks, 2u);

  // The same with small chunks, where 90% is a sharper test (thousands of chunks).
  ChunkerParams sp = SmallParams();
  Chunker cs(sp, DeriveGearTable(KeyFromSeed(8)));
  Reuse rs = MeasureReuse(original, CutStreaming(cs, original, sp.max_size), shifted,
                          CutStreaming(cs, shifted, sp.max_size));
  std::printf("[ shift    ] small params: %.2f%% reused, %zu new\n", 100 * rs.fraction,
              rs.new_chunks);
  EXPECT_GE(rs.fraction, 0.99);
}

TEST(ChunkerTest, ModifiedByteInTheMiddleChangesAtMostTwoChunks) {
  for (ChunkerParams p : {ChunkerParams{}, SmallParams()}) {
    Chunker c(p, DeriveGearTable(KeyFromSeed(10)));
    std::string original = RandomBytes(10, 64u << 20);
    std::vector<size_t> cuts_o = CutStreaming(c, original, p.max_size);
    std::mt19937_64 rng(10);
    // Several positions, including the exact middle.
    std::vector<size_t> positions = {original.size() / 2};
    for (int i = 0; i < 4; ++i) positions.push_back(rng() % original.size());
    for (size_t at : positions) {
      std::string modified = original;
      modified[at] = static_cast<char>(modified[at] ^ 0x5a);
      std::vector<size_t> cuts_m = CutStreaming(c, modified, p.max_size);
      Reuse r = MeasureReuse(original, cuts_o, modified, cuts_m);
      EXPECT_GE(r.new_chunks, 1u) << "at " << at;
      EXPECT_LE(r.new_chunks, 2u) << "at " << at;
    }
  }
}

}  // namespace
}  // namespace strata::store
