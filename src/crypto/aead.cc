#include "crypto/aead.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <vector>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <sodium.h>

#include "base/endian.h"
#include "crypto/random.h"

namespace strata::crypto {

namespace {

// OpenSSL failing on a valid, fixed-size operation means the library or the machine is broken;
// there is no sensible way to continue encrypting or naming data.
[[noreturn]] void Fatal(const char* what) {
  char err[256];
  ERR_error_string_n(ERR_get_error(), err, sizeof(err));
  std::fprintf(stderr, "strata: fatal: OpenSSL %s failed: %s\n", what, err);
  std::abort();
}

// Fetch algorithms once: implicit fetches (EVP_aes_256_gcm() etc.) repeat a provider lookup
// under a lock on every init, which shows up on small objects.
const EVP_CIPHER* AesGcm() {
  static EVP_CIPHER* cipher = [] {
    EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
    if (c == nullptr) Fatal("fetch of AES-256-GCM");
    return c;
  }();
  return cipher;
}

const EVP_MD* Sha256Md() {
  static EVP_MD* md = [] {
    EVP_MD* m = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (m == nullptr) Fatal("fetch of SHA256");
    return m;
  }();
  return md;
}

EVP_MAC* HmacMac() {
  static EVP_MAC* mac = [] {
    EVP_MAC* m = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (m == nullptr) Fatal("fetch of HMAC");
    return m;
  }();
  return mac;
}

struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};

// One cipher context per thread, reused across calls and keys: allocating the GCM state costs
// more than sealing a small tree object. Every call re-keys it with EVP_*Init_ex2. The expanded
// key of the last call stays in this thread's context until the next call or thread exit;
// EVP_CIPHER_CTX_free cleanses it then.
EVP_CIPHER_CTX* ThreadCipherCtx() {
  thread_local std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter> ctx([] {
    EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
    if (c == nullptr) Fatal("EVP_CIPHER_CTX_new");
    return c;
  }());
  return ctx.get();
}

// EVP update calls take int lengths; chunks are far smaller, but stay correct for any size.
constexpr size_t kMaxUpdate = size_t{1} << 30;

template <class UpdateFn>
bool UpdateAll(UpdateFn update, const uint8_t* in, size_t n, uint8_t* out) {
  while (n > 0) {
    int len = static_cast<int>(std::min(n, kMaxUpdate));
    int written = 0;
    if (!update(out, &written, in, len) || written != len) return false;
    in += len;
    n -= len;
    if (out != nullptr) out += len;
  }
  return true;
}

std::atomic<uint64_t> sodium_bytes{0};

// Whether an input of `n` bytes goes to libsodium (aead.h); counts it when it does.
bool UseSodium(size_t n) {
  if (n > kShortInput || sodium_bytes.load(std::memory_order_relaxed) >= kSodiumBudget) return false;
  sodium_bytes.fetch_add(n + 64, std::memory_order_relaxed);  // + a call's fixed cost
  return true;
}

// libsodium's AES-256-GCM needs AES-NI and PCLMULQDQ.
bool SodiumAesGcm() {
  static const bool available = [] {
    EnsureSodium();
    return crypto_aead_aes256gcm_is_available() == 1;
  }();
  return available;
}

bool UpdateAad(bool encrypt, EVP_CIPHER_CTX* ctx, std::span<const uint8_t> ad) {
  if (ad.empty()) return true;
  auto fn = [&](uint8_t* out, int* outl, const uint8_t* in, int inl) {
    return (encrypt ? EVP_EncryptUpdate(ctx, nullptr, outl, in, inl)
                    : EVP_DecryptUpdate(ctx, nullptr, outl, in, inl)) == 1;
  };
  return UpdateAll(fn, ad.data(), ad.size(), nullptr);
}


}  // namespace

void ResetSodiumBudgetForTesting() { sodium_bytes.store(0); }

// ---------------------------------------------------------------------------------------------
// Aead

struct Aead::SodiumState {
  crypto_aead_aes256gcm_state state;  // aligned by libsodium's declaration
};

Aead::Aead(const Key256& key) : key_(key) {
  if (SodiumAesGcm()) {
    sodium_ = std::make_unique<SodiumState>();
    crypto_aead_aes256gcm_beforenm(&sodium_->state, key_.data());
  }
}

Aead::~Aead() {
  OPENSSL_cleanse(key_.data(), key_.size());
  if (sodium_) sodium_memzero(&sodium_->state, sizeof(sodium_->state));
}

void Aead::Seal(std::span<const uint8_t> plain, std::span<const uint8_t> ad, uint8_t* out) const {
  uint8_t* nonce = out;
  uint8_t* cipher = out + kNonceSize;
  uint8_t* tag = cipher + plain.size();
  // Random 96-bit nonces: with at most 2^32 seals per key the collision chance stays below
  // 2^-32 (NIST SP 800-38D), far beyond any repository's chunk count.
  RandomBytes({nonce, kNonceSize});

  if (sodium_ && UseSodium(plain.size())) {
    unsigned long long tag_len = 0;
    crypto_aead_aes256gcm_encrypt_detached_afternm(cipher, tag, &tag_len, plain.data(), plain.size(), ad.data(),
                                                   ad.size(), nullptr, nonce, &sodium_->state);
    return;
  }

  EVP_CIPHER_CTX* ctx = ThreadCipherCtx();
  if (EVP_EncryptInit_ex2(ctx, AesGcm(), key_.data(), nonce, nullptr) != 1) Fatal("GCM encrypt init");
  if (!UpdateAad(true, ctx, ad)) Fatal("GCM associated data");
  auto enc = [&](uint8_t* o, int* ol, const uint8_t* i, int il) {
    return EVP_EncryptUpdate(ctx, o, ol, i, il) == 1;
  };
  if (!UpdateAll(enc, plain.data(), plain.size(), cipher)) Fatal("GCM encrypt");
  int final_len = 0;
  if (EVP_EncryptFinal_ex(ctx, tag, &final_len) != 1 || final_len != 0) Fatal("GCM encrypt final");
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, kTagSize, tag) != 1) Fatal("GCM get tag");
}

Status Aead::Open(std::span<const uint8_t> sealed, std::span<const uint8_t> ad, uint8_t* out) const {
  if (sealed.size() < kOverhead) {
    return Status::Corruption("sealed buffer of " + std::to_string(sealed.size()) +
                              " bytes is shorter than a nonce and tag");
  }
  const uint8_t* nonce = sealed.data();
  const uint8_t* cipher = nonce + kNonceSize;
  size_t plain_size = sealed.size() - kOverhead;
  const uint8_t* tag = cipher + plain_size;

  if (sodium_ && UseSodium(plain_size)) {
    if (crypto_aead_aes256gcm_decrypt_detached_afternm(out, nullptr, cipher, plain_size, tag, ad.data(), ad.size(),
                                                       nonce, &sodium_->state) != 0) {
      if (plain_size > 0) sodium_memzero(out, plain_size);
      return Status::Corruption("authentication failed: wrong key, wrong context, or damaged bytes");
    }
    return Status::OK();
  }

  EVP_CIPHER_CTX* ctx = ThreadCipherCtx();
  if (EVP_DecryptInit_ex2(ctx, AesGcm(), key_.data(), nonce, nullptr) != 1) Fatal("GCM decrypt init");
  if (!UpdateAad(false, ctx, ad)) Fatal("GCM associated data");
  auto dec = [&](uint8_t* o, int* ol, const uint8_t* i, int il) {
    return EVP_DecryptUpdate(ctx, o, ol, i, il) == 1;
  };
  if (!UpdateAll(dec, cipher, plain_size, out)) Fatal("GCM decrypt");
  // The tag parameter is const in spirit; OpenSSL's ctrl interface just is not.
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, kTagSize, const_cast<uint8_t*>(tag)) != 1) {
    Fatal("GCM set tag");
  }
  int final_len = 0;
  if (EVP_DecryptFinal_ex(ctx, out + plain_size, &final_len) != 1) {
    ERR_clear_error();
    // Unauthenticated plaintext must not leak to a caller that ignores the status.
    if (plain_size > 0) OPENSSL_cleanse(out, plain_size);
    return Status::Corruption("authentication failed: wrong key, wrong context, or damaged bytes");
  }
  return Status::OK();
}

std::string Aead::Seal(std::string_view plain, std::string_view ad) const {
  std::string out(plain.size() + kOverhead, '\0');
  Seal(AsBytes(plain), AsBytes(ad), reinterpret_cast<uint8_t*>(out.data()));
  return out;
}

Result<std::string> Aead::Open(std::string_view sealed, std::string_view ad) const {
  if (sealed.size() < kOverhead) {
    return Status::Corruption("sealed buffer of " + std::to_string(sealed.size()) +
                              " bytes is shorter than a nonce and tag");
  }
  std::string out(sealed.size() - kOverhead, '\0');
  STRATA_RETURN_IF_ERROR(Open(AsBytes(sealed), AsBytes(ad), reinterpret_cast<uint8_t*>(out.data())));
  return out;
}

// ---------------------------------------------------------------------------------------------
// KeyedHash

// Short inputs: a copy of libsodium's keyed state (inner and outer SHA-256 after the key's
// blocks). Long ones: an EVP_MAC_CTX, which carries the same keyed states, so re-initialising
// one with a null key restarts HMAC without re-hashing the key. EVP contexts are not
// thread-safe, so idle ones wait in a pool: a call takes one (or duplicates the keyed template,
// made at the first long input, when the pool is empty) and gives it back. The pool never holds
// more contexts than threads that hashed at once, and every context dies with this object.
struct KeyedHash::Impl {
  crypto_auth_hmacsha256_state sodium_keyed;  // template: never updated
  Key256 key;
  std::once_flag keyed_once;
  EVP_MAC_CTX* keyed = nullptr;  // template: initialised with the key, never updated
  std::mutex mu;
  std::vector<EVP_MAC_CTX*> idle;

  EVP_MAC_CTX* Take() {
    std::call_once(keyed_once, [this] {
      keyed = EVP_MAC_CTX_new(HmacMac());
      if (keyed == nullptr) Fatal("EVP_MAC_CTX_new");
      char digest[] = "SHA256";
      OSSL_PARAM params[] = {
          OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
          OSSL_PARAM_construct_end(),
      };
      if (EVP_MAC_init(keyed, key.data(), key.size(), params) != 1) Fatal("HMAC init");
    });
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!idle.empty()) {
        EVP_MAC_CTX* ctx = idle.back();
        idle.pop_back();
        return ctx;
      }
    }
    EVP_MAC_CTX* ctx = EVP_MAC_CTX_dup(keyed);
    if (ctx == nullptr) Fatal("EVP_MAC_CTX_dup");
    return ctx;
  }
  void Give(EVP_MAC_CTX* ctx) {
    std::lock_guard<std::mutex> lock(mu);
    idle.push_back(ctx);
  }
  ~Impl() {
    for (EVP_MAC_CTX* ctx : idle) EVP_MAC_CTX_free(ctx);
    EVP_MAC_CTX_free(keyed);
    sodium_memzero(&sodium_keyed, sizeof(sodium_keyed));
    sodium_memzero(key.data(), key.size());
  }
};

KeyedHash::KeyedHash(const Key256& key) : impl_(std::make_unique<Impl>()) {
  EnsureSodium();
  impl_->key = key;
  crypto_auth_hmacsha256_init(&impl_->sodium_keyed, key.data(), key.size());
}

// The Impl destructor frees (and OpenSSL cleanses) every context holding the keyed state.
KeyedHash::~KeyedHash() = default;

ObjectId KeyedHash::Hash(std::span<const uint8_t> data) const {
  ObjectId id;
  if (UseSodium(data.size())) {
    crypto_auth_hmacsha256_state st = impl_->sodium_keyed;
    crypto_auth_hmacsha256_update(&st, data.data(), data.size());
    crypto_auth_hmacsha256_final(&st, id.bytes.data());
    sodium_memzero(&st, sizeof(st));
    return id;
  }
  EVP_MAC_CTX* ctx = impl_->Take();
  // Null key: restart from the keyed state held in the context.
  if (EVP_MAC_init(ctx, nullptr, 0, nullptr) != 1) Fatal("HMAC reinit");
  if (EVP_MAC_update(ctx, data.data(), data.size()) != 1) Fatal("HMAC update");
  size_t len = 0;
  if (EVP_MAC_final(ctx, id.bytes.data(), &len, id.bytes.size()) != 1 || len != id.bytes.size()) {
    Fatal("HMAC final");
  }
  impl_->Give(ctx);
  return id;
}

ObjectId KeyedHash::Hash(std::string_view data) const { return Hash(AsBytes(data)); }

// ---------------------------------------------------------------------------------------------

std::array<uint8_t, 32> Sha256(std::span<const uint8_t> data) {
  std::array<uint8_t, 32> out;
  if (UseSodium(data.size())) {
    EnsureSodium();
    crypto_hash_sha256(out.data(), data.data(), data.size());
    return out;
  }
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, Sha256Md(), nullptr) != 1 || len != out.size()) {
    Fatal("SHA-256");
  }
  return out;
}

}  // namespace strata::crypto
