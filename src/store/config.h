// The repository config: format version, chunker parameters, compression and pack size.
// Stored as JSON in plain text (so a newer format is recognised without a key) with a keyed
// MAC over its canonical form, so a change by someone without the key is detected at open.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/aead.h"
#include "store/chunker.h"
#include "strata/status.h"
#include "volume/redundant_backend.h"

namespace strata::store {

struct RepositoryConfig {
  // Version 1: a single directory. Version 2: volumes and a redundancy policy (the config
  // then has "volumes" and "redundancy"); written only once a volume is added, so older
  // strata refuses such a repository instead of missing its packs.
  static constexpr int kFormatVersion = 1;
  static constexpr int kVolumesFormatVersion = 2;
  int version = kFormatVersion;
  std::string id;            // 32 hex digits
  int64_t created_unix = 0;
  ChunkerParams chunker;
  int compression_level = 3;
  uint32_t pack_size = 32u << 20;
  // Version 2 only.
  std::vector<volume::VolumeConfig> volumes;
  std::string redundancy = "none";  // RedundancyPolicy text
  std::string archive_redundancy;   // of archive packs; empty: as `redundancy` (not stored)
  uint32_t next_volume = 1;         // ids are never reused
  std::vector<volume::RedundancyClass> classes;  // datasets with a policy of their own
  uint32_t next_class = 1;          // class ids are never reused either
  bool has_volumes() const { return version >= kVolumesFormatVersion; }
  volume::VolumeLayout layout() const;
};

std::string SerializeConfig(const RepositoryConfig& config, const crypto::KeyedHash& mac);

struct ParsedConfig {
  RepositoryConfig config;
  std::string body;  // canonical form the MAC covers
  std::string mac;   // hex
};
// Untrusted input (fuzzed). A newer version gives kUnsupported; malformed input kCorruption.
Result<ParsedConfig> ParseConfig(std::string_view bytes);
// kCorruption if the config's MAC does not match under `mac`.
Status CheckConfigMac(const ParsedConfig& parsed, const crypto::KeyedHash& mac);

}  // namespace strata::store
