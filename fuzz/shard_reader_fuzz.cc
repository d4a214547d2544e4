// Shards are training data handed between machines and teams: the reader sees attacker bytes
// in the header, schema, index, trailer and every record. Two modes, chosen by the first byte:
//   even: the input is a whole shard file;
//   odd:  the input is cut into record payloads, wrapped in a well-formed shard (valid header,
//         placement and checksums), so the record decoder sees hostile payloads behind checks
//         that pass. A payload that decodes must encode back to the same bytes.
// Every failure must be a clean Status (kCorruption for damage), never a crash or a huge
// allocation.
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "base/endian.h"
#include "crypto/aead.h"
#include "shard/block_file.h"
#include "shard/format.h"
#include "shard/reader.h"

namespace {
using namespace strata;
using namespace strata::shard;

Key FixedKey() {
  Key k{};
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(i * 5 + 3);
  return k;
}

Schema FuzzSchema() {
  Schema s;
  auto add = [&](std::string name, FieldType type) -> Field& {
    Field f;
    f.name = std::move(name);
    f.type = type;
    s.fields.push_back(f);
    return s.fields.back();
  };
  Field& t = add("t", FieldType::kTensor);
  t.dtype = DType::kInt16;
  t.shape = {-1, 2};
  add("b", FieldType::kBytes);
  add("s", FieldType::kString);
  add("i", FieldType::kInt);
  add("f", FieldType::kFloat);
  add("l", FieldType::kLabel).num_classes = 1000;
  return s;
}

void CheckStatus(const Status& s) {
  if (s.ok()) return;
  auto c = s.code();
  if (c != StatusCode::kCorruption && c != StatusCode::kUnsupported && c != StatusCode::kUnauthenticated &&
      c != StatusCode::kInvalidArgument) {
    std::abort();
  }
}

void ReadEverything(ShardReader& r) {
  const uint64_t n = std::min<uint64_t>(r.record_count(), 512);
  std::vector<uint64_t> ids;
  for (uint64_t i = 0; i < n; ++i) {
    auto rec = r.Read(i);
    if (!rec.ok() && rec.status().code() != StatusCode::kCorruption) std::abort();
    RecordLocation loc = r.Locate(i);
    if (loc.extent_offset % 4096 != 0 || loc.extent_length % 4096 != 0 || loc.offset < loc.extent_offset ||
        loc.offset + loc.length > loc.extent_offset + loc.extent_length) {
      std::abort();
    }
    if (loc.length >= 4096 && loc.offset % 4096 != 0) std::abort();
    ids.push_back(n - 1 - i);
  }
  auto batch = r.ReadBatch(ids);
  if (!batch.ok() && batch.status().code() != StatusCode::kCorruption) std::abort();
  CheckStatus(r.Verify());
}

void WholeFile(std::span<const uint8_t> bytes) {
  std::string file(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  for (bool with_key : {false, true}) {
    ReaderOptions options;
    if (with_key) options.key = FixedKey();
    auto r = OpenShard("fuzz", NewMemoryBlockSource(file), options);
    if (!r.ok()) {
      CheckStatus(r.status());
      continue;
    }
    ReadEverything(**r);
  }
  // The schema parser on its own.
  auto schema = ParseSchema(bytes);
  if (schema.ok()) {
    auto again = ParseSchema(AsBytes(SerializeSchema(*schema)));
    if (!again.ok() || !(*again == *schema)) std::abort();
  } else if (schema.status().code() != StatusCode::kCorruption) {
    std::abort();
  }
}

void WrappedPayloads(std::span<const uint8_t> bytes, bool encrypted) {
  // Payloads: u16 length, then that many bytes, repeated.
  std::vector<std::span<const uint8_t>> payloads;
  ByteReader in(bytes.data(), bytes.size());
  uint16_t len;
  const uint8_t* p;
  while (payloads.size() < 64 && in.U16(&len) && in.Bytes(len, &p)) {
    if (len > 0) payloads.emplace_back(p, len);
  }
  crypto::Aead aead(FixedKey());
  Header h;
  h.schema = FuzzSchema();
  h.id[0] = 7;
  if (encrypted) h.flags = kFlagEncrypted;
  std::string file = BuildHeader(&h, encrypted ? &aead : nullptr);
  std::vector<IndexEntry> index;
  for (size_t i = 0; i < payloads.size(); ++i) {
    std::string stored(reinterpret_cast<const char*>(payloads[i].data()), payloads[i].size());
    if (encrypted) {
      std::string ad = RecordAd(h.id, i);
      stored = aead.Seal(stored, ad);
    }
    uint64_t at = PlaceRecord(file.size(), stored.size());
    file.resize(at, '\0');
    index.push_back({at, static_cast<uint32_t>(stored.size()), Crc32c(AsBytes(stored))});
    file += stored;
  }
  file += BuildFooter(h.id, index, file.size(), encrypted ? &aead : nullptr);
  ReaderOptions options;
  if (encrypted) options.key = FixedKey();
  auto r = OpenShard("fuzz", NewMemoryBlockSource(file), options);
  if (!r.ok() || (*r)->record_count() != payloads.size()) std::abort();  // a well-formed shard must open
  for (size_t i = 0; i < payloads.size(); ++i) {
    auto rec = (*r)->Read(i);
    if (!rec.ok()) {
      if (rec.status().code() != StatusCode::kCorruption) std::abort();
      continue;
    }
    std::string again;
    if (!EncodeRecord(h.schema, *rec, &again).ok()) std::abort();
    if (again != std::string(reinterpret_cast<const char*>(payloads[i].data()), payloads[i].size())) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::span<const uint8_t> rest(data + 1, size - 1);
  if (data[0] % 2 == 0) {
    WholeFile(rest);
  } else {
    WrappedPayloads(rest, data[0] % 4 == 3);
  }
  return 0;
}
