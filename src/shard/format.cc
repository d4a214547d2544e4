#include "shard/format.h"


#include <algorithm>
#include <climits>
#include <cstring>
#include <set>

#include <fmt/format.h>

#include "base/endian.h"

namespace strata::shard {
namespace {

constexpr std::string_view kHeaderAdPrefix = "strata-shard-header-v1";
constexpr std::string_view kIndexAdPrefix = "strata-shard-index-v1";
constexpr std::string_view kRecordAdPrefix = "strata-shard-record-v1";

Status Corrupt(std::string_view name, std::string_view what) {
  return Status::Corruption(fmt::format("shard {}: {}", name, what));
}

bool ValidDType(uint8_t d) { return d >= 1 && d <= 13; }
bool ValidType(uint8_t t) { return t >= 1 && t <= 6; }

std::string IndexAd(const ShardId& id, std::span<const uint8_t> entries) {
  std::string ad(kIndexAdPrefix);
  ad.append(reinterpret_cast<const char*>(id.data()), id.size());
  ad.append(reinterpret_cast<const char*>(entries.data()), entries.size());
  return ad;
}

}  // namespace

size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kBool: case DType::kUint8: case DType::kInt8: return 1;
    case DType::kUint16: case DType::kInt16: case DType::kFloat16: case DType::kBFloat16: return 2;
    case DType::kUint32: case DType::kInt32: case DType::kFloat32: return 4;
    case DType::kUint64: case DType::kInt64: case DType::kFloat64: return 8;
  }
  return 0;
}

std::string ShardIdHex(const ShardId& id) {
  std::string s;
  for (uint8_t b : id) s += fmt::format("{:02x}", b);
  return s;
}

// ---- schema ----

Status ValidateSchema(const Schema& schema) {
  if (schema.fields.empty() || schema.fields.size() > kMaxFields) {
    return Status::InvalidArgument(fmt::format("a schema needs 1 to {} fields, not {}", kMaxFields, schema.fields.size()));
  }
  std::set<std::string_view> names;
  for (const Field& f : schema.fields) {
    if (f.name.empty() || f.name.size() > 255) {
      return Status::InvalidArgument(fmt::format("field name '{}' must have 1 to 255 bytes", f.name));
    }
    if (!names.insert(f.name).second) return Status::InvalidArgument(fmt::format("field '{}' appears twice", f.name));
    if (!ValidType(static_cast<uint8_t>(f.type))) {
      return Status::InvalidArgument(fmt::format("field '{}' has an unknown type", f.name));
    }
    if (f.type == FieldType::kTensor) {
      if (!ValidDType(static_cast<uint8_t>(f.dtype))) {
        return Status::InvalidArgument(fmt::format("field '{}' has an unknown dtype", f.name));
      }
      if (f.shape.size() > kMaxRank) {
        return Status::InvalidArgument(fmt::format("field '{}' has more than {} dimensions", f.name, kMaxRank));
      }
      for (int64_t d : f.shape) {
        if (d < -1) return Status::InvalidArgument(fmt::format("field '{}' has a dimension {} < -1", f.name, d));
      }
    }
  }
  return Status::OK();
}

std::string SerializeSchema(const Schema& schema) {
  std::string out;
  PutFixed16(&out, static_cast<uint16_t>(schema.fields.size()));
  for (const Field& f : schema.fields) {
    out.push_back(static_cast<char>(f.name.size()));
    out += f.name;
    out.push_back(static_cast<char>(f.type));
    if (f.type == FieldType::kTensor) {
      out.push_back(static_cast<char>(f.dtype));
      out.push_back(static_cast<char>(f.shape.size()));
      for (int64_t d : f.shape) PutFixed64(&out, static_cast<uint64_t>(d));
    } else if (f.type == FieldType::kLabel) {
      PutFixed32(&out, f.num_classes);
    }
  }
  return out;
}

Result<Schema> ParseSchema(std::span<const uint8_t> bytes) {
  ByteReader r(bytes.data(), bytes.size());
  auto bad = [](std::string_view what) { return Status::Corruption(fmt::format("schema: {}", what)); };
  uint16_t count;
  if (!r.U16(&count)) return bad("truncated");
  if (count == 0 || count > kMaxFields) return bad(fmt::format("{} fields", count));
  Schema schema;
  schema.fields.reserve(count);
  for (uint16_t i = 0; i < count; ++i) {
    Field f;
    uint8_t name_len, type;
    if (!r.U8(&name_len) || name_len == 0 || !r.String(name_len, &f.name) || !r.U8(&type)) {
      return bad(fmt::format("field {} truncated or unnamed", i));
    }
    if (!ValidType(type)) return bad(fmt::format("field {} has unknown type {}", i, type));
    f.type = static_cast<FieldType>(type);
    if (f.type == FieldType::kTensor) {
      uint8_t dtype, rank;
      if (!r.U8(&dtype) || !r.U8(&rank)) return bad(fmt::format("field {} truncated", i));
      if (!ValidDType(dtype)) return bad(fmt::format("field {} has unknown dtype {}", i, dtype));
      if (rank > kMaxRank) return bad(fmt::format("field {} has rank {}", i, rank));
      f.dtype = static_cast<DType>(dtype);
      for (uint8_t k = 0; k < rank; ++k) {
        uint64_t d;
        if (!r.U64(&d)) return bad(fmt::format("field {} truncated", i));
        if (static_cast<int64_t>(d) < -1) return bad(fmt::format("field {} has dimension {}", i, static_cast<int64_t>(d)));
        f.shape.push_back(static_cast<int64_t>(d));
      }
    } else if (f.type == FieldType::kLabel) {
      if (!r.U32(&f.num_classes)) return bad(fmt::format("field {} truncated", i));
    }
    schema.fields.push_back(std::move(f));
  }
  if (r.remaining() != 0) return bad("trailing bytes");
  Status s = ValidateSchema(schema);
  if (!s.ok()) return bad(s.message());
  return schema;
}

// ---- records ----

namespace {
void Store32(uint8_t*& p, uint32_t v) {
  for (int i = 0; i < 4; ++i) *p++ = static_cast<uint8_t>(v >> (8 * i));
}
void Store64(uint8_t*& p, uint64_t v) {
  for (int i = 0; i < 8; ++i) *p++ = static_cast<uint8_t>(v >> (8 * i));
}
void StoreBytes(uint8_t*& p, std::string_view s) {
  if (!s.empty()) std::memcpy(p, s.data(), s.size());
  p += s.size();
}
}  // namespace

Result<size_t> EncodedSize(const Schema& schema, const Record& record, size_t open) {
  if (record.size() != schema.fields.size()) {
    return Status::InvalidArgument(fmt::format("record has {} values, schema has {} fields", record.size(), schema.fields.size()));
  }
  if (open != kNoOpenField && (open >= schema.fields.size() || schema.fields[open].type != FieldType::kTensor)) {
    return Status::InvalidArgument(fmt::format("field {} is not a tensor field", open));
  }
  uint64_t size = 0;
  for (size_t i = 0; i < record.size(); ++i) {
    const Field& f = schema.fields[i];
    const Value& v = record[i];
    if (v.index() + 1 != static_cast<size_t>(f.type)) {
      return Status::InvalidArgument(fmt::format("field '{}': value of the wrong type", f.name));
    }
    switch (f.type) {
      case FieldType::kTensor: {
        const Tensor& t = std::get<Tensor>(v);
        if (t.dtype != f.dtype) return Status::InvalidArgument(fmt::format("field '{}': wrong dtype", f.name));
        if (t.shape.size() != f.shape.size()) {
          return Status::InvalidArgument(fmt::format("field '{}': rank {} where the schema has {}", f.name, t.shape.size(), f.shape.size()));
        }
        unsigned __int128 elements = 1;
        for (size_t k = 0; k < t.shape.size(); ++k) {
          if (f.shape[k] >= 0 && t.shape[k] != static_cast<uint64_t>(f.shape[k])) {
            return Status::InvalidArgument(fmt::format("field '{}': dimension {} is {}, schema says {}", f.name, k, t.shape[k], f.shape[k]));
          }
          elements *= t.shape[k];
          if (elements > kMaxRecordSize) return Status::InvalidArgument(fmt::format("field '{}': tensor too large", f.name));
        }
        const uint64_t bytes = static_cast<uint64_t>(elements) * DTypeSize(t.dtype);
        if (i == open && !t.data.empty()) {
          return Status::InvalidArgument(fmt::format("field '{}': given with data where the writer is to fill it", f.name));
        }
        if (i != open && bytes != t.data.size()) {
          return Status::InvalidArgument(fmt::format("field '{}': {} data bytes for {} elements of {} bytes", f.name,
                                                     t.data.size(), static_cast<uint64_t>(elements), DTypeSize(t.dtype)));
        }
        size += 8 * t.shape.size() + bytes;
        break;
      }
      case FieldType::kBytes:
      case FieldType::kString: {
        const std::string& s = f.type == FieldType::kBytes ? std::get<Bytes>(v).data : std::get<std::string>(v);
        if (s.size() > kMaxRecordSize) return Status::InvalidArgument(fmt::format("field '{}': value too large", f.name));
        size += 4 + s.size();
        break;
      }
      case FieldType::kInt:
      case FieldType::kFloat:
        size += 8;
        break;
      case FieldType::kLabel: {
        uint32_t label = std::get<Label>(v).value;
        if (f.num_classes != 0 && label >= f.num_classes) {
          return Status::InvalidArgument(fmt::format("field '{}': label {} not below {} classes", f.name, label, f.num_classes));
        }
        size += 4;
        break;
      }
    }
    // Every field adds at most 16 GiB (a tensor of 2^31 elements of 8 bytes) plus its prefix, so
    // checking after each keeps `size` far from overflow.
    if (size > kMaxRecordSize - kTagSize) return Status::InvalidArgument("record larger than 2 GiB");
  }
  return static_cast<size_t>(size);
}

uint8_t* EncodeRecordTo(const Schema& schema, const Record& record, uint8_t* dst, size_t open) {
  uint8_t* p = dst;
  uint8_t* open_data = nullptr;
  for (size_t i = 0; i < record.size(); ++i) {
    const Value& v = record[i];
    switch (schema.fields[i].type) {
      case FieldType::kTensor: {
        const Tensor& t = std::get<Tensor>(v);
        uint64_t elements = 1;
        for (uint64_t d : t.shape) {
          Store64(p, d);
          elements *= d;
        }
        if (i == open) {
          open_data = p;
          p += elements * DTypeSize(t.dtype);
        } else {
          StoreBytes(p, t.data);
        }
        break;
      }
      case FieldType::kBytes:
        Store32(p, static_cast<uint32_t>(std::get<Bytes>(v).data.size()));
        StoreBytes(p, std::get<Bytes>(v).data);
        break;
      case FieldType::kString:
        Store32(p, static_cast<uint32_t>(std::get<std::string>(v).size()));
        StoreBytes(p, std::get<std::string>(v));
        break;
      case FieldType::kInt:
        Store64(p, static_cast<uint64_t>(std::get<int64_t>(v)));
        break;
      case FieldType::kFloat: {
        uint64_t bits;
        double d = std::get<double>(v);
        std::memcpy(&bits, &d, 8);
        Store64(p, bits);
        break;
      }
      case FieldType::kLabel:
        Store32(p, std::get<Label>(v).value);
        break;
    }
  }
  return open_data;
}

Status EncodeRecord(const Schema& schema, const Record& record, std::string* out) {
  STRATA_ASSIGN_OR_RETURN(size_t size, EncodedSize(schema, record));
  out->resize(size);  // every byte is written below: a reused buffer is not cleared first
  EncodeRecordTo(schema, record, reinterpret_cast<uint8_t*>(out->data()));
  return Status::OK();
}

Status DecodeRecordView(const Schema& schema, std::span<const uint8_t> payload, std::vector<FieldView>* out) {
  ByteReader r(payload.data(), payload.size());
  out->resize(schema.fields.size());
  auto bad = [](const Field& f, std::string_view what) {
    return Status::Corruption(fmt::format("field '{}': {}", f.name, what));
  };
  for (size_t i = 0; i < schema.fields.size(); ++i) {
    const Field& f = schema.fields[i];
    FieldView& v = (*out)[i];
    v = FieldView{};
    switch (f.type) {
      case FieldType::kTensor: {
        // Each dimension is checked against the bytes left before it is multiplied in, so a
        // hostile shape can neither overflow nor make us allocate more than the payload.
        uint64_t elements = 1;
        const uint64_t item = DTypeSize(f.dtype);
        for (size_t k = 0; k < f.shape.size(); ++k) {
          uint64_t d;
          if (!r.U64(&d)) return bad(f, "truncated shape");
          if (f.shape[k] >= 0 && d != static_cast<uint64_t>(f.shape[k])) return bad(f, "shape does not match the schema");
          v.shape[k] = d;
          if (d != 0 && elements > r.remaining() / d) elements = UINT64_MAX;  // more than the payload holds
          else elements *= d;
        }
        if (elements == UINT64_MAX || elements > r.remaining() / item) return bad(f, "tensor data truncated");
        v.size = elements * item;
        if (!r.Bytes(v.size, &v.data)) return bad(f, "tensor data truncated");
        break;
      }
      case FieldType::kBytes:
      case FieldType::kString: {
        uint32_t n;
        if (!r.U32(&n) || !r.Bytes(n, &v.data)) return bad(f, "truncated");
        v.size = n;
        break;
      }
      case FieldType::kInt:
      case FieldType::kFloat: {
        if (!r.U64(&v.value)) return bad(f, "truncated");
        break;
      }
      case FieldType::kLabel: {
        uint32_t l;
        if (!r.U32(&l)) return bad(f, "truncated");
        if (f.num_classes != 0 && l >= f.num_classes) return bad(f, fmt::format("label {} not below {}", l, f.num_classes));
        v.value = l;
        break;
      }
    }
  }
  if (r.remaining() != 0) return Status::Corruption(fmt::format("{} trailing bytes after the last field", r.remaining()));
  return Status::OK();
}

Result<Record> DecodeRecord(const Schema& schema, std::span<const uint8_t> payload) {
  std::vector<FieldView> views;
  STRATA_RETURN_IF_ERROR(DecodeRecordView(schema, payload, &views));
  Record record;
  record.reserve(schema.fields.size());
  for (size_t i = 0; i < schema.fields.size(); ++i) {
    const Field& f = schema.fields[i];
    const FieldView& v = views[i];
    std::string data(reinterpret_cast<const char*>(v.data), v.size);
    switch (f.type) {
      case FieldType::kTensor:
        record.emplace_back(Tensor{f.dtype, std::vector<uint64_t>(v.shape.begin(), v.shape.begin() + f.shape.size()),
                                   std::move(data)});
        break;
      case FieldType::kBytes: record.emplace_back(Bytes{std::move(data)}); break;
      case FieldType::kString: record.emplace_back(std::move(data)); break;
      case FieldType::kInt: record.emplace_back(static_cast<int64_t>(v.value)); break;
      case FieldType::kFloat: {
        double d;
        std::memcpy(&d, &v.value, 8);
        record.emplace_back(d);
        break;
      }
      case FieldType::kLabel: record.emplace_back(Label{static_cast<uint32_t>(v.value)}); break;
    }
  }
  return record;
}

// ---- header ----

std::string BuildHeader(Header* h, const crypto::Aead* aead) {
  std::string schema = SerializeSchema(h->schema);
  const size_t tag = h->encrypted() ? kTagSize : 0;
  h->header_size = static_cast<uint32_t>(AlignUp(kHeaderFixedSize + schema.size() + tag + 4));
  std::string out(kHeaderMagic, 8);
  PutFixed16(&out, kVersion);
  PutFixed16(&out, h->flags);
  PutFixed32(&out, h->header_size);
  out.append(reinterpret_cast<const char*>(h->id.data()), h->id.size());
  PutFixed64(&out, h->first_record);
  PutFixed32(&out, h->number);
  PutFixed32(&out, static_cast<uint32_t>(kBlock));
  PutFixed32(&out, static_cast<uint32_t>(schema.size()));
  out += schema;
  if (h->encrypted()) {
    std::string ad(kHeaderAdPrefix);
    ad += out;
    h->tag.assign(kTagSize, '\0');
    aead->Seal({}, AsBytes(ad), reinterpret_cast<uint8_t*>(h->tag.data()));
    out += h->tag;
  }
  PutFixed32(&out, Crc32c(AsBytes(out)));
  out.resize(h->header_size, '\0');
  return out;
}

Status ParseHeaderFixed(std::string_view name, std::span<const uint8_t> first, uint64_t file_size, Header* out) {
  if (first.size() < kHeaderFixedSize) return Corrupt(name, fmt::format("truncated: {} bytes, no room for a header", file_size));
  if (std::memcmp(first.data(), kHeaderMagic, 8) != 0) return Corrupt(name, "bad header magic (not a shard)");
  // Version and flags are checked after the header's checksum (ParseHeader), so that a
  // flipped bit there is reported as damage rather than as a newer format.
  out->flags = GetFixed16(first.data() + 10);
  out->header_size = GetFixed32(first.data() + 12);
  if (out->header_size == 0 || out->header_size % kBlock != 0 || out->header_size > kMaxHeaderSize) {
    return Corrupt(name, fmt::format("bad header size {}", out->header_size));
  }
  if (file_size < uint64_t{out->header_size} + kTrailerSize) {
    return Corrupt(name, fmt::format("truncated: {} bytes, smaller than its header ({}) and trailer", file_size, out->header_size));
  }
  return Status::OK();
}

Status ParseHeader(std::string_view name, std::span<const uint8_t> region, uint64_t file_size,
                   const crypto::Aead* aead, Header* out) {
  STRATA_RETURN_IF_ERROR(ParseHeaderFixed(name, region, file_size, out));
  if (region.size() != out->header_size) return Corrupt(name, "header region truncated");
  const uint8_t* p = region.data();
  std::memcpy(out->id.data(), p + 16, 16);
  out->first_record = GetFixed64(p + 32);
  out->number = GetFixed32(p + 40);
  if (GetFixed32(p + 44) != kBlock) return Corrupt(name, fmt::format("block size {} (only 4096 is known)", GetFixed32(p + 44)));
  uint64_t schema_len = GetFixed32(p + 48);
  const size_t tag = out->encrypted() ? kTagSize : 0;
  if (schema_len > out->header_size - kHeaderFixedSize - tag - 4) return Corrupt(name, "schema larger than the header");
  const size_t prefix = kHeaderFixedSize + schema_len;
  const size_t crc_at = prefix + tag;
  uint32_t want = GetFixed32(p + crc_at);
  uint32_t got = Crc32c(region.first(crc_at));
  if (want != got) return Corrupt(name, fmt::format("header checksum mismatch (stored {:08x}, computed {:08x})", want, got));
  uint16_t version = GetFixed16(p + 8);
  if (version != kVersion) {
    return Status::Unsupported(fmt::format("shard {}: format version {} (this build reads {})", name, version, kVersion));
  }
  if ((out->flags & ~kFlagEncrypted) != 0) return Corrupt(name, fmt::format("unknown header flags {:#x}", out->flags));
  for (size_t i = crc_at + 4; i < region.size(); ++i) {
    if (p[i] != 0) return Corrupt(name, fmt::format("header padding byte {} is not zero", i));
  }
  auto schema = ParseSchema(region.subspan(kHeaderFixedSize, schema_len));
  if (!schema.ok()) return schema.status().WithContext(fmt::format("shard {}", name));
  out->schema = std::move(*schema);
  out->tag.assign(reinterpret_cast<const char*>(p + prefix), tag);
  if (out->encrypted() && aead != nullptr) {
    std::string ad(kHeaderAdPrefix);
    ad.append(reinterpret_cast<const char*>(p), prefix);
    uint8_t none = 0;
    if (!aead->Open(region.subspan(prefix, tag), AsBytes(ad), &none).ok()) {
      return Status::Unauthenticated(
          fmt::format("shard {}: header failed authentication: wrong key or forged header", name));
    }
  }
  return Status::OK();
}

// ---- footer ----

std::string BuildFooter(const ShardId& id, const std::vector<IndexEntry>& entries, uint64_t index_offset,
                        const crypto::Aead* aead) {
  std::string out;
  out.reserve(entries.size() * kIndexEntrySize + kTagSize + kTrailerSize);
  for (const IndexEntry& e : entries) {
    PutFixed64(&out, e.offset);
    PutFixed32(&out, e.length);
    PutFixed32(&out, e.crc);
  }
  if (aead != nullptr) {
    std::string ad = IndexAd(id, AsBytes(out));
    char tag[kTagSize];
    aead->Seal({}, AsBytes(ad), reinterpret_cast<uint8_t*>(tag));
    out.append(tag, kTagSize);
  }
  uint32_t index_crc = Crc32c(AsBytes(out));
  std::string trailer;
  PutFixed64(&trailer, entries.size());
  PutFixed64(&trailer, index_offset);
  PutFixed32(&trailer, index_crc);
  PutFixed32(&trailer, Crc32c(AsBytes(trailer)));
  trailer.append(kTrailerMagic, 8);
  return out + trailer;
}

Status ParseTrailer(std::string_view name, std::span<const uint8_t> b, uint64_t file_size, uint64_t header_size,
                    bool encrypted, Trailer* out) {
  if (b.size() != kTrailerSize || file_size < header_size + kTrailerSize) return Corrupt(name, "truncated: no trailer");
  if (std::memcmp(b.data() + 24, kTrailerMagic, 8) != 0) {
    return Corrupt(name, "bad trailer magic (truncated or unfinished shard)");
  }
  uint32_t want = GetFixed32(b.data() + 20), got = Crc32c(b.first(20));
  if (want != got) return Corrupt(name, fmt::format("trailer checksum mismatch (stored {:08x}, computed {:08x})", want, got));
  out->record_count = GetFixed64(b.data());
  out->index_offset = GetFixed64(b.data() + 8);
  out->index_crc = GetFixed32(b.data() + 16);
  const uint64_t index_end = file_size - kTrailerSize;
  const uint64_t tag = encrypted ? kTagSize : 0;
  if (out->index_offset < header_size || out->index_offset > index_end || index_end - out->index_offset < tag) {
    return Corrupt(name, fmt::format("index offset {} outside the file ({} bytes)", out->index_offset, file_size));
  }
  // Count is checked against the bytes that are really there before anything is allocated.
  uint64_t room = index_end - out->index_offset - tag;
  if (room % kIndexEntrySize != 0 || out->record_count != room / kIndexEntrySize) {
    return Corrupt(name, fmt::format("index of {} records does not fill the {} bytes before the trailer",
                                     out->record_count, room + tag));
  }
  return Status::OK();
}

Status ParseIndex(std::string_view name, std::span<const uint8_t> bytes, const Trailer& t, const Header& header,
                  const crypto::Aead* aead, std::vector<IndexEntry>* out) {
  const uint64_t tag = header.encrypted() ? kTagSize : 0;
  if (bytes.size() != t.record_count * kIndexEntrySize + tag) return Corrupt(name, "index truncated");
  uint32_t got = Crc32c(bytes);
  if (got != t.index_crc) {
    return Corrupt(name, fmt::format("index checksum mismatch (stored {:08x}, computed {:08x})", t.index_crc, got));
  }
  const size_t entries_size = bytes.size() - tag;
  if (header.encrypted() && aead != nullptr) {
    std::string ad = IndexAd(header.id, bytes.first(entries_size));
    uint8_t none = 0;
    if (!aead->Open(bytes.subspan(entries_size), AsBytes(ad), &none).ok()) {
      return Status::Unauthenticated(fmt::format("shard {}: index failed authentication: wrong key or forged index", name));
    }
  }
  out->clear();
  out->reserve(t.record_count);
  uint64_t pos = header.header_size;
  const uint64_t min_length = header.encrypted() ? kTagSize + 1 : 1;
  for (uint64_t i = 0; i < t.record_count; ++i) {
    const uint8_t* p = bytes.data() + i * kIndexEntrySize;
    IndexEntry e{GetFixed64(p), GetFixed32(p + 8), GetFixed32(p + 12)};
    if (e.length < min_length || e.length > kMaxRecordSize) {
      return Corrupt(name, fmt::format("record {}: bad length {} in the index", i, e.length));
    }
    // Records follow each other, each exactly where the placement rule puts it: any other
    // offset is damage, and this also keeps them inside the data region.
    if (e.offset != PlaceRecord(pos, e.length)) {
      return Corrupt(name, fmt::format("record {}: offset {} in the index, expected {}", i, e.offset, PlaceRecord(pos, e.length)));
    }
    if (e.offset > t.index_offset || t.index_offset - e.offset < e.length) {
      return Corrupt(name, fmt::format("record {}: extends past the data region", i));
    }
    pos = e.offset + e.length;
    out->push_back(e);
  }
  if (pos != t.index_offset) {
    return Corrupt(name, fmt::format("records end at {}, index starts at {}", pos, t.index_offset));
  }
  return Status::OK();
}

std::string RecordAd(const ShardId& id, uint64_t index) {
  std::string ad(kRecordAdPrefix);
  ad.append(reinterpret_cast<const char*>(id.data()), id.size());
  PutFixed64(&ad, index);
  return ad;
}

}  // namespace strata::shard
