#include "crypto/keys.h"

#include <sodium.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/crypto.h>

#include "crypto/aead.h"
#include "crypto/random.h"
#include "strata/object_id.h"

namespace strata::crypto {

namespace {

constexpr size_t kSerializedKeysSize = 3 * sizeof(Key256);
constexpr size_t kWrappedSize = kSerializedKeysSize + Aead::kOverhead;
constexpr size_t kSlotIdBytes = 8;
// A slot file is a few hundred bytes; anything much larger is not a slot and would only cost
// the parser time and memory.
constexpr size_t kMaxSlotFileSize = 64 << 10;
constexpr std::string_view kKdfAlgorithm = "argon2id";

static_assert(sizeof(KeySlot::salt) == crypto_pwhash_SALTBYTES);
static_assert(KdfParams::kMinOps >= crypto_pwhash_OPSLIMIT_MIN);
static_assert(KdfParams::kMinMem >= crypto_pwhash_MEMLIMIT_MIN);

// Wipes a buffer holding key material when it goes out of scope, on every return path.
template <class T>
struct Wiped {
  T value{};
  ~Wiped() { OPENSSL_cleanse(value.data(), value.size()); }
};

// Both wrap and unwrap check parameters: wrapping with parameters the reader would refuse
// would create a slot that can never be opened.
Status CheckKdf(const KdfParams& kdf) {
  if (kdf.ops_limit < KdfParams::kMinOps || kdf.ops_limit > KdfParams::kMaxOps) {
    return Status::InvalidArgument(fmt::format("Argon2id passes {} outside the accepted range [{}, {}]",
                                               kdf.ops_limit, KdfParams::kMinOps, KdfParams::kMaxOps));
  }
  if (kdf.mem_limit < KdfParams::kMinMem || kdf.mem_limit > KdfParams::kMaxMem) {
    return Status::InvalidArgument(fmt::format("Argon2id memory {} bytes outside the accepted range [{}, {}]",
                                               kdf.mem_limit, KdfParams::kMinMem, KdfParams::kMaxMem));
  }
  return Status::OK();
}

Result<Wiped<Key256>> DeriveKek(std::string_view passphrase, const std::array<uint8_t, 16>& salt,
                                const KdfParams& kdf) {
  EnsureSodium();
  Wiped<Key256> kek;
  if (crypto_pwhash(kek.value.data(), kek.value.size(), passphrase.data(), passphrase.size(), salt.data(),
                    kdf.ops_limit, static_cast<size_t>(kdf.mem_limit), crypto_pwhash_ALG_ARGON2ID13) != 0) {
    // Parameters were range-checked, so the remaining cause is memory.
    return Status::Internal(fmt::format("Argon2id key derivation failed: could not allocate {} MiB",
                                        kdf.mem_limit >> 20));
  }
  return kek;
}

std::string SlotAd(std::string_view id) { return "strata-keyslot-v1:" + std::string(id); }

bool IsSlotId(std::string_view id) {
  if (id.size() != 2 * kSlotIdBytes) return false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// Accessors that never throw: the parser's input is untrusted, and nlohmann's typed getters
// throw on a type mismatch.
using Json = nlohmann::json;

Status Malformed(std::string_view what) { return Status::Corruption(fmt::format("malformed key slot: {}", what)); }

Result<uint64_t> GetUnsigned(const Json& obj, const char* name, std::string_view path) {
  auto it = obj.find(name);
  if (it == obj.end()) return Malformed(fmt::format("missing field '{}'", path));
  if (!it->is_number_unsigned()) return Malformed(fmt::format("field '{}' is not a non-negative integer", path));
  return it->get<uint64_t>();
}

Result<std::string> GetString(const Json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end()) return Malformed(fmt::format("missing field '{}'", name));
  if (!it->is_string()) return Malformed(fmt::format("field '{}' is not a string", name));
  return it->get<std::string>();
}

Result<std::string> GetHex(const Json& obj, const char* name, size_t expected_bytes) {
  STRATA_ASSIGN_OR_RETURN(std::string hex, GetString(obj, name));
  if (hex.size() != 2 * expected_bytes) {
    return Malformed(fmt::format("field '{}' has {} hex digits, expected {}", name, hex.size(), 2 * expected_bytes));
  }
  auto raw = FromHex(hex);
  if (!raw.ok()) return Malformed(fmt::format("field '{}' is not hex", name));
  return std::move(raw).value();
}

Result<KeySlot> ParseJson(const Json& doc) {
  if (!doc.is_object()) return Malformed("not a JSON object");

  // Version first: a newer writer may have changed every other field.
  auto version_it = doc.find("version");
  if (version_it == doc.end()) return Malformed("missing field 'version'");
  if (!version_it->is_number_integer()) return Malformed("field 'version' is not an integer");
  int64_t version = version_it->get<int64_t>();
  if (version > KeySlot::kVersion) {
    return Status::Unsupported(fmt::format("key slot format version {} is newer than this build supports ({}); "
                                           "upgrade strata", version, KeySlot::kVersion));
  }
  if (version < 1) return Malformed(fmt::format("invalid version {}", version));

  KeySlot slot;
  STRATA_ASSIGN_OR_RETURN(slot.id, GetString(doc, "id"));
  // The id names the slot's file, so it must never carry a path.
  if (!IsSlotId(slot.id)) return Malformed("field 'id' is not 16 lowercase hex digits");
  STRATA_ASSIGN_OR_RETURN(slot.label, GetString(doc, "label"));

  auto created_it = doc.find("created");
  if (created_it == doc.end()) return Malformed("missing field 'created'");
  if (!created_it->is_number_integer()) return Malformed("field 'created' is not an integer");
  if (created_it->is_number_unsigned() && created_it->get<uint64_t>() > uint64_t{INT64_MAX}) {
    return Malformed("field 'created' is out of range");
  }
  slot.created_unix = created_it->get<int64_t>();

  auto kdf_it = doc.find("kdf");
  if (kdf_it == doc.end()) return Malformed("missing field 'kdf'");
  if (!kdf_it->is_object()) return Malformed("field 'kdf' is not an object");
  STRATA_ASSIGN_OR_RETURN(std::string algorithm, GetString(*kdf_it, "algorithm"));
  if (algorithm != kKdfAlgorithm) {
    return Status::Unsupported(fmt::format("key slot {} uses key derivation '{}'; this build knows only '{}'",
                                           slot.id, algorithm, kKdfAlgorithm));
  }
  STRATA_ASSIGN_OR_RETURN(slot.kdf.ops_limit, GetUnsigned(*kdf_it, "ops", "kdf.ops"));
  STRATA_ASSIGN_OR_RETURN(slot.kdf.mem_limit, GetUnsigned(*kdf_it, "mem", "kdf.mem"));
  // Too-cheap parameters are a downgrade attack on the passphrase; too-costly ones a way to
  // exhaust the machine of whoever opens the repository. Either way the slot is not ours.
  if (Status s = CheckKdf(slot.kdf); !s.ok()) {
    return Status::Corruption(fmt::format("key slot {} refused: {}", slot.id, s.message()));
  }

  STRATA_ASSIGN_OR_RETURN(std::string salt, GetHex(doc, "salt", slot.salt.size()));
  std::copy(salt.begin(), salt.end(), slot.salt.begin());
  STRATA_ASSIGN_OR_RETURN(slot.wrapped, GetHex(doc, "wrapped", kWrappedSize));
  return slot;
}

}  // namespace

MasterKeys MasterKeys::Generate() {
  MasterKeys keys;
  RandomBytes(keys.encryption);
  RandomBytes(keys.mac);
  RandomBytes(keys.chunker);
  return keys;
}

Result<KeySlot> WrapMasterKeys(const MasterKeys& keys, std::string_view passphrase, const KdfParams& kdf,
                               std::string label) {
  STRATA_RETURN_IF_ERROR(CheckKdf(kdf));
  KeySlot slot;
  std::array<uint8_t, kSlotIdBytes> id_bytes;
  RandomBytes(id_bytes);
  slot.id = ToHex(id_bytes.data(), id_bytes.size());
  slot.label = std::move(label);
  slot.created_unix = static_cast<int64_t>(std::time(nullptr));
  slot.kdf = kdf;
  RandomBytes(slot.salt);

  STRATA_ASSIGN_OR_RETURN(Wiped<Key256> kek, DeriveKek(passphrase, slot.salt, kdf));
  Wiped<std::array<uint8_t, kSerializedKeysSize>> plain;
  auto pos = std::copy(keys.encryption.begin(), keys.encryption.end(), plain.value.begin());
  pos = std::copy(keys.mac.begin(), keys.mac.end(), pos);
  std::copy(keys.chunker.begin(), keys.chunker.end(), pos);

  // The slot id is bound as associated data, so a wrapped blob moved into another slot's file
  // does not open.
  std::string ad = SlotAd(slot.id);
  slot.wrapped.resize(kWrappedSize);
  Aead(kek.value).Seal(plain.value, {reinterpret_cast<const uint8_t*>(ad.data()), ad.size()},
                       reinterpret_cast<uint8_t*>(slot.wrapped.data()));
  return slot;
}

Result<MasterKeys> UnwrapMasterKeys(const KeySlot& slot, std::string_view passphrase) {
  if (Status s = CheckKdf(slot.kdf); !s.ok()) {
    return Status::Corruption(fmt::format("key slot {} refused: {}", slot.id, s.message()));
  }
  if (slot.wrapped.size() != kWrappedSize) {
    return Status::Corruption(fmt::format("key slot {}: wrapped keys are {} bytes, expected {}", slot.id,
                                          slot.wrapped.size(), kWrappedSize));
  }
  STRATA_ASSIGN_OR_RETURN(Wiped<Key256> kek, DeriveKek(passphrase, slot.salt, slot.kdf));
  Wiped<std::array<uint8_t, kSerializedKeysSize>> plain;
  std::string ad = SlotAd(slot.id);
  Status s = Aead(kek.value).Open({reinterpret_cast<const uint8_t*>(slot.wrapped.data()), slot.wrapped.size()},
                                  {reinterpret_cast<const uint8_t*>(ad.data()), ad.size()}, plain.value.data());
  // A wrong passphrase and an altered slot file look the same to AES-GCM.
  if (!s.ok()) return Status::Unauthenticated(fmt::format("wrong passphrase for key slot {}", slot.id));

  MasterKeys keys;
  auto pos = plain.value.begin();
  std::copy(pos, pos + 32, keys.encryption.begin());
  std::copy(pos + 32, pos + 64, keys.mac.begin());
  std::copy(pos + 64, pos + 96, keys.chunker.begin());
  return keys;
}

std::string SerializeKeySlot(const KeySlot& slot) {
  // ordered_json keeps the field order documented in docs/FORMAT.md.
  nlohmann::ordered_json doc;
  doc["version"] = KeySlot::kVersion;
  doc["id"] = slot.id;
  doc["label"] = slot.label;
  doc["created"] = slot.created_unix;
  doc["kdf"] = {{"algorithm", kKdfAlgorithm}, {"ops", slot.kdf.ops_limit}, {"mem", slot.kdf.mem_limit}};
  doc["salt"] = ToHex(slot.salt.data(), slot.salt.size());
  doc["wrapped"] = ToHex(reinterpret_cast<const uint8_t*>(slot.wrapped.data()), slot.wrapped.size());
  // A label is free text and may not be valid UTF-8; replace bad bytes rather than throw.
  return doc.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

Result<KeySlot> ParseKeySlot(std::string_view bytes) {
  if (bytes.size() > kMaxSlotFileSize) {
    return Malformed(fmt::format("{} bytes is too large for a key slot", bytes.size()));
  }
  // No exceptions for bad syntax; the catch is for the remaining ones (allocation, a library
  // surprise), which must not cross this interface either.
  try {
    Json doc = Json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) return Malformed("not valid JSON");
    return ParseJson(doc);
  } catch (const std::exception& e) {
    return Malformed(e.what());
  }
}

}  // namespace strata::crypto
