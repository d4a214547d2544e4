#include "shard/reader.h"

#include <algorithm>
#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "base/endian.h"
#include "crypto/aead.h"
#include "shard/format.h"

namespace strata::shard {
namespace {

// Reads coalesced by ReadBatch stop growing at this size (a single larger record is read whole).
constexpr uint64_t kMaxCoalescedRead = 4u << 20;
// Verify reads the data region in windows of this size.
constexpr uint64_t kVerifyWindow = 8u << 20;

class ShardReaderImpl final : public ShardReader {
 public:
  ShardReaderImpl(std::string name, std::unique_ptr<BlockSource> source, const ReaderOptions& options)
      : name_(std::move(name)), source_(std::move(source)) {
    if (options.key) aead_.emplace(*options.key);
  }

  Status Load() {
    const uint64_t size = source_->size();
    const crypto::Aead* aead = aead_ ? &*aead_ : nullptr;
    // The header: its first block says how long it is.
    {
      size_t want = std::min<uint64_t>(kBlock, size);
      AlignedBuffer first(kBlock);
      size_t got = 0;
      STRATA_RETURN_IF_ERROR(source_->Read(0, kBlock, first.data(), &got));
      if (got < want) return Corrupt("file shrank while being opened");
      STRATA_RETURN_IF_ERROR(ParseHeaderFixed(name_, {first.data(), got}, size, &header_));
      AlignedBuffer region(header_.header_size);
      STRATA_RETURN_IF_ERROR(source_->Read(0, header_.header_size, region.data(), &got));
      if (got != header_.header_size) return Corrupt("header truncated");
      STRATA_RETURN_IF_ERROR(ParseHeader(name_, {region.data(), got}, size, aead, &header_));
    }
    if (header_.encrypted() && !aead_) {
      return Status::InvalidArgument(fmt::format("shard {} is encrypted: a key is needed to read it", name_));
    }
    if (!header_.encrypted() && aead_) {
      // Accepting a plaintext shard where a sealed one was expected would let anyone who can
      // write the file substitute records.
      return Status::Unauthenticated(fmt::format("shard {} is not encrypted, but a key was given", name_));
    }
    // The trailer, then the index it points to (bounded by the file's size before allocation).
    Trailer trailer;
    {
      uint64_t off = size - kTrailerSize;
      STRATA_ASSIGN_OR_RETURN(auto bytes, ReadRange(off, kTrailerSize));
      STRATA_RETURN_IF_ERROR(ParseTrailer(name_, {bytes.first, kTrailerSize}, size, header_.header_size,
                                          header_.encrypted(), &trailer));
    }
    {
      uint64_t len = size - kTrailerSize - trailer.index_offset;
      STRATA_ASSIGN_OR_RETURN(auto bytes, ReadRange(trailer.index_offset, len));
      STRATA_RETURN_IF_ERROR(ParseIndex(name_, {bytes.first, len}, trailer, header_, aead, &index_));
    }
    index_offset_ = trailer.index_offset;
    return Status::OK();
  }

  const std::string& path() const override { return name_; }
  const Schema& schema() const override { return header_.schema; }
  const ShardId& id() const override { return header_.id; }
  uint32_t number() const override { return header_.number; }
  uint64_t first_record() const override { return header_.first_record; }
  uint64_t record_count() const override { return index_.size(); }
  bool encrypted() const override { return header_.encrypted(); }
  bool direct_io() const override { return source_->direct(); }

  RecordLocation Locate(uint64_t i) const override {
    RecordLocation loc;
    if (i >= index_.size()) return loc;
    const IndexEntry& e = index_[i];
    loc.offset = e.offset;
    loc.length = e.length;
    loc.crc32c = e.crc;
    ExtentOf(e.offset, e.length, &loc.extent_offset, &loc.extent_length);
    return loc;
  }

  Result<std::string> ReadPayload(uint64_t i) const override {
    STRATA_RETURN_IF_ERROR(CheckIndex(i));
    RecordLocation loc = Locate(i);
    AlignedBuffer buf(loc.extent_length);
    STRATA_RETURN_IF_ERROR(ReadExtent(i, loc.extent_offset, loc.extent_length, loc.offset + loc.length, buf.data()));
    std::string payload;
    STRATA_RETURN_IF_ERROR(OpenRecord(i, buf.data() + (loc.offset - loc.extent_offset), &payload));
    return payload;
  }

  Result<Record> Read(uint64_t i) const override {
    STRATA_ASSIGN_OR_RETURN(std::string payload, ReadPayload(i));
    return Decode(i, payload);
  }

  Result<std::vector<Record>> ReadBatch(std::span<const uint64_t> indexes) const override {
    for (uint64_t i : indexes) STRATA_RETURN_IF_ERROR(CheckIndex(i));
    // Visit the records in file order; a run of records whose extents overlap or touch is
    // fetched with one read.
    std::vector<size_t> order(indexes.size());
    for (size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return indexes[a] < indexes[b]; });
    std::vector<std::optional<Record>> out(indexes.size());
    std::string payload;
    size_t k = 0;
    while (k < order.size()) {
      RecordLocation first = Locate(indexes[order[k]]);
      uint64_t start = first.extent_offset, end = first.extent_offset + first.extent_length;
      size_t stop = k + 1;
      while (stop < order.size()) {
        RecordLocation next = Locate(indexes[order[stop]]);
        uint64_t next_end = std::max(end, next.extent_offset + next.extent_length);
        if (next.extent_offset > end || next_end - start > kMaxCoalescedRead) break;
        end = next_end;
        ++stop;
      }
      AlignedBuffer buf(end - start);
      const uint64_t last = indexes[order[stop - 1]];
      STRATA_RETURN_IF_ERROR(ReadExtent(last, start, end - start, index_[last].offset + index_[last].length, buf.data()));
      for (; k < stop; ++k) {
        uint64_t i = indexes[order[k]];
        STRATA_RETURN_IF_ERROR(OpenRecord(i, buf.data() + (index_[i].offset - start), &payload));
        STRATA_ASSIGN_OR_RETURN(Record r, Decode(i, payload));
        out[order[k]] = std::move(r);
      }
    }
    std::vector<Record> records;
    records.reserve(out.size());
    for (auto& r : out) records.push_back(std::move(*r));
    return records;
  }

  Status Verify() const override {
    AlignedBuffer buf;
    uint64_t win_start = 0, win_len = 0;  // the window of the data region held in buf
    uint64_t pos = header_.header_size;   // end of the previous record
    std::string payload;
    for (uint64_t i = 0; i <= index_.size(); ++i) {
      // The gap before record i (or before the index, after the last record) must be zero.
      const bool last = i == index_.size();
      const uint64_t begin = last ? index_offset_ : index_[i].offset;
      const uint64_t end = last ? index_offset_ : begin + index_[i].length;
      if (end > win_start + win_len || pos < win_start) {
        win_start = AlignDown(pos);
        win_len = std::max(kVerifyWindow, AlignUp(end) - win_start);
        win_len = std::min(win_len, AlignUp(source_->size()) - win_start);
        if (buf.size() < win_len) buf = AlignedBuffer(win_len);
        size_t got = 0;
        STRATA_RETURN_IF_ERROR(source_->Read(win_start, win_len, buf.data(), &got));
        if (got < end - win_start) {
          return last ? Corrupt("truncated before its index") : RecordCorrupt(i, "truncated: the file ends inside it");
        }
      }
      for (uint64_t b = pos; b < begin; ++b) {
        if (buf.data()[b - win_start] != 0) {
          return Corrupt(fmt::format("padding byte at offset {} (before {}) is not zero", b,
                                     last ? std::string("the index") : fmt::format("record {}", i)));
        }
      }
      if (last) break;
      STRATA_RETURN_IF_ERROR(OpenRecord(i, buf.data() + (begin - win_start), &payload));
      STRATA_RETURN_IF_ERROR(Decode(i, payload).status());
      pos = end;
    }
    return Status::OK();
  }

 private:
  struct Range {
    AlignedBuffer buf;
    const uint8_t* first;
  };
  // Reads [offset, offset + n) through an aligned extent.
  Result<Range> ReadRange(uint64_t offset, uint64_t n) {
    uint64_t eo, el;
    ExtentOf(offset, n, &eo, &el);
    Range r{AlignedBuffer(el), nullptr};
    size_t got = 0;
    STRATA_RETURN_IF_ERROR(source_->Read(eo, el, r.buf.data(), &got));
    if (got < offset + n - eo) return Corrupt("file shrank while being opened");
    r.first = r.buf.data() + (offset - eo);
    return r;
  }

  Status Corrupt(std::string_view what) const { return Status::Corruption(fmt::format("shard {}: {}", name_, what)); }
  Status RecordCorrupt(uint64_t i, std::string_view what) const {
    return Status::Corruption(fmt::format("shard {}: record {}: {}", name_, i, what));
  }

  Status CheckIndex(uint64_t i) const {
    if (i >= index_.size()) {
      return Status::InvalidArgument(fmt::format("shard {}: record {} out of range ({} records)", name_, i, index_.size()));
    }
    return Status::OK();
  }

  // Reads an aligned extent that must reach at least `need_end` (the end of record i).
  Status ReadExtent(uint64_t i, uint64_t offset, uint64_t n, uint64_t need_end, uint8_t* dst) const {
    size_t got = 0;
    STRATA_RETURN_IF_ERROR(source_->Read(offset, n, dst, &got));
    if (offset + got < need_end) {
      return RecordCorrupt(i, fmt::format("truncated: the file ends at {}, the record at {}", offset + got, need_end));
    }
    return Status::OK();
  }

  // Checks the CRC of record i's stored bytes at `p` and opens them into `payload`.
  Status OpenRecord(uint64_t i, const uint8_t* p, std::string* payload) const {
    const IndexEntry& e = index_[i];
    uint32_t crc = Crc32c({p, e.length});
    if (crc != e.crc) {
      return RecordCorrupt(i, fmt::format("checksum mismatch (stored {:08x}, computed {:08x})", e.crc, crc));
    }
    if (!aead_) {
      payload->assign(reinterpret_cast<const char*>(p), e.length);
      return Status::OK();
    }
    payload->resize(e.length - kTagSize);
    std::string ad = RecordAd(header_.id, i);
    if (!aead_->Open({p, e.length}, AsBytes(ad), reinterpret_cast<uint8_t*>(payload->data())).ok()) {
      payload->clear();
      return RecordCorrupt(i, "failed authentication: wrong key, or a record moved from another place");
    }
    return Status::OK();
  }

  Result<Record> Decode(uint64_t i, std::string_view payload) const {
    auto r = DecodeRecord(header_.schema, AsBytes(payload));
    if (!r.ok()) return RecordCorrupt(i, r.status().message());
    return r;
  }

  std::string name_;
  std::unique_ptr<BlockSource> source_;
  std::optional<crypto::Aead> aead_;
  Header header_;
  std::vector<IndexEntry> index_;
  uint64_t index_offset_ = 0;
};

}  // namespace

Result<std::unique_ptr<ShardReader>> OpenShard(std::string name, std::unique_ptr<BlockSource> source,
                                               const ReaderOptions& options) {
  auto reader = std::make_unique<ShardReaderImpl>(std::move(name), std::move(source), options);
  STRATA_RETURN_IF_ERROR(reader->Load());
  return std::unique_ptr<ShardReader>(std::move(reader));
}

Result<std::unique_ptr<ShardReader>> ShardReader::Open(const std::string& path, const ReaderOptions& options) {
  STRATA_ASSIGN_OR_RETURN(auto source, OpenBlockFile(path, options.direct_io));
  return OpenShard(path, std::move(source), options);
}

}  // namespace strata::shard
