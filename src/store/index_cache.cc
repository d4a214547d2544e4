#include "store/index_cache.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "base/endian.h"

namespace strata::store {

namespace {

constexpr size_t kMaxName = 128;

uint64_t Align8(uint64_t n) { return (n + 7) & ~uint64_t{7}; }

uint64_t Checksum(std::span<const uint8_t> head, std::span<const uint8_t> fanout, std::span<const uint8_t> trailer) {
  uint64_t h = XXH3_64bits(head.data(), head.size());
  h = XXH3_64bits_withSeed(fanout.data(), fanout.size(), h);
  return XXH3_64bits_withSeed(trailer.data(), trailer.size(), h);
}

void EncodeEntry(const ObjectId& id, uint32_t pack, const PackEntry& e, uint8_t* out) {
  std::memcpy(out, id.bytes.data(), ObjectId::kSize);
  std::string tail;
  PutFixed32(&tail, pack);
  tail.push_back(static_cast<char>(e.kind));
  tail.push_back(static_cast<char>(e.codec));
  PutFixed16(&tail, 0);
  PutFixed64(&tail, e.offset);
  PutFixed32(&tail, e.stored_size);
  PutFixed32(&tail, e.raw_size);
  std::memcpy(out + ObjectId::kSize, tail.data(), tail.size());
}

// Appends through a buffer: the cache is written in large sequential writes.
class BufferedOut {
 public:
  explicit BufferedOut(WritableFile* f) : f_(f) { buf_.reserve(kSize); }
  Status Append(std::string_view s) {
    if (buf_.size() + s.size() > kSize) STRATA_RETURN_IF_ERROR(Flush());
    if (s.size() >= kSize) return f_->Append(AsBytes(s));
    buf_.append(s);
    return Status::OK();
  }
  Status Flush() {
    if (buf_.empty()) return Status::OK();
    Status s = f_->Append(AsBytes(buf_));
    buf_.clear();
    return s;
  }

 private:
  static constexpr size_t kSize = 1 << 20;
  WritableFile* f_;
  std::string buf_;
};

}  // namespace

Result<std::unique_ptr<IndexCache>> IndexCache::Parse(std::span<const uint8_t> bytes, std::unique_ptr<MappedFile> file) {
  auto bad = [](std::string_view what) { return Status::Corruption(fmt::format("index cache: {}", what)); };
  const size_t size = bytes.size();
  if (size < sizeof(kIndexCacheMagic) + kIndexCacheFanoutSize + kIndexCacheTrailerSize) return bad("truncated");
  if (std::memcmp(bytes.data(), kIndexCacheMagic, sizeof(kIndexCacheMagic)) != 0) return bad("bad magic");
  const uint8_t* t = bytes.data() + size - kIndexCacheTrailerSize;
  if (std::memcmp(t + 40, kIndexCacheTrailerMagic, 8) != 0) return bad("bad trailer");
  uint32_t version = GetFixed32(t);
  if (version != kIndexCacheVersion) {
    return Status::Unsupported(fmt::format("index cache version {} is not supported", version));
  }
  uint32_t n_files = GetFixed32(t + 4);
  uint32_t n_packs = GetFixed32(t + 8);
  uint32_t names_len = GetFixed32(t + 12);
  uint64_t n_entries = GetFixed64(t + 16);
  uint64_t entries_offset = GetFixed64(t + 24);
  uint64_t checksum = GetFixed64(t + 32);
  // Every size is checked against the file before any multiplication can overflow.
  if (names_len > size || entries_offset != Align8(sizeof(kIndexCacheMagic) + uint64_t{names_len})) {
    return bad("bad names section");
  }
  uint64_t fixed = entries_offset + kIndexCacheFanoutSize + kIndexCacheTrailerSize;
  if (fixed > size || n_entries > (size - fixed) / kIndexCacheEntrySize ||
      fixed + n_entries * kIndexCacheEntrySize != size) {
    return bad("sizes do not match the file");
  }
  uint64_t fanout_offset = entries_offset + n_entries * kIndexCacheEntrySize;
  std::span<const uint8_t> fanout = bytes.subspan(fanout_offset, kIndexCacheFanoutSize);
  if (Checksum(bytes.first(entries_offset), fanout, {t, 32}) != checksum) return bad("checksum mismatch");
  if (uint64_t{n_files} + n_packs > names_len) return bad("more names than the names section holds");

  std::unique_ptr<IndexCache> c(new IndexCache());
  ByteReader r(bytes.data() + sizeof(kIndexCacheMagic), names_len);
  auto read_names = [&](uint32_t n, std::vector<std::string>* out) {
    out->reserve(n);
    for (uint32_t i = 0; i < n; ++i) {
      uint8_t len = 0;
      std::string name;
      if (!r.U8(&len) || len == 0 || len > kMaxName || !r.String(len, &name)) return false;
      out->push_back(std::move(name));
    }
    return true;
  };
  if (!read_names(n_files, &c->index_files_) || !read_names(n_packs, &c->packs_) || r.remaining() != 0) {
    return bad("malformed names");
  }
  if (!std::is_sorted(c->index_files_.begin(), c->index_files_.end())) return bad("index file names not sorted");
  uint64_t prev = 0;
  for (size_t b = 0; b < 256; ++b) {
    uint64_t v = GetFixed64(fanout.data() + 8 * b);
    if (v < prev || v > n_entries) return bad("fanout is not monotonic");
    prev = v;
  }
  if (prev != n_entries) return bad("fanout does not end at the entry count");
  c->entries_ = bytes.data() + entries_offset;
  c->fanout_ = fanout.data();
  c->n_entries_ = n_entries;
  c->file_ = std::move(file);
  return c;
}

Result<std::unique_ptr<IndexCache>> IndexCache::Open(Env* env, const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(auto file, env->MapFile(path));
  std::span<const uint8_t> bytes = file->data();
  return Parse(bytes, std::move(file));
}

std::pair<uint64_t, uint64_t> IndexCache::Bucket(uint8_t first) const {
  uint64_t end = GetFixed64(fanout_ + 8 * first);
  uint64_t begin = first == 0 ? 0 : GetFixed64(fanout_ + 8 * (first - 1));
  return {begin, end};
}

std::optional<uint64_t> IndexCache::Find(const ObjectId& id) const {
  auto [lo, hi] = Bucket(id.bytes[0]);
  // Binary search in the id's bucket. Entries out of order (a damaged cache) can only make an id
  // present look absent, never return another id's entry: the match is exact.
  while (lo < hi) {
    uint64_t mid = lo + (hi - lo) / 2;
    int c = std::memcmp(Entry(mid), id.bytes.data(), ObjectId::kSize);
    if (c == 0) return mid;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return std::nullopt;
}

ObjectId IndexCache::IdAt(uint64_t pos) const {
  ObjectId id;
  std::memcpy(id.bytes.data(), Entry(pos), ObjectId::kSize);
  return id;
}

std::optional<std::pair<uint32_t, PackEntry>> IndexCache::At(uint64_t pos) const {
  const uint8_t* p = Entry(pos);
  uint32_t pack = GetFixed32(p + 32);
  if (pack >= packs_.size() || !ValidObjectKind(p[36]) || p[37] > static_cast<uint8_t>(codec::Codec::kZstd)) {
    return std::nullopt;
  }
  PackEntry e;
  std::memcpy(e.id.bytes.data(), p, ObjectId::kSize);
  e.kind = static_cast<ObjectKind>(p[36]);
  e.codec = static_cast<codec::Codec>(p[37]);
  e.offset = GetFixed64(p + 40);
  e.stored_size = GetFixed32(p + 48);
  e.raw_size = GetFixed32(p + 52);
  if (e.stored_size < crypto::Aead::kOverhead || e.stored_size > kMaxObjectSize + crypto::Aead::kOverhead ||
      e.raw_size > kMaxObjectSize || e.offset < kPackHeaderSize) {
    return std::nullopt;
  }
  return std::make_pair(pack, e);
}

Status WriteIndexCache(Env* env, const std::string& path, const std::vector<const IndexCache*>& bases,
                       const std::vector<PackListing>& listings, std::vector<std::string> index_files) {
  std::sort(index_files.begin(), index_files.end());
  index_files.erase(std::unique(index_files.begin(), index_files.end()), index_files.end());
  for (const auto& f : index_files) {
    if (f.empty() || f.size() > kMaxName) return Status::InvalidArgument("index cache: bad index file name");
  }
  // The pack table: the first base's packs keep their ordinals; other bases' and new packs
  // follow, each base with a map from its ordinals to the new ones.
  std::vector<std::string> packs;
  std::unordered_map<std::string, uint32_t> ordinal;
  auto add_pack = [&](const std::string& name) {
    auto [it, inserted] = ordinal.emplace(name, static_cast<uint32_t>(packs.size()));
    if (inserted) packs.push_back(name);
    return it->second;
  };
  std::vector<std::vector<uint32_t>> remap(bases.size());
  for (size_t b = 0; b < bases.size(); ++b) {
    for (const auto& name : bases[b]->packs()) remap[b].push_back(add_pack(name));
  }
  struct Item {
    ObjectId id;
    uint32_t pack;
    uint32_t order;  // first listing wins among duplicates
    const PackEntry* entry;
  };
  std::vector<Item> items;
  {
    size_t total = 0;
    for (const auto& l : listings) total += l.entries.size();
    items.reserve(total);
  }
  uint32_t order = 0;
  for (const auto& l : listings) {
    if (l.pack.empty() || l.pack.size() > kMaxName) return Status::InvalidArgument("index cache: bad pack name");
    uint32_t pack = add_pack(l.pack);
    for (const auto& e : l.entries) items.push_back({e.id, pack, order++, &e});
  }
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    int c = std::memcmp(a.id.bytes.data(), b.id.bytes.data(), ObjectId::kSize);
    return c != 0 ? c < 0 : a.order < b.order;
  });

  std::string head(kIndexCacheMagic, sizeof(kIndexCacheMagic));
  for (const auto* table : {&index_files, &packs}) {
    for (const auto& n : *table) {
      head.push_back(static_cast<char>(n.size()));
      head += n;
    }
  }
  uint32_t names_len = static_cast<uint32_t>(head.size() - sizeof(kIndexCacheMagic));
  head.resize(Align8(head.size()), '\0');

  std::string tmp = fmt::format("{}.tmp-{}", path, NewRandomName().substr(0, 12));
  STRATA_ASSIGN_OR_RETURN(auto file, env->NewExclusiveFile(tmp));
  auto fail = [&](Status s) {
    (void)file->Close();
    (void)env->DeleteFile(tmp);
    return s.WithContext("writing the index cache");
  };
  BufferedOut out(file.get());
  if (Status s = out.Append(head); !s.ok()) return fail(s);

  std::vector<uint64_t> counts(256, 0);
  uint64_t n = 0;
  uint8_t rec[kIndexCacheEntrySize];
  std::optional<ObjectId> last;
  auto emit = [&](const ObjectId& id, uint32_t pack, const PackEntry& e) -> Status {
    // Sources are merged in id order; an id seen already (a later source's copy) is dropped.
    if (last && std::memcmp(last->bytes.data(), id.bytes.data(), ObjectId::kSize) >= 0) return Status::OK();
    last = id;
    EncodeEntry(id, pack, e, rec);
    ++counts[id.bytes[0]];
    ++n;
    return out.Append({reinterpret_cast<const char*>(rec), sizeof(rec)});
  };
  // A k-way merge: each base is a sorted stream read in place, the new items one more (last,
  // so on equal ids the bases win, earlier bases first). A heap of the k heads keeps it
  // O(log k) per entry, so building from many sorted runs costs one pass over them.
  struct Head {
    ObjectId id;
    size_t source;
    uint64_t pos;
  };
  auto later = [](const Head& a, const Head& b) {
    int c = std::memcmp(a.id.bytes.data(), b.id.bytes.data(), ObjectId::kSize);
    return c != 0 ? c > 0 : a.source > b.source;
  };
  std::vector<Head> heap;
  const size_t item_source = bases.size();
  auto push = [&](size_t source, uint64_t pos) {
    if (source < bases.size()) {
      if (pos >= bases[source]->size()) return;
      heap.push_back({bases[source]->IdAt(pos), source, pos});
    } else {
      if (pos >= items.size()) return;
      heap.push_back({items[pos].id, source, pos});
    }
    std::push_heap(heap.begin(), heap.end(), later);
  };
  for (size_t b = 0; b <= bases.size(); ++b) push(b, 0);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    Head h = heap.back();
    heap.pop_back();
    Status s;
    if (h.source == item_source) {
      const Item& it = items[h.pos];
      s = emit(it.id, it.pack, *it.entry);
    } else if (auto at = bases[h.source]->At(h.pos); at && at->second.id == h.id) {
      s = emit(h.id, remap[h.source][at->first], at->second);
    }  // a malformed base entry is dropped
    if (!s.ok()) return fail(s);
    push(h.source, h.pos + 1);
  }
  std::string tail;
  uint64_t cum = 0;
  for (size_t b = 0; b < 256; ++b) {
    cum += counts[b];
    PutFixed64(&tail, cum);
  }
  std::string trailer;
  PutFixed32(&trailer, kIndexCacheVersion);
  PutFixed32(&trailer, static_cast<uint32_t>(index_files.size()));
  PutFixed32(&trailer, static_cast<uint32_t>(packs.size()));
  PutFixed32(&trailer, names_len);
  PutFixed64(&trailer, n);
  PutFixed64(&trailer, head.size());
  PutFixed64(&trailer, Checksum(AsBytes(head), AsBytes(tail), AsBytes(std::string_view(trailer).substr(0, 32))));
  trailer.append(kIndexCacheTrailerMagic, sizeof(kIndexCacheTrailerMagic));
  tail += trailer;
  Status s = out.Append(tail);
  if (s.ok()) s = out.Flush();
  if (s.ok()) s = file->Sync();
  if (!s.ok()) return fail(s);
  STRATA_RETURN_IF_ERROR(file->Close());
  // No directory sync: the cache is derived data, and a rename lost in a power cut only means
  // the next open rebuilds it.
  Status r = env->RenameFile(tmp, path);
  if (!r.ok()) (void)env->DeleteFile(tmp);
  return r;
}

Status WriteIndexCache(Env* env, const std::string& path, const IndexCache* base,
                       const std::vector<PackListing>& listings, std::vector<std::string> index_files) {
  std::vector<const IndexCache*> bases;
  if (base) bases.push_back(base);
  return WriteIndexCache(env, path, bases, listings, std::move(index_files));
}

}  // namespace strata::store
