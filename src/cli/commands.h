// The `strata` subcommands that live outside main.cc.
#pragma once

#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "strata/lake.h"

namespace strata::cli {

// dataset, commit, log, show, checkout, branch, tag, diff, reset, revert, merge, policy, forget,
// gc, audit, catalog.
// `exit_code` is set by commands whose result is a verdict (audit verify).
void AddVersionCommands(CLI::App& app, Globals& g, int& exit_code);

// ingest, query, meta: bringing data into datasets and reading their records.
void AddDataCommands(CLI::App& app, Globals& g);

// tier stage, tier evict: shard files of a dataset version on a local disk for training.
// `exit_code` is set when a staged shard failed verification.
void AddTierCommands(CLI::App& app, Globals& g, int& exit_code);

// volume, scrub, repair fragments: volumes, redundancy policy, scrub and repair.
void AddVolumeCommands(CLI::App& app, Globals& g, int& exit_code);

// transform: pipelines from a dataset version to training-tier shards. The image codecs pull in
// about 120 shared libraries, whose loading would double every command's start-up time, so the
// `strata` binary registers a stand-in (transform_exec.cc) that executes the strata-transform
// binary next to it, and strata-transform links the real command (transform_commands.cc).
void AddTransformCommands(CLI::App& app, Globals& g);
inline constexpr const char* kTransformHelp =
    "Run the pipeline PIPELINE.yaml over the files of NAME@REF[:PATH] and commit the results as\n"
    "training-tier shards to OUT@BRANCH (shards/, manifest.json; records that fail go to\n"
    ".strata/transform-errors.jsonl). Deterministic: the same input and pipeline give the same\n"
    "bytes. When OUT@BRANCH already holds this input transformed by this pipeline, nothing runs.\n"
    "  strata transform fm@main --pipeline examples/fmnist-pipeline.yaml --out fm@train-ready";

// run create|list|show|log|status|compare|best and ckpt list|show|verify|export|import|rm|label|
// retain. `exit_code` is set when a checkpoint fails verification.
void AddCheckpointCommands(CLI::App& app, Globals& g, int& exit_code);

// model register|list|show|diff|alias|export|pull, retention lock|unlock|hold|list, lineage,
// report governance. `exit_code` is set when the audit log fails verification.
void AddRegistryCommands(CLI::App& app, Globals& g, int& exit_code);

// A lake borrows its repository: both live as long as the command.
struct LakeSession {
  std::unique_ptr<Repository> repo;
  std::unique_ptr<Lake> lake;
  Lake* operator->() { return lake.get(); }
};
LakeSession OpenLake(const Globals& g, bool allow_inconsistent = false);
nlohmann::json CommitResultJson(const CommitResult& r);
// "A=B" -> (A, B); `what` names the option in the error.
std::pair<std::string, std::string> SplitPair(const std::string& text, const char* what);

// `ls` and `cat` take either a put's id or a dataset version: NAME@REF[:PATH] has an '@'.
bool IsDatasetRef(const std::string& text);
void LakeLs(const Globals& g, const std::string& spec, bool recursive, bool long_format);
void LakeCat(const Globals& g, const std::string& spec);

// Appends an audit entry for a change made below the lake (key changes). A failure is a
// warning: the change itself has been made.
void RecordAuditEvent(Repository& repo, const std::string& action, const std::string& target,
                      const nlohmann::json& details);

}  // namespace strata::cli
