// Opening a shard from any BlockSource (a file, or memory for the fuzz target).
#pragma once

#include <memory>
#include <string>

#include "shard/block_file.h"
#include "strata/shard.h"

namespace strata::shard {

// `name` is how errors name the shard (its path).
Result<std::unique_ptr<ShardReader>> OpenShard(std::string name, std::unique_ptr<BlockSource> source,
                                               const ReaderOptions& options);

}  // namespace strata::shard
