#include "store/tree.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "base/endian.h"

namespace strata::store {

namespace {
constexpr char kTreeMagic[4] = {'S', 'T', 'R', 'T'};
constexpr char kListMagic[4] = {'S', 'T', 'R', 'L'};
constexpr uint8_t kTreeVersion = 1;
constexpr size_t kMaxName = 4096;

void AppendId(std::string* out, const ObjectId& id) {
  out->append(reinterpret_cast<const char*>(id.bytes.data()), ObjectId::kSize);
}
bool ReadId(ByteReader* r, ObjectId* id) {
  const uint8_t* p;
  if (!r->Bytes(ObjectId::kSize, &p)) return false;
  std::copy(p, p + ObjectId::kSize, id->bytes.begin());
  return true;
}
void AppendChunks(std::string* out, const std::vector<ChunkRef>& chunks) {
  PutFixed32(out, static_cast<uint32_t>(chunks.size()));
  for (const auto& c : chunks) {
    AppendId(out, c.id);
    PutFixed32(out, c.size);
  }
}
bool ReadChunks(ByteReader* r, std::vector<ChunkRef>* chunks, uint64_t* total) {
  uint32_t n;
  if (!r->U32(&n) || r->remaining() / (ObjectId::kSize + 4) < n) return false;
  chunks->resize(n);
  *total = 0;
  for (auto& c : *chunks) {
    if (!ReadId(r, &c.id) || !r->U32(&c.size) || c.size == 0) return false;
    *total += c.size;
  }
  return true;
}
}  // namespace

bool ValidEntryName(std::string_view name) {
  if (name.empty() || name.size() > kMaxName || name == "." || name == "..") return false;
  return name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

const TreeEntry* Tree::Find(std::string_view name) const {
  auto it = std::lower_bound(entries.begin(), entries.end(), name,
                             [](const TreeEntry& e, std::string_view n) { return e.name < n; });
  return it != entries.end() && it->name == name ? &*it : nullptr;
}

std::string SerializeTree(const Tree& tree) {
  std::string out(kTreeMagic, 4);
  out.push_back(static_cast<char>(kTreeVersion));
  PutFixed32(&out, static_cast<uint32_t>(tree.entries.size()));
  for (const auto& e : tree.entries) {
    PutFixed16(&out, static_cast<uint16_t>(e.name.size()));
    out += e.name;
    out.push_back(static_cast<char>(e.type));
    PutFixed32(&out, e.mode);
    PutFixed64(&out, static_cast<uint64_t>(e.mtime_ns));
    PutFixed64(&out, e.size);
    switch (e.type) {
      case EntryType::kFile: AppendChunks(&out, e.chunks); break;
      case EntryType::kDirectory: AppendId(&out, e.subtree); break;
      case EntryType::kSymlink:
        PutFixed16(&out, static_cast<uint16_t>(e.target.size()));
        out += e.target;
        break;
    }
  }
  return out;
}

Result<Tree> ParseTree(std::span<const uint8_t> bytes) {
  ByteReader r(bytes.data(), bytes.size());
  const uint8_t* magic;
  uint8_t version = 0;
  uint32_t count = 0;
  if (!r.Bytes(4, &magic) || std::memcmp(magic, kTreeMagic, 4) != 0 || !r.U8(&version)) {
    return Status::Corruption("not a tree object");
  }
  if (version != kTreeVersion) return Status::Unsupported(fmt::format("tree format version {} is not supported", version));
  if (!r.U32(&count) || count > r.remaining() / 16) return Status::Corruption("tree: bad entry count");
  Tree tree;
  tree.entries.resize(count);
  for (uint32_t i = 0; i < count; ++i) {
    TreeEntry& e = tree.entries[i];
    uint16_t name_len;
    uint8_t type;
    uint64_t mtime;
    if (!r.U16(&name_len) || !r.String(name_len, &e.name) || !r.U8(&type) || !r.U32(&e.mode) ||
        !r.U64(&mtime) || !r.U64(&e.size)) {
      return Status::Corruption(fmt::format("tree: entry {} is truncated", i));
    }
    e.mtime_ns = static_cast<int64_t>(mtime);
    if (!ValidEntryName(e.name)) return Status::Corruption(fmt::format("tree: entry {} has an unsafe name", i));
    if (i > 0 && !(tree.entries[i - 1].name < e.name)) {
      return Status::Corruption(fmt::format("tree: entries not sorted at '{}'", e.name));
    }
    if (e.mode > 07777) return Status::Corruption(fmt::format("tree: '{}' has invalid mode", e.name));
    bool ok = true;
    if (type == static_cast<uint8_t>(EntryType::kFile)) {
      uint64_t total = 0;
      ok = ReadChunks(&r, &e.chunks, &total) && total == e.size;
    } else if (type == static_cast<uint8_t>(EntryType::kDirectory)) {
      ok = ReadId(&r, &e.subtree);
    } else if (type == static_cast<uint8_t>(EntryType::kSymlink)) {
      uint16_t len;
      ok = r.U16(&len) && r.String(len, &e.target) && e.target.find('\0') == std::string::npos;
    } else {
      ok = false;
    }
    if (!ok) return Status::Corruption(fmt::format("tree: entry '{}' is malformed", e.name));
    e.type = static_cast<EntryType>(type);
  }
  if (r.remaining() != 0) return Status::Corruption("tree: trailing bytes");
  return tree;
}

std::string SerializeChunkList(const std::vector<ChunkRef>& chunks) {
  std::string out(kListMagic, 4);
  out.push_back(static_cast<char>(kTreeVersion));
  AppendChunks(&out, chunks);
  return out;
}

Result<std::vector<ChunkRef>> ParseChunkList(std::span<const uint8_t> bytes) {
  ByteReader r(bytes.data(), bytes.size());
  const uint8_t* magic;
  uint8_t version = 0;
  if (!r.Bytes(4, &magic) || std::memcmp(magic, kListMagic, 4) != 0 || !r.U8(&version) ||
      version != kTreeVersion) {
    return Status::Corruption("not a chunk list object");
  }
  std::vector<ChunkRef> chunks;
  uint64_t total;
  if (!ReadChunks(&r, &chunks, &total) || r.remaining() != 0) return Status::Corruption("chunk list is malformed");
  return chunks;
}

}  // namespace strata::store
