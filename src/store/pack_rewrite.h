// Internal: what garbage collection (gc.cc) and tier moves (tier.cc) share — marking what a
// set of roots reaches, writing objects into new packs, and installing an index that names the
// new packs instead of the old ones in the crash-safe order (RepositoryImpl::InstallIndex).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "store/chunk_index.h"
#include "store/pack.h"
#include "strata/repository.h"

namespace strata::store {

class RepositoryImpl;

inline constexpr std::string_view kDamaged = "repository is damaged, run `strata verify`";

// The tier a pack belongs to, from its name (volume/backend.h: IsArchivePack).
StorageTier PackTier(std::string_view pack);
// What follows the random part of a pack's name: "" (hot), "-archive", "-c<N>" (a redundancy
// class). Objects copied out of a pack go into packs of the same suffix, so they keep their
// tier and their policy.
std::string_view PackSuffix(std::string_view pack);
// The suffix of packs of `tier`, and of the hot packs of redundancy class `class_id`.
std::string TierSuffix(StorageTier tier, uint32_t class_id = 0);

// One bit per indexed object (ChunkIndex's dense ordinals).
class MarkSet {
 public:
  explicit MarkSet(size_t n) : words_((n + 63) / 64, 0) {}
  // Sets bit `i`; returns false if it was already set.
  bool Set(uint32_t i) {
    uint64_t& w = words_[i / 64];
    uint64_t bit = uint64_t{1} << (i % 64);
    if (w & bit) return false;
    w |= bit;
    ++count_;
    return true;
  }
  bool Test(uint32_t i) const { return (words_[i / 64] >> (i % 64)) & 1; }
  uint64_t count() const { return count_; }
  size_t size() const { return words_.size() * 64; }  // ordinals it can hold

 private:
  std::vector<uint64_t> words_;
  uint64_t count_ = 0;
};

// Walks from roots, marking every object reached. What an object is walked as depends on its
// indexed kind, not on what referenced it, so an id reached twice is walked once and always the
// same way. An object reachable but missing or unreadable is kCorruption ("repository is
// damaged"): callers change nothing then.
class Marker {
 public:
  Marker(RepositoryImpl* repo, MarkSet* marks) : repo_(repo), marks_(marks) {}
  // Marks `id` and everything below it. `root` names it in errors.
  Status MarkFrom(const ObjectId& id, const std::string& root);

 private:
  Status Mark(const ObjectId& id, const ObjectId* parent);
  Status Expand(const ObjectId& id);

  RepositoryImpl* repo_;
  MarkSet* marks_;
  std::string root_;
  std::vector<ObjectId> pending_;
};

// Writes sealed objects into new packs of one tier, each closed at about the repository's pack
// size. Nothing is visible until the index names the packs (InstallIndex).
class PackOutput {
 public:
  // New packs are named `<random><suffix>` (PackSuffix).
  PackOutput(RepositoryImpl* repo, std::string suffix, std::string op)
      : repo_(repo), suffix_(std::move(suffix)), op_(std::move(op)) {}
  // Appends one sealed object (its entry's offset is set by the pack writer).
  Status Add(const PackEntry& entry, std::span<const uint8_t> sealed);
  // Commits the open pack, if any.
  Status Finish();
  // The committed packs with their entries; moved out.
  std::vector<PackListing> TakeListings() { return std::move(listings_); }
  uint64_t bytes_written() const { return written_; }
  size_t packs_written() const { return packs_; }

 private:
  Status Seal();
  RepositoryImpl* repo_;
  std::string suffix_;
  std::string op_;
  std::unique_ptr<PackWriter> writer_;
  std::vector<PackListing> listings_;
  uint64_t written_ = 0;
  size_t packs_ = 0;
};

// One PackOutput per pack suffix: objects copied out of packs keep their source's suffix.
class PackOutputs {
 public:
  PackOutputs(RepositoryImpl* repo, std::string op) : repo_(repo), op_(std::move(op)) {}
  // Appends to the series of `suffix`.
  Status Add(std::string_view suffix, const PackEntry& entry, std::span<const uint8_t> sealed);
  // Commits every open pack; then the listings of all of them, moved out.
  Status Finish();
  std::vector<PackListing> TakeListings();
  uint64_t bytes_written() const;
  size_t packs_written() const;

 private:
  RepositoryImpl* repo_;
  std::string op_;
  std::map<std::string, PackOutput, std::less<>> outputs_;
};

// What happens to each indexed pack when a new index is installed.
enum class PackFate : uint8_t {
  kKeep,    // listed in the new index as before
  kRemove,  // not listed; its file is deleted once no index names it
  kForget,  // not listed; its file is already gone
};

// The size of a pack of `n` objects whose sealed bytes total `data` (PackWriter's layout).
uint64_t PackFileSize(uint64_t n, uint64_t data);

}  // namespace strata::store
