// Archives written with libarchive's writer, hostile ones included.
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cstdio>

#include <cstdlib>
#include <string>
#include <vector>

namespace strata::ingest::testing {

struct Member {
  std::string path;
  char type = 'f';          // 'f' file, 'd' directory, 'l' symlink, 'h' hard link, 'c' char device, 'p' fifo
  std::string data;         // file content
  std::string link;         // symlink or hard link target
  uint64_t zeros = 0;       // when set, the content is this many zero bytes (written in pieces)
  uint32_t mode = 0644;
  int64_t mtime = 1'700'000'000;
};

enum class Container { kTar, kZip };
enum class Filter { kNone, kGzip, kZstd };

inline la_ssize_t AppendToString(archive*, void* out, const void* buf, size_t n) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(buf), n);
  return static_cast<la_ssize_t>(n);
}

// Aborts the test binary on a writer error: the archive is the test's input, not its subject.
inline std::string WriteArchive(const std::vector<Member>& members, Container container = Container::kTar,
                                Filter filter = Filter::kNone) {
  std::string out;
  archive* a = archive_write_new();
  if (container == Container::kTar) archive_write_set_format_ustar(a);
  else archive_write_set_format_zip(a);
  if (filter == Filter::kGzip) archive_write_add_filter_gzip(a);
  if (filter == Filter::kZstd) archive_write_add_filter_zstd(a);
  archive_write_set_bytes_in_last_block(a, 1);
  if (archive_write_open(a, &out, nullptr, &AppendToString, nullptr) != ARCHIVE_OK) std::abort();
  for (const auto& m : members) {
    archive_entry* e = archive_entry_new();
    archive_entry_copy_pathname(e, m.path.c_str());
    archive_entry_set_mtime(e, m.mtime, 0);
    archive_entry_set_perm(e, m.mode);
    uint64_t size = 0;
    switch (m.type) {
      case 'f':
        archive_entry_set_filetype(e, AE_IFREG);
        size = m.zeros ? m.zeros : m.data.size();
        break;
      case 'd': archive_entry_set_filetype(e, AE_IFDIR); break;
      case 'l':
        archive_entry_set_filetype(e, AE_IFLNK);
        archive_entry_copy_symlink(e, m.link.c_str());
        break;
      case 'h':
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_copy_hardlink(e, m.link.c_str());
        break;
      case 'c':
        archive_entry_set_filetype(e, AE_IFCHR);
        archive_entry_set_rdev(e, makedev(1, 3));
        break;
      case 'p': archive_entry_set_filetype(e, AE_IFIFO); break;
    }
    archive_entry_set_size(e, static_cast<la_int64_t>(size));
    if (archive_write_header(a, e) != ARCHIVE_OK) {
      fprintf(stderr, "writer: %s\n", archive_error_string(a));
      std::abort();
    }
    if (m.zeros) {
      std::string block(1 << 20, '\0');
      for (uint64_t left = m.zeros; left > 0;) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(left, block.size()));
        archive_write_data(a, block.data(), n);
        left -= n;
      }
    } else if (!m.data.empty()) {
      archive_write_data(a, m.data.data(), m.data.size());
    }
    archive_entry_free(e);
  }
  if (archive_write_close(a) != ARCHIVE_OK) std::abort();
  archive_write_free(a);
  return out;
}

// `bytes` as one gzip member (libarchive's raw format: no container).
inline std::string Gzip(const std::string& bytes) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_raw(a);
  archive_write_add_filter_gzip(a);
  archive_write_set_bytes_in_last_block(a, 1);
  if (archive_write_open(a, &out, nullptr, &AppendToString, nullptr) != ARCHIVE_OK) std::abort();
  archive_entry* e = archive_entry_new();
  archive_entry_set_filetype(e, AE_IFREG);
  if (archive_write_header(a, e) != ARCHIVE_OK) std::abort();
  if (!bytes.empty()) archive_write_data(a, bytes.data(), bytes.size());
  archive_entry_free(e);
  if (archive_write_close(a) != ARCHIVE_OK) std::abort();
  archive_write_free(a);
  return out;
}

}  // namespace strata::ingest::testing
