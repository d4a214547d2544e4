#include "ingest/source.h"

#include <charconv>
#include <cstring>

#include <fmt/format.h>

namespace strata::ingest {

std::string_view ColumnTypeName(ColumnType type) {
  switch (type) {
    case ColumnType::kInt64: return "int64";
    case ColumnType::kDouble: return "double";
    case ColumnType::kBool: return "bool";
    case ColumnType::kString: return "string";
  }
  return "?";
}

std::string ValueToString(const Value& v) {
  if (auto* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  if (auto* d = std::get_if<double>(&v)) {
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, *d);
    return std::string(buf, r.ptr);
  }
  if (auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  if (auto* s = std::get_if<std::string>(&v)) return *s;
  return "";
}

int Schema::Find(std::string_view name) const {
  for (size_t i = 0; i < columns.size(); ++i) {
    if (columns[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

bool IsValidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;  // continuation byte, overlong lead (C0, C1) or past U+10FFFF (F5..FF)
    }
    if (n - i < len) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return false;
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;  // UTF-16 surrogates
    i += len;
  }
  return true;
}

PathCheck CheckItemPath(std::string_view raw, size_t max_bytes) {
  PathCheck out;
  auto refuse = [&](std::string rule, std::string reason) {
    out.rule = std::move(rule);
    out.reason = std::move(reason);
    return out;
  };
  if (raw.size() > max_bytes) {
    return refuse("path-too-long", fmt::format("name is {} bytes, the limit is {}", raw.size(), max_bytes));
  }
  for (unsigned char c : raw) {
    if (c < 0x20 || c == 0x7F) {
      return refuse("path-control-byte",
                    fmt::format("name contains the control byte 0x{:02x}", static_cast<unsigned>(c)));
    }
  }
  if (!IsValidUtf8(raw)) return refuse("path-encoding", "name is not valid UTF-8");
  if (raw.find('\\') != std::string_view::npos) {
    return refuse("path-backslash", "name contains a backslash, a path separator on Windows");
  }
  if (!raw.empty() && raw[0] == '/') return refuse("path-absolute", "name is an absolute path");
  std::string path;
  size_t pos = 0;
  bool first = true;
  while (pos <= raw.size()) {
    size_t end = raw.find('/', pos);
    if (end == std::string_view::npos) end = raw.size();
    std::string_view part = raw.substr(pos, end - pos);
    pos = end + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") return refuse("path-traversal", "name has a '..' component");
    if (first && part.size() == 2 && part[1] == ':' &&
        ((part[0] >= 'a' && part[0] <= 'z') || (part[0] >= 'A' && part[0] <= 'Z'))) {
      return refuse("path-absolute", "name starts with a drive letter");
    }
    first = false;
    if (!path.empty()) path += '/';
    path += part;
  }
  if (path.empty()) return refuse("path-empty", "name is empty");
  out.ok = true;
  out.path = std::move(path);
  return out;
}

std::string PrintableName(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    if (c >= 0x80) {
      // Keep a well-formed multi-byte character whole.
      size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
      if (len > 1 && i + len <= s.size() && IsValidUtf8(s.substr(i, len))) {
        out.append(s.substr(i, len));
        i += len;
        continue;
      }
    }
    out += fmt::format("\\x{:02x}", static_cast<unsigned>(c));
    ++i;
  }
  return out;
}

Status MemorySequentialFile::Read(size_t n, uint8_t* dst, size_t* got) {
  size_t take = std::min(n, data_.size() - pos_);
  if (take > 0) std::memcpy(dst, data_.data() + pos_, take);
  pos_ += take;
  *got = take;
  return Status::OK();
}

}  // namespace strata::ingest
