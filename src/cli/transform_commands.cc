// `strata transform`: a dataset version through a pipeline into shards on an output branch. Built
// into the strata-data binary only (see data_exec.cc).
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.h"
#include "strata/transform.h"

namespace strata::cli {

void AddTransformCommands(CLI::App& app, Globals& g) {
  auto* cmd = app.add_subcommand("transform", kTransformHelp);
  static std::string input, pipeline_path, output, memory = "256";
  static TransformOptions o;
  static std::vector<std::string> meta;
  static bool check_only = false;
  cmd->add_option("input", input, "NAME@REF[:PATH] to read")->required();
  cmd->add_option("--pipeline", pipeline_path, "The pipeline (YAML)")->required();
  cmd->add_option("--out", output, "NAME@BRANCH to commit the shards to (created when missing)");
  cmd->add_flag("--force", o.force,
                "Recompute even when the output is up to date, and start over instead of resuming an interrupted run");
  cmd->add_option("--checkpoint-seconds", o.checkpoint_seconds,
                  "Commit finished shards to OUT@BRANCH.partial at most this often, so that a killed run resumes "
                  "from them (default 10; 0: after every shard)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--check", check_only, "Only parse and check the pipeline; print its hash");
  cmd->add_option("--memory", memory, "MiB of transformed records held before writing (default 256)");
  cmd->add_option("--work-dir", o.work_dir, "Where shards are built before they are stored (default $TMPDIR)");
  cmd->add_option("-m,--message", o.commit.message, "Commit message");
  cmd->add_option("--meta", meta, "KEY=VALUE commit metadata (repeatable)");
  cmd->callback([&] {
    o.pipeline = Check(ReadFileToString(Env::Default(), pipeline_path));
    o.pipeline_name = pipeline_path;
    if (check_only) {
      std::string hash = Check(CheckPipeline(o.pipeline, o.pipeline_name));
      if (g.json) PrintJson({{"pipeline", pipeline_path}, {"hash", hash}});
      else std::cout << hash << "\n";
      return;
    }
    if (output.empty()) throw Failure{Status::InvalidArgument("give --out NAME@BRANCH")};
    for (const auto& m : meta) o.commit.meta.insert(SplitPair(m, "--meta"));
    try {
      o.memory_budget = std::stoull(memory) << 20;
    } catch (const std::exception&) {
      throw Failure{Status::InvalidArgument(fmt::format("--memory takes MiB (a number), not '{}'", memory))};
    }
    o.threads = g.threads;
    o.progress = !g.quiet && !g.json;
    auto s = OpenLake(g);
    TransformReport r = Check(Transform(s.repo.get(), s.lake.get(), input, output, o));
    if (g.json) {
      nlohmann::json errors = nlohmann::json::array();
      for (size_t i = 0; i < r.errors.size() && i < 100; ++i) {
        errors.push_back({{"path", r.errors[i].path}, {"op", r.errors[i].op}, {"error", r.errors[i].message}});
      }
      nlohmann::json shards = nlohmann::json::array();
      for (const auto& sh : r.shards) {
        shards.push_back({{"path", sh.path}, {"id", sh.id}, {"first_record", sh.first_record},
                          {"records", sh.records}, {"bytes", sh.bytes}});
      }
      PrintJson({{"input_commit", r.input_commit},
                 {"input_tree", r.input_tree},
                 {"pipeline_hash", r.pipeline_hash},
                 {"up_to_date", r.up_to_date},
                 {"records_in", r.records_in},
                 {"records", r.records_out},
                 {"failed", r.failed},
                 {"reused", r.reused},
                 {"fit_reused", r.fit_reused},
                 {"resumed_records", r.resumed_records},
                 {"resumed_shards", r.resumed_shards},
                 {"checkpoints", r.checkpoints},
                 {"errors", errors},
                 {"shards", shards},
                 {"stats", r.stats},
                 {"seconds", r.seconds},
                 {"fit_seconds", r.fit_seconds},
                 {"write_seconds", r.write_seconds},
                 {"store_seconds", r.store_seconds},
                 {"write_cpu_seconds", r.write_cpu_seconds},
                 {"store_cpu_seconds", r.store_cpu_seconds},
                 {"commit", CommitResultJson(r.commit)}});
      return;
    }
    if (!g.quiet) {
      if (r.up_to_date) {
        std::cerr << fmt::format("{}: up to date ({} transformed by pipeline {}); nothing computed\n", output,
                                 input, r.pipeline_hash.substr(0, 12));
      } else {
        std::cerr << fmt::format("{}: {} records in, {} written to {} shard(s), {} failed, in {:.1f} s ({:.0f} records/s)\n",
                                 input, r.records_in, r.records_out, r.shards.size(), r.failed, r.seconds,
                                 r.seconds > 0 ? r.records_in / r.seconds : 0.0);
        if (r.resumed_records > 0) {
          std::cerr << fmt::format("  resumed: {} records in {} shard(s) kept from an interrupted run\n",
                                   r.resumed_records, r.resumed_shards);
        }
        if (r.fit_reused > 0) {
          std::cerr << fmt::format("  statistics: {} unchanged input(s) taken from {}'s previous output, {} read\n",
                                   r.fit_reused, output, r.records_in - r.fit_reused);
        }
        if (r.reused > 0) {
          std::cerr << fmt::format("  {} unchanged input(s) copied from {}'s previous output, {} computed\n", r.reused,
                                   output, r.records_in - r.reused);
        }
        for (const auto& [name, values] : r.stats) {
          std::cerr << fmt::format("  fitted {}: [{:.6g}]\n", name, fmt::join(values, ", "));
        }
        for (size_t i = 0; i < r.errors.size() && i < 10; ++i) {
          std::cerr << fmt::format("  failed {} [{}]: {}\n", r.errors[i].path, r.errors[i].op, r.errors[i].message);
        }
        if (r.errors.size() > 10) {
          std::cerr << fmt::format("  ... and {} more in .strata/transform-errors.jsonl\n", r.errors.size() - 10);
        }
        std::cerr << fmt::format("{}: {} -> {}; {} new in the repository\n", output, r.commit.parent.Short(),
                                 r.commit.commit.Short(), Bytes(r.commit.put.stored_bytes));
      }
    }
    std::cout << r.commit.commit.ToHex() << "\n";
  });
}

}  // namespace strata::cli
