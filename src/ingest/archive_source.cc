#include "ingest/archive_source.h"

#include "ingest/source.h"

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

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

Status ArchiveSource::Open(archive* a) {
  archive_read_set_callback_data(a, this);
  archive_read_set_read_callback(a, &ArchiveSourceCallbacks::Read);
  archive_read_set_skip_callback(a, &ArchiveSourceCallbacks::Skip);
  archive_read_set_seek_callback(a, &ArchiveSourceCallbacks::Seek);
  if (archive_read_open1(a) != ARCHIVE_OK) {
    if (!failure_.ok()) return failure_;
    const char* why = archive_error_string(a);
    return Status::InvalidArgument(fmt::format("{}: cannot read as an archive or compressed stream: {}", name_,
                                               why ? why : "unrecognised format"));
  }
  return Status::OK();
}

la_ssize_t ArchiveSourceCallbacks::Read(archive* a, void* self, const void** out) {
  auto* s = static_cast<ArchiveSource*>(self);
  if (s->pos_ >= s->size_) return 0;
  size_t want = static_cast<size_t>(std::min<uint64_t>(s->buffer_.size(), s->size_ - s->pos_));
  size_t got = 0;
  Status st = s->file_->Read(s->pos_, want, s->buffer_.data(), &got);
  if (!st.ok()) {
    s->failure_ = st;
    archive_set_error(a, EIO, "%s", st.message().c_str());
    return ARCHIVE_FATAL;
  }
  s->pos_ += got;
  *out = s->buffer_.data();
  return static_cast<la_ssize_t>(got);
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

Result<std::unique_ptr<SequentialFile>> OpenDecompressed(Env* env, const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(auto file, env->NewRandomAccessFile(path));
  STRATA_ASSIGN_OR_RETURN(uint64_t size, file->Size());
  if (size == 0) return std::unique_ptr<SequentialFile>(new MemorySequentialFile(std::string_view()));
  auto out = std::make_unique<DecompressedFile>(std::move(file), size, path);
  STRATA_RETURN_IF_ERROR(out->Open());
  return std::unique_ptr<SequentialFile>(std::move(out));
}

}  // namespace strata::ingest
