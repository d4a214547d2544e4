// Pieces of the checkpoint module shared between its files.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "checkpoint/manifest.h"
#include "store/object_store.h"
#include "strata/checkpoint.h"
#include "strata/lake.h"

namespace strata::checkpoint {

// Creates run `run` (its dataset and run.json) unless it exists.
Status EnsureRun(Lake* lake, std::string_view run);

// Writes a complete checkpoint's manifest and tree through `batch` (whose objects, `files`'
// chunks included, are then made durable) and creates its tag: the checkpoint is visible when
// this returns OK. kAlreadyExists when the step has a checkpoint.
Status CommitCheckpoint(store::WriteBatch* batch, Manifest m, std::vector<store::TreeEntry> files,
                        CheckpointInfo* info, Lake* lake);

// When every rank's part of sharded checkpoint `step` is present, writes the checkpoint from
// them (no tensor bytes are read or copied: the parts' chunk lists are reused) and deletes the
// parts' tags. OK, changing nothing, while parts are missing; `info->commit` is then zero.
Status FinalizeSharded(Repository* repo, Lake* lake, const std::string& run, int64_t step, int world_size,
                       CheckpointInfo* info);

// The whole content of the file at `path` of `tree`, authenticated.
Result<std::string> ReadTreeFile(Repository* repo, const ObjectId& tree, std::string_view path);

// A reader of the checkpoint whose tree is `tree`, whatever tag names it (a model version keeps
// its checkpoint's tree after the run's tag is deleted). `info` names it in messages.
Result<std::unique_ptr<CheckpointReader>> OpenCheckpointTree(Repository* repo, const ObjectId& tree,
                                                             const CheckpointInfo& info, size_t threads = 0);

// Checkpoint infos of a run from its tags (no manifest read), newest step first.
Result<std::vector<CheckpointInfo>> ListCheckpoints(Lake* lake, std::string_view run);

}  // namespace strata::checkpoint
