// ShardWriter::Create with the staging pipeline's sizes chosen by the caller (tests use small
// buffers to put records across buffer boundaries; the benchmark tries other sizes).
#pragma once

#include <memory>
#include <string>

#include "shard/staging.h"
#include "strata/shard.h"

namespace strata::shard {

Result<std::unique_ptr<ShardWriter>> NewShardWriter(const std::string& path, const Schema& schema,
                                                    const WriterOptions& options, uint32_t number,
                                                    uint64_t first_record, StagingOptions staging);

}  // namespace strata::shard
