// Repository keys and key slots.
//
// A repository has one random MasterKeys set, created at init and never changed. Each key slot
// stores that set wrapped (AES-256-GCM) under a key derived from one passphrase with Argon2id,
// so passphrases can be added, removed and changed without rewriting any data.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "strata/status.h"

namespace strata::crypto {

using Key256 = std::array<uint8_t, 32>;

struct MasterKeys {
  Key256 encryption;  // AES-256-GCM key for chunks, trees, pack indexes
  Key256 mac;         // HMAC-SHA-256 key: object ids, config and audit MACs
  Key256 chunker;     // secret from which the FastCDC gear table is derived
  static MasterKeys Generate();
};

struct KdfParams {
  uint64_t ops_limit = 2;                  // Argon2id passes
  uint64_t mem_limit = 64ull << 20;        // bytes of memory
  // Minimums accepted when reading a slot: cheaper parameters are refused as a downgrade.
  static constexpr uint64_t kMinOps = 1;
  static constexpr uint64_t kMinMem = 8ull << 10;
  // Maximums accepted when reading a slot: a hostile slot must not make opening it take the
  // machine's memory or hours of CPU.
  static constexpr uint64_t kMaxOps = 1024;
  static constexpr uint64_t kMaxMem = 4ull << 30;
};

struct KeySlot {
  static constexpr int kVersion = 1;
  std::string id;            // 16 hex digits, also the slot's file name
  std::string label;         // free text shown by `strata key list` (user@host by default)
  int64_t created_unix = 0;
  KdfParams kdf;
  std::array<uint8_t, 16> salt{};
  std::string wrapped;       // nonce || ciphertext || tag of the serialized MasterKeys
};

// Creates a slot that opens `keys` with `passphrase`. Slow by design (Argon2id).
Result<KeySlot> WrapMasterKeys(const MasterKeys& keys, std::string_view passphrase,
                               const KdfParams& kdf, std::string label);
// Returns kUnauthenticated when the passphrase does not open the slot.
Result<MasterKeys> UnwrapMasterKeys(const KeySlot& slot, std::string_view passphrase);

// A slot's on-disk form is a small JSON document (docs/FORMAT.md). The parser accepts untrusted
// bytes: malformed input gives kCorruption, a newer version kUnsupported; it never crashes.
std::string SerializeKeySlot(const KeySlot& slot);
Result<KeySlot> ParseKeySlot(std::string_view bytes);

}  // namespace strata::crypto
