#include "volume/fragment.h"

#include <algorithm>

#include <fmt/format.h>

#include "base/endian.h"

namespace strata::volume {

uint64_t FragmentBodySize(Scheme scheme, int k, uint64_t pack_size) {
  if (scheme == Scheme::kReplica) return pack_size;
  uint64_t f = (pack_size + k - 1) / k;
  return (f + 63) / 64 * 64;
}

bool ValidVolumeId(std::string_view id) {
  if (id.size() < 2 || id.size() > 16 || id[0] != 'v') return false;
  return std::all_of(id.begin() + 1, id.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool ValidPackName(std::string_view name) {
  if (name.empty() || name.size() > kMaxPackName) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-' || c == '_';
  });
}

std::string FragmentFileName(const std::string& pack, uint32_t generation, int index) {
  return fmt::format("{}.{}.{}", pack, generation, index);
}

namespace {

Status CheckShape(Scheme scheme, int k, int m, std::string_view what) {
  if (scheme != Scheme::kErasure && scheme != Scheme::kReplica) {
    return Status::Corruption(fmt::format("{}: unknown scheme", what));
  }
  if (k < 1 || m < 0 || k + m > kMaxFragments || (scheme == Scheme::kReplica && k != 1)) {
    return Status::Corruption(fmt::format("{}: bad shape {}+{}", what, k, m));
  }
  return Status::OK();
}

}  // namespace

std::string SerializeFragmentHeader(const FragmentHeader& h) {
  std::string out(kFragmentMagic, 8);
  PutFixed16(&out, kFragmentVersion);
  out.push_back(static_cast<char>(h.scheme));
  out.push_back(static_cast<char>(h.k));
  out.push_back(static_cast<char>(h.m));
  out.push_back(static_cast<char>(h.index));
  PutFixed16(&out, static_cast<uint16_t>(h.pack.size()));
  PutFixed32(&out, h.generation);
  PutFixed32(&out, h.block_size);
  PutFixed64(&out, h.pack_size);
  PutFixed64(&out, h.body_size);
  PutFixed32(&out, h.blocks());
  PutFixed32(&out, 0);
  out += h.pack;
  for (uint32_t c : h.block_crcs) PutFixed32(&out, c);
  PutFixed32(&out, Crc32c(AsBytes(out)));
  return out;
}

Result<size_t> FragmentHeaderSize(std::span<const uint8_t> fixed) {
  if (fixed.size() < kFragmentFixedHeader) return Status::Corruption("fragment header is truncated");
  if (!std::equal(kFragmentMagic, kFragmentMagic + 8, fixed.begin())) {
    return Status::Corruption("not a strata fragment (bad magic)");
  }
  uint16_t version = GetFixed16(&fixed[8]);
  if (version != kFragmentVersion) {
    return Status::Unsupported(fmt::format("fragment format version {} is not supported", version));
  }
  uint16_t name_len = GetFixed16(&fixed[14]);
  uint32_t blocks = GetFixed32(&fixed[40]);
  if (name_len == 0 || name_len > kMaxPackName) return Status::Corruption("fragment header: bad pack name length");
  // 2^24 blocks of 64 KiB = 1 TiB per fragment, far above the 1 GiB pack limit.
  if (blocks > (1u << 24)) return Status::Corruption("fragment header: too many blocks");
  return kFragmentFixedHeader + name_len + size_t{4} * blocks + 4;
}

Result<FragmentHeader> ParseFragmentHeader(std::span<const uint8_t> bytes) {
  STRATA_ASSIGN_OR_RETURN(size_t size, FragmentHeaderSize(bytes));
  if (bytes.size() < size) return Status::Corruption("fragment header is truncated");
  if (GetFixed32(&bytes[size - 4]) != Crc32c(bytes.first(size - 4))) {
    return Status::Corruption("fragment header checksum mismatch");
  }
  FragmentHeader h;
  h.scheme = static_cast<Scheme>(bytes[10]);
  h.k = bytes[11];
  h.m = bytes[12];
  h.index = bytes[13];
  STRATA_RETURN_IF_ERROR(CheckShape(h.scheme, h.k, h.m, "fragment header"));
  if (h.index >= h.k + h.m) return Status::Corruption("fragment header: index out of range");
  size_t name_len = GetFixed16(&bytes[14]);
  h.generation = GetFixed32(&bytes[16]);
  h.block_size = GetFixed32(&bytes[20]);
  h.pack_size = GetFixed64(&bytes[24]);
  h.body_size = GetFixed64(&bytes[32]);
  uint32_t blocks = GetFixed32(&bytes[40]);
  if (h.block_size != kFragmentBlock) return Status::Corruption("fragment header: unsupported block size");
  if (h.pack_size == 0 || h.pack_size > (uint64_t{1} << 40)) return Status::Corruption("fragment header: bad pack size");
  if (h.body_size != FragmentBodySize(h.scheme, h.k, h.pack_size)) {
    return Status::Corruption("fragment header: body size does not match the pack size");
  }
  if (blocks != (h.body_size + h.block_size - 1) / h.block_size) {
    return Status::Corruption("fragment header: block count does not match the body size");
  }
  h.pack.assign(reinterpret_cast<const char*>(&bytes[kFragmentFixedHeader]), name_len);
  if (!ValidPackName(h.pack)) return Status::Corruption("fragment header: bad pack name");
  h.block_crcs.resize(blocks);
  const uint8_t* p = &bytes[kFragmentFixedHeader + name_len];
  for (uint32_t i = 0; i < blocks; ++i) h.block_crcs[i] = GetFixed32(p + 4 * i);
  return h;
}

std::string SerializePlacement(const Placement& p) {
  std::string out(kPlacementMagic, 8);
  PutFixed16(&out, kFragmentVersion);
  out.push_back(static_cast<char>(p.scheme));
  out.push_back(static_cast<char>(p.k));
  out.push_back(static_cast<char>(p.m));
  out.push_back(static_cast<char>(p.volumes.size()));
  PutFixed16(&out, static_cast<uint16_t>(p.pack.size()));
  PutFixed32(&out, p.generation);
  PutFixed64(&out, p.pack_size);
  PutFixed64(&out, p.body_size);
  out += p.pack;
  for (const auto& v : p.volumes) {
    out.push_back(static_cast<char>(v.size()));
    out += v;
  }
  PutFixed32(&out, Crc32c(AsBytes(out)));
  return out;
}

Result<Placement> ParsePlacement(std::span<const uint8_t> bytes) {
  constexpr size_t kFixed = 36;
  if (bytes.size() < kFixed + 4) return Status::Corruption("placement record is truncated");
  if (!std::equal(kPlacementMagic, kPlacementMagic + 8, bytes.begin())) {
    return Status::Corruption("not a placement record (bad magic)");
  }
  if (GetFixed32(&bytes[bytes.size() - 4]) != Crc32c(bytes.first(bytes.size() - 4))) {
    return Status::Corruption("placement record checksum mismatch");
  }
  uint16_t version = GetFixed16(&bytes[8]);
  if (version != kFragmentVersion) {
    return Status::Unsupported(fmt::format("placement record version {} is not supported", version));
  }
  Placement p;
  p.scheme = static_cast<Scheme>(bytes[10]);
  p.k = bytes[11];
  p.m = bytes[12];
  size_t n = bytes[13];
  STRATA_RETURN_IF_ERROR(CheckShape(p.scheme, p.k, p.m, "placement record"));
  if (n != size_t{p.k} + p.m) return Status::Corruption("placement record: volume count does not match k+m");
  size_t name_len = GetFixed16(&bytes[14]);
  p.generation = GetFixed32(&bytes[16]);
  p.pack_size = GetFixed64(&bytes[20]);
  p.body_size = GetFixed64(&bytes[28]);
  if (p.pack_size == 0 || p.pack_size > (uint64_t{1} << 40)) return Status::Corruption("placement record: bad pack size");
  if (p.body_size != FragmentBodySize(p.scheme, p.k, p.pack_size)) {
    return Status::Corruption("placement record: body size does not match the pack size");
  }
  size_t end = bytes.size() - 4;
  size_t pos = kFixed;
  if (name_len > end - pos) return Status::Corruption("placement record is truncated");
  p.pack.assign(reinterpret_cast<const char*>(&bytes[pos]), name_len);
  if (!ValidPackName(p.pack)) return Status::Corruption("placement record: bad pack name");
  pos += name_len;
  for (size_t i = 0; i < n; ++i) {
    if (pos >= end) return Status::Corruption("placement record is truncated");
    size_t len = bytes[pos++];
    if (len > end - pos) return Status::Corruption("placement record is truncated");
    std::string id(reinterpret_cast<const char*>(&bytes[pos]), len);
    if (!ValidVolumeId(id)) return Status::Corruption("placement record: bad volume id");
    p.volumes.push_back(std::move(id));
    pos += len;
  }
  if (pos != end) return Status::Corruption("placement record has trailing bytes");
  return p;
}

}  // namespace strata::volume
