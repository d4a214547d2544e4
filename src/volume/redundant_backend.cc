// Volume layout on disk:
//   <volume>/strata-volume            marker: {"format":"strata-volume","repository":ID,"volume":"vN"}
//   <volume>/fragments/<2 hex>/<pack>.<generation>.<index>
//   <volume>/tmp/                     fragments being written
// and in the repository directory:
//   placement/<pack>                  which volume holds which fragment (fragment.h)
//   catalog/volume-counters.json      degraded reads and errors, summed over processes
//   catalog/rebalance.lock            flock held by the running rebalance
#include "volume/redundant_backend.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/endian.h"
#include "base/logging.h"
#include "base/thread_pool.h"
#include "volume/erasure.h"

namespace strata::volume {

namespace {

constexpr size_t kMaxOpenFragments = 128;

std::vector<std::string> SplitDomain(const std::string& domain) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i <= domain.size()) {
    size_t j = domain.find('/', i);
    if (j == std::string::npos) j = domain.size();
    parts.push_back(domain.substr(i, j - i));
    i = j + 1;
  }
  return parts;
}

// How many leading components two failure domains share.
size_t SharedLevels(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

std::string ShortPack(const std::string& pack) { return pack.substr(0, 12); }

std::span<const uint8_t> Bytes(std::string_view s) { return AsBytes(s); }

// Fragment bodies are read and rebuilt this many blocks at a time, each piece checksummed
// while it is still in the core's cache.
constexpr uint64_t kBlocksPerCheck = 4;
constexpr uint64_t kSlice = kBlocksPerCheck * kFragmentBlock;

// The header of fragment `index` of `p`; its block CRCs are zero until SetBlockCrcs.
FragmentHeader HeaderFor(const Placement& p, int index) {
  FragmentHeader h;
  h.scheme = p.scheme;
  h.k = p.k;
  h.m = p.m;
  h.index = static_cast<uint8_t>(index);
  h.generation = p.generation;
  h.pack_size = p.pack_size;
  h.body_size = p.body_size;
  h.pack = p.pack;
  h.block_crcs.assign((p.body_size + kFragmentBlock - 1) / kFragmentBlock, 0);
  return h;
}

// Sets the CRCs of the blocks of body bytes [off, off + n) (`off` on a block boundary) from
// `bytes`, which hold them.
void SetBlockCrcs(const uint8_t* bytes, uint64_t off, uint64_t n, FragmentHeader* h) {
  for (uint64_t x = 0; x < n; x += kFragmentBlock) {
    const uint64_t len = std::min<uint64_t>(kFragmentBlock, n - x);
    h->block_crcs[(off + x) / kFragmentBlock] = Crc32c(std::span<const uint8_t>(bytes + x, len));
  }
}

FragmentHeader MakeHeader(const Placement& p, int index, std::string_view body) {
  FragmentHeader h = HeaderFor(p, index);
  SetBlockCrcs(reinterpret_cast<const uint8_t*>(body.data()), 0, body.size(), &h);
  return h;
}

// A fragment laid out as it is written, header then body, in one spare buffer with the header
// on a direct-I/O boundary, so that the streaming file writes the body from where it is
// instead of copying it into a staging buffer. (Every fragment of a pack has a header of the
// same size.)
struct FragmentImage {
  std::shared_ptr<std::string> buffer;  // null: no image
  size_t body_at = 0;                   // the header ends here, its start on the boundary

  // The buffer size an image of a fragment of `p` needs (spare buffers taken for its fragments'
  // bodies are this large too, so that they can be reused for images as they are).
  static size_t BufferSize(const Placement& p) {
    return Env::kDirectIoAlign - 1 + HeaderFor(p, 0).encoded_size() + p.body_size;
  }
  static FragmentImage Make(const Placement& p, RedundantBackend::SpareBuffers* spare) {
    FragmentImage f{std::make_shared<std::string>(spare->Take(BufferSize(p)))};
    const size_t align = Env::kDirectIoAlign;
    f.body_at = (align - reinterpret_cast<uintptr_t>(f.buffer->data()) % align) % align +
                HeaderFor(p, 0).encoded_size();
    return f;
  }
  uint8_t* body() { return reinterpret_cast<uint8_t*>(buffer->data()) + body_at; }
  // Writes `h` (its block CRCs set) in front of the body; the fragment's bytes.
  std::string_view Seal(const FragmentHeader& h) {
    std::string bytes = SerializeFragmentHeader(h);
    std::memcpy(buffer->data() + body_at - bytes.size(), bytes.data(), bytes.size());
    return std::string_view(*buffer).substr(body_at - bytes.size(), bytes.size() + h.body_size);
  }
};

class RedundantWriter : public ObjectWriter {
 public:
  // The pack is gathered in a buffer an earlier pack used (no regrowth, no page faults).
  RedundantWriter(RedundantBackend* backend, std::string name)
      : backend_(backend), name_(std::move(name)), buf_(backend->spare().Take(0)) {}
  ~RedundantWriter() override { backend_->spare().Give(std::move(buf_)); }
  Status Append(std::span<const uint8_t> data) override {
    buf_.append(reinterpret_cast<const char*>(data.data()), data.size());
    size_ += data.size();
    return Status::OK();
  }
  // Packs only, which are always durable.
  Status Commit(Durability) override {
    auto bytes = std::make_shared<const std::string>(std::move(buf_));
    Status s = backend_->WritePlaced(name_, bytes, 0);
    backend_->spare().Give(std::move(bytes));
    return s;
  }
  uint64_t size() const override { return size_; }

 private:
  RedundantBackend* backend_;
  std::string name_;
  std::string buf_;
  uint64_t size_ = 0;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Policy and layout

Result<RedundancyPolicy> RedundancyPolicy::Parse(std::string_view text) {
  RedundancyPolicy p;
  auto number = [](std::string_view s, int* out) {
    if (s.empty() || s.size() > 3) return false;
    int v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    *out = v;
    return true;
  };
  if (text == "none") return p;
  if (text.starts_with("replicate:")) {
    int n = 0;
    if (!number(text.substr(10), &n) || n < 2 || n > 8) {
      return Status::InvalidArgument(fmt::format("'{}': replicate:N needs 2 <= N <= 8", text));
    }
    p.kind = Kind::kReplicate;
    p.k = 1;
    p.m = n - 1;
    return p;
  }
  if (text.starts_with("rs:")) {
    std::string_view rest = text.substr(3);
    size_t plus = rest.find('+');
    int k = 0, m = 0;
    if (plus == std::string_view::npos || !number(rest.substr(0, plus), &k) || !number(rest.substr(plus + 1), &m) ||
        k < 2 || m < 1 || k + m > kMaxFragments) {
      return Status::InvalidArgument(
          fmt::format("'{}': rs:K+M needs K >= 2, M >= 1 and K+M <= {}", text, kMaxFragments));
    }
    p.kind = Kind::kErasure;
    p.k = k;
    p.m = m;
    return p;
  }
  return Status::InvalidArgument(fmt::format("unknown redundancy policy '{}' (none, replicate:N or rs:K+M)", text));
}

std::string RedundancyPolicy::ToString() const {
  switch (kind) {
    case Kind::kNone: return "none";
    case Kind::kReplicate: return fmt::format("replicate:{}", k + m);
    case Kind::kErasure: return fmt::format("rs:{}+{}", k, m);
  }
  return "none";
}

const VolumeConfig* VolumeLayout::Find(const std::string& id) const {
  for (const auto& v : volumes) {
    if (v.id == id) return &v;
  }
  return nullptr;
}

uint32_t PackClass(std::string_view name) {
  // `<32 hex>-c<1-9 digits>`; anything else (plain, archive) is class 0.
  constexpr size_t kHex = 32;
  if (name.size() <= kHex + kClassPackInfix.size() || name.substr(kHex, kClassPackInfix.size()) != kClassPackInfix) {
    return 0;
  }
  std::string_view digits = name.substr(kHex + kClassPackInfix.size());
  if (digits.size() > 9 || digits[0] == '0') return 0;
  uint32_t id = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return 0;
    id = id * 10 + static_cast<uint32_t>(c - '0');
  }
  return id;
}

std::string ClassPackSuffix(uint32_t id) {
  return id == 0 ? std::string() : fmt::format("{}{}", kClassPackInfix, id);
}

int FailuresTolerated(const RedundancyPolicy& policy) {
  return policy.kind == RedundancyPolicy::Kind::kNone ? 0 : policy.m;
}

const RedundancyClass* VolumeLayout::FindClass(uint32_t id) const {
  for (const auto& c : classes) {
    if (c.id == id) return &c;
  }
  return nullptr;
}

const RedundancyClass* VolumeLayout::FindClass(std::string_view label) const {
  for (const auto& c : classes) {
    if (c.label == label) return &c;
  }
  return nullptr;
}

const RedundancyPolicy& VolumeLayout::PolicyFor(std::string_view pack) const {
  if (IsArchivePack(pack)) return archive_policy ? *archive_policy : policy;
  if (uint32_t id = PackClass(pack)) {
    if (const RedundancyClass* c = FindClass(id)) return c->policy;
  }
  return policy;
}

bool VolumeLayout::AnyPolicy() const {
  auto spreads = [](const RedundancyPolicy& p) { return p.kind != RedundancyPolicy::Kind::kNone; };
  return spreads(policy) || (archive_policy && spreads(*archive_policy)) ||
         std::any_of(classes.begin(), classes.end(), [&](const RedundancyClass& c) { return spreads(c.policy); });
}

Shape ShapeFor(const RedundancyPolicy& policy, uint64_t size) {
  if (policy.kind == RedundancyPolicy::Kind::kErasure && size >= kSmallPack) {
    return {Scheme::kErasure, policy.k, policy.m};
  }
  // Replication keeps the policy's tolerance of m lost volumes.
  return {Scheme::kReplica, 1, policy.m};
}

Status CheckPlaceable(const VolumeLayout& layout, const RedundancyPolicy& policy) {
  if (policy.kind == RedundancyPolicy::Kind::kNone) return Status::OK();
  std::set<std::string> domains;
  for (const auto& v : layout.volumes) {
    if (!v.draining) domains.insert(v.domain);
  }
  if (static_cast<int>(domains.size()) < policy.width()) {
    return Status::FailedPrecondition(fmt::format(
        "policy {} needs {} volumes in distinct failure domains; there are {} (add volumes with `strata volume add DIR --domain ...`)",
        policy.ToString(), policy.width(), domains.size()));
  }
  return Status::OK();
}

Status CheckPlaceable(const VolumeLayout& layout) {
  STRATA_RETURN_IF_ERROR(CheckPlaceable(layout, layout.policy));
  if (layout.archive_policy) {
    STRATA_RETURN_IF_ERROR(CheckPlaceable(layout, *layout.archive_policy).WithContext("the archive tier's policy"));
  }
  for (const auto& c : layout.classes) {
    STRATA_RETURN_IF_ERROR(CheckPlaceable(layout, c.policy).WithContext(fmt::format("the policy of '{}'", c.label)));
  }
  return Status::OK();
}

Status InitVolumeDirectory(Env* env, const std::string& dir, const std::string& repository_id,
                           const std::string& volume_id) {
  if (env->FileExists(dir)) {
    STRATA_ASSIGN_OR_RETURN(auto entries, env->ListDir(dir));
    if (!entries.empty()) {
      return Status::AlreadyExists(fmt::format("'{}' is not empty; a volume needs an empty or new directory", dir));
    }
  } else {
    STRATA_RETURN_IF_ERROR(env->CreateDirs(dir));
    STRATA_RETURN_IF_ERROR(env->SyncDir(std::string(Dirname(dir))));
  }
  STRATA_RETURN_IF_ERROR(env->CreateDir(JoinPath(dir, "fragments")));
  STRATA_RETURN_IF_ERROR(env->CreateDir(JoinPath(dir, "tmp")));
  nlohmann::json marker = {{"format", "strata-volume"}, {"repository", repository_id}, {"volume", volume_id}};
  return WriteFileAtomic(env, JoinPath(dir, kVolumeMarker), marker.dump() + "\n");
}

// ---------------------------------------------------------------------------------------------
// Backend

struct RedundantBackend::FragmentFile {
  std::string path;
  std::shared_ptr<RandomAccessFile> file;
  FragmentHeader header;
  size_t header_size = 0;
};

RedundantBackend::RedundantBackend(Env* env, std::unique_ptr<Backend> primary, VolumeLayout layout)
    : env_(env), primary_(std::move(primary)), layout_(std::move(layout)) {}

RedundantBackend::~RedundantBackend() { SaveCounters(); }

void RedundantBackend::SetLayout(VolumeLayout layout) {
  std::lock_guard<std::mutex> l(mu_);
  layout_ = std::move(layout);
  open_.clear();
  open_order_.clear();
}

VolumeLayout RedundantBackend::layout() const {
  std::lock_guard<std::mutex> l(mu_);
  return layout_;
}

std::string RedundantBackend::PlacementDir() const { return JoinPath(primary_->url(), "placement"); }
std::string RedundantBackend::PlacementPath(const std::string& pack) const { return JoinPath(PlacementDir(), pack); }

Result<std::vector<std::string>> RedundantBackend::PlacedPacks() {
  std::vector<std::string> placed;
  if (!env_->FileExists(PlacementDir())) return placed;
  STRATA_ASSIGN_OR_RETURN(auto names, env_->ListDir(PlacementDir()));
  for (auto& n : names) {
    if (ValidPackName(n)) placed.push_back(std::move(n));
  }
  std::sort(placed.begin(), placed.end());
  return placed;
}
std::string RedundantBackend::FragmentPath(const VolumeConfig& v, const std::string& file) const {
  return JoinPath(v.path, fmt::format("fragments/{}/{}", file.substr(0, 2), file));
}

// The marker's stat runs on `reads_` too: a volume that hangs is offline after the read
// deadline (and skipped for the silent period) instead of holding its caller, a put choosing
// volumes included.
bool RedundantBackend::VolumeOnline(const VolumeConfig& v) {
  if (!CheckAnswering(v.id).ok()) return false;
  struct Stat {
    Env* env;
    std::string path;
    bool exists = false;
  };
  auto stat = std::make_shared<Stat>(Stat{env_, JoinPath(v.path, kVolumeMarker)});
  if (!reads_.Run([stat] { stat->exists = stat->env->FileExists(stat->path); }, read_deadline_)) {
    MarkSilent(v.id);
    return false;
  }
  return stat->exists;
}

Result<std::optional<Placement>> RedundantBackend::LoadPlacement(const std::string& pack) {
  if (!ValidPackName(pack)) return Status::InvalidArgument(fmt::format("invalid pack name '{}'", pack));
  std::string path = PlacementPath(pack);
  if (!env_->FileExists(path)) return std::optional<Placement>();
  STRATA_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(env_, path));
  auto p = ParsePlacement(Bytes(bytes));
  if (!p.ok()) return p.status().WithContext(fmt::format("placement record of pack {}", pack));
  if (p->pack != pack) return Status::Corruption(fmt::format("placement record of pack {} names pack {}", pack, p->pack));
  return std::optional<Placement>(std::move(*p));
}

Result<std::optional<Placement>> RedundantBackend::FindPlacement(const std::string& pack, bool reload) {
  if (!reload) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = placements_.find(pack);
    if (it != placements_.end()) return it->second;
  }
  STRATA_ASSIGN_OR_RETURN(auto p, LoadPlacement(pack));
  std::lock_guard<std::mutex> l(mu_);
  placements_[pack] = p;
  return p;
}

Status RedundantBackend::StorePlacement(const Placement& p) {
  std::string dir = PlacementDir();
  if (!env_->FileExists(dir)) {
    STRATA_RETURN_IF_ERROR(env_->CreateDir(dir));
    STRATA_RETURN_IF_ERROR(env_->SyncDir(primary_->url()));
  }
  auto bytes = std::make_shared<const std::string>(SerializePlacement(p));
  STRATA_RETURN_IF_ERROR(WriteFileAtomic(env_, PlacementPath(p.pack), *bytes));
  {
    std::lock_guard<std::mutex> l(mu_);
    placements_[p.pack] = p;
  }
  Mirror("placement/" + p.pack, std::move(bytes));
  return Status::OK();
}

void RedundantBackend::ForgetFragment(const std::string& path) {
  std::lock_guard<std::mutex> l(mu_);
  if (open_.erase(path)) open_order_.erase(std::remove(open_order_.begin(), open_order_.end(), path), open_order_.end());
}

Result<std::string> RedundantBackend::FragmentPathOf(const Placement& p, int index,
                                                     std::shared_ptr<FragmentFile>* cached) {
  std::lock_guard<std::mutex> l(mu_);
  const VolumeConfig* v = layout_.Find(p.volumes[index]);
  if (!v) return Status::NotFound(fmt::format("volume {} is not part of this repository any more", p.volumes[index]));
  std::string path = FragmentPath(*v, FragmentFileName(p.pack, p.generation, index));
  auto it = open_.find(path);
  if (cached) *cached = it != open_.end() ? it->second : nullptr;
  return path;
}

void RedundantBackend::CacheFragment(const std::shared_ptr<FragmentFile>& f) {
  std::lock_guard<std::mutex> l(mu_);
  if (open_.size() >= kMaxOpenFragments && !open_order_.empty()) {
    open_.erase(open_order_.front());
    open_order_.erase(open_order_.begin());
  }
  if (open_.emplace(f->path, f).second) open_order_.push_back(f->path);
}

Result<std::shared_ptr<RedundantBackend::FragmentFile>> RedundantBackend::LoadFragmentFile(Env* env,
                                                                                          const std::string& path,
                                                                                          const Placement& p,
                                                                                          int index) {
  STRATA_ASSIGN_OR_RETURN(auto file, env->NewRandomAccessFile(path));
  auto f = std::make_shared<FragmentFile>();
  f->path = path;
  f->file = std::move(file);
  uint8_t fixed[kFragmentFixedHeader];
  size_t got = 0;
  STRATA_RETURN_IF_ERROR(f->file->Read(0, sizeof(fixed), fixed, &got));
  STRATA_ASSIGN_OR_RETURN(size_t header_size, FragmentHeaderSize(std::span<const uint8_t>(fixed, got)));
  std::string header(header_size, '\0');
  STRATA_RETURN_IF_ERROR(f->file->Read(0, header_size, reinterpret_cast<uint8_t*>(header.data()), &got));
  if (got != header_size) return Status::Corruption("fragment header is truncated");
  STRATA_ASSIGN_OR_RETURN(f->header, ParseFragmentHeader(Bytes(header)));
  const FragmentHeader& h = f->header;
  if (h.pack != p.pack || h.index != index || h.generation != p.generation || h.scheme != p.scheme || h.k != p.k ||
      h.m != p.m || h.pack_size != p.pack_size) {
    return Status::Corruption("fragment header does not match its placement record");
  }
  f->header_size = header_size;
  STRATA_ASSIGN_OR_RETURN(uint64_t size, f->file->Size());
  if (size != header_size + h.body_size) {
    return Status::Corruption(fmt::format("fragment has {} bytes, its header says {}", size, header_size + h.body_size));
  }
  return f;
}

Result<std::shared_ptr<RedundantBackend::FragmentFile>> RedundantBackend::OpenFragment(const Placement& p, int index) {
  std::shared_ptr<FragmentFile> cached;
  STRATA_ASSIGN_OR_RETURN(std::string path, FragmentPathOf(p, index, &cached));
  if (cached) return cached;
  STRATA_ASSIGN_OR_RETURN(auto f, LoadFragmentFile(env_, path, p, index));
  CacheFragment(f);
  return f;
}

void RedundantBackend::MarkSilent(const std::string& volume) {
  std::lock_guard<std::mutex> l(mu_);
  silent_until_[volume] = std::chrono::steady_clock::now() + kSilentPeriod;
}

Status RedundantBackend::CheckAnswering(const std::string& volume) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = silent_until_.find(volume);
  if (it == silent_until_.end()) return Status::OK();
  if (std::chrono::steady_clock::now() >= it->second) {
    silent_until_.erase(it);  // try it again
    return Status::OK();
  }
  return Status::IOError(fmt::format("volume {} did not answer in time; this process skips it for up to {} s", volume,
                                     kSilentPeriod.count()));
}

// The read (open, header, the blocks the range touches, their checksums) runs on `reads_`, in
// state of its own: a volume that hangs keeps a runner thread, not the caller, which gets an
// I/O error after the deadline (and reads the other fragments) and copies the bytes into `dst`
// only when the read answered.
Status RedundantBackend::ReadFragmentRange(const Placement& p, int index, uint64_t off, size_t n, uint8_t* dst) {
  uint64_t start = 0;
  STRATA_ASSIGN_OR_RETURN(std::string blocks, ReadFragmentBlocks(p, index, off, n, &start));
  if (n > 0) std::memcpy(dst, blocks.data() + (off - start), n);
  return Status::OK();
}

Result<std::string> RedundantBackend::ReadFragmentBody(const Placement& p, int index, std::string reuse) {
  uint64_t start = 0;  // whole blocks: start 0, all of it
  return ReadFragmentBlocks(p, index, 0, p.body_size, &start, std::move(reuse));
}

std::string RedundantBackend::SpareBuffers::Take(size_t n) {
  std::string b;
  {
    // The smallest kept buffer that holds n bytes, else the largest (n = 0: the largest, for
    // a pack that grows to an unknown size).
    std::lock_guard<std::mutex> l(mu_);
    size_t best = free_.size();
    for (size_t i = 0; i < free_.size(); ++i) {
      if (best == free_.size()) {
        best = i;
        continue;
      }
      const size_t c = free_[i].capacity(), b = free_[best].capacity();
      const bool holds = n > 0 && c >= n, best_holds = n > 0 && b >= n;
      if (holds ? (!best_holds || c < b) : (!best_holds && c > b)) best = i;
    }
    if (best < free_.size()) {
      b = std::move(free_[best]);
      free_.erase(free_.begin() + best);
      bytes_ -= b.capacity();
    }
  }
  b.resize(n);  // no fill up to the size it had
  return b;
}

void RedundantBackend::SpareBuffers::Give(std::string buffer) {
  if (buffer.capacity() < (1u << 20)) return;  // small ones cost little to make again
  std::lock_guard<std::mutex> l(mu_);
  if (bytes_ + buffer.capacity() > kMaxBytes) return;
  bytes_ += buffer.capacity();
  free_.push_back(std::move(buffer));
}

void RedundantBackend::SpareBuffers::Give(std::shared_ptr<const std::string> buffer) {
  if (buffer && buffer.use_count() == 1) Give(std::move(const_cast<std::string&>(*buffer)));
}

void RedundantBackend::SpareBuffers::Clear() {
  std::lock_guard<std::mutex> l(mu_);
  free_.clear();
  bytes_ = 0;
}

Result<std::string> RedundantBackend::ReadFragmentBlocks(const Placement& p, int index, uint64_t off, size_t n,
                                                         uint64_t* start, std::string reuse) {
  const std::string& volume = p.volumes[index];
  auto context = [&](const Status& s) {
    return s.WithContext(fmt::format("fragment {} of pack {} on volume {}", index, ShortPack(p.pack), volume));
  };
  if (Status s = CheckAnswering(volume); !s.ok()) return context(s);
  struct Io {
    Env* env;
    Placement p;
    int index;
    std::string path;
    std::shared_ptr<FragmentFile> f;
    bool loaded = false;  // f was opened by this read (to be cached)
    uint64_t off;
    size_t n;
    std::string buf;      // the blocks the range touches
    uint64_t start = 0;   // body offset of buf
    Status status;
  };
  auto io = std::make_shared<Io>(Io{env_, p, index, {}, nullptr, false, off, n, std::move(reuse), 0, Status::OK()});
  auto path = FragmentPathOf(p, index, &io->f);
  if (!path.ok()) return context(path.status());
  io->path = std::move(*path);
  bool answered = reads_.Run([io] {
    if (!io->f) {
      auto f = LoadFragmentFile(io->env, io->path, io->p, io->index);
      if (!f.ok()) {
        io->status = f.status();
        return;
      }
      io->f = std::move(*f);
      io->loaded = true;
    }
    const FragmentHeader& h = io->f->header;
    if (io->off + io->n > h.body_size) {
      io->status = Status::Corruption("read beyond the fragment's body");
      return;
    }
    if (io->n == 0) return;
    const uint64_t b = h.block_size;
    uint64_t first = io->off / b, last = (io->off + io->n - 1) / b;
    io->start = first * b;
    uint64_t end = std::min<uint64_t>((last + 1) * b, h.body_size);
    io->buf.resize(end - io->start);
    uint8_t* into = reinterpret_cast<uint8_t*>(io->buf.data());
    // Read a few blocks at a time and check them while they are still in the core's cache.
    Status s;
    for (uint64_t blk = first; s.ok() && blk <= last; blk += kBlocksPerCheck) {
      const uint64_t bs = blk * b - io->start;
      const uint64_t be = std::min<uint64_t>(bs + kBlocksPerCheck * b, io->buf.size());
      size_t got = 0;
      s = io->f->file->Read(io->f->header_size + io->start + bs, be - bs, into + bs, &got);
      if (s.ok() && got != be - bs) s = Status::Corruption("fragment is truncated");
      for (uint64_t x = bs, i = blk; s.ok() && x < be; x += b, ++i) {
        if (Crc32c(std::span<const uint8_t>(into + x, std::min<uint64_t>(b, be - x))) != h.block_crcs[i]) {
          s = Status::Corruption(fmt::format("block {} failed its checksum", i));
        }
      }
    }
    io->status = s;
  }, read_deadline_);
  if (!answered) {
    MarkSilent(volume);
    return context(Status::IOError(fmt::format("no answer within {:.1f} s (the volume hangs?); skipping it for {} s",
                                               read_deadline_.count() / 1000.0, kSilentPeriod.count())));
  }
  if (!io->status.ok()) {
    ForgetFragment(io->path);
    return context(io->status);
  }
  if (io->loaded) CacheFragment(io->f);
  // The runner is done with `io` once it answered: its buffer is handed over, not copied.
  *start = io->start;
  return std::move(io->buf);
}

void RedundantBackend::NoteDegraded(const Placement& p, int index, const Status& why) {
  const std::string& vol = p.volumes[index];
  bool warn = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto& c = counters_[vol];
    ++c.degraded_reads;
    if (why.code() == StatusCode::kIOError) ++c.read_errors;
    warn = warned_.insert("read:" + vol).second;
  }
  if (warn) {
    LogWarning(fmt::format("degraded read: {}; rebuilding from the other fragments (further degraded reads of "
                           "volume {} are counted in `strata volume status`, `strata repair fragments` restores it)",
                           why.message(), vol));
  }
}

void RedundantBackend::NoteWriteError(const std::string& volume, const Status& why) {
  bool warn = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    ++counters_[volume].write_errors;
    failed_writes_.insert(volume);
    warn = warned_.insert("write:" + volume).second;
  }
  if (warn) {
    LogWarning(fmt::format("volume {} failed a write ({}); this process places new fragments on other volumes",
                           volume, why.message()));
  }
}

Status RedundantBackend::ReadErasurePiece(const Placement& p, int index, uint64_t off, size_t n, uint8_t* dst) {
  Status first = ReadFragmentRange(p, index, off, n, dst);
  if (first.ok()) return first;
  NoteDegraded(p, index, first);
  // Rebuild the blocks this range touches from k other fragments (same offsets in each).
  const uint64_t b = kFragmentBlock;
  uint64_t start = off / b * b, end = std::min<uint64_t>((off + n + b - 1) / b * b, p.body_size);
  size_t len = end - start;
  std::vector<std::string> bufs;
  std::vector<int> have;
  std::vector<std::string> why{first.message()};
  const int width = p.width();
  for (int j = 0; j < width && static_cast<int>(have.size()) < p.k; ++j) {
    if (j == index) continue;
    std::string buf(len, '\0');
    Status s = ReadFragmentRange(p, j, start, len, reinterpret_cast<uint8_t*>(buf.data()));
    if (!s.ok()) {
      why.push_back(s.message());
      continue;
    }
    have.push_back(j);
    bufs.push_back(std::move(buf));
  }
  if (static_cast<int>(have.size()) < p.k) {
    return Status::Corruption(fmt::format("pack {} is unreadable: {} of {} fragments readable, {} needed ({})", p.pack,
                                          have.size(), width, p.k, fmt::join(why, "; ")));
  }
  ErasureCode code(p.k, p.m);
  std::vector<const uint8_t*> in;
  for (const auto& buf : bufs) in.push_back(reinterpret_cast<const uint8_t*>(buf.data()));
  std::string out(len, '\0');
  uint8_t* outp = reinterpret_cast<uint8_t*>(out.data());
  STRATA_RETURN_IF_ERROR(code.Decode(have, in.data(), {index}, &outp, len));
  std::memcpy(dst, out.data() + (off - start), n);
  return Status::OK();
}

Status RedundantBackend::ReadPlaced(const Placement& p, uint64_t off, size_t n, uint8_t* dst) {
  if (off + n > p.pack_size) {
    return Status::Corruption(fmt::format("pack {} is truncated: wanted {} bytes at offset {}, it has {}", p.pack, n, off,
                                          p.pack_size));
  }
  if (p.scheme == Scheme::kReplica) {
    std::vector<std::string> why;
    for (int i = 0; i < p.width(); ++i) {
      Status s = ReadFragmentRange(p, i, off, n, dst);
      if (s.ok()) return s;
      NoteDegraded(p, i, s);
      why.push_back(s.message());
    }
    return Status::Corruption(fmt::format("pack {} is unreadable: none of its {} copies is readable ({})", p.pack,
                                          p.width(), fmt::join(why, "; ")));
  }
  const uint64_t f = p.body_size;
  while (n > 0) {
    int index = static_cast<int>(off / f);
    uint64_t in = off % f;
    size_t take = std::min<uint64_t>(n, f - in);
    STRATA_RETURN_IF_ERROR(ReadErasurePiece(p, index, in, take, dst));
    off += take;
    dst += take;
    n -= take;
  }
  return Status::OK();
}

Result<std::unique_ptr<ObjectWriter>> RedundantBackend::Create(ObjectType type, const std::string& name) {
  if (type == ObjectType::kPack) {
    std::lock_guard<std::mutex> l(mu_);
    if (layout_.PolicyFor(name).kind != RedundancyPolicy::Kind::kNone) {
      if (!ValidPackName(name)) return Status::InvalidArgument(fmt::format("invalid pack name '{}'", name));
      return std::unique_ptr<ObjectWriter>(new RedundantWriter(this, name));
    }
    return primary_->Create(type, name);
  }
  return CreateMirrored(type, name);
}

Status RedundantBackend::ReadAt(ObjectType type, const std::string& name, uint64_t offset, size_t n, uint8_t* dst) {
  if (type != ObjectType::kPack) return primary_->ReadAt(type, name, offset, n, dst);
  STRATA_ASSIGN_OR_RETURN(auto p, FindPlacement(name, false));
  if (!p) {
    Status s = primary_->ReadAt(type, name, offset, n, dst);
    if (s.code() != StatusCode::kNotFound && s.code() != StatusCode::kIOError) return s;
    // Spread by another process since this one looked (policy apply)?
    STRATA_ASSIGN_OR_RETURN(p, FindPlacement(name, true));
    if (!p) return s;
  }
  Status s = ReadPlaced(*p, offset, n, dst);
  if (s.ok()) return s;
  // Moved by a repair or drain in another process since the record was read?
  STRATA_ASSIGN_OR_RETURN(auto fresh, FindPlacement(name, true));
  if (fresh && fresh->volumes != p->volumes) return ReadPlaced(*fresh, offset, n, dst);
  return s;
}

Result<std::string> RedundantBackend::Get(ObjectType type, const std::string& name) {
  if (type != ObjectType::kPack) return primary_->Get(type, name);
  STRATA_ASSIGN_OR_RETURN(auto p, FindPlacement(name, false));
  if (!p) return primary_->Get(type, name);
  std::string out(p->pack_size, '\0');
  STRATA_RETURN_IF_ERROR(ReadAt(type, name, 0, out.size(), reinterpret_cast<uint8_t*>(out.data())));
  return out;
}

Result<ObjectInfo> RedundantBackend::Stat(ObjectType type, const std::string& name) {
  if (type != ObjectType::kPack) return primary_->Stat(type, name);
  STRATA_ASSIGN_OR_RETURN(auto p, FindPlacement(name, false));
  if (!p) return primary_->Stat(type, name);
  // The record's age stands for the pack's (gc's grace period).
  STRATA_ASSIGN_OR_RETURN(FileInfo info, env_->Stat(PlacementPath(name)));
  return ObjectInfo{p->pack_size, info.mtime_ns};
}

Result<std::vector<std::string>> RedundantBackend::List(ObjectType type) {
  STRATA_ASSIGN_OR_RETURN(auto names, primary_->List(type));
  if (type != ObjectType::kPack) return names;
  STRATA_ASSIGN_OR_RETURN(auto placed, PlacedPacks());
  names.insert(names.end(), std::make_move_iterator(placed.begin()), std::make_move_iterator(placed.end()));
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

Status RedundantBackend::DeleteAll(ObjectType type, const std::vector<std::string>& names) {
  if (type == ObjectType::kPack) return Backend::DeleteAll(type, names);
  STRATA_RETURN_IF_ERROR(primary_->DeleteAll(type, names));
  if (Mirrored(type)) {
    std::vector<std::string> paths;
    for (const auto& name : names) paths.push_back(ObjectPath(type, name));
    MirrorRemoveAll(std::move(paths));
  }
  return Status::OK();
}

Status RedundantBackend::Delete(ObjectType type, const std::string& name) {
  if (type != ObjectType::kPack) {
    STRATA_RETURN_IF_ERROR(primary_->Delete(type, name));
    if (Mirrored(type)) MirrorRemoveAll({ObjectPath(type, name)});
    return Status::OK();
  }
  STRATA_ASSIGN_OR_RETURN(auto p, FindPlacement(name, true));
  Status local = primary_->Delete(type, name);
  if (!p) return local;
  // The record goes first: fragments no record names are leftovers that repair removes.
  STRATA_RETURN_IF_ERROR(env_->DeleteFile(PlacementPath(name)));
  STRATA_RETURN_IF_ERROR(env_->SyncDir(PlacementDir()));
  MirrorRemoveAll({"placement/" + name});
  {
    std::lock_guard<std::mutex> l(mu_);
    placements_.erase(name);
  }
  VolumeLayout layout = this->layout();
  for (int i = 0; i < p->width(); ++i) {
    const VolumeConfig* v = layout.Find(p->volumes[i]);
    if (!v) continue;
    std::string path = FragmentPath(*v, FragmentFileName(name, p->generation, i));
    ForgetFragment(path);
    if (env_->DeleteFile(path).ok()) (void)env_->SyncDir(std::string(Dirname(path)));
  }
  return Status::OK();
}

Result<size_t> RedundantBackend::CleanTemporaries(int64_t min_age_seconds) {
  STRATA_ASSIGN_OR_RETURN(size_t removed, primary_->CleanTemporaries(min_age_seconds));
  int64_t now_ns = env_->NowMicros() * 1000;
  for (const auto& v : layout().volumes) {
    std::string tmp = JoinPath(v.path, "tmp");
    auto entries = env_->ListDir(tmp);
    if (!entries.ok()) continue;  // offline volume
    size_t here = 0;
    for (const auto& e : *entries) {
      auto info = env_->Stat(JoinPath(tmp, e));
      if (!info.ok() || now_ns - info->mtime_ns < min_age_seconds * 1'000'000'000LL) continue;
      if (env_->DeleteFile(JoinPath(tmp, e)).ok()) ++here;
    }
    if (here) (void)env_->SyncDir(tmp);
    removed += here;
  }
  return removed;
}

// ---------------------------------------------------------------------------------------------
// Writing

namespace {

// How much a volume in `domain` would share with the domains already taken: for each level,
// most general first, the number of taken volumes sharing it. Lower spreads better.
std::vector<size_t> SpreadScore(const std::string& domain, const std::vector<std::vector<std::string>>& taken) {
  auto parts = SplitDomain(domain);
  std::vector<size_t> score(parts.size(), 0);
  for (const auto& t : taken) {
    size_t shared = SharedLevels(parts, t);
    for (size_t l = 0; l < shared && l < parts.size(); ++l) ++score[l];
  }
  return score;
}

}  // namespace

Result<std::vector<std::string>> RedundantBackend::ChooseVolumes(const VolumeLayout& layout, const std::string& pack,
                                                                 int count, const std::vector<std::string>& keep,
                                                                 const std::set<std::string>& avoid) {
  std::vector<std::vector<std::string>> taken;  // domains of chosen volumes
  std::set<std::string> taken_domains;
  for (const auto& id : keep) {
    if (const VolumeConfig* v = layout.Find(id)) {
      taken.push_back(SplitDomain(v->domain));
      taken_domains.insert(v->domain);
    }
  }
  std::vector<const VolumeConfig*> candidates;
  for (const auto& v : layout.volumes) {
    if (v.draining || avoid.count(v.id) || std::find(keep.begin(), keep.end(), v.id) != keep.end()) continue;
    if (!VolumeOnline(v)) continue;  // offline, or hanging (then skipped for a while)
    candidates.push_back(&v);
  }
  std::vector<std::string> out;
  for (int n = 0; n < count; ++n) {
    const VolumeConfig* best = nullptr;
    std::vector<size_t> best_score;
    for (const VolumeConfig* c : candidates) {
      if (taken_domains.count(c->domain)) continue;
      // Spread at the most general level first: count chosen volumes sharing each prefix.
      std::vector<size_t> score = SpreadScore(c->domain, taken);
      score.push_back(std::hash<std::string>{}(pack + "/" + c->id));  // spreads packs over spare volumes
      if (!best || score < best_score) {
        best = c;
        best_score = std::move(score);
      }
    }
    if (!best) {
      return Status::FailedPrecondition(fmt::format(
          "no healthy volume left in a distinct failure domain ({} needed, {} found; avoided: {})", count, n,
          avoid.empty() ? std::string("none") : fmt::format("{}", fmt::join(avoid, ", "))));
    }
    out.push_back(best->id);
    taken.push_back(SplitDomain(best->domain));
    taken_domains.insert(best->domain);
  }
  return out;
}

Status RedundantBackend::RunVolumeWrite(const VolumeConfig& v, std::function<Status(Env*)> write) {
  STRATA_RETURN_IF_ERROR(CheckAnswering(v.id));
  struct Io {
    Env* env;
    std::string marker;
    std::function<Status(Env*)> write;
    Status status;
  };
  auto io = std::make_shared<Io>(Io{env_, JoinPath(v.path, kVolumeMarker), std::move(write), Status::OK()});
  bool answered = writes_.Run([io] {
    if (!io->env->FileExists(io->marker)) {
      io->status = Status::IOError("the volume is offline: no volume marker", true);
      return;
    }
    io->status = io->write(io->env);
  }, write_deadline_);
  if (!answered) {
    MarkSilent(v.id);
    return Status::IOError(fmt::format("no answer within {:.1f} s (the volume hangs?)", write_deadline_.count() / 1000.0));
  }
  return io->status;
}

// The write (temporary file, sync, rename, directory sync) runs through RunVolumeWrite, in state
// of its own that holds the bytes: a volume that hangs keeps a runner thread, not the caller,
// which gets an I/O error after the deadline and places the fragment elsewhere. If the stuck
// write completes later, its fragment is one no placement names (repair removes it).
Status RedundantBackend::WriteFragment(const VolumeConfig& v, const std::string& file, std::string header,
                                       std::shared_ptr<const std::string> owner, std::string_view body) {
  static std::atomic<uint64_t> counter{0};
  const std::string final_path = FragmentPath(v, file);
  // `owner` keeps `body` alive for a write that outlives its deadline.
  Status s = RunVolumeWrite(
      v, [tmp = JoinPath(v.path, fmt::format("tmp/{}-{}-{}", file, getpid(), counter.fetch_add(1))), final_path,
          header = std::move(header), owner = std::move(owner), body](Env* env) -> Status {
        Status written = [&]() -> Status {
          STRATA_ASSIGN_OR_RETURN(auto out, env->NewStreamingFile(tmp));
          if (!header.empty()) STRATA_RETURN_IF_ERROR(out->Append(Bytes(header)));
          STRATA_RETURN_IF_ERROR(out->Append(Bytes(body)));
          STRATA_RETURN_IF_ERROR(out->Sync());
          STRATA_RETURN_IF_ERROR(out->Close());
          std::string dir(Dirname(final_path));
          if (!env->FileExists(dir)) {
            STRATA_RETURN_IF_ERROR(env->CreateDir(dir));
            STRATA_RETURN_IF_ERROR(env->SyncDir(std::string(Dirname(dir))));
          }
          STRATA_RETURN_IF_ERROR(env->RenameFile(tmp, final_path));
          return env->SyncDir(dir);
        }();
        if (!written.ok()) (void)env->DeleteFile(tmp);
        return written;
      });
  ForgetFragment(final_path);
  if (!s.ok()) return s.WithContext(fmt::format("writing fragment {} on volume {}", file, v.id));
  return Status::OK();
}

Status RedundantBackend::WritePlaced(const std::string& pack, std::shared_ptr<const std::string> pack_bytes,
                                     uint32_t generation) {
  std::string_view bytes = *pack_bytes;
  if (bytes.empty()) return Status::InvalidArgument("an empty pack cannot be placed");
  VolumeLayout layout = this->layout();
  const RedundancyPolicy& policy = layout.PolicyFor(pack);
  Shape shape = ShapeFor(policy, bytes.size());
  Placement p;
  p.scheme = shape.scheme;
  p.k = static_cast<uint8_t>(shape.k);
  p.m = static_cast<uint8_t>(shape.m);
  p.generation = generation;
  p.pack = pack;
  p.pack_size = bytes.size();
  p.body_size = FragmentBodySize(p.scheme, p.k, p.pack_size);
  const int width = shape.k + shape.m;

  // Fragments: views into the pack where whole (written after their header); padded copies and
  // parity as images (FragmentImage: written from where they are). Parity is computed and
  // every fragment's blocks checksummed a slice at a time, while the slice is in the cache.
  // `owners` keep each one's bytes alive for a write that outlives this call (WriteFragment).
  std::vector<FragmentHeader> headers(width);
  std::vector<FragmentImage> images(width);  // buffer set for images only
  std::vector<std::string_view> bodies(width);
  std::vector<std::shared_ptr<const std::string>> owners(width, pack_bytes);
  const uint64_t f = p.body_size;
  if (p.scheme == Scheme::kReplica) {
    headers[0] = MakeHeader(p, 0, bytes);  // the same body: the same block CRCs
    for (int i = 0; i < width; ++i) {
      headers[i] = headers[0];
      headers[i].index = static_cast<uint8_t>(i);
      bodies[i] = bytes;
    }
  } else {
    std::vector<const uint8_t*> data(p.k);
    std::vector<uint8_t*> parity(p.m);
    for (int i = 0; i < width; ++i) {
      const uint64_t start = std::min<uint64_t>(uint64_t(i) * f, bytes.size());
      const uint64_t avail = i < p.k ? std::min<uint64_t>(f, bytes.size() - start) : 0;
      headers[i] = HeaderFor(p, i);
      if (avail == f) {
        bodies[i] = bytes.substr(start, f);
        data[i] = reinterpret_cast<const uint8_t*>(bodies[i].data());
        continue;
      }
      images[i] = FragmentImage::Make(p, &spare_);
      uint8_t* body = images[i].body();
      if (i < p.k) {
        std::memcpy(body, bytes.data() + start, avail);
        std::memset(body + avail, 0, f - avail);
        data[i] = body;
      } else {
        parity[i - p.k] = body;
      }
    }
    const ErasureCode code(p.k, p.m);
    std::vector<const uint8_t*> data_slice(p.k);
    std::vector<uint8_t*> parity_slice(p.m);
    for (uint64_t off = 0; off < f; off += kSlice) {
      const uint64_t n = std::min(kSlice, f - off);
      for (int i = 0; i < p.k; ++i) data_slice[i] = data[i] + off;
      for (int i = 0; i < p.m; ++i) parity_slice[i] = parity[i] + off;
      code.Encode(data_slice.data(), parity_slice.data(), n);
      for (int i = 0; i < width; ++i) {
        SetBlockCrcs(i < p.k ? data_slice[i] : parity_slice[i - p.k], off, n, &headers[i]);
      }
    }
    for (int i = 0; i < width; ++i) {
      if (!images[i].buffer) continue;
      bodies[i] = images[i].Seal(headers[i]);
      owners[i] = std::move(images[i].buffer);
    }
  }

  std::set<std::string> avoid = FailedWrites();
  auto initial = ChooseVolumes(layout, pack, width, {}, avoid);
  if (!initial.ok()) {
    return initial.status().WithContext(fmt::format("placing pack {} ({})", ShortPack(pack), policy.ToString()));
  }
  std::vector<std::string> chosen = std::move(*initial);
  // Fragments are written side by side (on real volumes, separate disks). A failed volume is
  // replaced by another in a distinct domain; without one the pack is refused, never written
  // below its policy.
  std::mutex choose_mu;
  std::vector<Status> results(width);
  auto write_one = [&](int i) {
    // An image starts with its header; a view into the pack is written after it.
    const std::string header = owners[i] == pack_bytes ? SerializeFragmentHeader(headers[i]) : std::string();
    std::string file = FragmentFileName(pack, generation, i);
    while (true) {
      std::string vid;
      {
        std::lock_guard<std::mutex> l(choose_mu);
        vid = chosen[i];
      }
      const VolumeConfig* v = layout.Find(vid);
      Status s = WriteFragment(*v, file, header, owners[i], bodies[i]);
      if (s.ok()) return;
      NoteWriteError(vid, s);
      std::lock_guard<std::mutex> l(choose_mu);
      avoid.insert(vid);
      std::vector<std::string> keep;
      for (int j = 0; j < width; ++j) {
        if (j != i) keep.push_back(chosen[j]);
      }
      auto other = ChooseVolumes(layout, pack, 1, keep, avoid);
      if (!other.ok()) {
        results[i] = s.WithContext(fmt::format("pack {} ({}) could not be placed: {}", ShortPack(pack),
                                               policy.ToString(), other.status().message()));
        return;
      }
      LogWarning(fmt::format("fragment {} of pack {}: volume {} failed, writing it to volume {} instead", i,
                             ShortPack(pack), vid, (*other)[0]));
      chosen[i] = (*other)[0];
    }
  };
  std::vector<std::thread> threads;
  for (int i = 1; i < width; ++i) threads.emplace_back(write_one, i);
  write_one(0);
  for (auto& t : threads) t.join();
  Status failed;
  for (const auto& s : results) {
    if (!s.ok() && failed.ok()) failed = s;
  }
  for (int i = 0; i < width; ++i) {
    if (owners[i] != pack_bytes) spare_.Give(std::move(owners[i]));
  }
  p.volumes = chosen;
  if (failed.ok()) failed = StorePlacement(p);
  if (!failed.ok()) {
    // Nothing names these fragments: remove them now (repair would remove them later).
    for (int i = 0; i < width; ++i) {
      if (const VolumeConfig* v = layout.Find(chosen[i])) {
        (void)env_->DeleteFile(FragmentPath(*v, FragmentFileName(pack, generation, i)));
      }
    }
    return failed;
  }
  return Status::OK();
}

// ---------------------------------------------------------------------------------------------
// Checking, scrubbing, repairing

std::string RedundantBackend::CheckFragment(const VolumeLayout& layout, const Placement& p, int index, bool deep,
                                            uint64_t* bytes) {
  const VolumeConfig* v = layout.Find(p.volumes[index]);
  if (!v) return fmt::format("volume {} is not part of this repository any more", p.volumes[index]);
  if (Status s = CheckAnswering(v->id); !s.ok()) return s.message();  // hung before: skipped for a while
  if (!VolumeOnline(*v)) return fmt::format("volume {} is offline (no volume marker in {})", v->id, v->path);
  // Always from the file, not a handle opened before the file was replaced or damaged; opened
  // (header checked against the placement record) by an empty read, so under the read
  // deadline: a volume that hangs holds a runner thread, not the scrub or the repair.
  ForgetFragment(FragmentPath(*v, FragmentFileName(p.pack, p.generation, index)));
  if (Status s = ReadFragmentRange(p, index, 0, 0, nullptr); !s.ok()) return s.message();
  if (!deep) return "";
  constexpr uint64_t kStep = 64 * kFragmentBlock;
  std::string buf;
  for (uint64_t off = 0; off < p.body_size; off += kStep) {
    size_t n = std::min<uint64_t>(kStep, p.body_size - off);
    buf.resize(n);
    Status s = ReadFragmentRange(p, index, off, n, reinterpret_cast<uint8_t*>(buf.data()));
    if (!s.ok()) return s.message();
    *bytes += n;
  }
  return "";
}

Status RedundantBackend::Unreadable(const Placement& p, int have, const std::vector<std::string>& why) {
  std::vector<std::string> reasons;
  for (const auto& w : why) {
    if (!w.empty()) reasons.push_back(w);
  }
  return Status::Corruption(fmt::format("pack {} is unreadable: {} of {} fragments readable, {} needed ({})", p.pack,
                                        have, p.width(), p.needed(), fmt::join(reasons, "; ")));
}

namespace {

std::string CursorPath(Backend* primary) { return JoinPath(primary->url(), "catalog/scrub.cursor"); }

nlohmann::json ProblemsJson(const std::vector<FragmentProblem>& problems) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& p : problems) {
    out.push_back({{"pack", p.pack}, {"fragment", p.fragment}, {"volume", p.volume}, {"problem", p.problem}});
  }
  return out;
}

}  // namespace

Result<ScrubReport> RedundantBackend::Scrub(const ScrubOptions& options) {
  ScrubReport report;
  VolumeLayout layout = this->layout();
  const std::string cursor_path = CursorPath(primary_.get());
  std::string after;
  // An interrupted scrub of the same depth resumes after the last pack it finished.
  if (!options.restart && env_->FileExists(cursor_path)) {
    auto bytes = ReadFileToString(env_, cursor_path);
    auto j = bytes.ok() ? nlohmann::json::parse(*bytes, nullptr, false) : nlohmann::json();
    try {
      if (j.is_object() && j.at("deep").get<bool>() == options.deep) {
        after = j.at("after").get<std::string>();
        report.packs_checked = j.at("packs").get<uint64_t>();
        report.fragments_checked = j.at("fragments").get<uint64_t>();
        report.bytes_read = j.at("bytes").get<uint64_t>();
        for (const auto& p : j.at("problems")) {
          report.problems.push_back({p.at("pack").get<std::string>(), p.at("fragment").get<int>(),
                                     p.at("volume").get<std::string>(), p.at("problem").get<std::string>()});
        }
        for (const auto& [pack, objects] : j.at("unreadable").items()) {
          report.unreadable[pack] = objects.get<std::vector<std::string>>();
        }
        report.resumed = true;
      }
    } catch (const nlohmann::json::exception&) {
      after.clear();  // a damaged cursor: start over
    }
  }
  auto save_cursor = [&](const std::string& last) {
    nlohmann::json unreadable = nlohmann::json::object();
    for (const auto& [pack, objects] : report.unreadable) unreadable[pack] = objects;
    nlohmann::json j = {{"deep", options.deep},       {"after", last},
                        {"packs", report.packs_checked}, {"fragments", report.fragments_checked},
                        {"bytes", report.bytes_read},  {"problems", ProblemsJson(report.problems)},
                        {"unreadable", unreadable}};
    (void)env_->CreateDirs(std::string(Dirname(cursor_path)));
    (void)WriteFileAtomic(env_, cursor_path, j.dump());
  };

  STRATA_ASSIGN_OR_RETURN(auto local, primary_->List(ObjectType::kPack));
  STRATA_ASSIGN_OR_RETURN(std::vector<std::string> placed, PlacedPacks());
  std::set<std::string> placed_set(placed.begin(), placed.end());
  size_t local_only = 0;
  for (const auto& n : local) {
    local_only += !placed_set.count(n) && layout.PolicyFor(n).kind != RedundancyPolicy::Kind::kNone;
  }
  if (local_only) {
    report.warnings.push_back(fmt::format("{} packs are in the repository directory, not spread under their tier's "
                                          "policy: run `strata volume policy apply`",
                                          local_only));
  }
  size_t below_policy = 0;
  auto start = std::chrono::steady_clock::now();
  uint64_t bytes_at_start = report.bytes_read;
  auto last_save = start;
  for (const auto& name : placed) {
    if (!after.empty() && name <= after) continue;
    auto p = FindPlacement(name, true);
    if (!p.ok() || !*p) {
      if (p.ok()) continue;  // deleted meanwhile (gc)
      report.problems.push_back({name, -1, "", p.status().message()});
      continue;
    }
    const Placement& pl = **p;
    int good = 0;
    for (int i = 0; i < pl.width(); ++i) {
      std::string problem = CheckFragment(layout, pl, i, options.deep, &report.bytes_read);
      ++report.fragments_checked;
      if (problem.empty()) {
        ++good;
        const VolumeConfig* v = layout.Find(pl.volumes[i]);
        if (v && v->draining) {
          report.warnings.push_back(fmt::format("pack {} fragment {} is on draining volume {}", name, i, v->id));
        }
      } else {
        report.problems.push_back({name, i, pl.volumes[i], problem});
      }
      if (options.rate_mb_s > 0) {
        // Sleep until the bytes read so far fit the rate.
        double due = double(report.bytes_read - bytes_at_start) / (options.rate_mb_s * 1e6);
        double spent = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (due > spent) std::this_thread::sleep_for(std::chrono::duration<double>(due - spent));
      }
    }
    if (good < pl.needed()) report.unreadable[name] = {};
    if (layout.PolicyFor(name).kind != RedundancyPolicy::Kind::kNone &&
        !(Shape{pl.scheme, pl.k, pl.m} == ShapeFor(layout.PolicyFor(name), pl.pack_size))) {
      ++below_policy;
    }
    ++report.packs_checked;
    auto now = std::chrono::steady_clock::now();
    if (now - last_save > std::chrono::seconds(1)) {
      save_cursor(name);
      last_save = now;
    }
  }
  if (below_policy) {
    report.warnings.push_back(fmt::format("{} packs are stored under another shape than their policy ({}{}{}): "
                                          "run `strata volume policy apply`",
                                          below_policy, layout.policy.ToString(),
                                          layout.archive_policy ? ", archive " + layout.archive_policy->ToString() : "",
                                          layout.classes.empty() ? "" : ", and the datasets' own"));
  }
  if (env_->FileExists(cursor_path)) (void)env_->DeleteFile(cursor_path);
  return report;
}

namespace {
// Per pack: its tier's policy decides whether `apply` spreads or re-encodes it.
bool Spreads(const RedundantBackend::RepairOptions& options, const VolumeLayout& layout, const std::string& pack) {
  return options.apply_policy && layout.PolicyFor(pack).kind != RedundancyPolicy::Kind::kNone;
}
}  // namespace

// Fragments per volume while a rebalance runs (reserved as moves are planned).
struct RedundantBackend::Balance {
  std::mutex mu;
  std::map<std::string, uint64_t> counts;  // the online, non-draining volumes only
  // What each volume's share is weighed by: its capacity when every volume counted has one,
  // else 1 (fragments evened out by number).
  std::map<std::string, double> weight;
};

std::map<int, std::string> RedundantBackend::PlanMoves(const VolumeLayout& layout, const Placement& p, Balance* balance) {
  std::map<int, std::string> chosen;
  std::vector<std::string> vols = p.volumes;
  std::lock_guard<std::mutex> l(balance->mu);
  auto& counts = balance->counts;
  for (int i = 0; i < p.width(); ++i) {
    auto from = counts.find(vols[i]);
    if (from == counts.end() || from->second == 0) continue;
    // A move helps only onto a volume that, one fragment fuller, is still no fuller for its
    // weight than this one a fragment emptier (with equal weights: at least two fewer), so the
    // gap narrows and never flips.
    const double from_after = double(from->second - 1) / balance->weight[from->first];
    std::set<std::string> avoid;
    for (const auto& [id, n] : counts) {
      if (id == from->first || double(n + 1) / balance->weight[id] > from_after) avoid.insert(id);
    }
    std::vector<std::string> keep;
    std::vector<std::vector<std::string>> taken;
    for (int j = 0; j < p.width(); ++j) {
      if (j == i) continue;
      keep.push_back(vols[j]);
      if (const VolumeConfig* v = layout.Find(vols[j])) taken.push_back(SplitDomain(v->domain));
    }
    auto choice = ChooseVolumes(layout, p.pack, 1, keep, avoid);
    if (!choice.ok()) continue;  // no emptier volume in a domain the pack does not use
    const VolumeConfig* src = layout.Find(vols[i]);
    const VolumeConfig* dst = layout.Find((*choice)[0]);
    if (!src || !dst || SpreadScore(dst->domain, taken) > SpreadScore(src->domain, taken)) continue;
    --from->second;
    ++counts[dst->id];
    vols[i] = dst->id;
    chosen[i] = dst->id;
  }
  return chosen;
}

// Checks one placed pack and rebuilds, moves or re-encodes what needs it (Repair, below).
void RedundantBackend::RepairPlaced(const std::string& name, const VolumeLayout& layout,
                                    const std::set<std::string>& failed, const RepairOptions& options,
                                    RepairReport* out, Balance* balance) {
  RepairReport& report = *out;
  auto loaded = FindPlacement(name, true);
  if (!loaded.ok()) {
    report.errors.push_back(loaded.status().message());
    return;
  }
  if (!*loaded) return;
  Placement p = **loaded;
  ++report.packs_checked;

  if (Spreads(options, layout, name) && !(Shape{p.scheme, p.k, p.m} == ShapeFor(layout.PolicyFor(name), p.pack_size))) {
    auto bytes = std::make_shared<std::string>(p.pack_size, '\0');
    Status s = ReadPlaced(p, 0, bytes->size(), reinterpret_cast<uint8_t*>(bytes->data()));
    if (s.ok()) s = WritePlaced(name, bytes, p.generation + 1);
    if (!s.ok()) {
      if (s.code() == StatusCode::kCorruption) report.unreadable[name] = {};
      report.errors.push_back(s.WithContext(fmt::format("re-encoding pack {}", name)).message());
      return;
    }
    // The new record is durable; the old generation's fragments are leftovers now.
    for (int i = 0; i < p.width(); ++i) {
      if (const VolumeConfig* v = layout.Find(p.volumes[i])) {
        std::string path = FragmentPath(*v, FragmentFileName(name, p.generation, i));
        ForgetFragment(path);
        (void)env_->DeleteFile(path);
      }
    }
    ++report.packs_reencoded;
    return;
  }

  // A rebalance handles only packs with a fragment to move; the moves are planned from the
  // record alone, so the other packs are not read.
  std::map<int, std::string> chosen;
  if (balance) {
    chosen = PlanMoves(layout, p, balance);
    if (chosen.empty()) return;
  }

  // Which fragments need writing: bad ones (rebuilt) and good ones on draining or unknown
  // volumes, or chosen by a rebalance (moved). Each is read once, in full (every block's CRC
  // checked), all of them side by side (on real volumes, separate disks), and the good ones are
  // the sources of what is rebuilt.
  const int width = p.width();
  std::vector<std::string> bodies(width), why(width);
  std::vector<uint8_t> good(width, 0);  // not vector<bool>: set by one thread per element
  std::vector<int> bad, move;
  struct Recycle {  // whatever bodies are left go back to the spare buffers, on every return
    SpareBuffers* spare;
    std::vector<std::string>* bodies;
    ~Recycle() {
      for (auto& b : *bodies) spare->Give(std::move(b));
    }
  } recycle{&spare_, &bodies};
  // Reading and rebuilding keep a core busy, writing mostly waits for the disk: packs take
  // turns at the first, one per core, so that the others' writes overlap them.
  repair_cpu_.acquire();
  struct CpuTurn {
    std::counting_semaphore<>* slots;
    bool held = true;
    void End() {
      if (held) slots->release();
      held = false;
    }
    ~CpuTurn() { End(); }
  } cpu_turn{&repair_cpu_};
  {
    auto read_one = [&](int i) {
      uint64_t ignored = 0;
      std::string problem = CheckFragment(layout, p, i, /*deep=*/false, &ignored);
      if (problem.empty()) {
        auto body = ReadFragmentBody(p, i, spare_.Take(FragmentImage::BufferSize(p)));
        if (body.ok()) {
          bodies[i] = std::move(*body);
          good[i] = 1;
        } else {
          problem = body.status().message();
        }
      }
      why[i] = std::move(problem);
    };
    std::vector<std::thread> readers;
    for (int i = 1; i < width; ++i) readers.emplace_back(read_one, i);
    read_one(0);
    for (auto& t : readers) t.join();
  }
  int have = 0;
  for (int i = 0; i < width; ++i) {
    const VolumeConfig* v = layout.Find(p.volumes[i]);
    if (!good[i]) {
      bad.push_back(i);
    } else {
      ++have;
      if (!v || v->draining || chosen.count(i)) move.push_back(i);
    }
  }
  if (bad.empty() && move.empty()) return;
  if (have < p.needed()) {
    report.unreadable[name] = {};
    report.errors.push_back(Unreadable(p, have, why).message());
    return;
  }
  std::vector<int> todo = bad;
  todo.insert(todo.end(), move.begin(), move.end());
  // The fragments to rebuild, decoded (or copied, for replicas) a slice at a time straight
  // into the buffers they are written from, each slice checksummed while still in the cache.
  std::vector<int> want;
  for (int i : todo) {
    if (!good[i]) want.push_back(i);
  }
  std::vector<FragmentHeader> headers(width);
  std::vector<FragmentImage> images(width);  // of the fragments in `want`
  for (int i : want) {
    headers[i] = HeaderFor(p, i);
    images[i] = FragmentImage::Make(p, &spare_);
  }
  if (!want.empty()) {
    std::vector<int> sources;
    std::vector<const uint8_t*> in;
    for (int i = 0; i < width && static_cast<int>(sources.size()) < p.needed(); ++i) {
      if (good[i]) {
        sources.push_back(i);
        in.push_back(reinterpret_cast<const uint8_t*>(bodies[i].data()));
      }
    }
    const ErasureCode code(p.k, p.m);
    std::vector<const uint8_t*> in_slice(in.size());
    std::vector<uint8_t*> out_slice(want.size());
    for (uint64_t off = 0; off < p.body_size; off += kSlice) {
      const uint64_t n = std::min(kSlice, p.body_size - off);
      for (size_t j = 0; j < want.size(); ++j) out_slice[j] = images[want[j]].body() + off;
      if (p.scheme == Scheme::kReplica) {
        for (uint8_t* o : out_slice) std::memcpy(o, in[0] + off, n);
      } else {
        for (size_t t = 0; t < in.size(); ++t) in_slice[t] = in[t] + off;
        Status d = code.Decode(sources, in_slice.data(), want, out_slice.data(), n);
        if (!d.ok()) {
          report.errors.push_back(d.message());
          for (int i : want) spare_.Give(std::move(images[i].buffer));
          return;
        }
      }
      for (size_t j = 0; j < want.size(); ++j) SetBlockCrcs(out_slice[j], off, n, &headers[want[j]]);
    }
  }
  cpu_turn.End();
  for (int i = 0; i < width; ++i) {  // sources no longer needed: back before the writes
    if (std::find(move.begin(), move.end(), i) == move.end()) spare_.Give(std::move(bodies[i]));
  }
  // Write each to a target: in place (same volume, atomic rename over the bad file) when its
  // volume is healthy, else to a volume in a failure domain the pack does not use yet. Targets
  // are chosen one after the other (each knowing the others'), the writes run side by side; a
  // volume that fails a write is replaced by another choice.
  Placement next = p;
  std::set<std::string> avoid = failed;
  std::mutex choose_mu;
  // Under choose_mu: a volume for fragment i in a domain none of the pack's others use.
  auto choose = [&](int i) -> Result<std::string> {
    std::vector<std::string> keep;
    for (int j = 0; j < p.width(); ++j) {
      if (j != i) keep.push_back(next.volumes[j]);
    }
    std::set<std::string> avoid_here = avoid;
    avoid_here.insert(p.volumes[i]);
    STRATA_ASSIGN_OR_RETURN(auto choice, ChooseVolumes(layout, name, 1, keep, avoid_here));
    return choice[0];
  };
  struct Job {
    int i;
    bool is_move;
    FragmentHeader h;
    std::string header;                        // written before `bytes` (empty: `bytes` start with it)
    std::shared_ptr<const std::string> owner;  // holds `bytes`
    std::string_view bytes;
    bool done = false;
  };
  std::vector<Job> jobs;
  for (int i : todo) {
    const VolumeConfig* cur = layout.Find(p.volumes[i]);
    bool is_move = std::find(move.begin(), move.end(), i) != move.end();
    std::string target;
    if (auto c = chosen.find(i); c != chosen.end()) {
      target = c->second;  // a rebalance's choice (also for a fragment found bad meanwhile)
    } else if (!is_move && cur && !cur->draining && !failed.count(cur->id) && VolumeOnline(*cur)) {
      target = cur->id;
    } else {
      auto choice = choose(i);
      if (!choice.ok()) {
        report.errors.push_back(
            fmt::format("pack {} fragment {}: cannot restore it: {}", name, i, choice.status().message()));
        continue;
      }
      target = *choice;
    }
    next.volumes[i] = target;
    Job job{i, is_move};
    if (good[i]) {  // moved as it was read
      job.h = MakeHeader(p, i, bodies[i]);
      job.header = SerializeFragmentHeader(job.h);
      job.owner = std::make_shared<const std::string>(std::move(bodies[i]));
      job.bytes = *job.owner;
    } else {
      job.h = headers[i];
      job.bytes = images[i].Seal(headers[i]);
      job.owner = std::move(images[i].buffer);
    }
    jobs.push_back(std::move(job));
  }
  for (auto& image : images) {  // those no target was found for
    if (image.buffer) spare_.Give(std::move(image.buffer));
  }
  auto write_one = [&](Job& job) {
    const int i = job.i;
    const std::string file = FragmentFileName(name, p.generation, i);
    std::unique_lock<std::mutex> l(choose_mu);
    while (true) {
      const std::string target = next.volumes[i];
      l.unlock();
      Status w = WriteFragment(*layout.Find(target), file, job.header, job.owner, job.bytes);
      l.lock();
      if (w.ok()) {
        job.done = true;
        return;
      }
      NoteWriteError(target, w);
      avoid.insert(target);
      next.volumes[i] = p.volumes[i];  // not moved, unless another volume takes it
      auto choice = choose(i);
      if (!choice.ok()) {
        report.errors.push_back(
            fmt::format("pack {} fragment {}: cannot restore it: {}", name, i, choice.status().message()));
        return;
      }
      next.volumes[i] = *choice;
    }
  };
  std::vector<std::thread> writers;
  for (size_t j = 1; j < jobs.size(); ++j) writers.emplace_back(write_one, std::ref(jobs[j]));
  if (!jobs.empty()) write_one(jobs[0]);
  for (auto& t : writers) t.join();
  for (Job& job : jobs) {
    if (job.done) {
      report.bytes_written += job.h.encoded_size() + job.h.body_size;
      if (job.is_move) ++report.fragments_moved;
      else ++report.fragments_rebuilt;
    }
    spare_.Give(std::move(job.owner));
  }
  if (next.volumes != p.volumes) {
    // New fragments are durable; switching the record is the commit point.
    Status st = StorePlacement(next);
    if (!st.ok()) {
      report.errors.push_back(st.WithContext(fmt::format("pack {}: switching its placement", name)).message());
      return;
    }
    for (int i = 0; i < p.width(); ++i) {
      if (next.volumes[i] == p.volumes[i]) continue;
      if (const VolumeConfig* v = layout.Find(p.volumes[i])) {
        std::string path = FragmentPath(*v, FragmentFileName(name, p.generation, i));
        ForgetFragment(path);
        if (env_->DeleteFile(path).ok()) (void)env_->SyncDir(std::string(Dirname(path)));
      }
    }
  }
}

// Packs are independent (each switches its own placement record once its new fragments are
// durable), so six are repaired at once, at most one per core reading and rebuilding while the
// others write: reading, decoding and writing overlap. A pack holds the bodies of its fragments
// while it reads (for rs:4+2 of a 32 MiB pack, 48 MiB; for replicate:3, 96 MiB) and those it
// writes while it writes (16 MiB for two rebuilt fragments of rs:4+2).
void RedundantBackend::RepairAll(const std::vector<std::string>& placed, const VolumeLayout& layout,
                                 const std::set<std::string>& failed, const RepairOptions& options,
                                 RepairReport* report, Balance* balance) {
  constexpr size_t threads = 6;
  ThreadPool pool(threads, threads);
  std::mutex mu;
  const size_t first_error = report->errors.size();
  for (const auto& name : placed) {
    pool.Submit([&, name] {
      RepairReport one;
      RepairPlaced(name, layout, failed, options, &one, balance);
      std::lock_guard<std::mutex> l(mu);
      report->packs_checked += one.packs_checked;
      report->fragments_rebuilt += one.fragments_rebuilt;
      report->fragments_moved += one.fragments_moved;
      report->packs_reencoded += one.packs_reencoded;
      report->bytes_written += one.bytes_written;
      report->unreadable.merge(one.unreadable);
      report->errors.insert(report->errors.end(), one.errors.begin(), one.errors.end());
    });
  }
  pool.Wait();
  spare_.Clear();
  std::sort(report->errors.begin() + first_error, report->errors.end());
}

Result<RepairReport> RedundantBackend::Rebalance() {
  // One rebalance at a time: two would each switch a pack's record from the one they read.
  const std::string lock_path = JoinPath(primary_->url(), "catalog/rebalance.lock");
  STRATA_RETURN_IF_ERROR(env_->CreateDirs(std::string(Dirname(lock_path))));
  int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::FromErrno(errno, "cannot open " + lock_path);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) return Status::FailedPrecondition("another rebalance of this repository is running");
    return Status::FromErrno(errno, "cannot lock " + lock_path);
  }
  RepairReport report;
  auto t0 = std::chrono::steady_clock::now();
  VolumeLayout layout = this->layout();
  const std::set<std::string> failed = FailedWrites();
  STRATA_ASSIGN_OR_RETURN(std::vector<std::string> placed, PlacedPacks());
  // One pass plans each pack once, against the counts as they stand then: a volume that took
  // fragments late in a pass may be left above one that could have taken some of its own. A
  // few passes (each counting afresh from the records) settle it.
  constexpr int kPasses = 4;
  for (int pass = 0; pass < kPasses; ++pass) {
    Balance balance;
    bool all_sized = true;
    for (const auto& v : layout.volumes) {
      if (!v.draining && !failed.count(v.id) && VolumeOnline(v)) {
        balance.counts[v.id] = 0;
        all_sized = all_sized && v.capacity > 0;
      }
    }
    for (const auto& v : layout.volumes) {
      if (balance.counts.count(v.id)) balance.weight[v.id] = all_sized ? double(v.capacity) : 1.0;
    }
    for (const auto& name : placed) {
      // After the first pass every record was reloaded by RepairPlaced (and switched ones
      // stored through the cache), and nothing else changes these packs: the cache is current.
      STRATA_ASSIGN_OR_RETURN(auto p, FindPlacement(name, /*reload=*/pass == 0));
      if (!p) continue;
      for (const auto& v : p->volumes) {
        if (auto it = balance.counts.find(v); it != balance.counts.end()) ++it->second;
      }
    }
    const uint64_t moved = report.fragments_moved, checked = report.packs_checked;
    RepairAll(placed, layout, failed, RepairOptions{}, &report, &balance);
    if (pass > 0) report.packs_checked = checked;  // each pack counted once
    if (report.fragments_moved == moved || !report.errors.empty()) break;
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

std::set<std::string> RedundantBackend::FailedWrites() {
  std::lock_guard<std::mutex> l(mu_);
  return failed_writes_;
}

Result<RepairReport> RedundantBackend::Repair(const RepairOptions& options) {
  RepairReport report;
  auto t0 = std::chrono::steady_clock::now();
  VolumeLayout layout = this->layout();
  const std::set<std::string> failed = FailedWrites();

  STRATA_ASSIGN_OR_RETURN(std::vector<std::string> placed, PlacedPacks());

  // Local packs: spread them (apply), or drop the local copy a spread interrupted after its
  // placement record was written.
  STRATA_ASSIGN_OR_RETURN(auto local, primary_->List(ObjectType::kPack));
  for (const auto& name : local) {
    bool has_placement = std::binary_search(placed.begin(), placed.end(), name);
    if (!has_placement && !Spreads(options, layout, name)) continue;
    if (!has_placement) {
      auto bytes = primary_->Get(ObjectType::kPack, name);
      const uint64_t size = bytes.ok() ? bytes->size() : 0;
      Status s = bytes.ok() ? WritePlaced(name, std::make_shared<const std::string>(std::move(*bytes)), 0)
                            : bytes.status();
      if (!s.ok()) {
        report.errors.push_back(s.WithContext(fmt::format("spreading pack {}", name)).message());
        continue;
      }
      Shape sh = ShapeFor(layout.PolicyFor(name), size);
      report.bytes_written += FragmentBodySize(sh.scheme, sh.k, size) * (sh.k + sh.m);
      ++report.packs_reencoded;
    }
    // The placement record is durable: the local copy is no longer needed.
    Status s = primary_->Delete(ObjectType::kPack, name);
    if (!s.ok()) report.errors.push_back(s.WithContext(fmt::format("removing local pack {}", name)).message());
  }

  RepairAll(placed, layout, failed, options, &report, nullptr);

  // Leftovers: fragments no placement record names (interrupted writes, repairs, deletions).
  for (const auto& v : layout.volumes) {
    std::string base = JoinPath(v.path, "fragments");
    auto dirs = env_->ListDir(base);
    if (!dirs.ok()) continue;
    for (const auto& d : *dirs) {
      auto files = env_->ListDir(JoinPath(base, d));
      if (!files.ok()) continue;
      for (const auto& f : *files) {
        // <pack>.<generation>.<index>
        size_t b = f.rfind('.'), a = b == std::string::npos ? b : f.rfind('.', b - 1);
        bool keep = false;
        if (a != std::string::npos && a > 0) {
          std::string pack = f.substr(0, a);
          auto pl = ValidPackName(pack) ? FindPlacement(pack, false) : Result<std::optional<Placement>>(std::nullopt);
          if (pl.ok() && *pl) {
            for (int i = 0; i < (*pl)->width(); ++i) {
              if ((*pl)->volumes[i] == v.id && f == FragmentFileName(pack, (*pl)->generation, i)) keep = true;
            }
          }
        }
        if (!keep && env_->DeleteFile(JoinPath(JoinPath(base, d), f)).ok()) ++report.leftovers_removed;
      }
    }
  }
  auto cleaned = CleanTemporaries(0);
  if (!cleaned.ok()) report.errors.push_back(cleaned.status().message());
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

Result<RedundancyStatus> RedundantBackend::GetSummary() {
  RedundancyStatus st;
  VolumeLayout layout = this->layout();
  st.policy = layout.policy.ToString();
  if (layout.archive_policy) st.archive_policy = layout.archive_policy->ToString();
  st.failures_tolerated = FailuresTolerated(layout.policy);
  for (const auto& c : layout.classes) {
    st.classes.push_back({c.id, c.label, c.policy.ToString(), FailuresTolerated(c.policy)});
  }
  STRATA_ASSIGN_OR_RETURN(auto local, primary_->List(ObjectType::kPack));
  st.local_packs = local.size();
  STRATA_ASSIGN_OR_RETURN(auto placed, PlacedPacks());
  st.placed_packs = placed.size();
  return st;
}

Result<RedundancyStatus> RedundantBackend::GetStatus() {
  STRATA_ASSIGN_OR_RETURN(RedundancyStatus st, GetSummary());
  STRATA_ASSIGN_OR_RETURN(auto metadata, MetadataFiles(env_, primary_->url()));
  st.metadata_files = metadata.size();
  VolumeLayout layout = this->layout();
  // Saved counters plus this process's.
  std::map<std::string, Counters> counters;
  auto saved = ReadFileToString(env_, JoinPath(primary_->url(), "catalog/volume-counters.json"));
  if (saved.ok()) {
    auto j = nlohmann::json::parse(*saved, nullptr, false);
    if (j.is_object()) {
      for (const auto& [id, c] : j.items()) {
        if (!c.is_object()) continue;
        counters[id].degraded_reads = c.value("degraded_reads", uint64_t{0});
        counters[id].read_errors = c.value("read_errors", uint64_t{0});
        counters[id].write_errors = c.value("write_errors", uint64_t{0});
      }
    }
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [id, c] : counters_) {
      counters[id].degraded_reads += c.degraded_reads;
      counters[id].read_errors += c.read_errors;
      counters[id].write_errors += c.write_errors;
    }
  }
  for (const auto& v : layout.volumes) {
    VolumeInfo info;
    info.id = v.id;
    info.path = v.path;
    info.domain = v.domain;
    info.capacity = v.capacity;
    info.draining = v.draining;
    info.online = VolumeOnline(v);
    if (info.online) {
      if (auto files = MetadataFiles(env_, JoinPath(v.path, kMirrorDir)); files.ok()) info.metadata_files = files->size();
    }
    std::string base = JoinPath(v.path, "fragments");
    if (auto dirs = env_->ListDir(base); dirs.ok()) {
      for (const auto& d : *dirs) {
        auto files = env_->ListDir(JoinPath(base, d));
        if (!files.ok()) continue;
        for (const auto& f : *files) {
          ++info.fragments;
          if (auto fi = env_->Stat(JoinPath(JoinPath(base, d), f)); fi.ok()) info.bytes += fi->size;
        }
      }
    }
    const Counters& c = counters[v.id];
    info.degraded_reads = c.degraded_reads;
    info.read_errors = c.read_errors;
    info.write_errors = c.write_errors;
    st.degraded_reads += c.degraded_reads;
    st.volumes.push_back(std::move(info));
  }
  return st;
}

Result<size_t> RedundantBackend::PlacementsOn(const std::string& id) {
  STRATA_ASSIGN_OR_RETURN(auto names, PlacedPacks());
  size_t n = 0;
  for (const auto& name : names) {
    STRATA_ASSIGN_OR_RETURN(auto p, FindPlacement(name, true));
    if (p && std::find(p->volumes.begin(), p->volumes.end(), id) != p->volumes.end()) ++n;
  }
  return n;
}

void RedundantBackend::SaveCounters() {
  std::map<std::string, Counters> mine;
  {
    std::lock_guard<std::mutex> l(mu_);
    mine.swap(counters_);
  }
  if (mine.empty()) return;
  // Read, add, replace: two processes closing at the same moment may lose one's counts, which
  // is acceptable for statistics (the warnings were printed anyway).
  std::string path = JoinPath(primary_->url(), "catalog/volume-counters.json");
  nlohmann::json j = nlohmann::json::object();
  if (auto saved = ReadFileToString(env_, path); saved.ok()) {
    auto parsed = nlohmann::json::parse(*saved, nullptr, false);
    if (parsed.is_object()) j = std::move(parsed);
  }
  for (const auto& [id, c] : mine) {
    auto& e = j[id];
    if (!e.is_object()) e = nlohmann::json::object();
    e["degraded_reads"] = e.value("degraded_reads", uint64_t{0}) + c.degraded_reads;
    e["read_errors"] = e.value("read_errors", uint64_t{0}) + c.read_errors;
    e["write_errors"] = e.value("write_errors", uint64_t{0}) + c.write_errors;
  }
  (void)env_->CreateDirs(std::string(Dirname(path)));
  (void)WriteFileAtomic(env_, path, j.dump() + "\n");
}

}  // namespace strata::volume
