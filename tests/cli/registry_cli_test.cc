// End-to-end tests of `strata model`, `strata retention`, `strata lineage` and `strata report
// governance`: the real binary on checkpoints imported from safetensors files, checking exit
// codes, messages, --json output, the exported files byte by byte, and the audit log.
#include <openssl/evp.h>

#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testutil/cli_testutil.h"

namespace strata::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

uint64_t Le(const std::string& b, size_t at, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | uint8_t(b[at + i]);
  return v;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char md[32];
  unsigned int len = 0;
  EXPECT_EQ(EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr), 1);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) out += {kHex[md[i] >> 4], kHex[md[i] & 15]};
  return out;
}

// Reads a serving weights file as docs/FORMAT.md describes it, without strata's loader: the
// 64-byte prefix, the header (checked against its SHA-256), then each tensor at an aligned
// offset, checked against its own SHA-256. Returns the tensors by name.
std::map<std::string, std::string> ReadServing(const std::string& file, uint32_t want_alignment) {
  std::string b = ReadFile(file);
  std::map<std::string, std::string> out;
  EXPECT_GE(b.size(), 64u);
  if (b.size() < 64) return out;
  EXPECT_EQ(b.substr(0, 8), "STRATAWT");
  EXPECT_EQ(Le(b, 8, 4), 1u);
  EXPECT_EQ(Le(b, 12, 4), want_alignment);
  uint64_t hlen = Le(b, 16, 8), data_offset = Le(b, 24, 8);
  EXPECT_LE(64 + hlen, data_offset);
  EXPECT_EQ(data_offset % want_alignment, 0u);
  std::string header = b.substr(64, hlen);
  std::string sum = Sha256Hex(header);
  std::string stored;
  static const char* kHex = "0123456789abcdef";
  for (int i = 0; i < 32; ++i) stored += {kHex[uint8_t(b[32 + i]) >> 4], kHex[uint8_t(b[32 + i]) & 15]};
  EXPECT_EQ(stored, sum) << "header checksum";
  json h = json::parse(header);
  EXPECT_EQ(h["format"], "strata.weights");
  EXPECT_EQ(h["hash"], "sha256");
  for (const auto& t : h["tensors"]) {
    uint64_t off = t["offset"], n = t["bytes"];
    EXPECT_EQ(off % want_alignment, 0u);
    EXPECT_LE(off + n, b.size());
    std::string bytes = b.substr(off, n);
    EXPECT_EQ(Sha256Hex(bytes), t["hash"].get<std::string>()) << t["name"];
    out[t["name"]] = bytes;
  }
  return out;
}

class RegistryCliTest : public CliTest {
 protected:
  void SetUp() override { InitRepo({"--pack-size", "1048576"}); }

  // Raw data fm@main (an ingest: its commit names a source), run exp1 trained on it with
  // checkpoints 100 and 200 imported from safetensors files (tensor "w" differs).
  void MakeRun() {
    ASSERT_EQ(S({"dataset", "create", "fm"}).exit_code, 0);
    WriteFile(dir_ / "src/a.txt", "hello\n");
    auto r = S({"commit", "fm@main", dir_ / "src", "-m", "raw", "--meta", "source=/data/fm.tar"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    r = S({"run", "create", "exp1", "-p", "lr=0.1", "--dataset", "fm@main"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    WriteFile(dir_ / "a.safetensors", Safetensors({{"w", {{100, 30}, w1_}}, {"b", {{30}, b_}}}));
    WriteFile(dir_ / "b.safetensors", Safetensors({{"w", {{100, 30}, w2_}}, {"b", {{30}, b_}}}));
    r = S({"ckpt", "import", "exp1", dir_ / "a.safetensors", "--step", "100"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    r = S({"ckpt", "import", "exp1", dir_ / "b.safetensors", "--step", "200"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
  }

  // Audit entries with action `action`.
  std::vector<json> Audited(const std::string& action) {
    std::vector<json> out;
    for (const auto& e : J({"audit", "log"})) {
      if (e["action"] == action) out.push_back(e);
    }
    return out;
  }

  std::string w1_ = RandomBytes(1, 4 * 100 * 30), w2_ = RandomBytes(2, 4 * 100 * 30), b_ = RandomBytes(3, 4 * 30);
};

TEST_F(RegistryCliTest, RegisterListShowDiffAlias) {
  MakeRun();
  json v1 = J({"model", "register", "cnn", "--from", "exp1@100", "--metric", "accuracy=0.8", "--input", "image:F32:?,30",
               "--output", "logits:F32:?,10", "--description", "first"});
  EXPECT_EQ(v1["version"], 1);
  EXPECT_EQ(v1["run"], "exp1");
  EXPECT_EQ(v1["step"], 100);
  EXPECT_EQ(v1["params"]["lr"], "0.1");
  EXPECT_EQ(v1["metrics"]["accuracy"], 0.8);
  EXPECT_TRUE(v1["data"].get<std::string>().starts_with("fm@")) << v1.dump();
  EXPECT_EQ(v1["signature"]["inputs"][0]["shape"], json({-1, 30}));
  json v2 = J({"model", "register", "cnn", "--from", "exp1"});  // the run's newest checkpoint
  EXPECT_EQ(v2["version"], 2);
  EXPECT_EQ(v2["step"], 200);

  json list = J({"model", "list", "cnn"});
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]["version"], 1);
  auto text = S({"model", "list", "cnn"});
  EXPECT_EQ(text.exit_code, 0) << Describe(text);
  EXPECT_NE(text.out.find("run exp1@200"), std::string::npos) << text.out;

  // Aliases move atomically, each move audited.
  auto a = S({"model", "alias", "cnn@production", "1"});
  ASSERT_EQ(a.exit_code, 0) << Describe(a);
  EXPECT_NE(a.out.find("cnn@production -> version 1"), std::string::npos) << a.out;
  EXPECT_EQ(J({"model", "show", "cnn@production"})["version"], 1);
  J({"model", "alias", "cnn@production", "2"});
  json prod = J({"model", "show", "cnn@production"});
  EXPECT_EQ(prod["version"], 2);
  EXPECT_EQ(prod["aliases"], json({"production"}));
  EXPECT_EQ(J({"model", "show", "cnn"})["version"], 2);  // the newest
  EXPECT_EQ(J({"model", "show", "cnn@v1"})["description"], "first");
  EXPECT_EQ(Audited("model.alias").size(), 2u);
  auto show = S({"model", "show", "cnn@1"});
  EXPECT_NE(show.out.find("model cnn version 1"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("input image F32 [-1,30]"), std::string::npos) << show.out;

  json diff = J({"model", "diff", "cnn@1", "cnn@production"});
  EXPECT_EQ(diff["metrics"]["accuracy"], json({0.8, nullptr}));
  EXPECT_EQ(diff["checkpoint"], json({"exp1@100", "exp1@200"}));
  EXPECT_EQ(diff["data_changed"], false);
  EXPECT_TRUE(diff["params"].empty());
  auto dt = S({"model", "diff", "cnn@1", "cnn@2"});
  EXPECT_NE(dt.out.find("metric accuracy: 0.8 -> null"), std::string::npos) << dt.out;

  J({"model", "alias", "cnn@staging", "1"});
  J({"model", "alias", "cnn@staging", "--delete"});
  auto gone = S({"model", "show", "cnn@staging"});
  EXPECT_EQ(gone.exit_code, 3) << Describe(gone);
}

TEST_F(RegistryCliTest, ExportAndPull) {
  MakeRun();
  J({"model", "register", "cnn", "--from", "exp1@100"});
  J({"model", "register", "cnn", "--from", "exp1@200"});
  J({"model", "alias", "cnn@production", "1"});

  auto r = S({"model", "export", "cnn@production", "--format", "safetensors", dir_ / "m.safetensors"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("exported cnn version 1"), std::string::npos) << r.out;
  auto st = ReadSafetensors(dir_ / "m.safetensors");
  EXPECT_TRUE(st["w"] == w1_);
  EXPECT_TRUE(st["b"] == b_);

  // The strata format, read and verified by this test from the documented layout.
  json e = J({"model", "export", "cnn@production", "--format", "strata", dir_ / "m.strata"});
  EXPECT_EQ(e["format"], "strata");
  auto sv = ReadServing(dir_ / "m.strata", 4096);
  EXPECT_EQ(sv.size(), 2u);
  EXPECT_TRUE(sv["w"] == w1_);
  EXPECT_TRUE(sv["b"] == b_);
  J({"model", "export", "cnn@2", "--align", "64", dir_ / "m64.strata"});
  EXPECT_TRUE(ReadServing(dir_ / "m64.strata", 64)["w"] == w2_);
  EXPECT_EQ(S({"model", "export", "cnn@1", "--format", "onnx", dir_ / "m.onnx"}).exit_code, 2);
  EXPECT_FALSE(fs::exists(dir_ / "m.onnx"));

  // Pull: a verified copy; pulling the next version reads only the tensor that changed.
  std::string host = dir_ / "host";
  json p1 = J({"model", "pull", "cnn@production", host});
  EXPECT_EQ(p1["version"], 1);
  EXPECT_EQ(p1["tensors"], 2);
  EXPECT_EQ(p1["tensors_reused"], 0);
  EXPECT_EQ(p1["bytes_read"], w1_.size() + b_.size());
  EXPECT_TRUE(ReadServing(host + "/model.strata", 4096)["w"] == w1_);
  json info = json::parse(ReadFile(host + "/model.json"));
  EXPECT_EQ(info["version"], 1);
  EXPECT_EQ(info["content"].size(), 2u);
  J({"model", "alias", "cnn@production", "2"});
  json p2 = J({"model", "pull", "cnn@production", host});
  EXPECT_EQ(p2["version"], 2);
  EXPECT_EQ(p2["tensors_reused"], 1);
  EXPECT_EQ(p2["bytes_read"], w2_.size());
  auto got = ReadServing(host + "/model.strata", 4096);
  EXPECT_TRUE(got["w"] == w2_);
  EXPECT_TRUE(got["b"] == b_);
}

TEST_F(RegistryCliTest, BadInputIsRefusedWithAMessage) {
  MakeRun();
  J({"model", "register", "cnn", "--from", "exp1@100"});
  ASSERT_EQ(S({"tag", "create", "fm@v1", "fm@main"}).exit_code, 0);

  auto r = S({"model", "show", "nosuch"});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  EXPECT_NE(r.err.find("nosuch"), std::string::npos) << r.err;
  r = S({"model", "show", "cnn@staging"});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  EXPECT_NE(r.err.find("staging"), std::string::npos) << r.err;
  r = S({"model", "show", "cnn@7"});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  r = S({"model", "export", "nosuch@production", dir_ / "x.strata"});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  EXPECT_FALSE(fs::exists(dir_ / "x.strata"));
  r = S({"model", "register", "cnn", "--from", "nosuch-run@1"});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  r = S({"model", "register", "cnn", "--from", "exp1@100", "--metric", "accuracy=high"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  r = S({"model", "register", "cnn", "--from", "exp1@100", "--input", "image:F99:1"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  r = S({"model", "alias", "cnn", "1"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("expected NAME@ALIAS"), std::string::npos) << r.err;
  r = S({"model", "alias", "cnn@production"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("VERSION"), std::string::npos) << r.err;
  r = S({"model", "alias", "cnn@production", "9"});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  EXPECT_EQ(J({"model", "list", "cnn"}).size(), 1u);

  // Lock durations and dates.
  for (const char* d : {"0d", "abc", "10y", "-5s", ""}) {
    r = S({"retention", "lock", "fm@v1", "--for", d});
    EXPECT_EQ(r.exit_code, 2) << d << ": " << Describe(r);
  }
  r = S({"retention", "lock", "fm@v1", "--for", "abc"});
  EXPECT_NE(r.err.find("is not a duration"), std::string::npos) << r.err;
  r = S({"retention", "lock", "fm@v1", "--until", "2001-01-01"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("in the future"), std::string::npos) << r.err;
  r = S({"retention", "lock", "fm@v1", "--until", "next tuesday"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("YYYY-MM-DD"), std::string::npos) << r.err;
  r = S({"retention", "lock", "fm@v1", "--until", "2099-01-01", "--for", "1d"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  r = S({"retention", "lock", "fm@v1", "--for", "1d", "--mode", "strict"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("unknown lock mode"), std::string::npos) << r.err;
  r = S({"retention", "lock", "fm@nosuch", "--for", "1d"});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  r = S({"retention", "hold", "fm@v1", "maybe"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_TRUE(J({"retention", "list"}).empty());
  r = S({"lineage", "nosuch@1"});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
}

TEST_F(RegistryCliTest, GovernanceLockLiftedOnlyWithBypassAndReason) {
  ASSERT_EQ(S({"dataset", "create", "fm"}).exit_code, 0);
  WriteFile(dir_ / "src/a.txt", "one\n");
  ASSERT_EQ(S({"commit", "fm@main", dir_ / "src", "-m", "one"}).exit_code, 0);
  ASSERT_EQ(S({"tag", "create", "fm@v1", "fm@main"}).exit_code, 0);

  auto r = S({"retention", "lock", "fm@v1", "--mode", "governance", "--for", "1d", "--reason", "quarterly audit"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("locked (governance) until"), std::string::npos) << r.out;
  json locks = J({"retention", "list", "fm"});
  ASSERT_EQ(locks.size(), 1u);
  EXPECT_EQ(locks[0]["mode"], "governance");
  EXPECT_EQ(locks[0]["active"], true);
  EXPECT_EQ(locks[0]["actor"].get<std::string>().substr(0, 7), "tester@");
  int64_t until = locks[0]["retain_until"];
  EXPECT_NEAR(double(until), double(std::time(nullptr) + 86400), 120.0);

  // The tag is the version's name: it stays while the lock holds.
  r = S({"tag", "delete", "fm@v1"});
  EXPECT_EQ(r.exit_code, 6) << Describe(r);
  EXPECT_NE(r.err.find("governance lock"), std::string::npos) << r.err;
  // Extending needs nothing; shortening or lifting needs --bypass-governance and a reason.
  ASSERT_EQ(S({"retention", "lock", "fm@v1", "--for", "2d"}).exit_code, 0);
  r = S({"retention", "lock", "fm@v1", "--for", "1h"});
  EXPECT_EQ(r.exit_code, 6) << Describe(r);
  EXPECT_NE(r.err.find("--bypass-governance"), std::string::npos) << r.err;
  r = S({"retention", "unlock", "fm@v1"});
  EXPECT_EQ(r.exit_code, 6) << Describe(r);
  r = S({"retention", "unlock", "fm@v1", "--bypass-governance"});
  EXPECT_EQ(r.exit_code, 6) << Describe(r);
  EXPECT_EQ(Audited("lock.refused").size(), 4u);  // the tag delete and the three attempts
  EXPECT_EQ(J({"retention", "list", "fm"})[0]["mode"], "governance");

  r = S({"retention", "unlock", "fm@v1", "--bypass-governance", "--reason", "ticket 42: data withdrawn"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  auto cleared = Audited("lock.clear");
  ASSERT_EQ(cleared.size(), 1u);
  EXPECT_EQ(cleared[0]["details"]["bypass_governance"], true);
  EXPECT_EQ(cleared[0]["details"]["reason"], "ticket 42: data withdrawn");
  EXPECT_EQ(cleared[0]["details"]["previous"]["mode"], "governance");
  EXPECT_EQ(cleared[0]["actor"].get<std::string>().substr(0, 7), "tester@");
  r = S({"tag", "delete", "fm@v1"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(J({"audit", "verify"})["ok"], true);
}

TEST_F(RegistryCliTest, ComplianceLockAndLegalHold) {
  MakeRun();
  J({"model", "register", "cnn", "--from", "exp1@100"});
  ASSERT_EQ(S({"tag", "create", "fm@v1", "fm@main"}).exit_code, 0);
  const std::string mv = "model.cnn@v/000000000001";

  auto r = S({"retention", "lock", mv, "--mode", "compliance", "--for", "2d"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  // Nobody shortens, weakens or lifts it, bypass or not; extending is allowed.
  for (std::vector<std::string> args : {std::vector<std::string>{"retention", "lock", mv, "--mode", "compliance", "--for", "1d"},
                                        {"retention", "lock", mv, "--mode", "compliance", "--for", "1d", "--bypass-governance", "--reason", "admin"},
                                        {"retention", "lock", mv, "--mode", "governance", "--for", "3d"},
                                        {"retention", "unlock", mv, "--bypass-governance", "--reason", "admin"}}) {
    r = S(args);
    EXPECT_EQ(r.exit_code, 6) << Describe(r);
    EXPECT_NE(r.err.find("not shortened, weakened or lifted"), std::string::npos) << r.err;
  }
  ASSERT_EQ(S({"retention", "lock", mv, "--mode", "compliance", "--for", "3d"}).exit_code, 0);
  json locks = J({"retention", "list", "model.cnn"});
  ASSERT_EQ(locks.size(), 1u);
  EXPECT_EQ(locks[0]["mode"], "compliance");
  EXPECT_NEAR(double(locks[0]["retain_until"].get<int64_t>()), double(std::time(nullptr) + 3 * 86400), 120.0);
  r = S({"tag", "delete", mv});
  EXPECT_EQ(r.exit_code, 6) << Describe(r);
  r = S({"dataset", "rm", "model.cnn"});
  EXPECT_EQ(r.exit_code, 6) << Describe(r);
  EXPECT_NE(r.err.find("cannot be deleted"), std::string::npos) << r.err;

  // A legal hold blocks deletion whatever the date, until it is released.
  r = S({"retention", "hold", "fm@v1", "on", "--reason", "case 7"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("legal hold on for fm@v1"), std::string::npos) << r.out;
  r = S({"tag", "delete", "fm@v1"});
  EXPECT_EQ(r.exit_code, 6) << Describe(r);
  EXPECT_NE(r.err.find("legal hold"), std::string::npos) << r.err;
  r = S({"dataset", "rm", "fm"});
  EXPECT_EQ(r.exit_code, 6) << Describe(r);
  json all = J({"retention", "list"});
  EXPECT_EQ(all.size(), 2u);
  auto text = S({"retention", "list"});
  EXPECT_NE(text.out.find("compliance until"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("legal hold"), std::string::npos) << text.out;
  EXPECT_EQ(Audited("legal_hold.on").size(), 1u);
  EXPECT_EQ(Audited("legal_hold.on")[0]["details"]["reason"], "case 7");

  // Locks live in the repository's records too: a rebuilt catalog still enforces them.
  for (const char* s : {"", "-wal", "-shm"}) fs::remove(repo_ + "/catalog/catalog.db" + s);
  r = S({"catalog", "rebuild"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(J({"retention", "list"}).size(), 2u);
  EXPECT_EQ(S({"tag", "delete", "fm@v1"}).exit_code, 6);
  EXPECT_EQ(S({"retention", "unlock", mv, "--bypass-governance", "--reason", "x"}).exit_code, 6);

  ASSERT_EQ(S({"retention", "hold", "fm@v1", "off", "--reason", "case closed"}).exit_code, 0);
  r = S({"tag", "delete", "fm@v1"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
}

TEST_F(RegistryCliTest, GcWhileLockedKeepsLockedDataReadable) {
  ASSERT_EQ(S({"dataset", "create", "fm"}).exit_code, 0);
  std::string big = RandomBytes(7, 300000);
  WriteFile(dir_ / "src/big.bin", big);
  ASSERT_EQ(S({"commit", "fm@main", dir_ / "src", "-m", "big"}).exit_code, 0);
  std::string locked = HeadOf("fm@main");
  ASSERT_FALSE(locked.empty());
  ASSERT_EQ(S({"retention", "lock", "fm@" + locked, "--mode", "compliance", "--for", "1d"}).exit_code, 0);
  // The branch moves on, and a policy keeping only the newest commit would forget the old one.
  fs::remove(dir_ / "src/big.bin");
  WriteFile(dir_ / "src/small.txt", "small\n");
  ASSERT_EQ(S({"commit", "fm@main", dir_ / "src", "-m", "small"}).exit_code, 0);
  J({"policy", "set", "fm", "--keep-last", "1"});
  json forget = J({"forget", "fm"});
  bool kept_locked = false;
  for (const auto& k : forget["kept"]) {
    if (k["id"] == locked) {
      kept_locked = true;
      EXPECT_NE(k["reasons"].dump().find("compliance lock"), std::string::npos) << forget.dump();
    }
  }
  EXPECT_TRUE(kept_locked) << forget.dump();
  json g = J({"gc", "--grace", "0"});
  EXPECT_TRUE(g.is_object());
  auto r = S({"cat", "fm@" + locked + ":big.bin"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(r.out == big);
  r = S({"verify", "--read-data"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
}

TEST_F(RegistryCliTest, LineageAndGovernanceReport) {
  MakeRun();
  J({"model", "register", "cnn", "--from", "exp1@100"});
  J({"model", "alias", "cnn@production", "1"});

  auto r = S({"lineage", "cnn@production"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  for (const char* want : {"model model.cnn@v/000000000001", "checkpoint run.exp1@ckpt/000000000100", "run run.exp1", "ingest fm@", "source /data/fm.tar"}) {
    EXPECT_NE(r.out.find(want), std::string::npos) << want << "\n" << r.out;
  }
  json tree = J({"lineage", "cnn@1"});
  EXPECT_EQ(tree["kind"], "model");
  const json& ck = tree["inputs"][0];
  EXPECT_EQ(ck["kind"], "checkpoint");
  EXPECT_EQ(ck["inputs"][0]["kind"], "run");
  EXPECT_EQ(ck["inputs"][0]["inputs"][0]["kind"], "ingest");
  EXPECT_EQ(ck["inputs"][0]["inputs"][0]["inputs"][0]["label"], "/data/fm.tar");
  r = S({"lineage", "cnn@1", "--dot"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(r.out.starts_with("digraph")) << r.out;
  EXPECT_NE(r.out.find("->"), std::string::npos) << r.out;
  // --svg runs Graphviz's dot from $PATH with the graph on its stdin: here a stand-in that
  // copies it to the -o file; without any dot, a clear error and no file.
  const std::string bin = dir_ / "bin", svg = dir_ / "lineage.svg";
  std::filesystem::create_directories(bin);
  WriteFile(bin + "/dot", "#!/bin/sh\n[ \"$1\" = -Tsvg ] && [ \"$2\" = -o ] && /bin/cat > \"$3\"\n");
  std::filesystem::permissions(bin + "/dot", std::filesystem::perms::owner_all);
  auto lineage_svg = [&](const std::string& path) {
    EnvChanges env = BaseEnv();
    env.push_back("PATH=" + path);
    return RunProcess({STRATA_BINARY, "-r", repo_, "lineage", "cnn@1", "--svg", svg}, env);
  };
  r = lineage_svg(bin);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(ReadFile(svg).starts_with("digraph")) << ReadFile(svg);
  std::filesystem::remove(svg);
  r = lineage_svg(dir_ / "empty");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("graphviz"), std::string::npos) << Describe(r);
  EXPECT_FALSE(std::filesystem::exists(svg));

  // Reverse: which models were trained on the raw commit.
  J({"model", "register", "other", "--from", "exp1@200"});
  json users = J({"lineage", "--reverse", "fm@main"});
  ASSERT_EQ(users.size(), 2u);
  std::set<std::string> names;
  for (const auto& u : users) names.insert(u["model"]);
  EXPECT_EQ(names, (std::set<std::string>{"cnn", "other"}));
  r = S({"lineage", "--reverse", "fm@main"});
  EXPECT_NE(r.out.find("cnn version 1 [production]  (run exp1)"), std::string::npos) << r.out;
  ASSERT_EQ(S({"dataset", "create", "unused"}).exit_code, 0);
  WriteFile(dir_ / "u/x.txt", "x");
  ASSERT_EQ(S({"commit", "unused@main", dir_ / "u", "-m", "x"}).exit_code, 0);
  r = S({"lineage", "--reverse", "unused@main"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("no registered model was trained on it"), std::string::npos) << r.out;

  // Governance: locks, kinds and the audit log's state, per dataset and model.
  ASSERT_EQ(S({"retention", "lock", "model.cnn@v/000000000001", "--mode", "compliance", "--for", "30d"}).exit_code, 0);
  json rep = J({"report", "governance"});
  EXPECT_EQ(rep["audit"]["ok"], true);
  std::map<std::string, json> by_name;
  for (const auto& d : rep["datasets"]) by_name[d["name"]] = d;
  ASSERT_TRUE(by_name.count("model.cnn")) << rep.dump();
  EXPECT_EQ(by_name["model.cnn"]["kind"], "model");
  ASSERT_EQ(by_name["model.cnn"]["locks"].size(), 1u);
  EXPECT_EQ(by_name["model.cnn"]["locks"][0]["mode"], "compliance");
  EXPECT_EQ(by_name["fm"]["kind"], "dataset");
  EXPECT_EQ(by_name["run.exp1"]["kind"], "run");
  json only = J({"report", "governance", "cnn"});
  ASSERT_EQ(only["datasets"].size(), 1u);
  EXPECT_EQ(only["datasets"][0]["name"], "model.cnn");
  r = S({"report", "governance"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("audit log: verified"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("compliance until"), std::string::npos) << r.out;
}


// `ckpt retain` skips checkpoints under a retention lock or legal hold, reports them, and goes
// on with the others (it used to stop at the first refused deletion).
TEST_F(RegistryCliTest, CheckpointRetainSkipsLockedCheckpoints) {
  MakeRun();
  WriteFile(dir_ / "c.safetensors", Safetensors({{"w", {{100, 30}, RandomBytes(4, w1_.size())}}, {"b", {{30}, b_}}}));
  ASSERT_EQ(S({"ckpt", "import", "exp1", dir_ / "c.safetensors", "--step", "300"}).exit_code, 0);
  ASSERT_EQ(S({"retention", "hold", "run.exp1@ckpt/000000000100", "on", "--reason", "case 9"}).exit_code, 0);

  json dry = J({"ckpt", "retain", "exp1", "--keep-last", "1", "-n"});
  EXPECT_EQ(dry["removed"], json({200}));
  EXPECT_EQ(dry["locked"], json({100}));
  EXPECT_EQ(J({"ckpt", "list", "exp1"}).size(), 3u);

  auto r = S({"ckpt", "retain", "exp1", "--keep-last", "1"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("legal hold"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("skipped 1 checkpoint(s) under a retention lock or legal hold"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("remove"), std::string::npos) << r.out;
  json list = J({"ckpt", "list", "exp1"});
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]["step"], 300);
  EXPECT_EQ(list[1]["step"], 100);

  // A governance lock on the newest is kept too; with the hold released, 100 goes.
  ASSERT_EQ(S({"retention", "lock", "run.exp1@ckpt/000000000300", "--for", "1d"}).exit_code, 0);
  ASSERT_EQ(S({"retention", "hold", "run.exp1@ckpt/000000000100", "off"}).exit_code, 0);
  json again = J({"ckpt", "retain", "exp1", "--keep-last", "0"});
  EXPECT_EQ(again["kept"], json({300}));
  EXPECT_EQ(again["locked"], json({300}));
  EXPECT_EQ(again["removed"], json({100}));
  EXPECT_NE(again["reasons"]["300"].dump().find("governance lock until"), std::string::npos) << again.dump();
  // The locked checkpoint still reads back after gc.
  ASSERT_EQ(S({"gc", "--grace", "0"}).exit_code, 0);
  r = S({"ckpt", "verify", "exp1@300"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
}

}  // namespace
}  // namespace strata::testing
