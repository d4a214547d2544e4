#include "ingest/archive_source.h"

#include "ingest/source.h"

#include <archive.h>
#include <archive_entry.h>
#include <isa-l/igzip_lib.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <span>
#include <thread>

#include <fmt/format.h>

namespace strata::ingest {

void ArchiveFree::operator()(archive* a) const { archive_read_free(a); }

ArchiveHandle NewArchiveReader(ArchiveKind kind) {
  ArchiveHandle a(archive_read_new());
  archive_read_support_filter_gzip(a.get());
  archive_read_support_filter_bzip2(a.get());
  archive_read_support_filter_xz(a.get());
  archive_read_support_filter_zstd(a.get());
  archive_read_support_filter_lz4(a.get());
  if (kind == ArchiveKind::kArchive) {
    archive_read_support_format_tar(a.get());
    archive_read_support_format_gnutar(a.get());
    archive_read_support_format_zip(a.get());
  } else {
    archive_read_support_format_raw(a.get());
  }
  return a;
}

struct ArchiveSourceCallbacks {
  static la_ssize_t Read(archive* a, void* self, const void** out);
  static la_int64_t Skip(archive* a, void* self, la_int64_t request);
  static la_int64_t Seek(archive* a, void* self, la_int64_t offset, int whence);
};

namespace {

constexpr uint8_t kGzipMagic[3] = {0x1f, 0x8b, 8};  // ID1, ID2, CM = deflate

const char* InflateError(int code) {
  switch (code) {
    case ISAL_INCORRECT_CHECKSUM: return "CRC or header checksum mismatch";
    case ISAL_INVALID_WRAPPER: return "bad gzip header or trailer";
    case ISAL_UNSUPPORTED_METHOD: return "unsupported compression method";
    case ISAL_INVALID_LOOKBACK: return "a match reaches before the start of the data";
    default: return "invalid deflate data";
  }
}

}  // namespace

// Inflates a gzip file on a thread of its own, a few blocks ahead of libarchive's thread, which
// parses the container and feeds the store meanwhile (inflating was half of that thread's time).
class ArchiveSource::Gzip {
 public:
  Gzip(RandomAccessFile* file, uint64_t size, const std::string& name, size_t block)
      : file_(file), size_(size), name_(name), block_(block), in_(block) {
    isal_inflate_init(&state_);
    state_.crc_flag = ISAL_GZIP;
    thread_ = std::thread([this] { Run(); });
  }
  ~Gzip() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  // The next inflated block (valid until the next call; empty at the end), or an error: the
  // damage met, or (in *io) the read error.
  Result<std::span<const uint8_t>> Next(Status* io) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !ready_.empty() || finished_; });
    if (!current_.empty()) spare_.push_back(std::move(current_));
    current_.clear();
    if (!ready_.empty()) {
      current_ = std::move(ready_.front().bytes);
      consumed_ = ready_.front().consumed;
      ready_.pop_front();
      cv_.notify_all();
      return std::span<const uint8_t>(current_);
    }
    *io = io_;
    if (!error_.empty()) return Status::Corruption(error_);
    return std::span<const uint8_t>();
  }
  // Compressed bytes behind the blocks handed out so far.
  uint64_t consumed() const { return consumed_; }

 private:
  static constexpr size_t kDepth = 4;  // blocks inflated ahead
  struct Block {
    std::vector<uint8_t> bytes;
    uint64_t consumed;
  };

  void Run() {
    for (;;) {
      std::vector<uint8_t> out;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (!spare_.empty()) {
          out = std::move(spare_.back());
          spare_.pop_back();
        }
      }
      out.resize(block_);
      std::string error;
      Status io;
      bool end = false;
      size_t n = Inflate(out.data(), out.size(), &end, &error, &io);
      out.resize(n);
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return ready_.size() < kDepth || stop_; });
      if (stop_) return;
      if (n > 0) ready_.push_back(Block{std::move(out), pos_ - state_.avail_in});
      if (!error.empty() || end) {
        error_ = std::move(error);
        io_ = std::move(io);
        finished_ = true;
      }
      cv_.notify_all();
      if (finished_) return;
    }
  }

  // Fills `dst` (up to `cap` bytes) with what follows; sets *end after the last member, or
  // *error (and *io for a read error) at damage. Returns the bytes produced before either.
  size_t Inflate(uint8_t* dst, size_t cap, bool* end, std::string* error, Status* io) {
    inflate_state& st = state_;
    st.next_out = dst;
    st.avail_out = static_cast<uint32_t>(cap);
    auto refill = [&] {  // keeps what is left of the input
      if (st.avail_in > 0) std::memmove(in_.data(), st.next_in, st.avail_in);
      size_t want = static_cast<size_t>(std::min<uint64_t>(in_.size() - st.avail_in, size_ - pos_));
      size_t got = 0;
      if (want > 0) *io = file_->Read(pos_, want, in_.data() + st.avail_in, &got);
      if (!io->ok()) {
        *error = io->message();
        return false;
      }
      pos_ += got;
      st.next_in = in_.data();
      st.avail_in += static_cast<uint32_t>(got);
      return true;
    };
    while (st.avail_out > 0) {
      if (member_done_) {
        // Another member follows only if its header does: look at three bytes.
        if (st.avail_in < sizeof(kGzipMagic) && pos_ < size_ && !refill()) break;
        if (st.avail_in < sizeof(kGzipMagic) || std::memcmp(st.next_in, kGzipMagic, sizeof(kGzipMagic)) != 0) {
          *end = true;
          break;
        }
        uint8_t* next_in = st.next_in;
        uint32_t avail_in = st.avail_in;
        uint8_t* next_out = st.next_out;
        uint32_t avail_out = st.avail_out;
        isal_inflate_reset(&st);
        st.crc_flag = ISAL_GZIP;
        st.next_in = next_in;
        st.avail_in = avail_in;
        st.next_out = next_out;
        st.avail_out = avail_out;
        member_done_ = false;
      }
      if (st.avail_in == 0) {
        if (pos_ >= size_) {
          *error = fmt::format("{}: truncated gzip stream (ends inside a member)", name_);
          break;
        }
        if (!refill()) break;
      }
      int r = isal_inflate(&st);
      if (r != ISAL_DECOMP_OK) {
        *error = fmt::format("{}: damaged gzip stream: {}", name_, InflateError(r));
        break;
      }
      if (st.block_state == ISAL_BLOCK_FINISH) member_done_ = true;
    }
    return cap - st.avail_out;
  }

  // The inflating thread's.
  RandomAccessFile* const file_;
  const uint64_t size_;
  const std::string name_;
  const size_t block_;
  inflate_state state_;
  std::vector<uint8_t> in_;
  uint64_t pos_ = 0;
  bool member_done_ = false;  // the current member's trailer has been read

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Block> ready_;                   // inflated, not yet handed out
  std::vector<std::vector<uint8_t>> spare_;   // buffers to reuse
  bool finished_ = false;                     // the last block is in ready_
  std::string error_;                         // why the stream ended early ("" at its end)
  Status io_;                                 // the read error that ended it
  bool stop_ = false;

  // libarchive's thread's.
  std::vector<uint8_t> current_;  // the block libarchive reads
  uint64_t consumed_ = 0;

  std::thread thread_;
};

ArchiveSource::ArchiveSource(RandomAccessFile* file, uint64_t size, std::string name, size_t block)
    : file_(file), size_(size), name_(std::move(name)), block_(block) {}

ArchiveSource::~ArchiveSource() = default;

uint64_t ArchiveSource::consumed() const { return gzip_ ? gzip_->consumed() : pos_; }

Status ArchiveSource::Open(archive* a) {
  uint8_t head[sizeof(kGzipMagic)];
  size_t got = 0;
  failure_ = file_->Read(0, sizeof(head), head, &got);
  if (!failure_.ok()) return failure_;
  if (got == sizeof(head) && std::memcmp(head, kGzipMagic, sizeof(head)) == 0) {
    gzip_ = std::make_unique<Gzip>(file_, size_, name_, block_);
  } else {
    buffer_.resize(block_);
  }
  archive_read_set_callback_data(a, this);
  archive_read_set_read_callback(a, &ArchiveSourceCallbacks::Read);
  if (!gzip_) {  // an inflated stream can only be read on (libarchive then reads what it skips)
    archive_read_set_skip_callback(a, &ArchiveSourceCallbacks::Skip);
    archive_read_set_seek_callback(a, &ArchiveSourceCallbacks::Seek);
  }
  if (archive_read_open1(a) != ARCHIVE_OK) {
    if (!failure_.ok()) return failure_;
    const char* why = archive_error_string(a);
    return Status::InvalidArgument(fmt::format("{}: cannot read as an archive or compressed stream: {}", name_,
                                               why ? why : "unrecognised format"));
  }
  return Status::OK();
}

Status ArchiveSource::ReadToEnd() {
  if (!gzip_) return Status::OK();
  for (;;) {
    Status io;
    auto block = gzip_->Next(&io);
    if (!io.ok()) return io;
    if (!block.ok()) return block.status();
    if (block->empty()) return Status::OK();
  }
}

la_ssize_t ArchiveSourceCallbacks::Read(archive* a, void* self, const void** out) {
  auto* s = static_cast<ArchiveSource*>(self);
  if (s->gzip_) return s->Inflate(a, out);
  size_t want = static_cast<size_t>(std::min<uint64_t>(s->buffer_.size(), s->size_ - std::min(s->pos_, s->size_)));
  size_t got = 0;
  Status st = want > 0 ? s->file_->Read(s->pos_, want, s->buffer_.data(), &got) : Status::OK();
  if (!st.ok()) {
    s->failure_ = st;
    archive_set_error(a, EIO, "%s", st.message().c_str());
    return ARCHIVE_FATAL;
  }
  s->pos_ += got;
  *out = s->buffer_.data();
  return static_cast<la_ssize_t>(got);
}

long ArchiveSource::Inflate(archive* a, const void** out) {
  Status io;
  auto block = gzip_->Next(&io);
  if (!block.ok()) {
    if (!io.ok()) failure_ = io;
    archive_set_error(a, io.ok() ? EILSEQ : EIO, "%s", block.status().message().c_str());
    return ARCHIVE_FATAL;
  }
  *out = block->data();
  return static_cast<long>(block->size());
}

la_int64_t ArchiveSourceCallbacks::Skip(archive*, void* self, la_int64_t request) {
  auto* s = static_cast<ArchiveSource*>(self);
  if (request <= 0) return 0;
  uint64_t step = std::min<uint64_t>(static_cast<uint64_t>(request), s->size_ - std::min(s->pos_, s->size_));
  s->pos_ += step;
  return static_cast<la_int64_t>(step);
}

la_int64_t ArchiveSourceCallbacks::Seek(archive* a, void* self, la_int64_t offset, int whence) {
  auto* s = static_cast<ArchiveSource*>(self);
  la_int64_t base = whence == SEEK_SET   ? 0
                    : whence == SEEK_CUR ? static_cast<la_int64_t>(s->pos_)
                                         : static_cast<la_int64_t>(s->size_);
  la_int64_t target = base + offset;
  if (target < 0 || static_cast<uint64_t>(target) > s->size_) {
    archive_set_error(a, EINVAL, "seek outside the file");
    return ARCHIVE_FATAL;
  }
  s->pos_ = static_cast<uint64_t>(target);
  return target;
}

namespace {

class DecompressedFile final : public SequentialFile {
 public:
  DecompressedFile(std::unique_ptr<RandomAccessFile> file, uint64_t size, std::string path)
      : file_(std::move(file)), path_(path), source_(file_.get(), size, std::move(path)),
        handle_(NewArchiveReader(ArchiveKind::kRaw)) {}

  Status Open() {
    STRATA_RETURN_IF_ERROR(source_.Open(handle_.get()));
    archive_entry* entry = nullptr;
    int r = archive_read_next_header(handle_.get(), &entry);
    if (r == ARCHIVE_EOF) {
      eof_ = true;  // an empty file
      return Status::OK();
    }
    if (r < ARCHIVE_WARN) return Error();
    return Status::OK();
  }

  Status Read(size_t n, uint8_t* dst, size_t* got) override {
    *got = 0;
    size_t done = 0;
    while (done < n && !eof_) {
      la_ssize_t r = archive_read_data(handle_.get(), dst + done, n - done);
      if (r < 0) return Error();
      if (r == 0) eof_ = true;
      done += static_cast<size_t>(r);
    }
    *got = done;
    return Status::OK();
  }

 private:
  Status Error() {
    if (!source_.failure().ok()) return source_.failure();
    const char* why = archive_error_string(handle_.get());
    return Status::Corruption(fmt::format("{}: damaged compressed stream: {}", path_, why ? why : "read failed"));
  }

  std::unique_ptr<RandomAccessFile> file_;
  std::string path_;
  ArchiveSource source_;
  ArchiveHandle handle_;
  bool eof_ = false;
};

}  // namespace

namespace {

class MemoryFile final : public RandomAccessFile {
 public:
  explicit MemoryFile(std::string_view bytes) : bytes_(bytes) {}
  Status Read(uint64_t offset, size_t n, uint8_t* dst, size_t* got) const override {
    *got = 0;
    if (offset >= bytes_.size()) return Status::OK();
    *got = std::min<size_t>(n, bytes_.size() - offset);
    std::memcpy(dst, bytes_.data() + offset, *got);
    return Status::OK();
  }
  Result<uint64_t> Size() const override { return bytes_.size(); }

 private:
  std::string_view bytes_;
};

}  // namespace

std::unique_ptr<RandomAccessFile> NewMemoryFile(std::string_view bytes) { return std::make_unique<MemoryFile>(bytes); }

Result<std::unique_ptr<SequentialFile>> OpenDecompressed(Env* env, const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(auto file, env->NewRandomAccessFile(path));
  STRATA_ASSIGN_OR_RETURN(uint64_t size, file->Size());
  if (size == 0) return std::unique_ptr<SequentialFile>(new MemorySequentialFile(std::string_view()));
  auto out = std::make_unique<DecompressedFile>(std::move(file), size, path);
  STRATA_RETURN_IF_ERROR(out->Open());
  return std::unique_ptr<SequentialFile>(std::move(out));
}

}  // namespace strata::ingest
