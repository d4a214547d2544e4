#include "store/config.h"

#include <limits>
#include <set>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace strata::store {

namespace {
nlohmann::json Body(const RepositoryConfig& c) {
  nlohmann::json j = {{"format", "strata-repository"},
                      {"version", c.version},
                      {"id", c.id},
                      {"created", c.created_unix},
                      {"chunker", {{"min", c.chunker.min_size}, {"avg", c.chunker.avg_size}, {"max", c.chunker.max_size}}},
                      {"compression", {{"codec", "zstd"}, {"level", c.compression_level}}},
                      {"pack_size", c.pack_size}};
  if (c.has_volumes()) {
    nlohmann::json vols = nlohmann::json::array();
    for (const auto& v : c.volumes) {
      vols.push_back({{"id", v.id}, {"path", v.path}, {"domain", v.domain}, {"capacity", v.capacity},
                      {"draining", v.draining}});
    }
    j["volumes"] = std::move(vols);
    j["redundancy"] = {{"policy", c.redundancy}, {"next_volume", c.next_volume}};
    if (!c.archive_redundancy.empty()) j["redundancy"]["archive_policy"] = c.archive_redundancy;
    if (c.next_class > 1) {
      nlohmann::json classes = nlohmann::json::array();
      for (const auto& k : c.classes) {
        classes.push_back({{"id", k.id}, {"label", k.label}, {"policy", k.policy.ToString()}});
      }
      j["redundancy"]["classes"] = std::move(classes);
      j["redundancy"]["next_class"] = c.next_class;
    }
  }
  return j;
}
// nlohmann's get<uint32_t>() on a float or an out-of-range number converts it unchecked
// (undefined behaviour for floats out of range); config fields must be integers in range.
template <typename T>
T Integer(const nlohmann::json& v, const char* field) {
  bool fits = false;
  if (v.is_number_unsigned()) {
    fits = v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max());
  } else if (v.is_number_integer()) {
    int64_t x = v.get<int64_t>();
    fits = x >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
           (x < 0 || static_cast<uint64_t>(x) <= static_cast<uint64_t>(std::numeric_limits<T>::max()));
  }
  if (!fits) throw std::invalid_argument(fmt::format("field '{}' is not an integer in range", field));
  return v.get<T>();
}
}  // namespace

std::string SerializeConfig(const RepositoryConfig& config, const crypto::KeyedHash& mac) {
  nlohmann::json j = Body(config);
  std::string body = j.dump();
  j["mac"] = mac.Hash(body).ToHex();
  return j.dump(2) + "\n";
}

Result<ParsedConfig> ParseConfig(std::string_view bytes) {
  auto j = nlohmann::json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status::Corruption("config is not valid JSON");
  auto fmt_it = j.find("format");
  if (fmt_it == j.end() || *fmt_it != "strata-repository") {
    return Status::Corruption("config does not describe a strata repository");
  }
  auto v = j.find("version");
  if (v == j.end() || !v->is_number_integer()) return Status::Corruption("config has no format version");
  if (v->get<int64_t>() > RepositoryConfig::kVolumesFormatVersion) {
    return Status::Unsupported(fmt::format(
        "repository format version {} is newer than this strata supports ({}); upgrade strata",
        v->get<int64_t>(), RepositoryConfig::kVolumesFormatVersion));
  }
  // Version 2 is this strata's format with volumes; a version-2 config without them was
  // written by a newer strata that uses the number differently.
  if (v->get<int64_t>() == RepositoryConfig::kVolumesFormatVersion && (!j.contains("volumes") || !j.contains("redundancy"))) {
    return Status::Unsupported(
        "repository format version 2 without volumes is not one this strata knows; upgrade strata");
  }
  try {
    ParsedConfig p;
    RepositoryConfig& c = p.config;
    c.version = Integer<int>(j.at("version"), "version");
    if (c.version < 1) return Status::Corruption("config has an invalid format version");
    c.id = j.at("id").get<std::string>();
    c.created_unix = Integer<int64_t>(j.at("created"), "created");
    const auto& ch = j.at("chunker");
    c.chunker.min_size = Integer<uint32_t>(ch.at("min"), "chunker.min");
    c.chunker.avg_size = Integer<uint32_t>(ch.at("avg"), "chunker.avg");
    c.chunker.max_size = Integer<uint32_t>(ch.at("max"), "chunker.max");
    const auto& comp = j.at("compression");
    if (comp.at("codec").get<std::string>() != "zstd") return Status::Unsupported("config names an unknown codec");
    c.compression_level = Integer<int>(comp.at("level"), "compression.level");
    c.pack_size = Integer<uint32_t>(j.at("pack_size"), "pack_size");
    if (c.has_volumes()) {
      std::set<std::string> ids, paths;
      for (const auto& e : j.at("volumes")) {
        volume::VolumeConfig vc;
        vc.id = e.at("id").get<std::string>();
        vc.path = e.at("path").get<std::string>();
        vc.domain = e.at("domain").get<std::string>();
        vc.capacity = Integer<uint64_t>(e.at("capacity"), "volumes.capacity");
        vc.draining = e.at("draining").get<bool>();
        if (!volume::ValidVolumeId(vc.id) || !ids.insert(vc.id).second) return Status::Corruption("config: bad volume id");
        if (vc.path.empty() || !paths.insert(vc.path).second) return Status::Corruption("config: bad volume path");
        if (vc.domain.empty()) return Status::Corruption("config: empty failure domain");
        c.volumes.push_back(std::move(vc));
      }
      const auto& r = j.at("redundancy");
      c.redundancy = r.at("policy").get<std::string>();
      if (!volume::RedundancyPolicy::Parse(c.redundancy).ok()) return Status::Corruption("config: bad redundancy policy");
      c.next_volume = Integer<uint32_t>(r.at("next_volume"), "redundancy.next_volume");
      if (r.contains("archive_policy")) {
        c.archive_redundancy = r.at("archive_policy").get<std::string>();
        if (!volume::RedundancyPolicy::Parse(c.archive_redundancy).ok()) {
          return Status::Corruption("config: bad archive redundancy policy");
        }
      }
      if (r.contains("next_class")) {
        c.next_class = Integer<uint32_t>(r.at("next_class"), "redundancy.next_class");
        std::set<std::string> labels;
        std::set<uint32_t> class_ids;
        for (const auto& e : r.at("classes")) {
          volume::RedundancyClass k;
          k.id = Integer<uint32_t>(e.at("id"), "redundancy.classes.id");
          k.label = e.at("label").get<std::string>();
          auto policy = volume::RedundancyPolicy::Parse(e.at("policy").get<std::string>());
          if (!policy.ok()) return Status::Corruption("config: bad redundancy policy of a class");
          k.policy = *policy;
          if (k.id == 0 || k.id >= c.next_class || !class_ids.insert(k.id).second || k.label.empty() ||
              !labels.insert(k.label).second) {
            return Status::Corruption("config: bad redundancy class");
          }
          c.classes.push_back(std::move(k));
        }
      }
    }
    p.mac = j.at("mac").get<std::string>();
    // Stored values that break the chunker's rules are damage (kCorruption), not a caller's
    // bad argument.
    if (Status s = c.chunker.Validate(); !s.ok()) return Status::Corruption("config: " + s.message());
    if (c.compression_level < 0 || c.compression_level > 22) return Status::Corruption("config: bad compression level");
    if (c.pack_size < (1u << 20) || c.pack_size > (1u << 30)) return Status::Corruption("config: bad pack size");
    if (Body(c) != [&] { auto b = j; b.erase("mac"); return b; }()) {
      return Status::Corruption("config has unknown or malformed fields");
    }
    p.body = Body(c).dump();
    return p;
  } catch (const nlohmann::json::exception& e) {
    return Status::Corruption(fmt::format("config is malformed: {}", e.what()));
  } catch (const std::invalid_argument& e) {
    return Status::Corruption(fmt::format("config is malformed: {}", e.what()));
  }
}

volume::VolumeLayout RepositoryConfig::layout() const {
  volume::VolumeLayout l;
  l.repository_id = id;
  l.volumes = volumes;
  if (auto p = volume::RedundancyPolicy::Parse(redundancy); p.ok()) l.policy = *p;
  if (!archive_redundancy.empty()) {
    if (auto p = volume::RedundancyPolicy::Parse(archive_redundancy); p.ok()) l.archive_policy = *p;
  }
  l.classes = classes;
  return l;
}

Status CheckConfigMac(const ParsedConfig& parsed, const crypto::KeyedHash& mac) {
  if (mac.Hash(parsed.body).ToHex() != parsed.mac) {
    return Status::Corruption("config failed authentication: it was modified (or belongs to another repository)");
  }
  return Status::OK();
}

}  // namespace strata::store
