// Redundancy below the store: erasure coding, fragment and placement formats, and the
// RedundantBackend under lost volumes, bit flips, failing volumes and repair.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>

#include <fmt/format.h>

#include "base/endian.h"
#include "base/fault_env.h"
#include "testutil/testutil.h"
#include "volume/erasure.h"
#include "volume/fragment.h"
#include "volume/redundant_backend.h"

namespace strata::volume {
namespace {

namespace fs = std::filesystem;
using strata::testing::RandomBytes;
using strata::testing::TempDir;

TEST(ErasureCodeTest, AnyFourOfSixRebuildTheRest) {
  const int k = 4, m = 2;
  const size_t len = 4096 + 37;
  ErasureCode code(k, m);
  std::vector<std::string> frags(k + m);
  for (int i = 0; i < k; ++i) frags[i] = RandomBytes(i + 1, len);
  for (int i = k; i < k + m; ++i) frags[i].assign(len, '\0');
  std::vector<const uint8_t*> data;
  std::vector<uint8_t*> parity;
  for (int i = 0; i < k; ++i) data.push_back(reinterpret_cast<const uint8_t*>(frags[i].data()));
  for (int i = k; i < k + m; ++i) parity.push_back(reinterpret_cast<uint8_t*>(frags[i].data()));
  code.Encode(data.data(), parity.data(), len);
  EXPECT_NE(frags[4], frags[5]);
  // Every pair of lost fragments.
  for (int a = 0; a < k + m; ++a) {
    for (int b = a + 1; b < k + m; ++b) {
      std::vector<int> have;
      std::vector<const uint8_t*> in;
      for (int i = 0; i < k + m && static_cast<int>(have.size()) < k; ++i) {
        if (i == a || i == b) continue;
        have.push_back(i);
        in.push_back(reinterpret_cast<const uint8_t*>(frags[i].data()));
      }
      std::string ra(len, '\0'), rb(len, '\0');
      uint8_t* out[2] = {reinterpret_cast<uint8_t*>(ra.data()), reinterpret_cast<uint8_t*>(rb.data())};
      ASSERT_TRUE(code.Decode(have, in.data(), {a, b}, out, len).ok());
      EXPECT_EQ(ra, frags[a]) << a << "," << b;
      EXPECT_EQ(rb, frags[b]) << a << "," << b;
    }
  }
  std::vector<int> too_few = {0, 1, 2};
  EXPECT_FALSE(code.Decode(too_few, data.data(), {3}, parity.data(), len).ok());
}

TEST(FragmentFormatTest, HeaderAndPlacementRoundTripAndRejectDamage) {
  FragmentHeader h;
  h.scheme = Scheme::kErasure;
  h.k = 4;
  h.m = 2;
  h.index = 5;
  h.generation = 3;
  h.pack = "0123456789abcdef0123456789abcdef";
  h.pack_size = 5'000'000;
  h.body_size = FragmentBodySize(h.scheme, h.k, h.pack_size);
  h.block_crcs.assign((h.body_size + kFragmentBlock - 1) / kFragmentBlock, 0x12345678u);
  std::string bytes = SerializeFragmentHeader(h);
  ASSERT_EQ(bytes.size(), h.encoded_size());
  auto size = FragmentHeaderSize(AsBytes(bytes).first(kFragmentFixedHeader));
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(*size, bytes.size());
  auto parsed = ParseFragmentHeader(AsBytes(bytes));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->pack, h.pack);
  EXPECT_EQ(parsed->index, 5);
  EXPECT_EQ(parsed->generation, 3u);
  EXPECT_EQ(parsed->block_crcs, h.block_crcs);
  // Any single flipped bit is caught (CRC or field check), never accepted as another header.
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] ^= 0x10;
    EXPECT_FALSE(ParseFragmentHeader(AsBytes(bad)).ok()) << "byte " << i;
  }
  EXPECT_FALSE(ParseFragmentHeader(AsBytes(bytes).first(bytes.size() - 1)).ok());

  Placement p;
  p.scheme = Scheme::kErasure;
  p.k = 4;
  p.m = 2;
  p.generation = 1;
  p.pack = h.pack;
  p.pack_size = h.pack_size;
  p.body_size = h.body_size;
  p.volumes = {"v1", "v2", "v3", "v4", "v5", "v12"};
  std::string pb = SerializePlacement(p);
  auto pp = ParsePlacement(AsBytes(pb));
  ASSERT_TRUE(pp.ok()) << pp.status().ToString();
  EXPECT_EQ(pp->volumes, p.volumes);
  for (size_t i = 0; i < pb.size(); ++i) {
    std::string bad = pb;
    bad[i] ^= 0x01;
    EXPECT_FALSE(ParsePlacement(AsBytes(bad)).ok()) << "byte " << i;
  }
}

TEST(RedundancyPolicyTest, ParsesAndRefuses) {
  EXPECT_EQ(RedundancyPolicy::Parse("rs:4+2")->ToString(), "rs:4+2");
  EXPECT_EQ(RedundancyPolicy::Parse("replicate:3")->width(), 3);
  EXPECT_EQ(RedundancyPolicy::Parse("none")->width(), 0);
  for (const char* bad : {"rs:1+1", "rs:4+0", "rs:30+3", "replicate:1", "replicate:9", "rs:4-2", "raid5", "rs:+2"}) {
    EXPECT_FALSE(RedundancyPolicy::Parse(bad).ok()) << bad;
  }
}

// A repository directory and N volumes in domains rack<r>/host<i>.
class RedundantBackendTest : public ::testing::Test {
 protected:
  void SetUp() override { Build(6, "rs:4+2"); }

  void Build(int volumes, const std::string& policy, Env* env = Env::Default()) {
    env_ = env;
    layout_ = VolumeLayout{};
    layout_.repository_id = "repo";
    layout_.policy = *RedundancyPolicy::Parse(policy);
    for (int i = 1; i <= volumes; ++i) {
      VolumeConfig v;
      v.id = "v" + std::to_string(i);
      v.path = dir_ / ("vol" + std::to_string(i));
      v.domain = "rack" + std::to_string((i - 1) % 3) + "/host" + std::to_string(i);
      if (!fs::exists(v.path)) {
        ASSERT_TRUE(InitVolumeDirectory(Env::Default(), v.path, "repo", v.id).ok());
      }
      layout_.volumes.push_back(v);
    }
    Reopen();
  }

  void Reopen() {
    backend_.reset();
    std::string repo = dir_ / "repo";
    auto local = fs::exists(repo) ? OpenLocalBackendForTest(repo) : CreateLocalBackend(env_, repo);
    ASSERT_TRUE(local.ok()) << local.status().ToString();
    backend_ = std::make_unique<RedundantBackend>(env_, std::move(*local), layout_);
  }

  Result<std::unique_ptr<Backend>> OpenLocalBackendForTest(const std::string& repo) {
    // The local backend wants a config file to recognise a repository.
    if (!fs::exists(repo + "/config")) strata::testing::WriteFile(repo + "/config", "{}");
    return OpenLocalBackend(env_, repo);
  }

  // Packs of several sizes: striped ones, one that is not a multiple of k, and a small one
  // that is replicated.
  void WritePacks() {
    const size_t sizes[] = {3u << 20, (5u << 20) + 17, 200u << 10, 1u << 20, (2u << 20) + 1};
    for (size_t i = 0; i < std::size(sizes); ++i) {
      std::string name = fmt::format("{:02x}pack{}", i * 37, i);
      packs_[name] = RandomBytes(100 + i, sizes[i]);
      ASSERT_TRUE(backend_->Put(ObjectType::kPack, name, packs_[name]).ok());
    }
  }

  void ExpectAllReadable(const std::string& why) {
    for (const auto& [name, data] : packs_) {
      auto got = backend_->Get(ObjectType::kPack, name);
      ASSERT_TRUE(got.ok()) << why << ": " << got.status().ToString();
      ASSERT_TRUE(*got == data) << why << ": pack " << name << " differs";
      // A range across a fragment boundary and one inside a block.
      std::mt19937_64 rng(name.size());
      for (int r = 0; r < 8; ++r) {
        uint64_t off = rng() % data.size();
        size_t n = std::min<uint64_t>(1 + rng() % (1u << 20), data.size() - off);
        std::string buf(n, '\0');
        ASSERT_TRUE(backend_->ReadAt(ObjectType::kPack, name, off, n, reinterpret_cast<uint8_t*>(buf.data())).ok()) << why;
        ASSERT_TRUE(buf == data.substr(off, n)) << why << ": range of " << name;
      }
    }
  }

  std::string VolumePath(int i) { return layout_.volumes[i - 1].path; }

  TempDir dir_;
  Env* env_ = Env::Default();
  VolumeLayout layout_;
  std::unique_ptr<RedundantBackend> backend_;
  std::map<std::string, std::string> packs_;
};

TEST_F(RedundantBackendTest, HealthyReadsTouchOnlyDataFragmentsAndDomainsAreDistinct) {
  WritePacks();
  ExpectAllReadable("healthy");
  auto st = backend_->GetStatus();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->degraded_reads, 0u);
  EXPECT_EQ(st->placed_packs, packs_.size());
  EXPECT_EQ(st->local_packs, 0u);
  // Parity fragments are not needed for healthy reads: without them everything still reads
  // with no degraded read counted.
  for (const auto& v : layout_.volumes) {
    for (auto& e : fs::recursive_directory_iterator(v.path + "/fragments")) {
      std::string f = e.path().filename();
      if (e.is_regular_file() && (f.ends_with(".4") || f.ends_with(".5"))) fs::remove(e.path());
    }
  }
  Reopen();
  ExpectAllReadable("parity removed");
  EXPECT_EQ(backend_->GetStatus()->degraded_reads, 0u);
  // Six volumes in three racks: each rack holds exactly two fragments of a striped pack.
  auto names = backend_->List(ObjectType::kPack);
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(names->size(), packs_.size());
}

TEST_F(RedundantBackendTest, EveryPairOfLostVolumesReadsBackAndRepairRestores) {
  WritePacks();
  for (int a = 1; a <= 6; ++a) {
    for (int b = a + 1; b <= 6; ++b) {
      std::string why = fmt::format("volumes {} and {} lost", a, b);
      fs::remove_all(VolumePath(a));
      fs::remove_all(VolumePath(b));
      Reopen();
      ExpectAllReadable(why);
      EXPECT_GT(backend_->GetStatus()->degraded_reads, 0u) << why;
      // New, empty disks in their place; repair rebuilds their fragments.
      ASSERT_TRUE(InitVolumeDirectory(Env::Default(), VolumePath(a), "repo", "v" + std::to_string(a)).ok());
      ASSERT_TRUE(InitVolumeDirectory(Env::Default(), VolumePath(b), "repo", "v" + std::to_string(b)).ok());
      auto rep = backend_->Repair({});
      ASSERT_TRUE(rep.ok()) << rep.status().ToString();
      EXPECT_TRUE(rep->ok()) << why << ": " << (rep->errors.empty() ? "" : rep->errors[0]);
      EXPECT_GE(rep->fragments_rebuilt, packs_.size()) << why;
      auto scrub = backend_->Scrub({.deep = true});
      ASSERT_TRUE(scrub.ok());
      EXPECT_TRUE(scrub->ok()) << why << ": " << (scrub->problems.empty() ? "" : scrub->problems[0].problem);
      EXPECT_EQ(scrub->fragments_checked, 4u * 6 + 3);  // four striped packs, one with three copies
    }
  }
  ExpectAllReadable("after all repairs");
}

TEST_F(RedundantBackendTest, BitFlipsInUpToMFragmentsAreFoundAndCorrected) {
  WritePacks();
  std::mt19937_64 rng(7);
  // Damage two fragment files of every pack, at random bytes of their bodies.
  std::set<std::pair<std::string, std::string>> damaged;  // (pack, volume)
  for (const auto& [name, data] : packs_) {
    std::vector<fs::path> files;
    for (const auto& v : layout_.volumes) {
      for (auto& e : fs::recursive_directory_iterator(v.path + "/fragments")) {
        if (e.path().filename().string().starts_with(name + ".")) files.push_back(e.path());
      }
    }
    ASSERT_GE(files.size(), 3u) << name;  // 6 fragments, or 3 copies of a small pack
    std::shuffle(files.begin(), files.end(), rng);
    for (int i = 0; i < 2; ++i) {
      std::string bytes = strata::testing::ReadFile(files[i]);
      size_t at = bytes.size() - 1 - rng() % (bytes.size() / 2);
      bytes[at] ^= static_cast<char>(1u << (rng() % 8));
      strata::testing::WriteFile(files[i], bytes);
      damaged.insert({name, files[i].parent_path().parent_path().parent_path().filename()});
    }
  }
  Reopen();
  ExpectAllReadable("two fragments of each pack flipped");
  auto scrub = backend_->Scrub({.deep = true});
  ASSERT_TRUE(scrub.ok());
  std::set<std::pair<std::string, std::string>> found;
  for (const auto& p : scrub->problems) {
    std::string vol_dir = "vol" + p.volume.substr(1);
    found.insert({p.pack, vol_dir});
    EXPECT_NE(p.problem.find("checksum"), std::string::npos) << p.problem;
  }
  EXPECT_EQ(found, damaged);
  EXPECT_TRUE(scrub->unreadable.empty());
  auto rep = backend_->Repair({});
  ASSERT_TRUE(rep.ok());
  EXPECT_EQ(rep->fragments_rebuilt, damaged.size());
  auto again = backend_->Scrub({.deep = true});
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->ok());
}

TEST_F(RedundantBackendTest, LosingMPlusOneVolumesIsAClearErrorNeverWrongData) {
  WritePacks();
  fs::remove_all(VolumePath(1));
  fs::remove_all(VolumePath(3));
  fs::remove_all(VolumePath(5));
  Reopen();
  int unreadable = 0;
  for (const auto& [name, data] : packs_) {
    auto got = backend_->Get(ObjectType::kPack, name);
    if (got.ok()) {
      // Only a pack none of whose needed fragments were lost may still read, and then exactly.
      EXPECT_TRUE(*got == data);
      continue;
    }
    ++unreadable;
    EXPECT_EQ(got.status().code(), StatusCode::kCorruption);
    EXPECT_NE(got.status().message().find("pack " + name + " is unreadable"), std::string::npos)
        << got.status().message();
  }
  EXPECT_GT(unreadable, 0);
  auto scrub = backend_->Scrub({});
  ASSERT_TRUE(scrub.ok());
  EXPECT_EQ(static_cast<int>(scrub->unreadable.size()), unreadable);
  auto rep = backend_->Repair({});
  ASSERT_TRUE(rep.ok());
  EXPECT_FALSE(rep->ok());
  EXPECT_EQ(static_cast<int>(rep->unreadable.size()), unreadable);
}

// Reads of one volume fail with EIO.
class FailingReadsEnv : public EnvWrapper {
 public:
  FailingReadsEnv(Env* target, std::string filter) : EnvWrapper(target), filter_(std::move(filter)) {}
  Result<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(const std::string& p) override {
    if (p.find(filter_) != std::string::npos) return Status::IOError("injected EIO: " + p);
    return target()->NewRandomAccessFile(p);
  }

 private:
  std::string filter_;
};

// Opens of one volume's files, for reading or for writing, block until released: a disk that
// hangs.
class HangingEnv : public EnvWrapper {
 public:
  enum class Op { kRead, kWrite, kAll };  // kAll: reads, writes and stats (a dead mount)
  HangingEnv(Env* target, std::string filter, Op op) : EnvWrapper(target), filter_(std::move(filter)), op_(op) {}
  Result<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(const std::string& p) override {
    if (op_ != Op::kWrite) MaybeHang(p);
    return target()->NewRandomAccessFile(p);
  }
  Result<std::unique_ptr<WritableFile>> NewStreamingFile(const std::string& p) override {
    if (op_ != Op::kRead) MaybeHang(p);
    return target()->NewStreamingFile(p);
  }
  bool FileExists(const std::string& p) override {
    if (op_ == Op::kAll) MaybeHang(p);
    return target()->FileExists(p);
  }
  void Release() {
    std::lock_guard<std::mutex> l(mu_);
    released_ = true;
    cv_.notify_all();
  }
  int hung() {
    std::lock_guard<std::mutex> l(mu_);
    return hung_;
  }

 private:
  void MaybeHang(const std::string& p) {
    if (p.find(filter_) == std::string::npos) return;
    std::unique_lock<std::mutex> l(mu_);
    ++hung_;
    cv_.wait(l, [&] { return released_; });
  }
  std::string filter_;
  Op op_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;
  int hung_ = 0;
};

TEST_F(RedundantBackendTest, AVolumeThatHangsIsSkippedAfterTheDeadline) {
  WritePacks();
  HangingEnv hanging(Env::Default(), "/vol2/", HangingEnv::Op::kRead);
  Build(6, "rs:4+2", &hanging);
  backend_->SetReadDeadlineForTesting(std::chrono::milliseconds(300));
  auto start = std::chrono::steady_clock::now();
  ExpectAllReadable("volume 2 hangs");
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // One read waited out the deadline; the others skipped the volume at once.
  EXPECT_EQ(hanging.hung(), 1);
  EXPECT_LT(seconds, 10.0);
  auto st = backend_->GetStatus();
  ASSERT_TRUE(st.ok());
  EXPECT_GT(st->volumes[1].degraded_reads, 0u);
  EXPECT_GT(st->volumes[1].read_errors, 0u);
  EXPECT_EQ(st->volumes[0].degraded_reads, 0u);
  hanging.Release();  // the stuck read returns; its result is dropped
  backend_.reset();
}

// Volumes added to a full repository hold nothing until a rebalance moves fragments onto them:
// afterwards the counts differ by at most one, everything reads back, no old file is left, and
// a second rebalance finds nothing to move.
TEST_F(RedundantBackendTest, RebalanceEvensOutFragmentsAfterVolumesAreAdded) {
  Build(6, "rs:4+2");
  WritePacks();
  for (int i = 7; i <= 8; ++i) {
    VolumeConfig v;
    v.id = "v" + std::to_string(i);
    v.path = dir_ / ("vol" + std::to_string(i));
    v.domain = "rack3/host" + std::to_string(i);  // a new rack: moves there keep every pack's spread
    ASSERT_TRUE(InitVolumeDirectory(Env::Default(), v.path, "repo", v.id).ok());
    layout_.volumes.push_back(v);
  }
  Reopen();
  auto counts = [&] {
    auto st = backend_->GetStatus();
    EXPECT_TRUE(st.ok());
    std::map<std::string, uint64_t> out;
    for (const auto& v : st->volumes) out[v.id] = v.fragments;
    return out;
  };
  EXPECT_EQ(counts()["v7"], 0u);
  auto r = backend_->Rebalance();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->ok()) << (r->errors.empty() ? "" : r->errors[0]);
  EXPECT_GT(r->fragments_moved, 0u);
  auto after = counts();
  uint64_t lo = UINT64_MAX, hi = 0, total = 0;
  for (const auto& [id, n] : after) {
    lo = std::min(lo, n);
    hi = std::max(hi, n);
    total += n;
  }
  EXPECT_LE(hi - lo, 1u) << "v1 " << after["v1"] << " v7 " << after["v7"] << " v8 " << after["v8"];
  ExpectAllReadable("after the rebalance");
  auto again = backend_->Rebalance();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->fragments_moved, 0u);
  EXPECT_EQ(counts(), after);
  // The old files are gone: every fragment on disk is named by a placement record.
  uint64_t files = 0;
  for (const auto& v : layout_.volumes) {
    for (const auto& f : fs::recursive_directory_iterator(v.path + "/fragments")) files += f.is_regular_file();
  }
  EXPECT_EQ(files, total);
  backend_.reset();
}

// With a capacity on every volume, a rebalance fills them in proportion: the two volumes added
// with three times the capacity end up holding the most.
TEST_F(RedundantBackendTest, RebalanceWeighsVolumesByCapacityWhenAllHaveOne) {
  Build(6, "rs:4+2");
  WritePacks();
  for (auto& v : layout_.volumes) v.capacity = 100 << 20;
  for (int i = 7; i <= 8; ++i) {
    VolumeConfig v;
    v.id = "v" + std::to_string(i);
    v.path = dir_ / ("vol" + std::to_string(i));
    v.domain = "rack3/host" + std::to_string(i);
    v.capacity = 300 << 20;
    ASSERT_TRUE(InitVolumeDirectory(Env::Default(), v.path, "repo", v.id).ok());
    layout_.volumes.push_back(v);
  }
  Reopen();
  auto r = backend_->Rebalance();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->ok());
  auto st = backend_->GetStatus();
  ASSERT_TRUE(st.ok());
  std::map<std::string, uint64_t> n;
  for (const auto& v : st->volumes) n[v.id] = v.fragments;
  for (int i = 1; i <= 6; ++i) {
    const std::string id = "v" + std::to_string(i);
    EXPECT_LT(n[id], n["v7"]) << id;
    EXPECT_LT(n[id], n["v8"]) << id;
  }
  ExpectAllReadable("after a weighted rebalance");
  backend_.reset();
}

// Scrub (and repair, which checks fragments the same way) opens each fragment under the read
// deadline: a volume whose files hang on open is reported, not waited for.
TEST_F(RedundantBackendTest, ScrubReportsAVolumeThatHangsInsteadOfWaitingForIt) {
  WritePacks();
  HangingEnv hanging(Env::Default(), "/vol2/", HangingEnv::Op::kRead);
  Build(6, "rs:4+2", &hanging);
  backend_->SetReadDeadlineForTesting(std::chrono::milliseconds(300));
  auto start = std::chrono::steady_clock::now();
  auto scrub = backend_->Scrub({});
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(scrub.ok()) << scrub.status().ToString();
  EXPECT_LT(seconds, 10.0);
  EXPECT_EQ(hanging.hung(), 1);  // one open waited out the deadline; the rest skipped the volume
  ASSERT_FALSE(scrub->problems.empty());
  for (const auto& p : scrub->problems) {
    EXPECT_EQ(p.volume, layout_.volumes[1].id) << p.problem;
    EXPECT_TRUE(p.problem.find("no answer within") != std::string::npos ||
                p.problem.find("did not answer in time") != std::string::npos) << p.problem;
  }
  EXPECT_TRUE(scrub->unreadable.empty());
  hanging.Release();
  backend_.reset();
}

TEST_F(RedundantBackendTest, AVolumeFailingReadsFallsBackToTheOthers) {
  WritePacks();
  FailingReadsEnv failing(Env::Default(), "/vol2/");
  Build(6, "rs:4+2", &failing);
  ExpectAllReadable("volume 2 returns EIO");
  auto st = backend_->GetStatus();
  ASSERT_TRUE(st.ok());
  EXPECT_GT(st->volumes[1].degraded_reads, 0u);
  EXPECT_EQ(st->volumes[0].degraded_reads, 0u);
  backend_.reset();
}

TEST_F(RedundantBackendTest, WritesAvoidAFailingVolumeOrRefuseBelowPolicy) {
  FaultEnv faulty(Env::Default());
  Build(7, "rs:4+2", &faulty);
  faulty.FailWritesAfter(0, "/vol3/");
  WritePacks();
  ExpectAllReadable("volume 3 fails writes");
  auto st = backend_->GetStatus();
  ASSERT_TRUE(st.ok());
  EXPECT_GT(st->volumes[2].write_errors, 0u);
  EXPECT_EQ(st->volumes[2].fragments, 0u);  // nothing left behind on it
  // With six volumes, one failing leaves five domains: rs:4+2 cannot be placed and is refused.
  faulty.FailWritesAfter(-1);
  layout_.volumes.pop_back();
  Reopen();
  faulty.FailWritesAfter(0, "/vol3/");
  Status s = backend_->Put(ObjectType::kPack, "ffrefused", RandomBytes(9, 3u << 20));
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("could not be placed"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("v3"), std::string::npos) << s.message();
  faulty.FailWritesAfter(-1);
  EXPECT_FALSE(backend_->Stat(ObjectType::kPack, "ffrefused").ok());
  backend_.reset();
}

// Every object but packs and locks, and every placement record, is copied to each volume's
// meta/ and removed with it; a volume that fails writes misses copies without failing the
// writer, SyncMirrors then brings its copy to the repository directory's state, and a
// repository directory is recreated from it.
TEST_F(RedundantBackendTest, MetadataIsMirroredOnEveryVolumeAndSyncCatchesUp) {
  FaultEnv faulty(Env::Default());
  Build(6, "rs:4+2", &faulty);
  auto meta = [&](int volume, const std::string& rel) { return dir_ / ("vol" + std::to_string(volume) + "/meta/" + rel); };
  nlohmann::json volumes = nlohmann::json::array();
  for (const auto& v : layout_.volumes) volumes.push_back({{"id", v.id}, {"path", v.path}});
  const std::string config = nlohmann::json{{"volumes", volumes}}.dump();
  ASSERT_TRUE(backend_->Put(ObjectType::kConfig, "config", config).ok());
  ASSERT_TRUE(backend_->Put(ObjectType::kIndex, "aa11", "index bytes").ok());
  ASSERT_TRUE(backend_->Put(ObjectType::kLock, "cc33", "lock").ok());
  ASSERT_TRUE(backend_->Put(ObjectType::kPack, "bbpack", RandomBytes(3, 3u << 20)).ok());
  for (int i = 1; i <= 6; ++i) {
    EXPECT_EQ(strata::testing::ReadFile(meta(i, "index/aa11")), "index bytes") << i;
    EXPECT_EQ(strata::testing::ReadFile(meta(i, "config")), config) << i;
    EXPECT_EQ(strata::testing::ReadFile(meta(i, "placement/bbpack")),
              strata::testing::ReadFile(dir_ / "repo/placement/bbpack")) << i;
    EXPECT_FALSE(fs::exists(meta(i, "locks/cc33"))) << i;
    EXPECT_FALSE(fs::exists(meta(i, "packs"))) << i;
  }

  ASSERT_TRUE(backend_->Put(ObjectType::kRecord, "r1", "one").ok());
  ASSERT_TRUE(backend_->Put(ObjectType::kRecord, "r2", "two").ok());
  EXPECT_TRUE(fs::exists(meta(4, "records/r2")));
  ASSERT_TRUE(backend_->DeleteAll(ObjectType::kRecord, {"r1", "r2", "absent"}).ok());
  EXPECT_FALSE(fs::exists(meta(4, "records/r1")));
  EXPECT_FALSE(fs::exists(meta(4, "records/r2")));

  faulty.FailWritesAfter(0, "/vol2/");
  ASSERT_TRUE(backend_->Put(ObjectType::kRoot, "dd22", "root").ok());  // the volume's failure is not the writer's
  EXPECT_TRUE(fs::exists(meta(1, "roots/dd22")));
  EXPECT_FALSE(fs::exists(meta(2, "roots/dd22")));
  ASSERT_TRUE(backend_->Delete(ObjectType::kIndex, "aa11").ok());
  EXPECT_FALSE(fs::exists(meta(1, "index/aa11")));
  EXPECT_TRUE(fs::exists(meta(2, "index/aa11")));  // avoided by this process since its failure
  auto st = backend_->GetStatus();
  ASSERT_TRUE(st.ok());
  EXPECT_GT(st->volumes[1].write_errors, 0u);

  faulty.FailWritesAfter(-1);
  // Recovered from volume 2 now, the copy lacks what the others have: said, per volume.
  auto stale = RecoverFromVolume(Env::Default(), dir_ / "vol2", dir_ / "stale");
  ASSERT_TRUE(stale.ok()) << stale.status().ToString();
  EXPECT_EQ(stale->fuller.size(), 5u);
  EXPECT_EQ(stale->fuller[dir_ / "vol1"], 1u);  // roots/dd22

  Reopen();  // another process tries volume 2 again
  strata::testing::WriteFile(meta(3, "index/.tmp-0123456789abcdef-ee44"), "a killed write");
  auto synced = backend_->SyncMirrors();
  ASSERT_TRUE(synced.ok()) << synced.status().ToString();
  EXPECT_EQ(*synced, 2u);  // roots/dd22 copied, index/aa11 removed
  EXPECT_EQ(strata::testing::ReadFile(meta(2, "roots/dd22")), "root");
  EXPECT_FALSE(fs::exists(meta(2, "index/aa11")));
  EXPECT_FALSE(fs::exists(meta(3, "index/.tmp-0123456789abcdef-ee44")));
  EXPECT_EQ(*backend_->SyncMirrors(), 0u);

  std::string recovered = dir_ / "recovered";
  auto copied = RecoverFromVolume(Env::Default(), dir_ / "vol2", recovered);
  ASSERT_TRUE(copied.ok()) << copied.status().ToString();
  EXPECT_EQ(copied->files, 3u);  // config, roots/dd22, placement/bbpack
  EXPECT_TRUE(copied->fuller.empty());
  EXPECT_EQ(strata::testing::ReadFile(recovered + "/placement/bbpack"),
            strata::testing::ReadFile(dir_ / "repo/placement/bbpack"));
  EXPECT_EQ(strata::testing::ReadFile(recovered + "/config"), config);
  EXPECT_FALSE(RecoverFromVolume(Env::Default(), dir_ / "vol2", recovered).ok());  // not empty
  EXPECT_FALSE(RecoverFromVolume(Env::Default(), dir_ / "repo", dir_ / "again").ok());  // not a volume
  backend_.reset();
}

TEST_F(RedundantBackendTest, AWriteToAVolumeThatHangsGoesElsewhereAfterTheDeadline) {
  HangingEnv hanging(Env::Default(), "/vol3/", HangingEnv::Op::kWrite);
  Build(7, "rs:4+2", &hanging);
  backend_->SetWriteDeadlineForTesting(std::chrono::milliseconds(300));
  auto start = std::chrono::steady_clock::now();
  WritePacks();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // One write waited out the deadline; later ones avoided the volume at once.
  EXPECT_EQ(hanging.hung(), 1);
  EXPECT_LT(seconds, 10.0);
  ExpectAllReadable("volume 3 hangs on writes");
  auto st = backend_->GetStatus();
  ASSERT_TRUE(st.ok());
  EXPECT_GT(st->volumes[2].write_errors, 0u);
  hanging.Release();  // the stuck write finishes; nothing names its fragment
  backend_.reset();
}

// A volume whose every operation hangs, the check of its marker included (a dead hard mount):
// puts and reads still finish, on the other volumes.
TEST_F(RedundantBackendTest, AVolumeThatHangsEvenOnStatIsAvoidedAfterTheDeadline) {
  HangingEnv hanging(Env::Default(), "/vol3/", HangingEnv::Op::kAll);
  Build(7, "rs:4+2", &hanging);
  backend_->SetReadDeadlineForTesting(std::chrono::milliseconds(300));
  backend_->SetWriteDeadlineForTesting(std::chrono::milliseconds(300));
  auto start = std::chrono::steady_clock::now();
  WritePacks();
  ExpectAllReadable("volume 3 hangs on everything");
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GE(hanging.hung(), 1);
  EXPECT_LT(seconds, 10.0);
  hanging.Release();
  backend_.reset();
}

TEST_F(RedundantBackendTest, PlacementSpreadsOverRacksFirst) {
  // Nine volumes in three racks of three hosts: a 4+2 pack puts two fragments in each rack.
  backend_.reset();
  layout_.volumes.clear();
  for (int r = 0; r < 3; ++r) {
    for (int h = 0; h < 3; ++h) {
      VolumeConfig v;
      v.id = fmt::format("v{}", 10 + r * 3 + h);
      v.path = dir_ / v.id;
      v.domain = fmt::format("rack{}/host{}", r, h);
      ASSERT_TRUE(InitVolumeDirectory(Env::Default(), v.path, "repo", v.id).ok());
      layout_.volumes.push_back(v);
    }
  }
  Reopen();
  for (int i = 0; i < 10; ++i) {
    std::string name = fmt::format("{:02x}spread{}", i, i);
    ASSERT_TRUE(backend_->Put(ObjectType::kPack, name, RandomBytes(i, 2u << 20)).ok());
    std::string bytes = strata::testing::ReadFile(dir_ / ("repo/placement/" + name));
    auto p = ParsePlacement(AsBytes(bytes));
    ASSERT_TRUE(p.ok());
    std::map<std::string, int> per_rack;
    for (const auto& id : p->volumes) per_rack[layout_.Find(id)->domain.substr(0, 5)]++;
    for (const auto& [rack, n] : per_rack) EXPECT_EQ(n, 2) << name << " " << rack;
  }
}

TEST_F(RedundantBackendTest, DrainMovesEveryFragmentAndKeepsDataReadable) {
  Build(7, "rs:4+2");
  WritePacks();
  layout_.volumes[0].draining = true;
  backend_->SetLayout(layout_);
  auto rep = backend_->Repair({});
  ASSERT_TRUE(rep.ok());
  EXPECT_TRUE(rep->ok());
  EXPECT_GT(rep->fragments_moved, 0u);
  EXPECT_EQ(*backend_->PlacementsOn("v1"), 0u);
  auto st = backend_->GetStatus();
  EXPECT_EQ(st->volumes[0].fragments, 0u);
  Reopen();
  ExpectAllReadable("after drain");
}

TEST_F(RedundantBackendTest, DeleteRemovesRecordAndFragments) {
  WritePacks();
  const std::string name = packs_.begin()->first;
  ASSERT_TRUE(backend_->Delete(ObjectType::kPack, name).ok());
  EXPECT_EQ(backend_->Get(ObjectType::kPack, name).status().code(), StatusCode::kNotFound);
  size_t left = 0;
  for (const auto& v : layout_.volumes) {
    for (auto& e : fs::recursive_directory_iterator(v.path + "/fragments")) {
      left += e.path().filename().string().starts_with(name + ".");
    }
  }
  EXPECT_EQ(left, 0u);
}

}  // namespace
}  // namespace strata::volume
