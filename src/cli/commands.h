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

// query, meta: the records of datasets.
void AddRecordCommands(CLI::App& app, Globals& g);

// tier stage, tier evict: shard files of a dataset version on a local disk for training.
// `exit_code` is set when a staged shard failed verification.
void AddTierCommands(CLI::App& app, Globals& g, int& exit_code);

// volume, scrub, repair fragments: volumes, redundancy policy, scrub and repair.
void AddVolumeCommands(CLI::App& app, Globals& g, int& exit_code);

// The commands that read foreign formats: ingest and curate (archives, tables, databases, image
// headers) and transform (image codecs). Their libraries (libarchive, libpq, OpenCV, ...) pull in
// about 150 shared libraries, whose loading took most of every command's start-up; so the
// `strata` binary registers stand-ins for them (data_exec.cc) that execute the strata-data
// binary next to it, which links the real commands (ingest_commands.cc, transform_commands.cc).
void AddIngestCommands(CLI::App& app, Globals& g);
void AddTransformCommands(CLI::App& app, Globals& g);
inline constexpr const char* kIngestHelp =
    "Bring SOURCE into NAME@BRANCH as one commit: a directory, an archive (tar, tar.gz/zst/xz,\n"
    "zip: streamed, never extracted), CSV/JSON Lines (a record per row), IDX images+labels\n"
    "(Fashion-MNIST), or sqlite:DB.sqlite or postgresql://USER@HOST/DB with --query. Labels,\n"
    "sources, image sizes and rows become records (`strata query`). Items that are unsafe or\n"
    "malformed (paths escaping the dataset, links, devices, bad rows) are rejected with a reason\n"
    "and kept in .strata/rejects.jsonl; a broken source fails and the branch does not move.\n"
    "Ingesting the same data again stores nothing and makes no commit.";
inline constexpr const char* kCurateHelp =
    "Derive branch DST from SRC by the rules in a YAML file (docs/CURATION.md): required\n"
    "columns, types, ranges, allowed labels (after remap and a joined labels CSV), a SQL\n"
    "filter, text checks and NFC/whitespace normalisation, image checks, exact and near\n"
    "duplicates. Nothing is dropped: each failing record moves below .quarantine/ with\n"
    "columns quarantine_rule and quarantine_reason. Prints a report (text or --json).\n"
    "  strata curate fm@main fm@curated --rules rules.yaml --report-dir report/";
inline constexpr const char* kTransformHelp =
    "Run the pipeline PIPELINE.yaml over the records of NAME@REF[:PATH] and commit the results as\n"
    "training-tier shards to OUT@BRANCH (shards/, manifest.json; records that fail go to\n"
    ".strata/transform-errors.jsonl). The first op says what a record is: decode (an image file),\n"
    "text (a text file, or a column of the records file; a trained tokenizer is stored as\n"
    "tokenizer.model) or columns (a row of a table). Statistics the ops fit are in manifest.json.\n"
    "Deterministic: the same input and pipeline give the same bytes. When OUT@BRANCH already\n"
    "holds this input transformed by this pipeline, nothing runs. Resumable: finished shards are\n"
    "committed to OUT@BRANCH.partial as the run goes, and the same command after a kill or a\n"
    "failure continues from them (--force starts over).\n"
    "  strata transform fm@main --pipeline examples/fmnist-pipeline.yaml --out fm@train-ready\n"
    "  strata transform rv@main --pipeline examples/text-pipeline.yaml --out rv@tokens\n"
    "  strata transform census@main --pipeline examples/tabular-pipeline.yaml --out census@features";

// run create|list|show|log|status|compare|best and ckpt list|show|verify|export|import|rm|label|
// retain. `exit_code` is set when a checkpoint fails verification.
void AddCheckpointCommands(CLI::App& app, Globals& g, int& exit_code);

// model register|list|show|diff|alias|export|pull, retention lock|unlock|hold|list, lineage,
// report governance. `exit_code` is set when the audit log fails verification.
void AddRegistryCommands(CLI::App& app, Globals& g, int& exit_code);

// archive, archive list, restore: dataset versions between the hot and the archive storage tier.
void AddArchiveCommands(CLI::App& app, Globals& g);

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
