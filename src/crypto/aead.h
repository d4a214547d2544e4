// Authenticated encryption (AES-256-GCM) and keyed hashing (HMAC-SHA-256).
//
// Two libraries compute the same functions. OpenSSL is faster per byte (VAES and SHA-NI: 4.5
// against 1.8 GB/s for AES-GCM, 1.7 against 0.35 GB/s for HMAC-SHA-256 on a Xeon of 2024), but
// the first use of an algorithm makes it construct every algorithm its provider offers, about
// 1.5 ms: more than a small command's whole work (a tag, a branch). libsodium has no start-up
// cost. So inputs of at most kShortInput bytes go to libsodium until a process has put
// kSodiumBudget bytes through it, and everything else to OpenSSL: a small command never
// initialises OpenSSL, a large one pays for it once and runs at its speed. Where the CPU lacks
// AES-NI, libsodium offers no AES-GCM and OpenSSL seals everything.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "crypto/keys.h"
#include "strata/object_id.h"
#include "strata/status.h"

namespace strata::crypto {

// Inputs up to this size are sealed and hashed by libsodium (while the budget lasts), longer
// ones by OpenSSL.
inline constexpr size_t kShortInput = 16 << 10;
// Bytes a process seals, opens and hashes with libsodium before it moves to OpenSSL: about
// where libsodium's slower hashing has cost as much as OpenSSL's start-up.
inline constexpr uint64_t kSodiumBudget = 1 << 20;
// Tests: gives the process its libsodium budget back.
void ResetSodiumBudgetForTesting();

// Sealed form: nonce (12 random bytes) || ciphertext || tag (16 bytes).
class Aead {
 public:
  static constexpr size_t kNonceSize = 12;
  static constexpr size_t kTagSize = 16;
  static constexpr size_t kOverhead = kNonceSize + kTagSize;

  explicit Aead(const Key256& key);
  ~Aead();
  Aead(const Aead&) = delete;
  Aead& operator=(const Aead&) = delete;

  // Encrypts `plain`, binding `ad` (associated data, not stored). `out` must hold
  // plain.size() + kOverhead bytes. Thread-safe.
  void Seal(std::span<const uint8_t> plain, std::span<const uint8_t> ad, uint8_t* out) const;
  // Decrypts a sealed buffer into `out` (sealed.size() - kOverhead bytes). Returns
  // kCorruption if the tag does not verify (wrong key, wrong ad, or damaged bytes): nothing in
  // `out` may then be used. Thread-safe.
  Status Open(std::span<const uint8_t> sealed, std::span<const uint8_t> ad, uint8_t* out) const;

  // Conveniences over strings.
  std::string Seal(std::string_view plain, std::string_view ad) const;
  Result<std::string> Open(std::string_view sealed, std::string_view ad) const;

 private:
  struct SodiumState;  // libsodium's expanded key; null without AES-NI

  Key256 key_;
  std::unique_ptr<SodiumState> sodium_;
};

// HMAC-SHA-256 under a fixed key. Thread-safe.
class KeyedHash {
 public:
  explicit KeyedHash(const Key256& key);
  ~KeyedHash();
  KeyedHash(const KeyedHash&) = delete;
  KeyedHash& operator=(const KeyedHash&) = delete;

  ObjectId Hash(std::span<const uint8_t> data) const;
  ObjectId Hash(std::string_view data) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Plain SHA-256 (for key-independent checksums).
std::array<uint8_t, 32> Sha256(std::span<const uint8_t> data);

}  // namespace strata::crypto
