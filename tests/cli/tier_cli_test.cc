// End-to-end tests of `strata tier stage` and `strata tier evict`: shards written with the shard
// library, committed to a dataset, staged into a directory, damaged there and staged again,
// and evicted without touching anything else in the directory.
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "strata/shard.h"
#include "testutil/cli_testutil.h"

namespace strata::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

shard::Schema TestSchema() {
  shard::Field image;
  image.name = "image";
  image.type = shard::FieldType::kTensor;
  image.dtype = shard::DType::kUint8;
  image.shape = {-1};
  shard::Field label;
  label.name = "label";
  label.type = shard::FieldType::kLabel;
  label.num_classes = 10;
  return shard::Schema{{image, label}};
}

// A set of shards in `dir` (records of 1-60 KiB, several shards).
std::vector<shard::ShardInfo> WriteShards(const std::string& dir, uint64_t seed, std::optional<shard::Key> key = {}) {
  shard::ShardSetOptions o;
  o.dir = dir;
  o.prefix = "train";
  o.schema = TestSchema();
  o.target_size = 256 << 10;
  o.writer.key = key;
  auto set = shard::ShardSetWriter::Create(o);
  EXPECT_TRUE(set.ok()) << set.status().ToString();
  for (uint64_t i = 0; i < 40; ++i) {
    size_t size = 1024 + (i * 7919 + seed) % (60 << 10);
    shard::Record r{shard::Tensor{shard::DType::kUint8, {size}, RandomBytes(seed * 100 + i, size)},
                    shard::Label{static_cast<uint32_t>(i % 10)}};
    EXPECT_TRUE((*set)->Add(r).ok());
  }
  auto done = (*set)->Finish();
  EXPECT_TRUE(done.ok()) << done.status().ToString();
  return done.ok() ? *done : std::vector<shard::ShardInfo>{};
}

class TierCliTest : public CliTest {
 protected:
  void SetUp() override {
    InitRepo();
    if (HasFatalFailure()) return;
    src_ = dir_ / "src";
    shards_ = WriteShards(src_ + "/shards", 1);
    ASSERT_GE(shards_.size(), 3u);
    WriteFile(src_ + "/README.txt", "not a shard\n");
    WriteFile(src_ + "/shards/notes.txt", "not a shard either\n");
    ASSERT_EQ(S({"dataset", "create", "fm"}).exit_code, 0);
    auto c = S({"commit", "fm@main", src_, "-m", "shards"});
    ASSERT_EQ(c.exit_code, 0) << Describe(c);
  }

  static json Manifest(const std::string& dir) { return json::parse(ReadFile(dir + "/.strata-tier.json")); }

  std::string src_;
  std::vector<shard::ShardInfo> shards_;
};

TEST_F(TierCliTest, StageVerifyRepairEvict) {
  const std::string tier = dir_ / "tier";
  WriteFile(tier + "/mine.txt", "the user's own file\n");
  WriteFile(tier + "/other.shard", "a file stage did not make\n");

  json st = J({"tier", "stage", "fm@main", tier});
  EXPECT_EQ(st["copied"], shards_.size());
  EXPECT_EQ(st["skipped"], 0);
  EXPECT_EQ(st["failed"], 0);
  json m = Manifest(tier);
  EXPECT_EQ(m["format"], "strata-tier/1");
  EXPECT_EQ(m["source"], "fm@main");
  EXPECT_EQ(m["dataset"], "fm");
  EXPECT_EQ(m["commit"], st["commit"]);
  EXPECT_EQ(m["complete"], true);
  ASSERT_EQ(m["files"].size(), shards_.size());
  for (size_t i = 0; i < shards_.size(); ++i) {
    const json& f = m["files"][i];
    const std::string name = fs::path(shards_[i].path).filename();
    EXPECT_EQ(f["path"], "shards/" + name);
    EXPECT_EQ(f["size"], shards_[i].bytes);
    EXPECT_EQ(f["records"], shards_[i].record_count);
    EXPECT_EQ(f["encrypted"], false);
    EXPECT_GT(f["verified_unix"].get<int64_t>(), 0);
    EXPECT_EQ(ReadFile(tier + "/shards/" + name), ReadFile(shards_[i].path)) << name;
    auto r = shard::ShardReader::Open(tier + "/shards/" + name, {});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_TRUE((*r)->Verify().ok());
  }
  EXPECT_FALSE(fs::exists(tier + "/README.txt"));
  EXPECT_FALSE(fs::exists(tier + "/shards/notes.txt"));

  // Again: nothing to copy.
  json again = J({"tier", "stage", "fm@main", tier});
  EXPECT_EQ(again["copied"], 0);
  EXPECT_EQ(again["skipped"], shards_.size());

  // Damage one staged shard and remove another: staging again repairs exactly those.
  const std::string name1 = fs::path(shards_[1].path).filename();
  const std::string name2 = fs::path(shards_[2].path).filename();
  std::string bytes = ReadFile(tier + "/shards/" + name1);
  bytes[bytes.size() / 2] ^= 0x40;
  WriteFile(tier + "/shards/" + name1, bytes);
  fs::remove(tier + "/shards/" + name2);
  json repaired = J({"tier", "stage", "fm@main", tier});
  EXPECT_EQ(repaired["copied"], 2);
  EXPECT_EQ(repaired["skipped"], shards_.size() - 2);
  EXPECT_EQ(ReadFile(tier + "/shards/" + name1), ReadFile(shards_[1].path));
  EXPECT_EQ(ReadFile(tier + "/shards/" + name2), ReadFile(shards_[2].path));

  // Another version may not be staged over this one.
  WriteShards(src_ + "/shards", 2);
  ASSERT_EQ(S({"commit", "fm@main", src_, "-m", "new shards"}).exit_code, 0);
  auto refused = S({"tier", "stage", "fm@main", tier});
  EXPECT_EQ(refused.exit_code, 6) << Describe(refused);
  EXPECT_NE(refused.err.find("tier evict"), std::string::npos) << refused.err;

  // Evict: the listed files and the directory stage made go; everything else stays.
  json ev = J({"tier", "evict", tier});
  EXPECT_EQ(ev["removed"].size(), shards_.size());
  EXPECT_FALSE(fs::exists(tier + "/.strata-tier.json"));
  EXPECT_FALSE(fs::exists(tier + "/shards"));
  EXPECT_EQ(ReadFile(tier + "/mine.txt"), "the user's own file\n");
  EXPECT_EQ(ReadFile(tier + "/other.shard"), "a file stage did not make\n");
  auto none = S({"tier", "evict", tier});
  EXPECT_EQ(none.exit_code, 3) << Describe(none);
}

TEST_F(TierCliTest, AShardDamagedInTheRepositoryIsReportedAndNotStaged) {
  // Commit a damaged shard (the repository stores it faithfully; the shard itself is bad).
  std::string bad = ReadFile(shards_[0].path);
  bad[bad.size() - 40] ^= 0x01;  // inside the index
  WriteFile(src_ + "/shards/broken.shard", bad);
  ASSERT_EQ(S({"commit", "fm@main", src_, "-m", "with a broken shard"}).exit_code, 0);
  const std::string tier = dir_ / "tier";
  json st = J({"tier", "stage", "fm@main:shards", tier}, 5);
  EXPECT_EQ(st["failed"], 1);
  EXPECT_EQ(st["copied"], shards_.size());
  bool reported = false;
  for (const json& f : st["files"]) {
    if (f["path"] == "broken.shard") {
      reported = true;
      EXPECT_EQ(f["status"], "failed");
      EXPECT_NE(f["error"].get<std::string>().find("checksum"), std::string::npos) << f.dump();
    }
  }
  EXPECT_TRUE(reported);
  EXPECT_FALSE(fs::exists(tier + "/broken.shard"));
  EXPECT_FALSE(fs::exists(tier + "/broken.shard.strata-tmp"));
  json m = Manifest(tier);
  EXPECT_EQ(m["complete"], false);
  EXPECT_EQ(m["files"].size(), shards_.size());
  EXPECT_EQ(m["path"], "shards");
  EXPECT_TRUE(fs::exists(tier + "/" + fs::path(shards_[0].path).filename().string()));
}

TEST_F(TierCliTest, ErrorsAreClear) {
  const std::string tier = dir_ / "tier";
  auto none = S({"tier", "stage", "fm@main:README.txt", tier});
  EXPECT_NE(none.exit_code, 0);
  auto missing = S({"tier", "stage", "nosuch@main", tier});
  EXPECT_EQ(missing.exit_code, 3) << Describe(missing);
  auto usage = S({"tier", "stage", "fm-main", tier});
  EXPECT_EQ(usage.exit_code, 2) << Describe(usage);

  // A manifest someone edited to reach outside the directory is refused, and nothing goes.
  WriteFile(dir_ / "outside.shard", "keep me\n");
  WriteFile(tier + "/.strata-tier.json",
            R"({"format": "strata-tier/1", "source": "x@y", "dataset": "x", "commit": "00", "path": "",
                "complete": true, "staged_unix": 0, "dirs": [],
                "files": [{"path": "../outside.shard", "size": 8, "crc32c": "00000000", "records": 0,
                           "encrypted": false, "verified_unix": 0}]})");
  auto evil = S({"tier", "evict", tier});
  EXPECT_EQ(evil.exit_code, 5) << Describe(evil);
  EXPECT_NE(evil.err.find("leaves the directory"), std::string::npos) << evil.err;
  EXPECT_EQ(ReadFile(dir_ / "outside.shard"), "keep me\n");
}

TEST_F(TierCliTest, EncryptedShardsNeedTheirKey) {
  shard::Key key{};
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(i * 3);
  const std::string enc = dir_ / "enc";
  auto shards = WriteShards(enc + "/shards", 3, key);
  ASSERT_EQ(S({"dataset", "create", "sealed"}).exit_code, 0);
  ASSERT_EQ(S({"commit", "sealed@main", enc, "-m", "sealed shards"}).exit_code, 0);
  const std::string tier = dir_ / "tier";
  auto no_key = S({"tier", "stage", "sealed@main", tier});
  EXPECT_EQ(no_key.exit_code, 2) << Describe(no_key);
  EXPECT_NE(no_key.err.find("--shard-key-file"), std::string::npos) << no_key.err;
  std::string hex;
  for (uint8_t b : key) hex += "0123456789abcdef"[b >> 4], hex += "0123456789abcdef"[b & 15];
  WriteFile(dir_ / "key.hex", hex + "\n");
  json st = J({"tier", "stage", "sealed@main", tier, "--shard-key-file", dir_ / "key.hex"});
  EXPECT_EQ(st["copied"], shards.size());
  EXPECT_EQ(Manifest(tier)["files"][0]["encrypted"], true);
}

}  // namespace
}  // namespace strata::testing
