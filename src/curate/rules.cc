// Parsing of curation rules (YAML).
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "strata/curate.h"

namespace strata {

namespace {

struct Bad {
  std::string message;
};

[[noreturn]] void Fail(const YAML::Node& node, const std::string& what) {
  const auto& m = node.Mark();
  throw Bad{m.is_null() ? what : fmt::format("line {}: {}", m.line + 1, what)};
}

void OnlyKeys(const YAML::Node& map, const std::string& where, std::set<std::string> keys) {
  if (!map.IsMap()) Fail(map, fmt::format("'{}' must be a mapping", where));
  for (const auto& kv : map) {
    std::string k = kv.first.as<std::string>();
    if (!keys.count(k)) {
      std::string known;
      for (const auto& x : keys) known += (known.empty() ? "" : ", ") + x;
      Fail(kv.first, fmt::format("unknown key '{}' in {} (known: {})", k, where, known));
    }
  }
}

template <class T>
T As(const YAML::Node& n, const std::string& what) {
  try {
    return n.as<T>();
  } catch (const YAML::Exception&) {
    Fail(n, fmt::format("'{}' has the wrong type", what));
  }
}

std::vector<std::string> Strings(const YAML::Node& n, const std::string& what) {
  if (n.IsScalar()) return {As<std::string>(n, what)};
  if (!n.IsSequence()) Fail(n, fmt::format("'{}' must be a list", what));
  std::vector<std::string> out;
  for (const auto& x : n) out.push_back(As<std::string>(x, what));
  return out;
}

CurationRules Parse(const YAML::Node& root) {
  CurationRules r;
  if (root.IsNull()) return r;
  OnlyKeys(root, "the rules", {"select", "require", "types", "ranges", "labels", "filter", "text", "images", "duplicates"});
  if (auto n = root["select"]) r.select = As<std::string>(n, "select");
  if (auto n = root["filter"]) r.filter = As<std::string>(n, "filter");
  if (auto n = root["require"]) r.require = Strings(n, "require");
  if (auto n = root["types"]) {
    if (!n.IsMap()) Fail(n, "'types' must be a mapping of column: type");
    for (const auto& kv : n) {
      std::string col = kv.first.as<std::string>(), t = As<std::string>(kv.second, "types." + col);
      if (t != "int" && t != "float" && t != "number" && t != "bool" && t != "string") {
        Fail(kv.second, fmt::format("types.{}: '{}' is not a type (int, float, number, bool, string)", col, t));
      }
      r.types[col] = t;
    }
  }
  if (auto n = root["ranges"]) {
    if (!n.IsMap()) Fail(n, "'ranges' must be a mapping of column: {min, max}");
    for (const auto& kv : n) {
      std::string col = kv.first.as<std::string>();
      OnlyKeys(kv.second, "ranges." + col, {"min", "max"});
      CurationRules::Range range;
      if (auto m = kv.second["min"]) range.min = As<double>(m, "ranges." + col + ".min");
      if (auto m = kv.second["max"]) range.max = As<double>(m, "ranges." + col + ".max");
      r.ranges[col] = range;
    }
  }
  if (auto n = root["labels"]) {
    OnlyKeys(n, "labels", {"column", "allowed", "remap", "join"});
    if (auto m = n["column"]) r.label_column = As<std::string>(m, "labels.column");
    if (auto m = n["allowed"]) r.allowed_labels = Strings(m, "labels.allowed");
    if (auto m = n["join"]) r.labels_csv = As<std::string>(m, "labels.join");
    if (auto m = n["remap"]) {
      if (!m.IsMap()) Fail(m, "'labels.remap' must be a mapping old: new");
      for (const auto& kv : m) r.remap[kv.first.as<std::string>()] = As<std::string>(kv.second, "labels.remap");
    }
  }
  if (auto n = root["text"]) {
    OnlyKeys(n, "text", {"files", "utf8", "min_bytes", "max_bytes", "normalize", "whitespace"});
    CurationRules::Text t;
    if (auto m = n["files"]) t.files = Strings(m, "text.files");
    if (t.files.empty()) Fail(n, "text.files: give the glob patterns of the text files, e.g. ['*.txt']");
    if (auto m = n["utf8"]) t.utf8 = As<bool>(m, "text.utf8");
    if (auto m = n["min_bytes"]) t.min_bytes = As<uint64_t>(m, "text.min_bytes");
    if (auto m = n["max_bytes"]) t.max_bytes = As<uint64_t>(m, "text.max_bytes");
    if (auto m = n["normalize"]) {
      std::string v = As<std::string>(m, "text.normalize");
      if (v != "nfc" && v != "none") Fail(m, "text.normalize: 'nfc' or 'none'");
      t.nfc = v == "nfc";
    }
    if (auto m = n["whitespace"]) {
      std::string v = As<std::string>(m, "text.whitespace");
      if (v != "collapse" && v != "keep") Fail(m, "text.whitespace: 'collapse' or 'keep'");
      t.collapse_whitespace = v == "collapse";
    }
    r.text = t;
  }
  if (auto n = root["images"]) {
    OnlyKeys(n, "images", {"files", "min_width", "min_height", "max_width", "max_height", "channels"});
    CurationRules::Images im;
    if (auto m = n["files"]) im.files = Strings(m, "images.files");
    if (auto m = n["min_width"]) im.min_width = As<uint32_t>(m, "images.min_width");
    if (auto m = n["min_height"]) im.min_height = As<uint32_t>(m, "images.min_height");
    if (auto m = n["max_width"]) im.max_width = As<uint32_t>(m, "images.max_width");
    if (auto m = n["max_height"]) im.max_height = As<uint32_t>(m, "images.max_height");
    if (auto m = n["channels"]) {
      if (!m.IsSequence()) Fail(m, "images.channels must be a list, e.g. [1, 3]");
      for (const auto& c : m) im.channels.push_back(As<uint32_t>(c, "images.channels"));
    }
    r.images = im;
  }
  if (auto n = root["duplicates"]) {
    OnlyKeys(n, "duplicates", {"exact", "keep", "near_text", "shingle", "near_image"});
    auto& d = r.duplicates;
    if (auto m = n["exact"]) d.exact = As<bool>(m, "duplicates.exact");
    if (auto m = n["keep"]) {
      d.keep = As<std::string>(m, "duplicates.keep");
      if (d.keep != "first" && d.keep != "last" && d.keep != "largest" && d.keep != "smallest") {
        Fail(m, "duplicates.keep: first, last, largest or smallest");
      }
    }
    if (auto m = n["near_text"]) {
      d.near_text = As<double>(m, "duplicates.near_text");
      if (d.near_text <= 0 || d.near_text > 1) Fail(m, "duplicates.near_text: a Jaccard similarity in (0, 1]");
    }
    if (auto m = n["shingle"]) {
      d.shingle = As<uint32_t>(m, "duplicates.shingle");
      if (d.shingle == 0 || d.shingle > 64) Fail(m, "duplicates.shingle: 1 to 64 characters");
    }
    if (auto m = n["near_image"]) {
      d.near_image = As<int>(m, "duplicates.near_image");
      if (d.near_image < 0 || d.near_image > 64) Fail(m, "duplicates.near_image: a Hamming distance 0 to 64");
    }
  }
  return r;
}

}  // namespace

Result<CurationRules> ParseCurationRules(std::string_view yaml) {
  try {
    return Parse(YAML::Load(std::string(yaml)));
  } catch (const Bad& b) {
    return Status::InvalidArgument("curation rules: " + b.message);
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(fmt::format("curation rules: line {}: {}", e.mark.line + 1, e.msg));
  }
}

Result<CurationRules> LoadCurationRules(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound(fmt::format("cannot read rules file '{}'", path));
  std::stringstream ss;
  ss << in.rdbuf();
  auto r = ParseCurationRules(ss.str());
  if (!r.ok()) return r.status().WithContext(path);
  return r;
}

}  // namespace strata
