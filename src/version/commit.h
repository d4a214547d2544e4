// Commits: a snapshot of a dataset's tree with its parents and metadata, stored (encrypted,
// content-addressed) in the repository like any other object. Byte layout in docs/FORMAT.md.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "strata/object_id.h"
#include "strata/status.h"

namespace strata::version {

struct Commit {
  ObjectId tree;
  std::vector<ObjectId> parents;  // first parent = the branch's previous head
  std::string dataset;
  int64_t time_ns = 0;
  std::string author;
  std::string message;
  std::map<std::string, std::string> meta;  // key=value pairs given with --meta
};

std::string SerializeCommit(const Commit& commit);
// Untrusted input (fuzzed): malformed bytes give kCorruption, never a crash.
Result<Commit> ParseCommit(std::span<const uint8_t> bytes);

}  // namespace strata::version
