// Model registry, serving weights, lineage and retention locks (each rule, gc while locked, a
// rebuilt catalog keeps the locks).
#include "strata/registry.h"

#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "registry/serving_format.h"
#include "strata/lake.h"
#include "testutil/testutil.h"

namespace strata::testing {
namespace {

constexpr const char* kPass = "registry test passphrase";

int64_t Now() { return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count(); }

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_ / "repo";
    auto r = Repository::Create(path_, kPass, FastInitOptions());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    repo_ = std::move(*r);
    auto l = Lake::Open(repo_.get());
    ASSERT_TRUE(l.ok()) << l.status().ToString();
    lake_ = std::move(*l);
  }

  // A run trained on fm@main with checkpoints at steps 100 and 200 (tensor "b" differs).
  // `more_ingests`: commits that follow the first ingest on fm@main, as {source, source.mode}.
  void MakeRun(const std::vector<std::pair<std::string, std::string>>& more_ingests = {}) {
    ASSERT_TRUE(lake_->CreateDataset("fm").ok());
    WriteFile(dir_ / "src/a.txt", "hello");
    auto raw = lake_->CommitDirectory("fm@main", dir_ / "src", {.message = "raw", .meta = {{"source", "/data/fm.tar"}}});
    ASSERT_TRUE(raw.ok());
    raw_commit_ = raw->commit.ToHex();
    for (const auto& [source, mode] : more_ingests) {
      WriteFile(dir_ / ("src/" + source.substr(6) + ".txt"), source);
      ASSERT_TRUE(lake_->CommitDirectory("fm@main", dir_ / "src",
                                         {.message = "ingest " + source, .meta = {{"source", source}, {"source.mode", mode}}})
                      .ok());
    }
    auto runs = Runs::Open(repo_.get());
    ASSERT_TRUE(runs.ok());
    RunInfo info;
    info.name = "exp1";
    info.params = {{"lr", "0.1"}};
    info.dataset = "fm@main";
    ASSERT_TRUE((*runs)->Create(info).ok());
    auto ck = Checkpointer::Open(repo_.get(), "exp1", {.chunk_bytes = 64 << 10, .threads = 2});
    ASSERT_TRUE(ck.ok());
    for (int64_t step : {100, 200}) {
      SaveRequest req;
      req.step = step;
      req.tensors.push_back({"a", DType::kF32, {64, 1000}, a_.data(), a_.size(), {}, {}});
      std::string& b = step == 100 ? b1_ : b2_;
      req.tensors.push_back({"b", DType::kF16, {7, 3}, b.data(), b.size(), {}, {}});
      req.metrics = {{"loss", step == 100 ? 0.5 : 0.25}};
      ASSERT_TRUE((*ck)->Save(req).ok());
    }
    ASSERT_TRUE((*ck)->Wait().ok());
  }

  std::unique_ptr<ModelRegistry> Registry() {
    auto r = ModelRegistry::Open(repo_.get());
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return std::move(*r);
  }

  TempDir dir_;
  std::string path_;
  std::unique_ptr<Repository> repo_;
  std::unique_ptr<Lake> lake_;
  std::string a_ = RandomBytes(1, 64 * 1000 * 4), b1_ = RandomBytes(2, 42), b2_ = RandomBytes(3, 42);
  std::string raw_commit_;  // the first ingest of fm@main (MakeRun)
};

TEST_F(RegistryTest, RegisterVersionsAndAliases) {
  MakeRun();
  auto reg = Registry();
  RegisterRequest rq{.model = "cnn", .from = "exp1@100"};
  rq.metrics = {{"accuracy", 0.8}};
  rq.signature.inputs.push_back({"image", "F32", {-1, 1, 28, 28}});
  auto v1 = reg->Register(rq);
  ASSERT_TRUE(v1.ok()) << v1.status().ToString();
  EXPECT_EQ(v1->version, 1);
  EXPECT_EQ(v1->params.at("lr"), "0.1");
  EXPECT_EQ(v1->metrics.at("loss"), 0.5);
  EXPECT_EQ(v1->metrics.at("accuracy"), 0.8);
  EXPECT_TRUE(v1->data.starts_with("fm@"));
  auto v2 = reg->Register({.model = "cnn", .from = "run.exp1@ckpt/000000000200"});
  ASSERT_TRUE(v2.ok()) << v2.status().ToString();
  EXPECT_EQ(v2->version, 2);
  EXPECT_EQ(v2->step, 200);

  ASSERT_TRUE(reg->SetAlias("cnn", "production", 1).ok());
  EXPECT_EQ(reg->Get("cnn@production")->version, 1);
  ASSERT_TRUE(reg->SetAlias("cnn", "production", 2).ok());
  auto prod = reg->Get("cnn@production");
  ASSERT_TRUE(prod.ok());
  EXPECT_EQ(prod->version, 2);
  EXPECT_EQ(prod->aliases, std::vector<std::string>{"production"});
  EXPECT_EQ(reg->Get("cnn")->version, 2);
  EXPECT_EQ(reg->Get("cnn@v1")->signature.inputs.at(0).shape, (std::vector<int64_t>{-1, 1, 28, 28}));
  EXPECT_TRUE(reg->Get("cnn@staging").status().IsNotFound());
  EXPECT_FALSE(reg->SetAlias("cnn", "7", 1).ok());  // reads as a version

  // Every alias move is audited.
  auto log = lake_->AuditLog(1, 10000);
  ASSERT_TRUE(log.ok());
  int moves = 0;
  for (const auto& e : *log) moves += e.action == "model.alias";
  EXPECT_EQ(moves, 2);

  // The version keeps its weights after the run's checkpoint is deleted and gc runs.
  auto runs = Runs::Open(repo_.get());
  ASSERT_TRUE((*runs)->DeleteCheckpoint("exp1", 100).ok());
  ASSERT_TRUE(lake_->CollectGarbage({.grace_seconds = 0}).ok());
  auto w = reg->OpenWeights(*reg->Get("cnn@1"));
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  std::string got(b1_.size(), '\0');
  ASSERT_TRUE((*w)->ReadTensor("b", {reinterpret_cast<uint8_t*>(got.data()), got.size()}).ok());
  EXPECT_EQ(got, b1_);

  // Models come back from the repository alone.
  lake_.reset();
  reg.reset();
  ASSERT_TRUE(Lake::RebuildCatalog(repo_.get()).ok());
  reg = Registry();
  auto again = reg->Get("cnn@production");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->version, 2);
}

TEST_F(RegistryTest, ServingFileRoundTripAndDamage) {
  MakeRun();
  auto reg = Registry();
  auto v = reg->Register({.model = "cnn", .from = "exp1"});
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  auto r = reg->OpenWeights(*v);
  ASSERT_TRUE(r.ok());
  for (uint32_t align : {64u, 4096u}) {
    std::string out = dir_ / ("w" + std::to_string(align) + ".strata");
    ASSERT_TRUE(ExportServing(r->get(), out, {.alignment = align}).ok());
    auto w = LoadWeights(out, {.verify = VerifyMode::kFull});
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    auto a = (*w)->Tensor("a");
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(a->bytes.data()) % align, 0u);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(a->bytes.data()), a->bytes.size()), a_);
    EXPECT_EQ((*w)->Tensor("b")->shape, (std::vector<uint64_t>{7, 3}));
  }
  // A flipped data byte: loading on demand succeeds, the damaged tensor is refused.
  std::string path = dir_ / "w4096.strata";
  std::string bytes = ReadFile(path);
  auto h = registry::ParseServingFile({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
  ASSERT_TRUE(h.ok());
  bytes[h->tensors[0].offset + 5] ^= 1;
  WriteFile(path, bytes);
  auto w = LoadWeights(path);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ((*w)->Tensor(h->tensors[0].name).status().code(), StatusCode::kCorruption);
  EXPECT_TRUE((*w)->Tensor(h->tensors[1].name).ok());
  EXPECT_EQ(LoadWeights(path, {.verify = VerifyMode::kFull}).status().code(), StatusCode::kCorruption);
  // Checking a set of tensors (in parallel) finds the damaged one only when it is asked for.
  auto some = LoadWeights(path);
  ASSERT_TRUE(some.ok());
  EXPECT_TRUE((*some)->Verify({h->tensors[1].name}).ok());
  Status bad = (*some)->Verify({h->tensors[1].name, h->tensors[0].name});
  EXPECT_EQ(bad.code(), StatusCode::kCorruption);
  EXPECT_NE(bad.message().find(h->tensors[0].name), std::string::npos);
  EXPECT_EQ((*some)->Verify({"no such tensor"}).code(), StatusCode::kNotFound);
  // A damaged header is refused before any tensor is looked at.
  bytes[70] ^= 1;
  WriteFile(path, bytes);
  EXPECT_EQ(LoadWeights(path).status().code(), StatusCode::kCorruption);

  // Keyed hashes: the key is needed to verify, and a wrong key fails.
  std::string keyed = dir_ / "keyed.strata";
  ASSERT_TRUE(ExportServing(r->get(), keyed, {.hash_key = "k1"}).ok());
  EXPECT_TRUE(LoadWeights(keyed, {.verify = VerifyMode::kFull, .hash_key = "k1"}).ok());
  EXPECT_FALSE(LoadWeights(keyed, {.verify = VerifyMode::kFull, .hash_key = "k2"}).ok());
}

TEST_F(RegistryTest, PullReadsOnlyChangedTensors) {
  MakeRun();
  auto reg = Registry();
  ASSERT_TRUE(reg->Register({.model = "cnn", .from = "exp1@100"}).ok());
  ASSERT_TRUE(reg->Register({.model = "cnn", .from = "exp1@200"}).ok());
  std::string dir = dir_ / "serve";
  auto p1 = PullModel(reg.get(), "cnn@1", dir);
  ASSERT_TRUE(p1.ok()) << p1.status().ToString();
  EXPECT_EQ(p1->tensors_reused, 0u);
  auto p2 = PullModel(reg.get(), "cnn@2", dir);
  ASSERT_TRUE(p2.ok()) << p2.status().ToString();
  EXPECT_EQ(p2->tensors, 2u);
  EXPECT_EQ(p2->tensors_reused, 1u);  // "a" is unchanged
  EXPECT_EQ(p2->bytes_read, b2_.size());
  auto w = LoadWeights(dir + "/model.strata", {.verify = VerifyMode::kFull});
  ASSERT_TRUE(w.ok());
  auto b = (*w)->Tensor("b");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b->bytes.data()), b->bytes.size()), b2_);
  EXPECT_EQ((*w)->metadata().at("version"), "2");
}

TEST_F(RegistryTest, LineageBothWays) {
  MakeRun();
  auto reg = Registry();
  ASSERT_TRUE(reg->Register({.model = "cnn", .from = "exp1@100"}).ok());
  auto n = ModelLineage(reg.get(), "cnn@1");
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(n->kind, "model");
  const LineageNode& ck = n->inputs.at(0);
  EXPECT_EQ(ck.kind, "checkpoint");
  const LineageNode& run = ck.inputs.at(0);
  EXPECT_EQ(run.kind, "run");
  EXPECT_EQ(run.attrs.at("param.lr"), "0.1");
  const LineageNode& data = run.inputs.at(0);
  EXPECT_EQ(data.kind, "ingest");
  EXPECT_EQ(data.inputs.at(0).kind, "source");
  EXPECT_EQ(data.inputs.at(0).label, "/data/fm.tar");
  EXPECT_NE(LineageDot(*n).find("->"), std::string::npos);
  auto users = ModelsTrainedOn(reg.get(), "fm@main");
  ASSERT_TRUE(users.ok());
  ASSERT_EQ(users->size(), 1u);
  EXPECT_EQ(users->at(0).model, "cnn");
  WriteFile(dir_ / "src/b.txt", "more");
  ASSERT_TRUE(lake_->CommitDirectory("fm@main", dir_ / "src", {.message = "later"}).ok());
  EXPECT_TRUE(ModelsTrainedOn(reg.get(), "fm@main")->empty());
}

// A branch built by several ingests: each additive one has the one before it as an input; one
// that replaced the branch's files ends the chain.
TEST_F(RegistryTest, LineageFollowsAdditiveIngests) {
  MakeRun({{"/data/more", "add"}, {"/data/last", "add"}});
  auto reg = Registry();
  ASSERT_TRUE(reg->Register({.model = "cnn", .from = "exp1@100"}).ok());
  auto n = ModelLineage(reg.get(), "cnn@1");
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  std::vector<std::string> sources;
  const LineageNode* data = &n->inputs.at(0).inputs.at(0).inputs.at(0);
  while (data) {
    ASSERT_EQ(data->kind, "ingest");
    ASSERT_EQ(data->inputs.at(0).kind, "source");
    sources.push_back(data->inputs.at(0).label);
    data = data->inputs.size() > 1 ? &data->inputs.at(1) : nullptr;
  }
  EXPECT_EQ(sources, (std::vector<std::string>{"/data/last", "/data/more", "/data/fm.tar"}));
  // The first ingest's commit is in the chain, so the model was trained on it too.
  EXPECT_EQ(ModelsTrainedOn(reg.get(), "fm@" + raw_commit_)->size(), 1u);
}

TEST_F(RegistryTest, LineageStopsAtAReplacingIngest) {
  MakeRun({{"/data/more", "add"}, {"/data/new", "replace"}});
  auto reg = Registry();
  ASSERT_TRUE(reg->Register({.model = "cnn", .from = "exp1@100"}).ok());
  auto n = ModelLineage(reg.get(), "cnn@1");
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  const LineageNode& data = n->inputs.at(0).inputs.at(0).inputs.at(0);
  ASSERT_EQ(data.inputs.size(), 1u);
  EXPECT_EQ(data.inputs.at(0).label, "/data/new");
}

// --- retention locks ---

class LockTest : public RegistryTest {
 protected:
  void SetUp() override {
    RegistryTest::SetUp();
    ASSERT_TRUE(lake_->CreateDataset("d").ok());
    for (int i = 0; i < 3; ++i) {
      WriteFile(dir_ / "d/f.txt", RandomBytes(10 + i, 50000));
      auto c = lake_->CommitDirectory("d@main", dir_ / "d", {.message = "c" + std::to_string(i)});
      ASSERT_TRUE(c.ok());
      commits_.push_back(c->commit.ToHex());
    }
    ASSERT_TRUE(lake_->CreateRef("d@v1", "d@" + commits_[0], RefType::kTag).ok());
  }
  int Refusals() {
    int n = 0;
    auto log = lake_->AuditLog(1, 100000);
    for (const auto& e : *log) n += e.action == "lock.refused";
    return n;
  }
  std::vector<std::string> commits_;
};

TEST_F(LockTest, ComplianceCannotBeShortenedOrLifted) {
  int64_t until = Now() + 3600;
  ASSERT_TRUE(lake_->SetRetentionLock("d@v1", LockMode::kCompliance, until).ok());
  EXPECT_TRUE(lake_->SetRetentionLock("d@v1", LockMode::kCompliance, until + 10).ok());  // extend
  EXPECT_EQ(lake_->SetRetentionLock("d@v1", LockMode::kCompliance, until).code(), StatusCode::kFailedPrecondition);
  EXPECT_FALSE(lake_->SetRetentionLock("d@v1", LockMode::kGovernance, until + 100).ok());  // weaker
  EXPECT_FALSE(lake_->SetRetentionLock("d@v1", LockMode::kNone, 0, {true, "admin"}).ok());  // not even with bypass
  EXPECT_EQ(lake_->DeleteRef("d@v1").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Refusals(), 4);
  auto locks = lake_->ListRetentionLocks("d");
  ASSERT_EQ(locks->size(), 1u);
  EXPECT_EQ(locks->at(0).retain_until_unix, until + 10);
}

TEST_F(LockTest, GovernanceNeedsBypassAndReason) {
  ASSERT_TRUE(lake_->SetRetentionLock("d@v1", LockMode::kGovernance, Now() + 3600).ok());
  EXPECT_FALSE(lake_->SetRetentionLock("d@v1", LockMode::kNone, 0).ok());
  EXPECT_FALSE(lake_->SetRetentionLock("d@v1", LockMode::kNone, 0, {true, ""}).ok());
  EXPECT_TRUE(lake_->SetRetentionLock("d@v1", LockMode::kCompliance, Now() + 3600).ok());  // stricter is fine
  ASSERT_TRUE(lake_->SetRetentionLock("d@" + commits_[1], LockMode::kGovernance, Now() + 3600).ok());
  ASSERT_TRUE(lake_->SetRetentionLock("d@" + commits_[1], LockMode::kNone, 0, {true, "ticket 42"}).ok());
  bool audited = false;
  auto log = lake_->AuditLog(1, 100000);
  for (const auto& e : *log) {
    if (e.action == "lock.clear" && e.details.find("ticket 42") != std::string::npos &&
        e.details.find("\"bypass_governance\":true") != std::string::npos) {
      audited = true;
    }
  }
  EXPECT_TRUE(audited);
}

TEST_F(LockTest, LegalHoldAndExpiry) {
  ASSERT_TRUE(lake_->SetLegalHold("d@v1", true, "case 7").ok());
  EXPECT_FALSE(lake_->DeleteRef("d@v1").ok());
  EXPECT_FALSE(lake_->DeleteDataset("d").ok());
  ASSERT_TRUE(lake_->SetLegalHold("d@v1", false, "case closed").ok());
  EXPECT_TRUE(lake_->ListRetentionLocks("d")->empty());  // nothing left to hold
  // A lock that expired protects nothing.
  ASSERT_TRUE(lake_->SetRetentionLock("d@v1", LockMode::kCompliance, Now() + 1).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  EXPECT_TRUE(lake_->DeleteRef("d@v1").ok());
}

TEST_F(LockTest, ResetAndForgetAndGcRespectLocks) {
  // Lock the middle commit, which only main reaches.
  ASSERT_TRUE(lake_->SetRetentionLock("d@" + commits_[1], LockMode::kGovernance, Now() + 3600).ok());
  EXPECT_EQ(lake_->Reset("d@main", "d@" + commits_[0]).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_FALSE(lake_->DeleteDataset("d").ok());
  // A branch that keeps it reachable makes the reset harmless.
  ASSERT_TRUE(lake_->CreateRef("d@keep", "d@" + commits_[1], RefType::kBranch).ok());
  ASSERT_TRUE(lake_->Reset("d@main", "d@" + commits_[0]).ok());
  EXPECT_EQ(lake_->DeleteRef("d@keep").code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(lake_->Reset("d@main", "d@" + commits_[2]).ok());
  ASSERT_TRUE(lake_->DeleteRef("d@keep").ok());  // main reaches it again

  // forget keeps the locked commit whatever the policy says.
  ASSERT_TRUE(lake_->SetRetentionPolicy("d", {.keep_last = 1, .keep_tagged = false}).ok());
  auto f = lake_->Forget("d", false);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  for (const auto& d : f->decisions) {
    if (d.commit.ToHex() == commits_[1]) {
      EXPECT_TRUE(d.keep);
    }
  }
  // gc while the lock is in force: the locked commit still reads whole afterwards, while an
  // unlocked forgotten commit's data is gone.
  auto gc = lake_->CollectGarbage({.grace_seconds = 0});
  ASSERT_TRUE(gc.ok()) << gc.status().ToString();
  EXPECT_LT(gc->objects_live, gc->objects_total);  // the forgotten commit's tree went
  auto file = lake_->OpenFile("d@" + commits_[1] + ":f.txt");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  std::string got((*file)->size(), '\0');
  size_t n = 0;
  ASSERT_TRUE((*file)->ReadAt(0, got.size(), reinterpret_cast<uint8_t*>(got.data()), &n).ok());
  EXPECT_EQ(got, RandomBytes(11, 50000));
}

TEST_F(LockTest, LocksSurviveCatalogRebuild) {
  int64_t until = Now() + 3600;
  ASSERT_TRUE(lake_->SetRetentionLock("d@v1", LockMode::kCompliance, until).ok());
  ASSERT_TRUE(lake_->SetLegalHold("d@" + commits_[2], true, "hold").ok());
  lake_.reset();
  ASSERT_TRUE(Lake::RebuildCatalog(repo_.get()).ok());
  auto l = Lake::Open(repo_.get());
  ASSERT_TRUE(l.ok());
  auto locks = (*l)->ListRetentionLocks("");
  ASSERT_TRUE(locks.ok());
  ASSERT_EQ(locks->size(), 2u);
  EXPECT_FALSE((*l)->DeleteRef("d@v1").ok());
}

TEST(ServingFormat, RejectsHostileHeaders) {
  EXPECT_FALSE(registry::ParseServingFile({}).ok());
  std::string junk(200, 'x');
  EXPECT_FALSE(registry::ParseServingFile({reinterpret_cast<const uint8_t*>(junk.data()), junk.size()}).ok());
}

}  // namespace
}  // namespace strata::testing
