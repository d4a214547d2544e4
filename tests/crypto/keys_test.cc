#include "crypto/keys.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "crypto/aead.h"

namespace strata::crypto {
namespace {

// The cheapest parameters a reader accepts, so the tests stay fast.
KdfParams FastKdf() {
  KdfParams kdf;
  kdf.ops_limit = KdfParams::kMinOps;
  kdf.mem_limit = KdfParams::kMinMem;
  return kdf;
}

class KeySlotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    keys_ = MasterKeys::Generate();
    auto slot = WrapMasterKeys(keys_, "correct horse", FastKdf(), "alice@host");
    ASSERT_TRUE(slot.ok()) << slot.status().ToString();
    slot_ = *slot;
  }
  static bool SameKeys(const MasterKeys& a, const MasterKeys& b) {
    return a.encryption == b.encryption && a.mac == b.mac && a.chunker == b.chunker;
  }
  // A serialized slot with one field replaced.
  std::string WithField(const std::string& path, const nlohmann::json& value) {
    auto doc = nlohmann::json::parse(SerializeKeySlot(slot_));
    doc[nlohmann::json::json_pointer(path)] = value;
    return doc.dump();
  }
  std::string WithoutField(const std::string& key) {
    auto doc = nlohmann::json::parse(SerializeKeySlot(slot_));
    doc.erase(key);
    return doc.dump();
  }

  MasterKeys keys_;
  KeySlot slot_;
};

TEST_F(KeySlotTest, GenerateGivesDistinctKeys) {
  MasterKeys other = MasterKeys::Generate();
  EXPECT_NE(keys_.encryption, other.encryption);
  EXPECT_NE(keys_.encryption, keys_.mac);
  EXPECT_NE(keys_.mac, keys_.chunker);
}

TEST_F(KeySlotTest, WrapUnwrap) {
  EXPECT_EQ(slot_.id.size(), 16u);
  EXPECT_EQ(slot_.label, "alice@host");
  EXPECT_GT(slot_.created_unix, 1600000000);
  EXPECT_EQ(slot_.wrapped.size(), 96 + Aead::kOverhead);
  auto keys = UnwrapMasterKeys(slot_, "correct horse");
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  EXPECT_TRUE(SameKeys(*keys, keys_));
}

TEST_F(KeySlotTest, WrongPassphraseIsUnauthenticated) {
  for (std::string_view pass : {"correct hors", "correct horse ", "", "Correct horse"}) {
    auto keys = UnwrapMasterKeys(slot_, pass);
    ASSERT_FALSE(keys.ok());
    EXPECT_EQ(keys.status().code(), StatusCode::kUnauthenticated);
    EXPECT_NE(keys.status().message().find(slot_.id), std::string::npos) << keys.status().message();
  }
}

TEST_F(KeySlotTest, SlotsAreIndependentAndBoundToTheirId) {
  auto second = WrapMasterKeys(keys_, "correct horse", FastKdf(), "bob");
  ASSERT_TRUE(second.ok());
  EXPECT_NE(second->id, slot_.id);
  EXPECT_NE(second->salt, slot_.salt);
  // Moving a wrapped blob under another slot id must not open.
  KeySlot moved = *second;
  moved.id = slot_.id;
  EXPECT_EQ(UnwrapMasterKeys(moved, "correct horse").status().code(), StatusCode::kUnauthenticated);
  // Changed KDF parameters derive another key.
  KeySlot tweaked = slot_;
  tweaked.kdf.ops_limit += 1;
  EXPECT_EQ(UnwrapMasterKeys(tweaked, "correct horse").status().code(), StatusCode::kUnauthenticated);
}

TEST_F(KeySlotTest, WrapRefusesParametersReadersWouldRefuse) {
  KdfParams weak = FastKdf();
  weak.mem_limit = KdfParams::kMinMem - 1;
  EXPECT_EQ(WrapMasterKeys(keys_, "p", weak, "").status().code(), StatusCode::kInvalidArgument);
  KdfParams zero_ops = FastKdf();
  zero_ops.ops_limit = 0;
  EXPECT_EQ(WrapMasterKeys(keys_, "p", zero_ops, "").status().code(), StatusCode::kInvalidArgument);
}

TEST_F(KeySlotTest, SerializeParseRoundTrip) {
  std::string text = SerializeKeySlot(slot_);
  auto parsed = ParseKeySlot(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->id, slot_.id);
  EXPECT_EQ(parsed->label, slot_.label);
  EXPECT_EQ(parsed->created_unix, slot_.created_unix);
  EXPECT_EQ(parsed->kdf.ops_limit, slot_.kdf.ops_limit);
  EXPECT_EQ(parsed->kdf.mem_limit, slot_.kdf.mem_limit);
  EXPECT_EQ(parsed->salt, slot_.salt);
  EXPECT_EQ(parsed->wrapped, slot_.wrapped);
  EXPECT_EQ(SerializeKeySlot(*parsed), text);
  auto keys = UnwrapMasterKeys(*parsed, "correct horse");
  ASSERT_TRUE(keys.ok());
  EXPECT_TRUE(SameKeys(*keys, keys_));
}

TEST_F(KeySlotTest, SerializedFormHasDocumentedFields) {
  auto doc = nlohmann::json::parse(SerializeKeySlot(slot_));
  EXPECT_EQ(doc["version"], 1);
  EXPECT_EQ(doc["kdf"]["algorithm"], "argon2id");
  EXPECT_EQ(doc["kdf"]["ops"], KdfParams::kMinOps);
  EXPECT_EQ(doc["kdf"]["mem"], KdfParams::kMinMem);
  EXPECT_EQ(doc["salt"].get<std::string>().size(), 32u);
  EXPECT_EQ(doc["wrapped"].get<std::string>().size(), 2 * (96 + Aead::kOverhead));
}

TEST_F(KeySlotTest, InvalidUtf8LabelDoesNotThrow) {
  slot_.label = std::string("bad \xff\xfe label");
  std::string text = SerializeKeySlot(slot_);
  auto parsed = ParseKeySlot(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->id, slot_.id);
}

TEST_F(KeySlotTest, GarbageIsCorruption) {
  for (std::string_view bad : {"", "{", "null", "[]", "42", "\"slot\"", "{\"version\":1}", "\xff\xfe\x00\x01",
                               "{\"version\":\"1\"}", "{\"version\":1.5}"}) {
    auto parsed = ParseKeySlot(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().code(), StatusCode::kCorruption) << bad;
  }
}

TEST_F(KeySlotTest, EveryTruncationIsAnError) {
  std::string text = SerializeKeySlot(slot_);
  // The document ends with "}\n"; dropping only the newline still leaves a valid slot.
  for (size_t n = 0; n + 1 < text.size(); ++n) {
    auto parsed = ParseKeySlot(std::string_view(text).substr(0, n));
    ASSERT_FALSE(parsed.ok()) << "accepted a slot truncated to " << n << " bytes";
    EXPECT_EQ(parsed.status().code(), StatusCode::kCorruption);
  }
}

TEST_F(KeySlotTest, NewerVersionIsUnsupported) {
  auto parsed = ParseKeySlot(WithField("/version", 2));
  EXPECT_EQ(parsed.status().code(), StatusCode::kUnsupported) << parsed.status().ToString();
  EXPECT_EQ(ParseKeySlot(WithField("/version", 0)).status().code(), StatusCode::kCorruption);
  EXPECT_EQ(ParseKeySlot(WithField("/version", -1)).status().code(), StatusCode::kCorruption);
  EXPECT_EQ(ParseKeySlot(WithField("/kdf/algorithm", "scrypt")).status().code(), StatusCode::kUnsupported);
}

TEST_F(KeySlotTest, KdfDowngradeAndExcessAreRefused) {
  EXPECT_EQ(ParseKeySlot(WithField("/kdf/ops", 0)).status().code(), StatusCode::kCorruption);
  EXPECT_EQ(ParseKeySlot(WithField("/kdf/mem", KdfParams::kMinMem - 1)).status().code(), StatusCode::kCorruption);
  EXPECT_EQ(ParseKeySlot(WithField("/kdf/mem", KdfParams::kMaxMem + 1)).status().code(), StatusCode::kCorruption);
  EXPECT_EQ(ParseKeySlot(WithField("/kdf/ops", KdfParams::kMaxOps + 1)).status().code(), StatusCode::kCorruption);
  EXPECT_EQ(ParseKeySlot(WithField("/kdf/ops", -3)).status().code(), StatusCode::kCorruption);
  EXPECT_EQ(ParseKeySlot(WithField("/kdf/mem", "lots")).status().code(), StatusCode::kCorruption);
  EXPECT_EQ(ParseKeySlot(WithField("/kdf", 7)).status().code(), StatusCode::kCorruption);
  EXPECT_TRUE(ParseKeySlot(WithField("/kdf/ops", 3)).ok());
}

TEST_F(KeySlotTest, BadFieldsAreCorruption) {
  for (const auto& text : {
           WithField("/salt", "00ff"),                       // short salt
           WithField("/salt", std::string(32, 'z')),         // not hex
           WithField("/wrapped", std::string(2 * 123, 'a')), // one byte short
           WithField("/wrapped", std::string(2 * 125, 'a')), // one byte long
           WithField("/id", "../../etc/passwd"),             // an id is a file name
           WithField("/id", "ABCDEF0123456789"),             // uppercase is not canonical
           WithField("/id", 12),
           WithField("/label", nlohmann::json::array()),
           WithField("/created", "yesterday"),
           WithField("/created", 18446744073709551615ull),
           WithoutField("salt"), WithoutField("wrapped"), WithoutField("id"), WithoutField("kdf"),
           WithoutField("label"), WithoutField("created"), WithoutField("version"),
       }) {
    auto parsed = ParseKeySlot(text);
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_EQ(parsed.status().code(), StatusCode::kCorruption) << text;
  }
}

TEST_F(KeySlotTest, OversizedInputIsRefusedQuickly) {
  std::string huge = SerializeKeySlot(slot_);
  huge.insert(1, std::string(1 << 20, ' '));
  EXPECT_EQ(ParseKeySlot(huge).status().code(), StatusCode::kCorruption);
}

TEST_F(KeySlotTest, DeepNestingDoesNotCrash) {
  std::string deep = std::string(30000, '[') + std::string(30000, ']');
  EXPECT_FALSE(ParseKeySlot(deep).ok());
}

TEST_F(KeySlotTest, UnwrapChecksInMemorySlots) {
  KeySlot bad = slot_;
  bad.wrapped.pop_back();
  EXPECT_EQ(UnwrapMasterKeys(bad, "correct horse").status().code(), StatusCode::kCorruption);
  KeySlot weak = slot_;
  weak.kdf.mem_limit = 1024;
  EXPECT_EQ(UnwrapMasterKeys(weak, "correct horse").status().code(), StatusCode::kCorruption);
}

}  // namespace
}  // namespace strata::crypto
