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

// transform: pipelines from a dataset version to training-tier shards.
void AddTransformCommands(CLI::App& app, Globals& g);

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
