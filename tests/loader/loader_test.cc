#include "strata/loader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "loader/partition.h"
#include "loader/shard_files.h"
#include "testutil/testutil.h"

namespace strata::loader {
namespace {

using shard::DType;
using shard::FieldType;

// Records carry their own number ("id") and bytes derived from it, so a test can check that a
// batch holds the right record, whole.
shard::Schema TestSchema() {
  shard::Field id;
  id.name = "id";
  id.type = FieldType::kInt;
  shard::Field data{.name = "data", .type = FieldType::kTensor, .dtype = DType::kUint8, .shape = {-1}};
  shard::Field label;
  label.name = "label";
  label.type = FieldType::kLabel;
  label.num_classes = 10;
  return shard::Schema{{id, data, label}};
}

// Record sizes: 300 bytes each (false), 100..9099 bytes (true), or kLongTail: 200 bytes, and
// 600 KiB for every 97th record (a few images far above the average).
constexpr int kLongTail = 2;
size_t SizeOf(uint64_t id, int varying) {
  if (varying == kLongTail) return id % 97 == 5 ? 600 << 10 : 200;
  return varying ? 100 + (id * 2654435761u) % 9000 : 300;
}

std::string DataOf(uint64_t id, size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((id * 131 + i * 7) & 0xff);
  return s;
}

struct Shards {
  std::vector<std::string> paths;
  std::vector<shard::ShardInfo> infos;
};

Shards WriteShards(const std::string& dir, uint64_t n, int varying = false, std::optional<shard::Key> key = {},
                   uint64_t target = 64 << 10) {
  shard::ShardSetOptions o;
  o.dir = dir;
  o.schema = TestSchema();
  o.target_size = target;
  o.writer.key = key;
  auto set = shard::ShardSetWriter::Create(o);
  EXPECT_TRUE(set.ok()) << set.status().ToString();
  for (uint64_t i = 0; i < n; ++i) {
    const size_t size = SizeOf(i, varying);
    shard::Record r{static_cast<int64_t>(i), shard::Tensor{DType::kUint8, {size}, DataOf(i, size)},
                    shard::Label{static_cast<uint32_t>(i % 10)}};
    EXPECT_TRUE((*set)->Add(r).ok());
  }
  auto infos = (*set)->Finish();
  EXPECT_TRUE(infos.ok()) << infos.status().ToString();
  Shards s;
  s.infos = *infos;
  for (auto& i : s.infos) s.paths.push_back(i.path);
  return s;
}

// Checks every sample of the batch against the record its index names.
void CheckBatch(const Batch& b, int varying) {
  const Column* id = b.Find("id");
  const Column* data = b.Find("data");
  const Column* label = b.Find("label");
  ASSERT_TRUE(id && data && label);
  ASSERT_EQ(id->dtype, DType::kInt64);
  ASSERT_EQ(label->dtype, DType::kInt64);
  const int64_t* ids = reinterpret_cast<const int64_t*>(b.data() + id->offset);
  const int64_t* labels = reinterpret_cast<const int64_t*>(b.data() + label->offset);
  for (size_t i = 0; i < b.size(); ++i) {
    const uint64_t rec = b.indices()[i];
    ASSERT_EQ(static_cast<uint64_t>(ids[i]), rec);
    ASSERT_EQ(static_cast<uint64_t>(labels[i]), rec % 10);
    const size_t n = SizeOf(rec, varying);
    std::string got;
    if (data->ragged) {
      const uint64_t* off = reinterpret_cast<const uint64_t*>(b.data() + data->offsets_offset);
      const int64_t* shapes = reinterpret_cast<const int64_t*>(b.data() + data->shapes_offset);
      ASSERT_EQ(static_cast<size_t>(shapes[i]), n);
      got.assign(reinterpret_cast<const char*>(b.data() + data->offset + off[i]), off[i + 1] - off[i]);
    } else {
      ASSERT_EQ(data->shape.size(), 2u);
      ASSERT_EQ(static_cast<size_t>(data->shape[1]), n);
      got.assign(reinterpret_cast<const char*>(b.data() + data->offset + i * n), n);
    }
    ASSERT_EQ(got, DataOf(rec, n)) << "record " << rec;
  }
}

struct Drained {
  std::vector<uint64_t> records;
  std::vector<LoaderState> states;  // after each batch
  uint64_t batches = 0;
};

Drained Drain(Loader& loader, const LoaderState& from, uint64_t max_batches = UINT64_MAX, int varying = false) {
  Drained d;
  EXPECT_TRUE(loader.Start(from).ok());
  while (d.batches < max_batches) {
    auto b = loader.Next();
    EXPECT_TRUE(b.ok()) << b.status().ToString();
    if (!b.ok() || *b == nullptr) break;
    CheckBatch(**b, varying);
    d.records.insert(d.records.end(), (*b)->indices().begin(), (*b)->indices().end());
    d.states.push_back((*b)->state_after());
    ++d.batches;
  }
  return d;
}

LoaderOptions Options(const Shards& s, uint64_t batch, uint32_t world = 1, uint32_t rank = 0, uint32_t workers = 1,
                      uint32_t worker = 0) {
  LoaderOptions o;
  o.shards = s.paths;
  o.batch_size = batch;
  o.seed = 42;
  o.world_size = world;
  o.rank = rank;
  o.num_workers = workers;
  o.worker_id = worker;
  o.prefetch_bytes = 32 << 20;
  o.queue_depth = 16;
  return o;
}

std::unique_ptr<Loader> OpenOrDie(const LoaderOptions& o) {
  auto l = Loader::Open(o);
  EXPECT_TRUE(l.ok()) << l.status().ToString();
  return l.ok() ? std::move(*l) : nullptr;
}

void ExpectEachOnce(std::vector<uint64_t> got, uint64_t n) {
  std::sort(got.begin(), got.end());
  ASSERT_EQ(got.size(), n);
  for (uint64_t i = 0; i < n; ++i) ASSERT_EQ(got[i], i);
}

// ---- shuffle ----

TEST(ShuffleTest, EveryModeIsAPermutation) {
  for (uint64_t n : {1ull, 2ull, 3ull, 17ull, 1000ull, 4096ull, 65539ull}) {
    for (ShuffleMode mode : {ShuffleMode::kNone, ShuffleMode::kGlobal, ShuffleMode::kBlock}) {
      ShuffleOptions o{.mode = mode, .block_records = 64, .window_blocks = 4};
      Shuffle s(n, 7, 3, o);
      std::vector<bool> seen(n);
      for (uint64_t p = 0; p < n; ++p) {
        uint64_t r = s.Position(p);
        ASSERT_LT(r, n);
        ASSERT_FALSE(seen[r]) << "n=" << n << " mode=" << int(mode);
        seen[r] = true;
      }
    }
  }
}

TEST(ShuffleTest, DeterministicPerSeedAndDifferentPerEpoch) {
  const uint64_t n = 10007;
  ShuffleOptions o;
  auto order = [&](uint64_t seed, uint64_t epoch) {
    Shuffle s(n, seed, epoch, o);
    std::vector<uint64_t> v;
    for (uint64_t p = 0; p < n; ++p) v.push_back(s.Position(p));
    return v;
  };
  EXPECT_EQ(order(1, 0), order(1, 0));
  EXPECT_NE(order(1, 0), order(1, 1));
  EXPECT_NE(order(1, 0), order(2, 0));
  // Looks shuffled: few fixed points and few records staying next to their neighbour.
  auto v = order(1, 0);
  uint64_t fixed = 0, adjacent = 0;
  for (uint64_t p = 0; p < n; ++p) {
    fixed += v[p] == p;
    if (p + 1 < n) adjacent += v[p + 1] == v[p] + 1;
  }
  EXPECT_LT(fixed, 10u);
  EXPECT_LT(adjacent, 10u);
}

TEST(ShuffleTest, BlockModeKeepsBlocksWithinAWindow) {
  const uint64_t n = 10000, s = 100, w = 4;
  Shuffle sh(n, 5, 0, ShuffleOptions{.mode = ShuffleMode::kBlock, .block_records = s, .window_blocks = w});
  for (uint64_t win = 0; win * s * w < n; ++win) {
    std::set<uint64_t> blocks;
    for (uint64_t p = win * s * w; p < std::min(n, (win + 1) * s * w); ++p) blocks.insert(sh.Position(p) / s);
    EXPECT_LE(blocks.size(), w);
  }
}

// ---- partition rule ----

TEST(PartitionTest, ExactlyOnceForManyShapes) {
  for (uint64_t n : {1ull, 5ull, 64ull, 101ull, 1000ull}) {
    for (uint64_t world : {1ull, 2ull, 3ull, 4ull, 7ull}) {
      for (uint64_t workers : {1ull, 2ull, 3ull}) {
        for (uint64_t batch : {1ull, 4ull, 10ull}) {
          std::vector<int> count(n);
          for (uint64_t r = 0; r < world; ++r) {
            for (uint64_t w = 0; w < workers; ++w) {
              Partition p{.n = n, .start = 0, .world = world, .rank = r, .workers = workers, .worker = w, .batch = batch};
              for (uint64_t k = 0; k < p.WorkerBatches(); ++k) {
                uint64_t b = p.RankBatch(k);
                for (uint64_t j = 0; j < p.BatchSamples(b); ++j) count[p.PositionOf(b * batch + j)]++;
              }
            }
          }
          for (uint64_t i = 0; i < n; ++i) ASSERT_EQ(count[i], 1) << n << " " << world << " " << workers << " " << batch;
        }
      }
    }
  }
}

// ---- loader ----

class LoaderTest : public ::testing::Test {
 protected:
  testing::TempDir dir_;
};

TEST_F(LoaderTest, ExactlyOnceOverRanksAndWorkers) {
  for (uint64_t n : {1ull, 97ull, 600ull}) {
    testing::TempDir dir;
    Shards s = WriteShards(dir.path(), n, /*varying=*/true);
    for (uint32_t world : {1u, 3u, 4u}) {
      for (uint32_t workers : {1u, 2u}) {
        for (uint64_t batch : {1ull, 16ull}) {
          std::vector<uint64_t> all;
          for (uint32_t r = 0; r < world; ++r) {
            for (uint32_t w = 0; w < workers; ++w) {
              auto l = OpenOrDie(Options(s, batch, world, r, workers, w));
              LoaderState st{42, 1, 0};
              Drained d = Drain(*l, st, UINT64_MAX, true);
              EXPECT_EQ(d.records.size(), l->SamplesFrom(st));
              EXPECT_EQ(d.batches, l->BatchesFrom(st));
              all.insert(all.end(), d.records.begin(), d.records.end());
            }
          }
          ExpectEachOnce(all, n);
        }
      }
    }
  }
}

TEST_F(LoaderTest, SameSeedSameOrderNewEpochNewOrder) {
  Shards s = WriteShards(dir_.path(), 500);
  auto a = OpenOrDie(Options(s, 8));
  auto b = OpenOrDie(Options(s, 8));
  auto e0 = Drain(*a, {42, 0, 0}).records;
  EXPECT_EQ(e0, Drain(*b, {42, 0, 0}).records);
  auto e1 = Drain(*a, {42, 1, 0}).records;
  EXPECT_NE(e0, e1);
  ExpectEachOnce(e1, 500);
  // The global order does not depend on the world size: ranks interleave into epoch 0's order.
  std::vector<std::vector<uint64_t>> per_rank;
  for (uint32_t r = 0; r < 3; ++r) per_rank.push_back(Drain(*OpenOrDie(Options(s, 8, 3, r)), {42, 0, 0}).records);
  for (uint64_t p = 0; p < 500; ++p) EXPECT_EQ(per_rank[p % 3][p / 3], e0[p]);
  EXPECT_FALSE(a->Start({7, 0, 0}).ok());  // another seed than the loader's
}

TEST_F(LoaderTest, MidEpochResumeIsExact) {
  Shards s = WriteShards(dir_.path(), 700, true);
  const uint32_t world = 2;
  std::vector<uint64_t> seen;
  LoaderState saved;
  for (uint32_t r = 0; r < world; ++r) {
    Drained d = Drain(*OpenOrDie(Options(s, 10, world, r)), {42, 2, 0}, 13, true);
    ASSERT_EQ(d.batches, 13u);
    seen.insert(seen.end(), d.records.begin(), d.records.end());
    saved = d.states.back();
  }
  EXPECT_EQ(saved.consumed, 13u * 10 * world);
  auto restored = LoaderState::FromJson(saved.ToJson());
  ASSERT_TRUE(restored.ok());
  ASSERT_EQ(*restored, saved);
  for (uint32_t r = 0; r < world; ++r) {
    Drained d = Drain(*OpenOrDie(Options(s, 10, world, r)), *restored, UINT64_MAX, true);
    seen.insert(seen.end(), d.records.begin(), d.records.end());
    EXPECT_EQ(d.states.back().consumed, 700u);
  }
  ExpectEachOnce(seen, 700);
}

TEST_F(LoaderTest, ElasticResumeFromFourRanksToThree) {
  Shards s = WriteShards(dir_.path(), 1000);
  std::vector<uint64_t> seen;
  LoaderState saved;
  // 4 ranks x 2 workers; the DataLoader takes worker batches round-robin, so after 6 batches
  // per rank every rank has consumed its batches 0..5.
  for (uint32_t r = 0; r < 4; ++r) {
    for (uint32_t w = 0; w < 2; ++w) {
      Drained d = Drain(*OpenOrDie(Options(s, 16, 4, r, 2, w)), {42, 0, 0}, 3);
      seen.insert(seen.end(), d.records.begin(), d.records.end());
      if (w == 1) saved = d.states.back();  // rank batch 5
    }
  }
  EXPECT_EQ(saved.consumed, 6u * 16 * 4);
  for (uint32_t r = 0; r < 3; ++r) {
    for (uint32_t w = 0; w < 3; ++w) {
      Drained d = Drain(*OpenOrDie(Options(s, 16, 3, r, 3, w)), saved);
      seen.insert(seen.end(), d.records.begin(), d.records.end());
    }
  }
  ExpectEachOnce(seen, 1000);
}

TEST_F(LoaderTest, DropLastAndPad) {
  Shards s = WriteShards(dir_.path(), 103);
  // drop_last: 3 ranks, batch 10 -> every rank gets 3 full batches, 90 distinct samples.
  {
    std::vector<uint64_t> all;
    for (uint32_t r = 0; r < 3; ++r) {
      auto o = Options(s, 10, 3, r);
      o.drop_last = true;
      Drained d = Drain(*OpenOrDie(o), {42, 0, 0});
      EXPECT_EQ(d.batches, 3u);
      EXPECT_EQ(d.records.size(), 30u);
      all.insert(all.end(), d.records.begin(), d.records.end());
    }
    std::set<uint64_t> distinct(all.begin(), all.end());
    EXPECT_EQ(distinct.size(), 90u);
  }
  // pad: every rank gets ceil(103 / 4) = 26 samples; all 103 appear, 1 repeated.
  {
    std::vector<uint64_t> all;
    for (uint32_t r = 0; r < 4; ++r) {
      auto o = Options(s, 10, 4, r);
      o.pad = true;
      Drained d = Drain(*OpenOrDie(o), {42, 0, 0});
      EXPECT_EQ(d.records.size(), 26u);
      EXPECT_EQ(d.batches, 3u);
      all.insert(all.end(), d.records.begin(), d.records.end());
    }
    std::set<uint64_t> distinct(all.begin(), all.end());
    EXPECT_EQ(distinct.size(), 103u);
    EXPECT_EQ(all.size(), 104u);
  }
}

TEST_F(LoaderTest, BlockShuffleAndCoalescedReads) {
  Shards s = WriteShards(dir_.path(), 2000);
  auto o = Options(s, 64);
  o.shuffle = {.mode = ShuffleMode::kBlock, .block_records = 128, .window_blocks = 2};
  auto l = OpenOrDie(o);
  Drained d = Drain(*l, {42, 0, 0});
  ExpectEachOnce(d.records, 2000);
  // 300-byte records in 4 KiB blocks: records of a block arrive together and are read as one.
  LoaderStats st = l->stats();
  EXPECT_LT(st.reads, 2000u / 4);
}

TEST_F(LoaderTest, EncryptedShards) {
  shard::Key key{};
  key[0] = 9;
  Shards s = WriteShards(dir_.path(), 300, true, key);
  auto o = Options(s, 32);
  EXPECT_FALSE(Loader::Open(o).ok());  // no key
  o.key = key;
  Drained d = Drain(*OpenOrDie(o), {42, 0, 0}, UINT64_MAX, true);
  ExpectEachOnce(d.records, 300);
}

// Flips one byte inside record `index` of the first shard.
void Damage(const Shards& s, uint64_t index) {
  auto reader = shard::ShardReader::Open(s.paths[0], {});
  ASSERT_TRUE(reader.ok());
  shard::RecordLocation loc = (*reader)->Locate(index);
  int fd = ::open(s.paths[0].c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  uint8_t byte;
  const off_t at = static_cast<off_t>(loc.offset + loc.length / 2);
  ASSERT_EQ(::pread(fd, &byte, 1, at), 1);
  byte ^= 0x40;
  ASSERT_EQ(::pwrite(fd, &byte, 1, at), 1);
  ::close(fd);
}

TEST_F(LoaderTest, CorruptRecordIsAnErrorOrSkippedAndCounted) {
  Shards s = WriteShards(dir_.path(), 200);
  Damage(s, 5);
  {
    auto l = OpenOrDie(Options(s, 16));
    ASSERT_TRUE(l->Start({42, 0, 0}).ok());
    Status err;
    for (;;) {
      auto b = l->Next();
      if (!b.ok()) {
        err = b.status();
        break;
      }
      ASSERT_NE(*b, nullptr) << "the damaged record was never reported";
    }
    EXPECT_EQ(err.code(), StatusCode::kCorruption);
    EXPECT_NE(err.message().find(s.paths[0]), std::string::npos) << err.message();
    EXPECT_NE(err.message().find("record 5:"), std::string::npos) << err.message();
    EXPECT_FALSE(l->Next().ok());  // stays failed until the next Start
    std::vector<uint64_t> five{5};
    EXPECT_EQ(l->Get(five).status().code(), StatusCode::kCorruption);
  }
  {
    auto o = Options(s, 16);
    o.skip_corrupt = true;
    auto l = OpenOrDie(o);
    Drained d = Drain(*l, {42, 0, 0});
    EXPECT_EQ(d.records.size(), 199u);
    EXPECT_EQ(std::count(d.records.begin(), d.records.end(), 5u), 0);
    EXPECT_EQ(l->stats().skipped, 1u);
  }
}

TEST_F(LoaderTest, MemoryBudgetIsHonoured) {
  Shards s = WriteShards(dir_.path(), 3000, true, {}, 1 << 20);
  auto o = Options(s, 8);
  o.prefetch_bytes = 4096;  // cannot hold even two batches
  auto bad = Loader::Open(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  o.prefetch_bytes = 2 << 20;
  auto l = OpenOrDie(o);
  ASSERT_TRUE(l->Start({42, 0, 0}).ok());
  // A slow consumer: the loader fills its budget and must stop there.
  uint64_t n = 0;
  for (;;) {
    auto b = l->Next();
    ASSERT_TRUE(b.ok());
    if (*b == nullptr) break;
    n += (*b)->size();
    if (n < 200) usleep(2000);
  }
  EXPECT_EQ(n, 3000u);
  LoaderStats st = l->stats();
  EXPECT_LE(st.peak_buffered_bytes, o.prefetch_bytes);
  EXPECT_GT(st.peak_buffered_bytes, o.prefetch_bytes / 2);  // it did prefetch
}

// The budget is checked against batches of records of the average size: a few records far
// above it do not make Open refuse a budget that the batches fit; a batch that needs more
// than the read buffers grows them (with a warning) and the epoch is read exactly once.
TEST_F(LoaderTest, ALongTailOfRecordSizesGrowsTheBuffersForTheBatchThatNeedsIt) {
  Shards s = WriteShards(dir_.path(), 2000, kLongTail, {}, 4 << 20);
  auto o = Options(s, 8);
  o.prefetch_bytes = 1 << 20;  // 8 x 600 KiB would need 5 MiB; batches of the average need 0.2 MiB
  auto l = OpenOrDie(o);
  Drained d = Drain(*l, {42, 0, 0}, UINT64_MAX, kLongTail);
  std::vector<uint64_t> sorted = d.records;
  std::sort(sorted.begin(), sorted.end());
  ASSERT_EQ(sorted.size(), 2000u);
  for (uint64_t i = 0; i < 2000; ++i) ASSERT_EQ(sorted[i], i);
  EXPECT_GT(l->stats().peak_buffered_bytes, 600u << 10);
  // The next epoch reuses the grown buffers.
  Drained next = Drain(*l, {42, 1, 0}, UINT64_MAX, kLongTail);
  EXPECT_EQ(next.records.size(), 2000u);
}

// With shared_memory each batch lives in a memfd of its own, which another mapping sees as
// the batch, and which outlives the batch for whoever mapped it (a DataLoader's main process).
TEST_F(LoaderTest, SharedMemoryBatchesCanBeMappedElsewhere) {
  Shards s = WriteShards(dir_.path(), 300, true);
  auto o = Options(s, 16);
  o.shared_memory = true;
  auto l = OpenOrDie(o);
  ASSERT_TRUE(l->Start({42, 0, 0}).ok());
  uint64_t n = 0;
  for (;;) {
    auto b = l->Next();
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    if (*b == nullptr) break;
    CheckBatch(**b, true);
    ASSERT_GE((*b)->shared_fd(), 0);
    const size_t len = (*b)->nbytes();
    void* other = mmap(nullptr, len, PROT_READ, MAP_SHARED, (*b)->shared_fd(), 0);
    ASSERT_NE(other, MAP_FAILED);
    const std::string before(reinterpret_cast<const char*>((*b)->data()), len);
    n += (*b)->size();
    b->reset();  // the batch is gone; the other mapping still holds its bytes
    EXPECT_EQ(std::string(static_cast<const char*>(other), len), before);
    munmap(other, len);
  }
  EXPECT_EQ(n, 300u);
  o.shared_memory = false;
  auto plain = OpenOrDie(o);
  ASSERT_TRUE(plain->Start({42, 0, 0}).ok());
  auto b = plain->Next();
  ASSERT_TRUE(b.ok() && *b);
  EXPECT_EQ((*b)->shared_fd(), -1);
}

// Each shared-memory batch holds a descriptor until consumed, so a consumer that pauses does
// not let the loader open thousands of them, however small the batches and large the budget.
TEST_F(LoaderTest, SharedMemoryBatchesPreparedAheadAreBounded) {
  Shards s = WriteShards(dir_.path(), 2000);
  auto o = Options(s, 1);
  o.shared_memory = true;
  auto count_fds = [] {
    size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) n += e.exists() ? 1 : 0;
    return n;
  };
  const size_t before = count_fds();
  auto l = OpenOrDie(o);
  ASSERT_TRUE(l->Start({42, 0, 0}).ok());
  usleep(300 * 1000);  // the loader prepares what it may
  EXPECT_LE(count_fds(), before + 2 * s.paths.size() + 64 + 8);  // shard files, readers, the ring
  uint64_t n = 0;
  for (;;) {
    auto b = l->Next();
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    if (*b == nullptr) break;
    n += (*b)->size();
  }
  EXPECT_EQ(n, 2000u);
}

TEST_F(LoaderTest, BufferedFallbackWhenODirectIsRefused) {
  Shards s = WriteShards(dir_.path(), 400, true);
  RefuseDirectIoForTesting(true);
  auto l = OpenOrDie(Options(s, 32));
  RefuseDirectIoForTesting(false);
  EXPECT_FALSE(l->stats().direct_io);
  ExpectEachOnce(Drain(*l, {42, 0, 0}, UINT64_MAX, true).records, 400);
  auto direct = OpenOrDie(Options(s, 32));
  EXPECT_TRUE(direct->stats().direct_io);
}

TEST_F(LoaderTest, RandomAccessGet) {
  Shards s = WriteShards(dir_.path(), 250, true);
  ASSERT_GT(s.paths.size(), 1u);
  auto l = OpenOrDie(Options(s, 4));
  std::vector<uint64_t> want{249, 0, 17, 17, 130};
  auto b = l->Get(want);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(std::vector<uint64_t>((*b)->indices().begin(), (*b)->indices().end()), want);
  CheckBatch(**b, true);
  std::vector<uint64_t> out{250};
  EXPECT_EQ(l->Get(out).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(LoaderTest, RestartMidIterationAndStateJson) {
  Shards s = WriteShards(dir_.path(), 300);
  auto l = OpenOrDie(Options(s, 16));
  ASSERT_TRUE(l->Start({42, 0, 0}).ok());
  ASSERT_TRUE(l->Next().ok());
  // Starting again while reads are in flight drops them and begins anew.
  ExpectEachOnce(Drain(*l, {42, 1, 0}).records, 300);
  EXPECT_FALSE(LoaderState::FromJson("{\"seed\":1}").ok());
  EXPECT_FALSE(LoaderState::FromJson("[").ok());
  EXPECT_FALSE(LoaderState::FromJson("{\"seed\":1,\"epoch\":-1,\"consumed\":0}").ok());
  LoaderState big{UINT64_MAX, 3, 12345};
  EXPECT_EQ(*LoaderState::FromJson(big.ToJson()), big);
}

}  // namespace
}  // namespace strata::loader
