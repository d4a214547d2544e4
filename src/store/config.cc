#include "store/config.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace strata::store {

namespace {
nlohmann::json Body(const RepositoryConfig& c) {
  return {{"format", "strata-repository"},
          {"version", c.version},
          {"id", c.id},
          {"created", c.created_unix},
          {"chunker", {{"min", c.chunker.min_size}, {"avg", c.chunker.avg_size}, {"max", c.chunker.max_size}}},
          {"compression", {{"codec", "zstd"}, {"level", c.compression_level}}},
          {"pack_size", c.pack_size}};
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
  if (v->get<int64_t>() > RepositoryConfig::kFormatVersion) {
    return Status::Unsupported(fmt::format(
        "repository format version {} is newer than this strata supports ({}); upgrade strata",
        v->get<int64_t>(), RepositoryConfig::kFormatVersion));
  }
  try {
    ParsedConfig p;
    RepositoryConfig& c = p.config;
    c.version = j.at("version").get<int>();
    if (c.version < 1) return Status::Corruption("config has an invalid format version");
    c.id = j.at("id").get<std::string>();
    c.created_unix = j.at("created").get<int64_t>();
    const auto& ch = j.at("chunker");
    c.chunker.min_size = ch.at("min").get<uint32_t>();
    c.chunker.avg_size = ch.at("avg").get<uint32_t>();
    c.chunker.max_size = ch.at("max").get<uint32_t>();
    const auto& comp = j.at("compression");
    if (comp.at("codec").get<std::string>() != "zstd") return Status::Unsupported("config names an unknown codec");
    c.compression_level = comp.at("level").get<int>();
    c.pack_size = j.at("pack_size").get<uint32_t>();
    p.mac = j.at("mac").get<std::string>();
    STRATA_RETURN_IF_ERROR(c.chunker.Validate().WithContext("config"));
    if (c.compression_level < 0 || c.compression_level > 22) return Status::Corruption("config: bad compression level");
    if (c.pack_size < (1u << 20) || c.pack_size > (1u << 30)) return Status::Corruption("config: bad pack size");
    if (Body(c) != [&] { auto b = j; b.erase("mac"); return b; }()) {
      return Status::Corruption("config has unknown or malformed fields");
    }
    p.body = Body(c).dump();
    return p;
  } catch (const nlohmann::json::exception& e) {
    return Status::Corruption(fmt::format("config is malformed: {}", e.what()));
  }
}

Status CheckConfigMac(const ParsedConfig& parsed, const crypto::KeyedHash& mac) {
  if (mac.Hash(parsed.body).ToHex() != parsed.mac) {
    return Status::Corruption("config failed authentication: it was modified (or belongs to another repository)");
  }
  return Status::OK();
}

}  // namespace strata::store
