#include "crypto/aead.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <set>
#include <thread>
#include <vector>

#include "crypto/random.h"
#include "testutil/testutil.h"

namespace strata::crypto {
namespace {

Key256 TestKey(uint8_t first) {
  Key256 key;
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(first + i);
  return key;
}

TEST(AeadTest, RoundTripSizes) {
  Aead aead(TestKey(1));
  for (size_t n : {0, 1, 15, 16, 17, 4096, 1 << 20}) {
    std::string plain = testing::RandomBytes(n, n);
    std::string sealed = aead.Seal(plain, "chunk");
    ASSERT_EQ(sealed.size(), n + Aead::kOverhead);
    auto opened = aead.Open(sealed, "chunk");
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    EXPECT_EQ(*opened, plain) << "size " << n;
  }
}

TEST(AeadTest, CiphertextHidesPlaintextAndNoncesDiffer) {
  Aead aead(TestKey(1));
  std::string plain(1000, 'a');
  std::string a = aead.Seal(plain, "");
  std::string b = aead.Seal(plain, "");
  EXPECT_NE(a.substr(0, Aead::kNonceSize), b.substr(0, Aead::kNonceSize));
  EXPECT_NE(a, b);
  EXPECT_EQ(a.find(std::string(32, 'a')), std::string::npos);
}

TEST(AeadTest, EveryBitFlipIsDetected) {
  Aead aead(TestKey(7));
  std::string plain = testing::RandomBytes(3, 61);
  std::string sealed = aead.Seal(plain, "ad");
  for (size_t bit = 0; bit < sealed.size() * 8; ++bit) {
    std::string damaged = sealed;
    damaged[bit / 8] = static_cast<char>(damaged[bit / 8] ^ (1 << (bit % 8)));
    auto opened = aead.Open(damaged, "ad");
    ASSERT_FALSE(opened.ok()) << "flip of bit " << bit << " went unnoticed";
    EXPECT_EQ(opened.status().code(), StatusCode::kCorruption);
  }
}

TEST(AeadTest, TruncationIsDetected) {
  Aead aead(TestKey(7));
  std::string sealed = aead.Seal("some plaintext", "ad");
  for (size_t n = 0; n < sealed.size(); ++n) {
    EXPECT_FALSE(aead.Open(sealed.substr(0, n), "ad").ok()) << "truncated to " << n;
  }
}

TEST(AeadTest, WrongAssociatedDataIsDetected) {
  Aead aead(TestKey(1));
  std::string sealed = aead.Seal("payload", "pack 1 chunk 2");
  EXPECT_TRUE(aead.Open(sealed, "pack 1 chunk 2").ok());
  EXPECT_EQ(aead.Open(sealed, "pack 1 chunk 3").status().code(), StatusCode::kCorruption);
  EXPECT_EQ(aead.Open(sealed, "").status().code(), StatusCode::kCorruption);
}

TEST(AeadTest, WrongKeyIsDetectedAndOutputWiped) {
  Aead right(TestKey(1)), wrong(TestKey(2));
  std::string plain(100, 'x');
  std::string sealed = right.Seal(plain, "ad");
  std::vector<uint8_t> out(plain.size(), 0xEE);
  Status s = wrong.Open({reinterpret_cast<const uint8_t*>(sealed.data()), sealed.size()},
                        {reinterpret_cast<const uint8_t*>("ad"), 2}, out.data());
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  // Unauthenticated output must not be left behind for a careless caller.
  for (uint8_t b : out) ASSERT_EQ(b, 0);
}

TEST(AeadTest, ConcurrentUseFromManyThreads) {
  Aead a(TestKey(1)), b(TestKey(2));
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const Aead& aead = (i + t) % 2 ? a : b;
        std::string plain = testing::RandomBytes(t * 1000 + i, 1 + i * 37);
        auto opened = aead.Open(aead.Seal(plain, "x"), "x");
        if (!opened.ok() || *opened != plain) failures++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
}

std::string Hex(const ObjectId& id) { return id.ToHex(); }

TEST(KeyedHashTest, KnownAnswer) {
  // Expected values from: printf '...' | openssl dgst -sha256 -mac HMAC -macopt hexkey:000102...1f
  KeyedHash h(TestKey(0));
  EXPECT_EQ(Hex(h.Hash(std::string_view("what do ya want for nothing?"))),
            "099805f4ac310786968565c098db515cc50862b420ae31e20238312344bed36a");
  EXPECT_EQ(Hex(h.Hash(std::string_view(""))),
            "d38b42096d80f45f826b44a9d5607de72496a415d3f4a1a8c88e3bb9da8dc1cb");
  // The pooled context must restart cleanly: the same input hashes the same the second time.
  EXPECT_EQ(Hex(h.Hash(std::string_view("what do ya want for nothing?"))),
            "099805f4ac310786968565c098db515cc50862b420ae31e20238312344bed36a");
}

TEST(KeyedHashTest, DependsOnKeyAndData) {
  KeyedHash a(TestKey(0)), b(TestKey(1));
  EXPECT_NE(a.Hash(std::string_view("x")), b.Hash(std::string_view("x")));
  EXPECT_NE(a.Hash(std::string_view("x")), a.Hash(std::string_view("y")));
  EXPECT_EQ(a.Hash(std::string_view("x")), a.Hash(std::string_view("x")));
}

TEST(KeyedHashTest, ConcurrentHashesAgree) {
  KeyedHash h(TestKey(9));
  std::string data = testing::RandomBytes(1, 100000);
  ObjectId expected = h.Hash(std::string_view(data));
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        if (h.Hash(std::string_view(data)) != expected) mismatches++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(Sha256Test, KnownAnswer) {
  std::string abc = "abc";
  auto d = Sha256({reinterpret_cast<const uint8_t*>(abc.data()), abc.size()});
  EXPECT_EQ(ToHex(d.data(), d.size()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  auto e = Sha256({});
  EXPECT_EQ(ToHex(e.data(), e.size()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

// Short inputs go to libsodium while the process's budget lasts, everything else to OpenSSL:
// both must compute the standard functions, checked here against OpenSSL's one-shot interfaces
// with the budget given back before each call (libsodium for short inputs) and spent (OpenSSL).
std::vector<size_t> BoundarySizes() {
  return {0, 1, kShortInput - 1, kShortInput, kShortInput + 1, 3 * kShortInput};
}

void SpendSodiumBudget() {
  std::string block(kShortInput, 'x');
  for (uint64_t spent = 0; spent <= kSodiumBudget; spent += block.size()) {
    (void)Sha256({reinterpret_cast<const uint8_t*>(block.data()), block.size()});
  }
}

void ChooseLibrary(bool sodium) {
  if (sodium) {
    ResetSodiumBudgetForTesting();
  } else {
    SpendSodiumBudget();
  }
}

TEST(AeadTest, BothLibrariesSealStandardAesGcm) {
  Key256 key = TestKey(3);
  Aead aead(key);
  for (int i = 0; i < 2 * static_cast<int>(BoundarySizes().size()); ++i) {
    size_t n = BoundarySizes()[i / 2];
    ChooseLibrary(i % 2 == 0);
    std::string plain = testing::RandomBytes(n + 1, n);
    std::string sealed = aead.Seal(plain, "ad");
    // Decrypt with OpenSSL directly: nonce || ciphertext || tag.
    const auto* b = reinterpret_cast<const uint8_t*>(sealed.data());
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    ASSERT_EQ(EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key.data(), b), 1);
    int len = 0;
    ASSERT_EQ(EVP_DecryptUpdate(ctx, nullptr, &len, reinterpret_cast<const uint8_t*>("ad"), 2), 1);
    std::string out(n + 16, '\0');
    ASSERT_EQ(EVP_DecryptUpdate(ctx, reinterpret_cast<uint8_t*>(out.data()), &len, b + Aead::kNonceSize,
                                static_cast<int>(n)), 1);
    ASSERT_EQ(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, const_cast<uint8_t*>(b + Aead::kNonceSize + n)), 1);
    int fin = 0;
    EXPECT_EQ(EVP_DecryptFinal_ex(ctx, reinterpret_cast<uint8_t*>(out.data()) + len, &fin), 1) << "size " << n;
    EVP_CIPHER_CTX_free(ctx);
    out.resize(n);
    EXPECT_EQ(out, plain) << "size " << n;
    // The library that opens it may differ from the one that sealed it.
    ChooseLibrary(i % 2 != 0);
    auto opened = aead.Open(sealed, "ad");
    ASSERT_TRUE(opened.ok()) << "size " << n;
    EXPECT_EQ(*opened, plain);
    // And a damaged tag fails on whichever side opens it.
    sealed.back() ^= 1;
    EXPECT_EQ(aead.Open(sealed, "ad").status().code(), StatusCode::kCorruption) << "size " << n;
  }
}

TEST(KeyedHashTest, BothLibrariesComputeStandardHmac) {
  Key256 key = TestKey(5);
  KeyedHash h(key);
  for (int i = 0; i < 2 * static_cast<int>(BoundarySizes().size()); ++i) {
    size_t n = BoundarySizes()[i / 2];
    std::string data = testing::RandomBytes(n + 2, n);
    uint8_t expected[32];
    unsigned int len = 0;
    ChooseLibrary(i % 2 == 0);
    ASSERT_NE(HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const uint8_t*>(data.data()),
                   data.size(), expected, &len), nullptr);
    EXPECT_EQ(Hex(h.Hash(std::string_view(data))), ToHex(expected, 32)) << "size " << n;
    ChooseLibrary(i % 2 == 0);
    auto sha = Sha256({reinterpret_cast<const uint8_t*>(data.data()), data.size()});
    uint8_t sha_expected[32];
    ASSERT_EQ(EVP_Digest(data.data(), data.size(), sha_expected, &len, EVP_sha256(), nullptr), 1);
    EXPECT_EQ(ToHex(sha.data(), 32), ToHex(sha_expected, 32)) << "size " << n;
  }
}

TEST(RandomTest, FillsAndDiffers) {
  std::array<uint8_t, 32> a{}, b{};
  RandomBytes(a);
  RandomBytes(b);
  EXPECT_NE(a, b);
  RandomBytes({});  // empty spans are fine
}

}  // namespace
}  // namespace strata::crypto
