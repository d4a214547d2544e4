// A pack's trailer and index are read from files anyone with write access to the storage can
// change. The trailer is parsed before anything is authenticated; the index is decrypted and
// then parsed. To reach the plaintext parser without forging a tag, the input is also sealed
// under a fixed key and fed through the full path, which must agree with the plain parser.
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

#include "base/endian.h"
#include "crypto/aead.h"
#include "store/pack.h"

namespace {
using namespace strata;
using namespace strata::store;

const crypto::Aead& FixedAead() {
  static const crypto::Aead aead([] {
    crypto::Key256 k{};
    for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(i * 7 + 1);
    return k;
  }());
  return aead;
}

void CheckEntries(const std::vector<PackEntry>& entries, uint64_t data_end) {
  uint64_t next = kPackHeaderSize;
  for (const auto& e : entries) {
    if (e.offset != next || e.stored_size < crypto::Aead::kOverhead || e.raw_size > kMaxObjectSize) std::abort();
    next = e.offset + e.stored_size;
    // A record re-serializes to one that parses to the same entry.
    std::string rec;
    AppendEntryRecord(e, &rec);
    auto again = ParseEntryRecord({reinterpret_cast<const uint8_t*>(rec.data()), rec.size()});
    if (!again.ok() || again->id != e.id || again->kind != e.kind || again->codec != e.codec ||
        again->offset != e.offset || again->stored_size != e.stored_size || again->raw_size != e.raw_size) {
      std::abort();
    }
  }
  if (next != data_end) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string pack = "0123456789abcdef0123456789abcdef";
  // First 8 bytes: the pack size the trailer is checked against / the index's data end.
  uint64_t pack_size = size >= 8 ? GetFixed64(data) : size;
  std::span<const uint8_t> rest(data + std::min<size_t>(size, 8), size - std::min<size_t>(size, 8));

  if (rest.size() >= kPackTrailerSize) {
    auto len = ParsePackTrailer(pack, rest.last(kPackTrailerSize), pack_size);
    if (len.ok() && (*len < crypto::Aead::kOverhead + 4 ||
                     *len > pack_size - kPackHeaderSize - kPackTrailerSize)) {
      std::abort();
    }
  }
  (void)ParsePackTrailer(pack, rest, pack_size);

  // The raw bytes as a sealed index: almost always fails authentication, never crashes.
  auto sealed_result = ParsePackIndex(FixedAead(), pack, rest, pack_size);
  if (sealed_result.ok() && rest.size() < crypto::Aead::kOverhead) std::abort();

  // The bytes as a plaintext index, directly and through seal + ParsePackIndex.
  auto plain = ParsePackIndexPlain(pack, rest, pack_size);
  std::string sealed = FixedAead().Seal(
      std::string_view(reinterpret_cast<const char*>(rest.data()), rest.size()), "strata-pack-index-v1:" + pack);
  auto opened = ParsePackIndex(FixedAead(), pack, {reinterpret_cast<const uint8_t*>(sealed.data()), sealed.size()},
                               pack_size);
  if (plain.ok() != opened.ok()) std::abort();
  if (!plain.ok()) {
    if (plain.status().code() != StatusCode::kCorruption) std::abort();
    return 0;
  }
  if (plain->size() != opened->size()) std::abort();
  CheckEntries(*plain, pack_size);
  return 0;
}
