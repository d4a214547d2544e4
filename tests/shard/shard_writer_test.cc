// The shard writer's output pipeline (staging buffers, background writes) and its write path
// under faults: failed and torn writes, a full disk, and crashes at every step of Finish.
#include <filesystem>
#include <random>

#include <gtest/gtest.h>

#include "base/endian.h"
#include "base/fault_env.h"
#include "shard/format.h"
#include "shard/staging.h"
#include "shard/writer.h"
#include "strata/shard.h"
#include "testutil/testutil.h"

namespace strata::shard {
namespace {

using strata::testing::RandomBytes;
using strata::testing::ReadFile;
using strata::testing::TempDir;

Schema MixedSchema() {
  Field image;
  image.name = "image";
  image.type = FieldType::kTensor;
  image.dtype = DType::kUint8;
  image.shape = {-1};
  Field caption;
  caption.name = "caption";
  caption.type = FieldType::kString;
  Field label;
  label.name = "label";
  label.type = FieldType::kLabel;
  return Schema{{image, caption, label}};
}

// Sizes that land on every case of the placement rule and of the staging buffers: tiny
// records sharing blocks, records of exactly a block, records larger than any buffer.
std::vector<Record> MixedRecords(uint64_t seed, size_t count) {
  std::mt19937_64 rng(seed);
  std::vector<Record> out;
  for (size_t i = 0; i < count; ++i) {
    size_t size;
    switch (rng() % 6) {
      case 0: size = rng() % 64; break;
      case 1: size = 4096 - 8 - 4 - 4 - rng() % 3; break;  // around one block with the prefixes
      case 2: size = 40000 + rng() % 100000; break;         // larger than the small test buffers
      default: size = rng() % 5000; break;
    }
    out.push_back(Record{Tensor{DType::kUint8, {size}, RandomBytes(seed * 1000 + i, size)},
                         std::string(rng() % 20, 'c'), Label{static_cast<uint32_t>(rng())}});
  }
  return out;
}

// The file the format says an unencrypted shard of `records` must be, built from the format's
// own primitives and nothing of the writer.
std::string ReferenceShard(const Schema& schema, const ShardId& id, uint32_t number, uint64_t first_record,
                           const std::vector<Record>& records) {
  Header h;
  h.schema = schema;
  h.id = id;
  h.number = number;
  h.first_record = first_record;
  std::string out = BuildHeader(&h, nullptr);
  std::vector<IndexEntry> entries;
  std::string payload;
  for (const Record& r : records) {
    EXPECT_TRUE(EncodeRecord(schema, r, &payload).ok());
    uint64_t offset = PlaceRecord(out.size(), payload.size());
    out.resize(offset, '\0');
    out += payload;
    entries.push_back({offset, static_cast<uint32_t>(payload.size()), Crc32c(AsBytes(payload))});
  }
  uint64_t index_offset = out.size();
  return out + BuildFooter(id, entries, index_offset, nullptr);
}

TEST(ShardWriterTest, OutputIsByteExactForEveryStagingSize) {
  TempDir dir;
  const Schema schema = MixedSchema();
  const std::vector<Record> records = MixedRecords(5, 400);
  const StagingOptions sizes[] = {{4096, 2}, {8192, 2}, {64 << 10, 3}, {1 << 20, 4}, StagingOptions{}};
  int n = 0;
  for (const StagingOptions& staging : sizes) {
    for (bool encoded : {false, true}) {
      std::string path = dir / ("s" + std::to_string(n++) + ".shard");
      auto w = NewShardWriter(path, schema, {}, 3, 1000, staging);
      ASSERT_TRUE(w.ok()) << w.status().ToString();
      std::string payload;
      for (const Record& r : records) {
        if (encoded) {
          ASSERT_TRUE(EncodeRecord(schema, r, &payload).ok());
          ASSERT_TRUE((*w)->AddEncoded(AsBytes(payload)).ok());
        } else {
          ASSERT_TRUE((*w)->Add(r).ok());
        }
      }
      const uint64_t predicted = (*w)->Size();
      auto info = (*w)->Finish();
      ASSERT_TRUE(info.ok()) << info.status().ToString();
      std::string got = ReadFile(path);
      EXPECT_EQ(info->bytes, got.size());
      EXPECT_EQ(predicted, got.size());
      std::string want = ReferenceShard(schema, info->id, 3, 1000, records);
      ASSERT_EQ(got.size(), want.size()) << staging.buffer_size;
      EXPECT_TRUE(got == want) << "buffer " << staging.buffer_size << " x " << staging.buffers;
      EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
    }
  }
}

TEST(ShardWriterTest, EncryptedShardsRoundTripWithSmallBuffers) {
  TempDir dir;
  Key key{};
  key[0] = 9;
  WriterOptions options;
  options.key = key;
  const std::vector<Record> records = MixedRecords(6, 150);
  auto w = NewShardWriter(dir / "e.shard", MixedSchema(), options, 0, 0, {8192, 2});
  ASSERT_TRUE(w.ok());
  for (const Record& r : records) ASSERT_TRUE((*w)->Add(r).ok());
  ASSERT_TRUE((*w)->Finish().ok());
  ReaderOptions ro;
  ro.key = key;
  auto r = ShardReader::Open(dir / "e.shard", ro);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE((*r)->Verify().ok());
  for (uint64_t i = 0; i < records.size(); ++i) {
    auto got = (*r)->Read(i);
    ASSERT_TRUE(got.ok()) << i;
    EXPECT_EQ(*got, records[i]) << i;
  }
}

TEST(ShardWriterTest, AnInvalidRecordWritesNothing) {
  TempDir dir;
  auto w = NewShardWriter(dir / "a.shard", MixedSchema(), {}, 0, 0, {4096, 2});
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Add(MixedRecords(1, 1)[0]).ok());
  uint64_t size = (*w)->Size();
  Record bad{Bytes{"x"}, std::string("c"), Label{1}};
  EXPECT_EQ((*w)->Add(bad).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*w)->Size(), size);
  EXPECT_EQ((*w)->record_count(), 1u);
  ASSERT_TRUE((*w)->Finish().ok());
  EXPECT_EQ((*w)->Add(MixedRecords(1, 1)[0]).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ((*w)->Finish().status().code(), StatusCode::kFailedPrecondition);
}

// ---- faults ----

// The shard is either absent under its final name or whole and valid; never anything else.
void ExpectAbsentOrWhole(const std::string& path, size_t records) {
  if (!std::filesystem::exists(path)) return;
  auto r = ShardReader::Open(path, {});
  ASSERT_TRUE(r.ok()) << "partial shard visible: " << r.status().ToString();
  EXPECT_EQ((*r)->record_count(), records);
  EXPECT_TRUE((*r)->Verify().ok());
}

// Writes `records` through `env` with small buffers (so several background writes happen);
// the first error of Create, Add or Finish.
Status WriteThrough(Env* env, const std::string& path, const std::vector<Record>& records) {
  WriterOptions options;
  options.env = env;
  auto w = NewShardWriter(path, MixedSchema(), options, 0, 0, {16 << 10, 2});
  if (!w.ok()) return w.status();
  for (const Record& r : records) STRATA_RETURN_IF_ERROR((*w)->Add(r));
  return (*w)->Finish().status();
}

TEST(ShardWriterFaultTest, FailedWritesAtEveryStepLeaveNoShard) {
  const std::vector<Record> records = MixedRecords(7, 60);
  for (bool torn : {false, true}) {
    for (int64_t n = 0;; ++n) {
      TempDir dir;
      FaultEnv env(Env::Default(), 100 + n);
      env.SetTornWrites(torn);
      env.FailWritesAfter(n);
      const std::string path = dir / "a.shard";
      Status s = WriteThrough(&env, path, records);
      if (env.faults_injected() == 0) {
        // Past the last mutating call: the shard was written whole.
        ASSERT_TRUE(s.ok()) << s.ToString();
        ExpectAbsentOrWhole(path, records.size());
        EXPECT_TRUE(std::filesystem::exists(path));
        EXPECT_GT(n, 5);
        break;
      }
      if (s.ok()) {
        // Every mutating call's failure reaches the caller, the last directory sync's included.
        ADD_FAILURE() << "a fault was injected at step " << n << " but the writer reported success";
        continue;
      }
      EXPECT_EQ(s.code(), StatusCode::kIOError) << s.ToString();
      EXPECT_NE(s.message().find("a.shard"), std::string::npos) << s.ToString();
      EXPECT_NE(s.message().find("injected fault"), std::string::npos) << s.ToString();
      ExpectAbsentOrWhole(path, records.size());
      // A later writer of the same path is not in the way of any leftover.
      env.FailWritesAfter(-1);
      ASSERT_TRUE(WriteThrough(&env, path, records).ok()) << "step " << n;
      ExpectAbsentOrWhole(path, records.size());
    }
  }
}

TEST(ShardWriterFaultTest, AFullDiskIsReportedAsSuchAndLeavesNoShard) {
  const std::vector<Record> records = MixedRecords(8, 60);
  TempDir probe;
  ASSERT_TRUE(WriteThrough(Env::Default(), probe / "p.shard", records).ok());
  const int64_t full = static_cast<int64_t>(std::filesystem::file_size(probe / "p.shard"));
  for (int64_t limit : {int64_t{0}, int64_t{100}, int64_t{4096}, int64_t{20000}, full / 2, full - 1}) {
    for (bool torn : {false, true}) {
      TempDir dir;
      FaultEnv env(Env::Default(), static_cast<uint64_t>(limit) + torn);
      env.SetSpaceLimit(limit);
      env.SetTornWrites(torn);
      const std::string path = dir / "a.shard";
      Status s = WriteThrough(&env, path, records);
      ASSERT_FALSE(s.ok()) << limit;
      EXPECT_EQ(s.code(), StatusCode::kNoSpace) << s.ToString();
      EXPECT_NE(s.message().find("a.shard"), std::string::npos) << s.ToString();
      EXPECT_FALSE(std::filesystem::exists(path));
      EXPECT_FALSE(std::filesystem::exists(path + ".tmp")) << "the temporary file is removed";
    }
  }
  TempDir dir;
  FaultEnv env(Env::Default());
  env.SetSpaceLimit(full);
  EXPECT_TRUE(WriteThrough(&env, dir / "a.shard", records).ok()) << "exactly enough space";
}

TEST(ShardWriterFaultTest, ACrashAtAnyStepLeavesNoPartialShard) {
  // Crash (drop every unsynced byte and entry) after n mutating calls have succeeded: before
  // the rename the shard is absent; from the directory sync on, it is whole.
  const std::vector<Record> records = MixedRecords(9, 40);
  bool saw_absent = false, saw_whole = false;
  for (int64_t n = 0;; ++n) {
    TempDir dir;
    FaultEnv env(Env::Default(), 7);
    env.FailWritesAfter(n);
    const std::string path = dir / "a.shard";
    Status s = WriteThrough(&env, path, records);
    const bool done = env.faults_injected() == 0;
    ASSERT_TRUE(env.SimulateCrash().ok());
    ExpectAbsentOrWhole(path, records.size());
    if (std::filesystem::exists(path)) saw_whole = true;
    else saw_absent = true;
    if (s.ok()) {
      EXPECT_TRUE(std::filesystem::exists(path)) << "a shard reported finished must survive a crash";
    }
    if (done) break;
  }
  EXPECT_TRUE(saw_absent);
  EXPECT_TRUE(saw_whole);
}

TEST(ShardWriterFaultTest, ACrashBeforeFinishLeavesNothingUnderTheFinalName) {
  TempDir dir;
  FaultEnv env(Env::Default(), 3);
  const std::string path = dir / "a.shard";
  const std::vector<Record> records = MixedRecords(10, 80);
  WriterOptions options;
  options.env = &env;
  {
    auto w = NewShardWriter(path, MixedSchema(), options, 0, 0, {16 << 10, 2});
    ASSERT_TRUE(w.ok());
    for (const Record& r : records) ASSERT_TRUE((*w)->Add(r).ok());
    ASSERT_TRUE(env.SimulateCrash().ok());  // power cut with the writer mid-way
    // The writer's handle is stale now: finishing fails and publishes nothing.
    auto info = (*w)->Finish();
    EXPECT_FALSE(info.ok());
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  ASSERT_TRUE(WriteThrough(&env, path, records).ok());
  ExpectAbsentOrWhole(path, records.size());
  EXPECT_TRUE(std::filesystem::exists(path));
}

TEST(ShardWriterFaultTest, ASetStopsAtTheFirstFailure) {
  TempDir dir;
  FaultEnv env(Env::Default(), 11);
  ShardSetOptions options;
  options.dir = dir / "set";
  options.schema = MixedSchema();
  options.target_size = 64 << 10;
  options.writer.env = &env;
  auto set = ShardSetWriter::Create(options);
  ASSERT_TRUE(set.ok());
  const std::vector<Record> records = MixedRecords(12, 120);
  env.FailWritesAfter(40);
  Status s;
  for (const Record& r : records) {
    s = (*set)->Add(r);
    if (!s.ok()) break;
  }
  if (s.ok()) s = (*set)->Finish().status();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kIOError);
  // Shards finished before the failure are whole; the one being written is not visible.
  for (const auto& e : std::filesystem::directory_iterator(dir / "set")) {
    if (e.path().extension() != ".shard") continue;
    auto r = ShardReader::Open(e.path(), {});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_TRUE((*r)->Verify().ok());
  }
}

// ---- the staging pipeline alone ----

class RecordingFile final : public WritableFile {
 public:
  explicit RecordingFile(std::string* out, std::vector<size_t>* calls) : out_(out), calls_(calls) {}
  Status Append(std::span<const uint8_t> data) override {
    out_->append(reinterpret_cast<const char*>(data.data()), data.size());
    calls_->push_back(data.size());
    return Status::OK();
  }
  Status Sync() override { return Status::OK(); }
  Status Close() override { return Status::OK(); }

 private:
  std::string* out_;
  std::vector<size_t>* calls_;
};

TEST(StagedOutputTest, HandsOverWholeBlocksInOrder) {
  std::string written, want;
  std::vector<size_t> calls;
  {
    StagedOutput out(std::make_unique<RecordingFile>(&written, &calls), "t", {8192, 2});
    std::mt19937_64 rng(1);
    for (int i = 0; i < 500; ++i) {
      std::string piece = RandomBytes(i, rng() % 3 == 0 ? rng() % 30000 : rng() % 700);
      ASSERT_TRUE(out.Append(AsBytes(piece)).ok());
      want += piece;
    }
    EXPECT_EQ(out.size(), want.size());
    ASSERT_TRUE(out.Finish().ok());
    EXPECT_EQ(out.Append(AsBytes("x")).code(), StatusCode::kFailedPrecondition);
  }
  EXPECT_TRUE(written == want);
  ASSERT_FALSE(calls.empty());
  for (size_t i = 0; i + 1 < calls.size(); ++i) EXPECT_EQ(calls[i] % 4096, 0u) << i;
}

TEST(StagedOutputTest, AbandonedOutputStopsCleanly) {
  std::string written;
  std::vector<size_t> calls;
  StagedOutput out(std::make_unique<RecordingFile>(&written, &calls), "t", {4096, 2});
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(out.Append(AsBytes(RandomBytes(i, 3000))).ok());
  // No Finish: the destructor drops what is queued and stops the thread (a hang or a leak
  // here fails the test, the latter under ASan).
}

}  // namespace
}  // namespace strata::shard
