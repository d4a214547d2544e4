// Fragments and placement records: the on-disk form of a pack spread over volumes
// (docs/FORMAT.md, "Fragments" and "Placement records").
//
// A pack of S bytes under Reed–Solomon k+m becomes k data fragments (fragment i holds bytes
// [i*F, (i+1)*F) of the pack, the last zero-padded, F = ceil(S/k) rounded up to 64) and m
// parity fragments of F bytes each. Under replication every fragment is the whole pack.
// Each fragment starts with a header that names its pack and position and holds a CRC32C of
// every 64 KiB block of its body, so a damaged block is recognised before it is decoded and a
// range read checks only the blocks it touches. A placement record (one small file per pack in
// the repository directory) says which volume holds which fragment.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/crc32c.h"
#include "strata/status.h"

namespace strata::volume {

enum class Scheme : uint8_t { kErasure = 1, kReplica = 2 };

inline constexpr char kFragmentMagic[8] = {'S', 'T', 'R', 'A', 'T', 'A', 'F', 'R'};
inline constexpr char kPlacementMagic[8] = {'S', 'T', 'R', 'A', 'T', 'A', 'P', 'L'};
inline constexpr uint16_t kFragmentVersion = 1;
inline constexpr size_t kFragmentFixedHeader = 48;
inline constexpr uint32_t kFragmentBlock = 64u << 10;
inline constexpr int kMaxFragments = 32;
inline constexpr size_t kMaxPackName = 128;

using ::strata::Crc32c;  // base/crc32c.h

struct FragmentHeader {
  Scheme scheme = Scheme::kErasure;
  uint8_t k = 1, m = 0, index = 0;
  uint32_t generation = 0;   // bumped when a pack is re-encoded (policy apply)
  uint64_t pack_size = 0;
  uint64_t body_size = 0;    // F
  uint32_t block_size = kFragmentBlock;
  std::string pack;
  std::vector<uint32_t> block_crcs;  // one per block of the body

  size_t encoded_size() const { return kFragmentFixedHeader + pack.size() + 4 * block_crcs.size() + 4; }
  uint32_t blocks() const { return static_cast<uint32_t>(block_crcs.size()); }
};

// The body size of each fragment of a pack of `pack_size` bytes.
uint64_t FragmentBodySize(Scheme scheme, int k, uint64_t pack_size);

std::string SerializeFragmentHeader(const FragmentHeader& h);
// Parses the fixed part (first kFragmentFixedHeader bytes) and returns the whole header's size,
// so a reader knows how much more to read. Untrusted input (fuzzed).
Result<size_t> FragmentHeaderSize(std::span<const uint8_t> fixed);
// Parses and checks a whole header (its own CRC, field ranges, block count against body size).
Result<FragmentHeader> ParseFragmentHeader(std::span<const uint8_t> bytes);

struct Placement {
  Scheme scheme = Scheme::kErasure;
  uint8_t k = 1, m = 0;
  uint32_t generation = 0;
  uint64_t pack_size = 0;
  uint64_t body_size = 0;
  std::string pack;
  std::vector<std::string> volumes;  // volumes[i] holds fragment i (k + m entries)

  int width() const { return static_cast<int>(volumes.size()); }
  // How many fragments are needed to read the pack.
  int needed() const { return scheme == Scheme::kReplica ? 1 : k; }
};

std::string SerializePlacement(const Placement& p);
// Untrusted input (fuzzed): malformed bytes or a bad CRC give kCorruption.
Result<Placement> ParsePlacement(std::span<const uint8_t> bytes);

// Volume ids: "v" and a decimal number, at most 16 characters. Pack names as the local
// backend allows them: [0-9a-z_-], 1-128 characters.
bool ValidVolumeId(std::string_view id);
bool ValidPackName(std::string_view name);
// The file name of a fragment on its volume.
std::string FragmentFileName(const std::string& pack, uint32_t generation, int index);

}  // namespace strata::volume
