// Transform: a deterministic, cached pipeline from a dataset version to training-tier shards.
//
//   strata::TransformOptions o;
//   STRATA_ASSIGN_OR_RETURN(o.pipeline, strata::ReadFileToString(env, "fmnist-pipeline.yaml"));
//   o.pipeline_name = "fmnist-pipeline.yaml";
//   auto r = strata::Transform(repo, lake, "fm@main:train", "fm@train-ready", o);
//   // r->up_to_date: the branch's head already holds this input transformed by this pipeline.
//
// The pipeline (YAML, docs/ARCHITECTURE.md "Transform") selects files of the input version,
// runs each through a list of image ops (decode, resize, crops, CLAHE, brightness, colour,
// flips, rotations, normalise with statistics fitted on the data) and writes the results with
// their labels as shards (strata/shard.h) into one commit of the output branch:
// `shards/shard-NNNNN.shard`, `manifest.json` (docs/FORMAT.md "Transform manifest") and, when
// some records failed, `.strata/transform-errors.jsonl`. The commit's metadata records lineage:
// the input commit and tree, the pipeline hash, op and tool versions and the fitted statistics.
//
// Deterministic: the same input tree and the same pipeline give byte-identical shards whatever
// the thread count (records in path order, randomness seeded from the pipeline seed and each
// record's path, shard ids derived from the pipeline hash). Cached: when the output branch's head
// records the same (input tree, path, pipeline hash), nothing is computed; when only the input
// tree differs, statistics are fitted reading only the files that changed, and when they come
// out the same, only the files that changed are computed and the others' records are copied
// from the head. A record that fails (an image that does not decode, a missing label) is
// reported and skipped; anything else that fails (a bad pipeline, unreadable or corrupt input)
// fails the whole transform and the output branch does not move. Resumable: finished shards
// are committed to OUT@BRANCH.partial as the run goes; a run of the same transform after a kill
// or a failure continues from them, to the same bytes.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "strata/lake.h"
#include "strata/repository.h"

namespace strata {

struct TransformOptions {
  std::string pipeline;           // the pipeline's YAML text
  std::string pipeline_name;      // where it came from, for error messages ("p.yaml")
  size_t threads = 0;             // decode/transform workers; 0: one per core
  // Decoded and transformed records waiting to be written are kept below this many bytes.
  uint64_t memory_budget = uint64_t{256} << 20;
  std::string work_dir;           // where shards are built before they are stored; default $TMPDIR
  bool force = false;             // recompute even when the output is up to date (and start over)
  // How often finished shards are committed to OUT@BRANCH.partial, so that a run that is killed
  // or fails resumes from them (at most this often, when a shard is finished, and once after
  // the fitting pass when it took as long); 0: after every shard.
  double checkpoint_seconds = 10;
  bool progress = false;          // a progress line on stderr
  CommitOptions commit;           // message, author, extra meta
};

struct TransformError {
  std::string path;               // the input record
  std::string op;                 // the op that failed ("read", "decode", "center_crop", "label", ...)
  std::string message;
};

struct TransformShard {
  std::string path;               // in the output commit: "shards/shard-00000.shard"
  std::string id;                 // hex
  uint64_t first_record = 0, records = 0, bytes = 0;
};

struct TransformReport {
  std::string input_commit;       // hex
  std::string input_tree;         // hex, of the input commit's root
  std::string pipeline_hash;      // hex SHA-256 of the canonical pipeline (docs/FORMAT.md)
  bool up_to_date = false;        // nothing was computed: the output already holds this
  uint64_t records_in = 0;        // input records selected
  uint64_t records_out = 0;       // shard records written (records_in - failed, times variants)
  uint64_t failed = 0;            // input records that failed (all are in `errors`)
  // Input files unchanged since the output branch's head, whose records were copied from it
  // instead of computed (same pipeline, path, fitted statistics and classes).
  uint64_t reused = 0;
  // Input files unchanged since the output branch's head whose part of the fitted statistics
  // was taken from it instead of read and computed again.
  uint64_t fit_reused = 0;
  // Resumed: records and shards an interrupted run of the same transform had finished (taken
  // from OUT@BRANCH.partial, not computed again).
  uint64_t resumed_records = 0, resumed_shards = 0;
  uint64_t checkpoints = 0;       // commits of the partial output made by this run
  std::vector<TransformError> errors;
  std::vector<TransformShard> shards;
  std::map<std::string, std::vector<double>> stats;  // fitted: "mean", "std" (per channel)
  std::string manifest;           // manifest.json as stored
  CommitResult commit;            // of the output branch (zero when up to date)
  double seconds = 0;
  // Where the time went: the fitting pass, the pass that transforms and writes the shards,
  // and storing them in the repository (and committing). Wall seconds, and the CPU seconds
  // (user + system, all threads of the process) of the last two: a shard is stored while the
  // workers go on making the next records, and their CPU meanwhile counts as the store's.
  double fit_seconds = 0, write_seconds = 0, store_seconds = 0;
  double write_cpu_seconds = 0, store_cpu_seconds = 0;
};

// Runs the pipeline over `input` (NAME@REF[:PATH]) and commits the shards to `output`
// (NAME@BRANCH; the dataset and the branch are created when missing: a new branch of the input's
// dataset starts at the input commit). `repo` must be the Lake's repository; it is used to read
// input files from several threads. A bad pipeline is kInvalidArgument naming the line and op.
Result<TransformReport> Transform(Repository* repo, Lake* lake, std::string_view input, std::string_view output,
                                  const TransformOptions& options);

// Parses and checks a pipeline without running it; returns its hash.
Result<std::string> CheckPipeline(std::string_view yaml, std::string_view name);

}  // namespace strata
