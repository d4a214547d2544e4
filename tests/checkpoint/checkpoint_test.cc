// Checkpoints: bit-exact round trips, async errors, resharding, deduplication, damage detection
// with fallback, a full disk, and retention.
#include "strata/checkpoint.h"

#include <sys/resource.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "base/fault_env.h"
#include "strata/lake.h"
#include "testutil/testutil.h"

namespace strata::testing {
namespace {

namespace fs = std::filesystem;
constexpr const char* kPass = "checkpoint test passphrase";

// A tensor the test owns.
struct Tensor {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<uint64_t> shape;
  std::string bytes;
  TensorView View() const { return {name, dtype, shape, bytes.data(), bytes.size(), {}, {}}; }
};

Tensor MakeTensor(std::string name, DType dtype, std::vector<uint64_t> shape, uint64_t seed) {
  uint64_t n = DTypeSize(dtype);
  for (auto d : shape) n *= d;
  return {std::move(name), dtype, std::move(shape), RandomBytes(seed, n)};
}

uint64_t PackBytes(const std::string& repo) {
  uint64_t n = 0;
  for (auto& e : fs::recursive_directory_iterator(repo)) {
    if (e.is_regular_file() && e.path().string().find("/packs/") != std::string::npos) n += e.file_size();
  }
  return n;
}

std::vector<std::string> PackFiles(const std::string& repo) {
  std::vector<std::string> out;
  for (auto& e : fs::recursive_directory_iterator(repo)) {
    if (e.is_regular_file() && e.path().string().find("/packs/") != std::string::npos) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_ / "repo";
    OpenOptions o;
    o.env = &env_;
    o.threads = 2;
    auto r = Repository::Create(path_, kPass, FastInitOptions(), o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    repo_ = std::move(*r);
  }

  std::unique_ptr<Checkpointer> Open(const std::string& run, CheckpointerOptions o = {}) {
    if (!o.threads) o.threads = 2;
    if (o.chunk_bytes == (4u << 20)) o.chunk_bytes = 256 << 10;  // several chunks per tensor
    auto c = Checkpointer::Open(repo_.get(), run, o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(*c) : nullptr;
  }

  void Save(Checkpointer* c, int64_t step, const std::vector<Tensor>& tensors, std::map<std::string, double> metrics = {}) {
    SaveRequest r;
    r.step = step;
    for (const auto& t : tensors) r.tensors.push_back(t.View());
    r.metrics = std::move(metrics);
    ASSERT_TRUE(c->Save(r).ok());
  }

  void ExpectLoads(const std::string& run, int64_t step, const std::vector<Tensor>& want) {
    auto r = CheckpointReader::Open(repo_.get(), run, step);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ((*r)->info().tensors.size(), want.size());
    for (const auto& t : want) {
      std::string got(t.bytes.size(), '\0');
      Status s = (*r)->ReadTensor(t.name, {reinterpret_cast<uint8_t*>(got.data()), got.size()});
      ASSERT_TRUE(s.ok()) << s.ToString();
      EXPECT_TRUE(got == t.bytes) << "tensor " << t.name << " differs";
    }
    // All at once, in parallel (one work item per 256 KiB chunk: large tensors are split).
    std::vector<std::string> got(want.size());
    std::vector<TensorBuffer> buffers;
    for (size_t i = 0; i < want.size(); ++i) {
      got[i].assign(want[i].bytes.size(), '\0');
      buffers.push_back({want[i].name, {reinterpret_cast<uint8_t*>(got[i].data()), got[i].size()}});
    }
    Status s = (*r)->ReadTensors(buffers);
    ASSERT_TRUE(s.ok()) << s.ToString();
    for (size_t i = 0; i < want.size(); ++i) EXPECT_TRUE(got[i] == want[i].bytes) << "tensor " << want[i].name << " differs (batch)";
  }

  TempDir dir_;
  FaultEnv env_{Env::Default()};
  std::string path_;
  std::unique_ptr<Repository> repo_;
};

TEST_F(CheckpointTest, RoundTripIsBitExact) {
  std::vector<Tensor> model = {
      MakeTensor("embed.weight", DType::kF32, {1000, 130}, 1),  // not a multiple of the chunk size
      MakeTensor("layer.0.weight", DType::kBF16, {300, 300}, 2),
      MakeTensor("layer.0.bias", DType::kF16, {300}, 3),
      MakeTensor("step_count", DType::kI64, {}, 4),  // a scalar
      MakeTensor("empty", DType::kU8, {0, 5}, 5),
      MakeTensor("mask", DType::kBool, {7, 3, 2}, 6),
  };
  auto c = Open("rt");
  // The request reads from `scratch`, which the caller overwrites as soon as Save returns.
  Tensor scratch = model[0];
  SaveRequest r;
  r.step = 100;
  r.tensors.push_back(scratch.View());
  for (size_t i = 1; i < model.size(); ++i) r.tensors.push_back(model[i].View());
  std::string opt = RandomBytes(7, 300000), rng = "rng-state", loader = R"({"epoch":3,"position":1234})";
  r.states = {{"optimizer", opt}, {"rng", rng}, {"loader", loader}};
  r.meta = {{"note", "first"}};
  r.metrics = {{"loss", 0.5}};
  ASSERT_TRUE(c->Save(r).ok());
  std::memset(scratch.bytes.data(), 0, scratch.bytes.size());
  ASSERT_TRUE(c->Wait().ok());

  ExpectLoads("rt", 100, model);
  auto rd = CheckpointReader::Open(repo_.get(), "rt");
  ASSERT_TRUE(rd.ok());
  EXPECT_EQ((*rd)->info().step, 100);
  EXPECT_EQ((*rd)->info().meta.at("note"), "first");
  EXPECT_EQ((*rd)->info().metrics.at("loss"), 0.5);
  EXPECT_EQ(*(*rd)->ReadState("optimizer"), opt);
  EXPECT_EQ(*(*rd)->ReadState("rng"), rng);
  EXPECT_EQ(*(*rd)->ReadState("loader"), loader);
  EXPECT_TRUE((*rd)->Verify().ok());
  EXPECT_EQ((*rd)->ReadState("nope").status().code(), StatusCode::kNotFound);
  // Rows of a tensor.
  std::string rows(10 * 130 * 4, '\0');
  ASSERT_TRUE((*rd)->ReadRows("embed.weight", 500, 510, {reinterpret_cast<uint8_t*>(rows.data()), rows.size()}).ok());
  EXPECT_EQ(rows, model[0].bytes.substr(500 * 130 * 4, rows.size()));
  // A wrong size is refused, not truncated.
  std::string small(8, '\0');
  EXPECT_EQ((*rd)->ReadTensor("embed.weight", {reinterpret_cast<uint8_t*>(small.data()), small.size()}).code(),
            StatusCode::kInvalidArgument);

  // Listed through the runs API, and the run exists.
  auto runs = Runs::Open(repo_.get());
  ASSERT_TRUE(runs.ok());
  auto list = (*runs)->Checkpoints("rt");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].step, 100);
  EXPECT_EQ((*list)[0].metrics.at("loss"), 0.5);
}

TEST_F(CheckpointTest, BadRequestsAreRefused) {
  auto c = Open("bad");
  Tensor t = MakeTensor("w", DType::kF32, {4, 4}, 1);
  SaveRequest r;
  r.step = 1;
  r.tensors = {t.View()};
  r.tensors[0].bytes = 60;
  EXPECT_EQ(c->Save(r).code(), StatusCode::kInvalidArgument);
  r.tensors = {t.View(), t.View()};
  EXPECT_EQ(c->Save(r).code(), StatusCode::kInvalidArgument);  // repeated name
  r.tensors = {t.View()};
  r.step = -1;
  EXPECT_EQ(c->Save(r).code(), StatusCode::kInvalidArgument);
  r.step = 1;
  ASSERT_TRUE(c->Save(r).ok());
  ASSERT_TRUE(c->Wait().ok());
  // The same step again: the error surfaces on the next call.
  ASSERT_TRUE(c->Save(r).ok());
  Status s = c->Wait();
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists) << s.ToString();
  EXPECT_TRUE(c->Wait().ok());  // returned once
  EXPECT_EQ(Checkpointer::Open(repo_.get(), "bad name").status().code(), StatusCode::kInvalidArgument);
}

TEST_F(CheckpointTest, AsyncSaveStallsOnlyForTheCopyAndCallsBack) {
  std::vector<Tensor> model;
  for (int i = 0; i < 8; ++i) model.push_back(MakeTensor("t" + std::to_string(i), DType::kF32, {256, 1024}, 10 + i));
  std::mutex mu;
  std::vector<std::pair<int64_t, bool>> done;
  CheckpointerOptions o;
  o.max_in_flight = 2;
  o.on_complete = [&](const Status& s, const CheckpointInfo& info) {
    std::lock_guard<std::mutex> l(mu);
    done.push_back({info.step, s.ok()});
  };
  auto c = Open("async", o);
  for (int step = 1; step <= 4; ++step) {
    model[step].bytes = RandomBytes(100 + step, model[step].bytes.size());
    Save(c.get(), step, model);
  }
  ASSERT_TRUE(c->Wait().ok());
  ASSERT_EQ(done.size(), 4u);
  for (const auto& [step, ok] : done) EXPECT_TRUE(ok) << step;
  ExpectLoads("async", 4, model);
}

// Many small tensors (and one spanning several chunks, its last one partial) through a staging
// buffer of two slots: small chunks share a slot, slots are reused while the workers store
// them, and every byte of every save round-trips.
TEST_F(CheckpointTest, SmallTensorsShareStagingSlots) {
  std::vector<Tensor> model;
  for (int i = 0; i < 300; ++i) {
    model.push_back(MakeTensor("s" + std::to_string(i), DType::kF32, {uint64_t(1 + i * 37 % 1000)}, 100 + i));
  }
  model.push_back(MakeTensor("big", DType::kF32, {3, 100001}, 7));
  // Last chunks of 150 and 100 KiB in turn: first fit over several open slots pairs them.
  for (int i = 0; i < 40; ++i) {
    model.push_back(MakeTensor("m" + std::to_string(i), DType::kU8, {uint64_t((i % 4 < 2 ? 150 : 100) << 10)}, 500 + i));
  }
  CheckpointerOptions o;
  o.chunk_bytes = 256 << 10;
  // Two slots (one open shared slot at a time), then sixteen (four open at a time).
  for (uint64_t slots : {2, 16}) {
    o.staging_bytes = slots * o.chunk_bytes;
    std::string run = "small" + std::to_string(slots);
    auto c = Open(run, o);
    for (int step = 1; step <= 3; ++step) {
      for (size_t i = step; i < model.size(); i += 7) model[i].bytes = RandomBytes(1000 * step + i, model[i].bytes.size());
      Save(c.get(), step, model);
      ASSERT_TRUE(c->Wait().ok());
      ExpectLoads(run, step, model);
    }
  }
}

// The first save faults in the staging memory the model needs; later saves of the same model
// copy into memory already there (no page faults of their own inside the caller's stall).
TEST_F(CheckpointTest, StagingIsFaultedInByTheFirstSave) {
  std::vector<Tensor> model;
  for (int i = 0; i < 8; ++i) {
    model.push_back(MakeTensor("w" + std::to_string(i), DType::kF32, {1024, 1024}, 20 + i));
    model.push_back(MakeTensor("b" + std::to_string(i), DType::kF32, {1000}, 40 + i));
  }
  uint64_t pages = 0;
  for (const auto& t : model) pages += t.bytes.size() / 4096;
  auto c = Open("faults");
  for (int step = 1; step <= 3; ++step) {
    for (auto& t : model) t.bytes[0] = char(step);  // every tensor changes
    rusage u0, u1;
    getrusage(RUSAGE_THREAD, &u0);
    Save(c.get(), step, model);
    getrusage(RUSAGE_THREAD, &u1);
    long faults = u1.ru_minflt - u0.ru_minflt;
    if (step == 1) EXPECT_GE(uint64_t(faults), pages / 2) << "the first save faults the staging memory in";
    else EXPECT_LT(uint64_t(faults), pages / 16) << "save " << step << " faulted in staging memory again";
    ASSERT_TRUE(c->Wait().ok());
  }
  ExpectLoads("faults", 3, model);
}

TEST_F(CheckpointTest, DiskFullSurfacesOnTheNextCallAndKeepsThePrevious) {
  std::vector<Tensor> model = {MakeTensor("a", DType::kF32, {512, 1024}, 1), MakeTensor("b", DType::kF32, {512, 1024}, 2)};
  auto c = Open("full");
  Save(c.get(), 1, model);
  ASSERT_TRUE(c->Wait().ok());
  std::vector<Tensor> next = {MakeTensor("a", DType::kF32, {512, 1024}, 3), MakeTensor("b", DType::kF32, {512, 1024}, 4)};
  env_.SetSpaceLimit(1 << 20);
  Save(c.get(), 2, next);
  Status s = c->Wait();
  EXPECT_EQ(s.code(), StatusCode::kNoSpace) << s.ToString();
  EXPECT_NE(s.message().find("checkpoint 2"), std::string::npos) << s.message();
  // The next Save would have returned it instead, had Wait not: try that order too.
  Save(c.get(), 3, next);
  EXPECT_EQ(c->Wait().code(), StatusCode::kNoSpace);
  env_.SetSpaceLimit(-1);
  auto runs = Runs::Open(repo_.get());
  auto list = (*runs)->Checkpoints("full");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);  // the failed ones are invisible
  EXPECT_EQ((*list)[0].step, 1);
  ExpectLoads("full", 1, model);
  // Space back: saving works again in the same process.
  Save(c.get(), 4, next);
  ASSERT_TRUE(c->Wait().ok());
  ExpectLoads("full", 4, next);
}

TEST_F(CheckpointTest, ErrorOfAnEarlierSaveIsReturnedBySave) {
  std::vector<Tensor> model = {MakeTensor("a", DType::kF32, {512, 1024}, 1)};
  auto c = Open("err");  // one checkpoint in flight: the next Save waits for the first
  env_.SetSpaceLimit(4096);
  Save(c.get(), 1, model);
  SaveRequest r;
  r.step = 2;
  Status s = c->Save(r);
  EXPECT_EQ(s.code(), StatusCode::kNoSpace) << s.ToString();
  EXPECT_TRUE(c->Wait().ok());  // returned once, by Save
  env_.SetSpaceLimit(-1);
  Save(c.get(), 3, model);
  EXPECT_TRUE(c->Wait().ok());
}

// Sharded save: 4 ranks, each saving its pieces through its own Checkpointer (as 4 processes
// would); loads with 3 ranks and with 1 return the exact global tensors.
TEST_F(CheckpointTest, ReshardFourRanksToThreeAndOne) {
  const uint64_t rows = 103, cols = 37;
  Tensor rowwise = MakeTensor("rowwise", DType::kF32, {rows, cols}, 1);      // split along dim 0
  Tensor colwise = MakeTensor("colwise", DType::kBF16, {rows, cols, 3}, 2);  // split along dim 1
  Tensor shared = MakeTensor("shared", DType::kF32, {5}, 3);                 // whole on rank 0
  const int world = 4;
  const uint64_t cuts0[] = {0, 20, 50, 90, rows};
  const uint64_t cuts1[] = {0, 10, 11, 30, cols};
  std::vector<std::unique_ptr<Checkpointer>> ranks;
  for (int r = 0; r < world; ++r) ranks.push_back(Open("shard"));
  std::vector<std::string> keep;  // piece bytes live until Save returns
  keep.reserve(16);
  for (int r = 0; r < world; ++r) {
    SaveRequest req;
    req.step = 7;
    req.rank = r;
    req.world_size = world;
    // rowwise: rows [cuts0[r], cuts0[r+1]).
    uint64_t rb = cols * 4;
    keep.push_back(rowwise.bytes.substr(cuts0[r] * rb, (cuts0[r + 1] - cuts0[r]) * rb));
    req.tensors.push_back({"rowwise", DType::kF32, {cuts0[r + 1] - cuts0[r], cols}, keep.back().data(), keep.back().size(),
                           {rows, cols}, {cuts0[r], 0}});
    // colwise: columns [cuts1[r], cuts1[r+1]) of every row.
    std::string piece;
    uint64_t w = cuts1[r + 1] - cuts1[r];
    for (uint64_t i = 0; i < rows; ++i) piece += colwise.bytes.substr((i * cols + cuts1[r]) * 3 * 2, w * 3 * 2);
    keep.push_back(piece);
    req.tensors.push_back({"colwise", DType::kBF16, {rows, w, 3}, keep.back().data(), keep.back().size(), {rows, cols, 3},
                           {0, cuts1[r], 0}});
    if (r == 0) req.tensors.push_back(shared.View());
    std::string state = "optimizer of rank " + std::to_string(r);
    req.states.push_back({"optimizer", state});
    ASSERT_TRUE(ranks[r]->Save(req).ok());
    ASSERT_TRUE(ranks[r]->Wait().ok());
    auto runs = Runs::Open(repo_.get());
    // Invisible until the last rank's part is durable.
    EXPECT_EQ((*runs)->Checkpoints("shard")->size(), r + 1 == world ? 1u : 0u) << "after rank " << r;
  }
  ExpectLoads("shard", 7, {rowwise, colwise, shared});
  auto rd = CheckpointReader::Open(repo_.get(), "shard");
  ASSERT_TRUE(rd.ok()) << rd.status().ToString();
  EXPECT_EQ((*rd)->info().world_size, 4);
  EXPECT_EQ(*(*rd)->ReadState("rank2/optimizer"), "optimizer of rank 2");
  // Three readers, each its own contiguous range of rows of each tensor.
  for (const Tensor* t : {&rowwise, &colwise}) {
    uint64_t row_bytes = t->bytes.size() / rows;
    std::string assembled;
    for (int r = 0; r < 3; ++r) {
      uint64_t b = rows * r / 3, e = rows * (r + 1) / 3;
      std::string part((e - b) * row_bytes, '\0');
      Status s = (*rd)->ReadRows(t->name, b, e, {reinterpret_cast<uint8_t*>(part.data()), part.size()});
      ASSERT_TRUE(s.ok()) << s.ToString();
      assembled += part;
    }
    EXPECT_TRUE(assembled == t->bytes) << t->name;
  }
  // No pending parts remain.
  auto lake = Lake::Open(repo_.get());
  auto refs = (*lake)->ListRefs("run.shard");
  ASSERT_TRUE(refs.ok()) << refs.status().ToString();
  for (const auto& ref : *refs) EXPECT_FALSE(ref.name.starts_with("pending/")) << ref.name;
}

TEST_F(CheckpointTest, MissingRankKeepsTheCheckpointInvisible) {
  Tensor t = MakeTensor("w", DType::kF32, {10, 4}, 1);
  auto c = Open("partial");
  SaveRequest req;
  req.step = 3;
  req.world_size = 2;
  req.rank = 1;
  req.tensors.push_back({"w", DType::kF32, {5, 4}, t.bytes.data() + 80, 80, {10, 4}, {5, 0}});
  ASSERT_TRUE(c->Save(req).ok());
  ASSERT_TRUE(c->Wait().ok());
  auto runs = Runs::Open(repo_.get());
  EXPECT_TRUE((*runs)->Checkpoints("partial")->empty());
  EXPECT_EQ(CheckpointReader::Open(repo_.get(), "partial").status().code(), StatusCode::kNotFound);
}

// Ten fine-tuning checkpoints of a model whose parameters are 90% frozen take at most twice
// the space of one.
TEST_F(CheckpointTest, FrozenTensorsCostNothing) {
  std::vector<Tensor> model;
  for (int i = 0; i < 10; ++i) model.push_back(MakeTensor("layer" + std::to_string(i), DType::kF32, {256, 1024}, 50 + i));
  auto c = Open("dedup");
  uint64_t before = PackBytes(path_);
  Save(c.get(), 0, model);
  ASSERT_TRUE(c->Wait().ok());
  uint64_t one = PackBytes(path_) - before;
  for (int step = 1; step < 10; ++step) {
    model[9].bytes = RandomBytes(1000 + step, model[9].bytes.size());  // the one trainable layer
    Save(c.get(), step, model);
  }
  ASSERT_TRUE(c->Wait().ok());
  uint64_t ten = PackBytes(path_) - before;
  EXPECT_LE(ten, 2 * one) << "one " << one << " ten " << ten;
  EXPECT_GT(one, 10ull * 1024 * 1024 * 9 / 10);  // float noise is not compressed away
  ExpectLoads("dedup", 9, model);
}

TEST_F(CheckpointTest, ZerosAreCompressedNoiseIsNot) {
  Tensor zeros{"zeros", DType::kF32, {1024, 1024}, std::string(4 << 20, '\0')};
  // Gaussian float32, like trained weights: zstd saves ~8% of it (the exponent bits).
  auto gaussian = [](uint32_t seed) {
    Tensor t{"weights", DType::kF32, {1024, 1024}, std::string(4 << 20, '\0')};
    std::mt19937 gen(seed);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    auto* w = reinterpret_cast<float*>(t.bytes.data());
    for (size_t i = 0; i < (1u << 20); ++i) w[i] = normal(gen);
    return t;
  };
  auto c = Open("compress");
  uint64_t before = PackBytes(path_);
  Save(c.get(), 1, {zeros});
  ASSERT_TRUE(c->Wait().ok());
  EXPECT_LT(PackBytes(path_) - before, 200000u);
  ExpectLoads("compress", 1, {zeros});

  Tensor weights = gaussian(5);
  before = PackBytes(path_);
  Save(c.get(), 2, {weights});
  ASSERT_TRUE(c->Wait().ok());
  EXPECT_GE(PackBytes(path_) - before, weights.bytes.size()) << "float noise was compressed";
  ExpectLoads("compress", 2, {weights});

  // Asked for, it is compressed.
  c.reset();
  CheckpointerOptions o;
  o.compress_floats = true;
  c = Open("compress", o);
  weights = gaussian(6);
  before = PackBytes(path_);
  Save(c.get(), 3, {weights});
  ASSERT_TRUE(c->Wait().ok());
  EXPECT_LT(PackBytes(path_) - before, weights.bytes.size() * 97 / 100);
  ExpectLoads("compress", 3, {weights});
}

TEST_F(CheckpointTest, FlippedByteNamesTheTensorAndLatestValidFallsBack) {
  std::vector<Tensor> good = {MakeTensor("alpha", DType::kF32, {512, 1024}, 1)};
  auto c = Open("flip");
  Save(c.get(), 1, good);
  ASSERT_TRUE(c->Wait().ok());
  auto before = PackFiles(path_);
  std::vector<Tensor> later = {MakeTensor("alpha", DType::kF32, {512, 1024}, 2)};
  Save(c.get(), 2, later);
  ASSERT_TRUE(c->Wait().ok());
  c.reset();
  auto after = PackFiles(path_);
  std::vector<std::string> fresh;
  std::set_difference(after.begin(), after.end(), before.begin(), before.end(), std::back_inserter(fresh));
  ASSERT_FALSE(fresh.empty());
  std::string victim = *std::max_element(fresh.begin(), fresh.end(), [](const auto& a, const auto& b) {
    return fs::file_size(a) < fs::file_size(b);
  });
  {
    std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(fs::file_size(victim) / 2);
    char ch;
    f.read(&ch, 1);
    ch ^= 0x10;
    f.seekp(fs::file_size(victim) / 2);
    f.write(&ch, 1);
  }
  repo_.reset();
  auto reopened = Repository::Open(path_, kPass);
  ASSERT_TRUE(reopened.ok());
  repo_ = std::move(*reopened);
  auto rd = CheckpointReader::Open(repo_.get(), "flip", 2);
  ASSERT_TRUE(rd.ok()) << rd.status().ToString();
  Status s = (*rd)->Verify();
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.ToString();
  EXPECT_NE(s.message().find("tensor 'alpha'"), std::string::npos) << s.message();
  std::string buf(later[0].bytes.size(), '\0');
  Status r = (*rd)->ReadTensor("alpha", {reinterpret_cast<uint8_t*>(buf.data()), buf.size()});
  EXPECT_EQ(r.code(), StatusCode::kCorruption);
  EXPECT_NE(r.message().find("tensor 'alpha'"), std::string::npos) << r.message();
  TensorBuffer all{"alpha", {reinterpret_cast<uint8_t*>(buf.data()), buf.size()}};
  Status batch = (*rd)->ReadTensors({&all, 1});
  EXPECT_EQ(batch.code(), StatusCode::kCorruption);
  EXPECT_NE(batch.message().find("tensor 'alpha'"), std::string::npos) << batch.message();
  all.dst = all.dst.first(8);
  EXPECT_EQ((*rd)->ReadTensors({&all, 1}).code(), StatusCode::kInvalidArgument);

  ReadOptions ro;
  ro.latest_valid = true;
  auto fallback = CheckpointReader::Open(repo_.get(), "flip", kLatestStep, ro);
  ASSERT_TRUE(fallback.ok()) << fallback.status().ToString();
  EXPECT_EQ((*fallback)->info().step, 1);
  ExpectLoads("flip", 1, good);
}

TEST_F(CheckpointTest, RetentionKeepsLastBestAndLabelledThenGcFrees) {
  std::vector<Tensor> model = {MakeTensor("w", DType::kF32, {256, 1024}, 1)};
  auto c = Open("keep");
  const double loss[] = {0.9, 0.2, 0.8, 0.7, 0.1, 0.6, 0.5, 0.4};
  for (int step = 0; step < 8; ++step) {
    model[0].bytes = RandomBytes(200 + step, model[0].bytes.size());
    Save(c.get(), step * 10, model, {{"loss", loss[step]}});
  }
  ASSERT_TRUE(c->Wait().ok());
  c.reset();
  auto runs = Runs::Open(repo_.get());
  ASSERT_TRUE((*runs)->LabelCheckpoint("keep", 20, "baseline").ok());
  auto best = (*runs)->Best("keep", "loss", 2, false);
  ASSERT_TRUE(best.ok());
  ASSERT_EQ(best->size(), 2u);
  EXPECT_EQ((*best)[0].step, 40);
  EXPECT_EQ((*best)[1].step, 10);
  RetentionSpec spec;
  spec.keep_last = 2;
  spec.keep_best = 2;
  spec.metric = "loss";
  auto res = (*runs)->Retain("keep", spec);
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  std::set<int64_t> kept(res->kept.begin(), res->kept.end());
  EXPECT_EQ(kept, (std::set<int64_t>{70, 60, 40, 10, 20}));
  EXPECT_EQ(res->removed.size(), 3u);
  std::set<int64_t> listed;
  auto checkpoints = (*runs)->Checkpoints("keep");
  ASSERT_TRUE(checkpoints.ok()) << checkpoints.status().ToString();
  for (const auto& ck : *checkpoints) listed.insert(ck.step);
  EXPECT_EQ(listed, kept);
  uint64_t before = PackBytes(path_);
  runs->reset();
  auto lake = Lake::Open(repo_.get());
  LakeGcOptions go;
  go.grace_seconds = 0;
  auto gc = (*lake)->CollectGarbage(go);
  ASSERT_TRUE(gc.ok()) << gc.status().ToString();
  EXPECT_LT(PackBytes(path_), before - 2 * (1 << 20));  // three 1 MiB tensors' worth freed
  lake->reset();
  for (int64_t s : kept) {
    auto rd = CheckpointReader::Open(repo_.get(), "keep", s);
    ASSERT_TRUE(rd.ok());
    EXPECT_TRUE((*rd)->Verify().ok()) << s;
  }
}

TEST_F(CheckpointTest, RunsRecordParamsMetricsAndLineage) {
  auto runs = Runs::Open(repo_.get());
  ASSERT_TRUE(runs.ok());
  auto lake = Lake::Open(repo_.get());
  ASSERT_TRUE((*lake)->CreateDataset("fm").ok());
  auto head = (*lake)->Resolve("fm@main");
  RunInfo info;
  info.name = "exp1";
  info.params = {{"lr", "0.001"}, {"batch", "64"}};
  info.tags = {"baseline"};
  info.dataset = "fm@main";
  info.loader_state = R"({"epoch":0})";
  ASSERT_TRUE((*runs)->Create(info).ok());
  EXPECT_EQ((*runs)->Create(info).code(), StatusCode::kAlreadyExists);
  ASSERT_TRUE((*runs)->LogMetrics("exp1", {{1, "loss", 2.5}, {1, "acc", 0.1}}).ok());
  ASSERT_TRUE((*runs)->LogMetrics("exp1", {{2, "loss", 1.5}}).ok());
  ASSERT_TRUE((*runs)->SetStatus("exp1", "finished").ok());
  auto got = (*runs)->Get("exp1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->status, "finished");
  EXPECT_EQ(got->params.at("lr"), "0.001");
  EXPECT_EQ(got->dataset, "fm@" + head->commit.id.ToHex());
  EXPECT_EQ(got->loader_state, R"({"epoch":0})");
  auto m = (*runs)->Metrics("exp1");
  ASSERT_EQ(m->size(), 3u);
  EXPECT_EQ((*m)[2].value, 1.5);
  EXPECT_EQ((*runs)->Get("nope").status().code(), StatusCode::kNotFound);
  auto all = (*runs)->List();
  ASSERT_EQ(all->size(), 1u);
  // Rebuilt from the repository alone, the catalog still knows the run and its checkpoints.
  {
    auto c = Open("exp1");
    Save(c.get(), 5, {MakeTensor("w", DType::kF32, {8}, 1)});
    ASSERT_TRUE(c->Wait().ok());
  }
  runs->reset();
  lake->reset();
  fs::remove_all(path_ + "/catalog");
  for (auto& e : fs::directory_iterator(path_)) {
    if (e.path().filename().string().find("catalog.db") != std::string::npos) fs::remove(e.path());
  }
  auto rebuilt = Lake::RebuildCatalog(repo_.get());
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().ToString();
  auto again = Runs::Open(repo_.get());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ((*again)->Get("exp1")->status, "finished");
  EXPECT_EQ((*again)->Metrics("exp1")->size(), 3u);
  ASSERT_EQ((*again)->Checkpoints("exp1")->size(), 1u);
  ExpectLoads("exp1", 5, {MakeTensor("w", DType::kF32, {8}, 1)});
}

}  // namespace
}  // namespace strata::testing
