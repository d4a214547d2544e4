// The serving weights file (docs/FORMAT.md, "Serving weights"): a fixed 64-byte prefix, a JSON
// header, then every tensor at an aligned offset, each with its own hash. Shared by the writer,
// the loader and the fuzz target of the header parser.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "strata/checkpoint.h"
#include "strata/env.h"
#include "strata/status.h"

namespace strata::registry {

inline constexpr char kServingMagic[8] = {'S', 'T', 'R', 'A', 'T', 'A', 'W', 'T'};
inline constexpr uint32_t kServingVersion = 1;
inline constexpr size_t kServingPrefixBytes = 64;
inline constexpr uint64_t kMaxServingHeader = 64ull << 20;

struct ServingTensor {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<uint64_t> shape;
  uint64_t offset = 0;  // from the start of the file, a multiple of the alignment
  uint64_t bytes = 0;
  std::array<uint8_t, 32> hash{};
};

struct ServingHeader {
  uint32_t alignment = 4096;
  bool keyed = false;  // HMAC-SHA-256 (true) or SHA-256
  uint64_t data_offset = 0;
  std::map<std::string, std::string> metadata;
  std::vector<ServingTensor> tensors;  // in file order
};

// Parses and validates the prefix and header of a whole serving file (untrusted input, fuzzed):
// magic, version, alignment, header length and checksum, every tensor's dtype, shape (overflow
// checked), size, alignment and range inside the file, no overlaps, unique names.
Result<ServingHeader> ParseServingFile(std::span<const uint8_t> file);

// SHA-256, or HMAC-SHA-256 under `key` when it is not empty, over pieces fed in order.
class TensorHasher {
 public:
  explicit TensorHasher(std::string_view key);
  ~TensorHasher();
  TensorHasher(const TensorHasher&) = delete;
  TensorHasher& operator=(const TensorHasher&) = delete;
  void Update(std::span<const uint8_t> data);
  std::array<uint8_t, 32> Final();

 private:
  void* md_ = nullptr;   // EVP_MD_CTX
  void* mac_ = nullptr;  // EVP_MAC_CTX
};

// A tensor to write: its bytes come from `read` (called with increasing offsets); `hash`, when
// known (a tensor copied from an earlier file), saves a pass over them.
struct ServingSource {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<uint64_t> shape;
  uint64_t bytes = 0;
  std::optional<std::array<uint8_t, 32>> hash;
  std::function<Status(uint64_t offset, size_t n, uint8_t* dst)> read;
};

// Writes the file to `path` through a temporary name (sync, rename, sync dir). Tensors without a
// known hash are read twice: once to hash them (the header comes first), once to write them.
Status WriteServingFile(const std::string& path, std::vector<ServingSource> sources, uint32_t alignment,
                        std::string_view key, const std::map<std::string, std::string>& metadata, Env* env);

}  // namespace strata::registry
