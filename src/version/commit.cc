#include "version/commit.h"

#include <cstring>

#include <fmt/format.h>

#include "base/endian.h"

namespace strata::version {

namespace {
constexpr char kMagic[4] = {'S', 'T', 'R', 'C'};
constexpr uint8_t kVersion = 1;
constexpr size_t kMaxParents = 64;

void PutId(std::string* out, const ObjectId& id) {
  out->append(reinterpret_cast<const char*>(id.bytes.data()), ObjectId::kSize);
}
bool GetId(ByteReader* r, ObjectId* id) {
  const uint8_t* p = nullptr;
  if (!r->Bytes(ObjectId::kSize, &p)) return false;
  std::memcpy(id->bytes.data(), p, ObjectId::kSize);
  return true;
}
void PutString32(std::string* out, const std::string& s) {
  PutFixed32(out, static_cast<uint32_t>(s.size()));
  out->append(s);
}
bool GetString32(ByteReader* r, std::string* s) {
  uint32_t n = 0;
  return r->U32(&n) && r->String(n, s);
}
}  // namespace

std::string SerializeCommit(const Commit& c) {
  std::string out(kMagic, sizeof(kMagic));
  out.push_back(static_cast<char>(kVersion));
  PutId(&out, c.tree);
  PutFixed16(&out, static_cast<uint16_t>(c.parents.size()));
  for (const auto& p : c.parents) PutId(&out, p);
  PutString32(&out, c.dataset);
  PutFixed64(&out, static_cast<uint64_t>(c.time_ns));
  PutString32(&out, c.author);
  PutString32(&out, c.message);
  PutFixed32(&out, static_cast<uint32_t>(c.meta.size()));
  for (const auto& [k, v] : c.meta) {
    PutString32(&out, k);
    PutString32(&out, v);
  }
  return out;
}

Result<Commit> ParseCommit(std::span<const uint8_t> bytes) {
  ByteReader r(bytes.data(), bytes.size());
  const uint8_t* magic = nullptr;
  uint8_t version = 0;
  if (!r.Bytes(sizeof(kMagic), &magic) || std::memcmp(magic, kMagic, sizeof(kMagic)) != 0 || !r.U8(&version)) {
    return Status::Corruption("not a commit object");
  }
  if (version != kVersion) return Status::Unsupported(fmt::format("commit format version {} is not supported", version));
  Commit c;
  uint16_t nparents = 0;
  if (!GetId(&r, &c.tree) || !r.U16(&nparents) || nparents > kMaxParents) return Status::Corruption("commit: bad header");
  c.parents.resize(nparents);
  for (auto& p : c.parents) {
    if (!GetId(&r, &p)) return Status::Corruption("commit: truncated parents");
  }
  uint64_t time = 0;
  uint32_t nmeta = 0;
  if (!GetString32(&r, &c.dataset) || !r.U64(&time) || !GetString32(&r, &c.author) || !GetString32(&r, &c.message) ||
      !r.U32(&nmeta) || nmeta > r.remaining() / 8) {
    return Status::Corruption("commit: truncated fields");
  }
  c.time_ns = static_cast<int64_t>(time);
  for (uint32_t i = 0; i < nmeta; ++i) {
    std::string k, v;
    if (!GetString32(&r, &k) || !GetString32(&r, &v)) return Status::Corruption("commit: truncated metadata");
    if (!c.meta.emplace(std::move(k), std::move(v)).second) return Status::Corruption("commit: duplicate metadata key");
  }
  if (r.remaining() != 0) return Status::Corruption("commit: trailing bytes");
  return c;
}

}  // namespace strata::version
