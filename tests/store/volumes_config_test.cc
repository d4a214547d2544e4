// The config with volumes (format version 2): round trip, MAC over the layout, and a version-1
// config (a repository that never had a volume) staying exactly as it was.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "crypto/aead.h"
#include "store/config.h"

namespace strata::store {
namespace {

crypto::Key256 Key() {
  crypto::Key256 key{};
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(7 * i + 3);
  return key;
}

RepositoryConfig WithVolumes() {
  RepositoryConfig c;
  c.id = "0123456789abcdef0123456789abcdef";
  c.version = RepositoryConfig::kVolumesFormatVersion;
  for (int i = 1; i <= 6; ++i) {
    c.volumes.push_back({"v" + std::to_string(i), "/mnt/d" + std::to_string(i), "rack1/disk" + std::to_string(i),
                         uint64_t{1} << 40, i == 6});
  }
  c.redundancy = "rs:4+2";
  c.next_volume = 7;
  return c;
}

TEST(VolumesConfigTest, VersionTwoRoundTripsUnderTheMac) {
  crypto::KeyedHash mac(Key());
  RepositoryConfig c = WithVolumes();
  auto parsed = ParseConfig(SerializeConfig(c, mac));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_TRUE(CheckConfigMac(*parsed, mac).ok());
  const RepositoryConfig& p = parsed->config;
  ASSERT_EQ(p.volumes.size(), 6u);
  EXPECT_EQ(p.volumes[2].domain, "rack1/disk3");
  EXPECT_TRUE(p.volumes[5].draining);
  EXPECT_EQ(p.next_volume, 7u);
  EXPECT_EQ(p.layout().policy.ToString(), "rs:4+2");
  // Moving a volume to another path, or weakening the policy, is caught by the MAC.
  auto j = nlohmann::json::parse(SerializeConfig(c, mac));
  j["volumes"][0]["path"] = "/tmp/evil";
  auto moved = ParseConfig(j.dump());
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(CheckConfigMac(*moved, mac).code(), StatusCode::kCorruption);
  j = nlohmann::json::parse(SerializeConfig(c, mac));
  j["redundancy"]["policy"] = "none";
  auto weaker = ParseConfig(j.dump());
  ASSERT_TRUE(weaker.ok());
  EXPECT_EQ(CheckConfigMac(*weaker, mac).code(), StatusCode::kCorruption);
}

TEST(VolumesConfigTest, BadLayoutsAreRefused) {
  crypto::KeyedHash mac(Key());
  auto base = nlohmann::json::parse(SerializeConfig(WithVolumes(), mac));
  auto edit = [&](auto f) {
    auto j = base;
    f(j);
    return ParseConfig(j.dump());
  };
  EXPECT_FALSE(edit([](auto& j) { j["redundancy"]["policy"] = "rs:40+2"; }).ok());
  EXPECT_FALSE(edit([](auto& j) { j["volumes"][1]["id"] = "v1"; }).ok());
  EXPECT_FALSE(edit([](auto& j) { j["volumes"][1]["id"] = "../x"; }).ok());
  EXPECT_FALSE(edit([](auto& j) { j["volumes"][1]["path"] = "/mnt/d1"; }).ok());
  EXPECT_FALSE(edit([](auto& j) { j["volumes"][1]["domain"] = ""; }).ok());
  EXPECT_FALSE(edit([](auto& j) { j.erase("volumes"); }).ok());
  // Volumes in a version-1 config are unknown fields; version 3 is newer than supported.
  EXPECT_FALSE(edit([](auto& j) { j["version"] = 1; }).ok());
  EXPECT_EQ(edit([](auto& j) { j["version"] = 3; }).status().code(), StatusCode::kUnsupported);
}

TEST(VolumesConfigTest, DatasetClassesRoundTripAndNameTheirPacks) {
  crypto::KeyedHash mac(Key());
  RepositoryConfig c = WithVolumes();
  c.classes.push_back({3, "raw", *volume::RedundancyPolicy::Parse("rs:4+1")});
  c.classes.push_back({5, "models/m1", *volume::RedundancyPolicy::Parse("replicate:3")});
  c.next_class = 6;
  auto parsed = ParseConfig(SerializeConfig(c, mac));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_TRUE(CheckConfigMac(*parsed, mac).ok());
  const volume::VolumeLayout l = parsed->config.layout();
  ASSERT_EQ(l.classes.size(), 2u);
  EXPECT_EQ(parsed->config.next_class, 6u);
  const std::string hex = "0123456789abcdef0123456789abcdef";
  EXPECT_EQ(l.PolicyFor(hex).ToString(), "rs:4+2");
  EXPECT_EQ(l.PolicyFor(hex + "-c3").ToString(), "rs:4+1");
  EXPECT_EQ(l.PolicyFor(hex + "-c5").ToString(), "replicate:3");
  EXPECT_EQ(l.PolicyFor(hex + "-c4").ToString(), "rs:4+2");  // a removed class: the repository's
  EXPECT_EQ(l.PolicyFor(hex + "-c03").ToString(), "rs:4+2");  // not a class suffix
  EXPECT_EQ(l.PolicyFor(hex + "-archive").ToString(), "rs:4+2");
  EXPECT_EQ(volume::PackClass(hex + "-c3"), 3u);
  EXPECT_EQ(volume::PackClass(hex + "-c"), 0u);
  EXPECT_EQ(volume::PackClass(hex + "-c3x"), 0u);
  EXPECT_EQ(volume::FailuresTolerated(l.classes[1].policy), 2);

  auto base = nlohmann::json::parse(SerializeConfig(c, mac));
  auto edit = [&](auto f) {
    auto j = base;
    f(j);
    return ParseConfig(j.dump());
  };
  EXPECT_FALSE(edit([](auto& j) { j["redundancy"]["classes"][0]["id"] = 6; }).ok());  // not below next_class
  EXPECT_FALSE(edit([](auto& j) { j["redundancy"]["classes"][1]["id"] = 3; }).ok());
  EXPECT_FALSE(edit([](auto& j) { j["redundancy"]["classes"][1]["label"] = "raw"; }).ok());
  EXPECT_FALSE(edit([](auto& j) { j["redundancy"]["classes"][0]["policy"] = "rs:4"; }).ok());
  EXPECT_FALSE(edit([](auto& j) { j["redundancy"].erase("next_class"); }).ok());
  // Weakening a dataset's policy is caught by the MAC.
  auto weaker = edit([](auto& j) { j["redundancy"]["classes"][0]["policy"] = "none"; });
  ASSERT_TRUE(weaker.ok());
  EXPECT_EQ(CheckConfigMac(*weaker, mac).code(), StatusCode::kCorruption);
}

TEST(VolumesConfigTest, VersionOneIsUnchanged) {
  crypto::KeyedHash mac(Key());
  RepositoryConfig c;
  c.id = "0123456789abcdef0123456789abcdef";
  auto j = nlohmann::json::parse(SerializeConfig(c, mac));
  EXPECT_EQ(j["version"], 1);
  EXPECT_FALSE(j.contains("volumes"));
  EXPECT_FALSE(j.contains("redundancy"));
  EXPECT_EQ(j.size(), 8u);  // format version id created chunker compression pack_size mac
}

}  // namespace
}  // namespace strata::store
