// `strata volume add|list|status|rebalance|drain|remove|recover|policy`, `strata scrub` and
// `strata repair fragments`: volumes, redundancy policy and the upkeep of fragments.
#include <ctime>
#include <fstream>
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.h"
#include "strata/volumes.h"

namespace strata::cli {

namespace {

// "500G", "2T", "1048576" -> bytes.
Result<uint64_t> ParseCapacity(const std::string& text) {
  if (text.empty()) return uint64_t{0};
  size_t used = 0;
  uint64_t v = 0;
  try {
    v = std::stoull(text, &used);
  } catch (...) {
    return Status::InvalidArgument(fmt::format("capacity '{}' is not a size (e.g. 500G)", text));
  }
  std::string unit = text.substr(used);
  int shift = unit.empty() ? 0 : unit == "K" ? 10 : unit == "M" ? 20 : unit == "G" ? 30 : unit == "T" ? 40 : -1;
  if (shift < 0) return Status::InvalidArgument(fmt::format("capacity '{}': unit must be K, M, G or T", text));
  return v << shift;
}

// {dataset: policy} of the datasets with a policy of their own.
nlohmann::json DatasetPolicies(const RedundancyStatus& st) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& c : st.classes) j[c.label] = c.policy;
  return j;
}

nlohmann::json RepairJson(const RepairReport& r) {
  return {{"packs_checked", r.packs_checked},       {"fragments_rebuilt", r.fragments_rebuilt},
          {"fragments_moved", r.fragments_moved},   {"packs_reencoded", r.packs_reencoded},
          {"leftovers_removed", r.leftovers_removed}, {"bytes_written", r.bytes_written},
          {"objects_regrouped", r.objects_regrouped}, {"mirror_files", r.mirror_files}, {"seconds", r.seconds},
          {"unreadable", r.unreadable},             {"errors", r.errors}};
}

void PrintUnreadable(const std::map<std::string, std::vector<std::string>>& unreadable) {
  for (const auto& [pack, objects] : unreadable) {
    std::cerr << fmt::format("error: pack {} is unreadable (fewer fragments left than needed); {} objects lost:\n",
                             pack, objects.size());
    for (const auto& o : objects) std::cerr << "  " << o << "\n";
  }
  if (!unreadable.empty()) {
    std::cerr << "run `strata verify` to see which puts and datasets reach them\n";
  }
}

int PrintRepair(const Globals& g, const RepairReport& r, const char* what) {
  if (g.json) {
    PrintJson(RepairJson(r));
  } else {
    for (const auto& e : r.errors) std::cerr << "error: " << e << "\n";
    PrintUnreadable(r.unreadable);
    std::cout << fmt::format(
        "{}: {} packs checked, {} fragments rebuilt, {} moved, {} packs re-encoded, {} leftovers removed, "
        "{:.1f} MB written in {:.1f} s\n",
        what, r.packs_checked, r.fragments_rebuilt, r.fragments_moved, r.packs_reencoded, r.leftovers_removed,
        r.bytes_written / 1e6, r.seconds);
    if (r.mirror_files) {
      std::cout << fmt::format("{}: {} metadata files brought up to date on the volumes\n", what, r.mirror_files);
    }
    if (r.objects_regrouped) {
      std::cout << fmt::format("{}: {} objects moved to a dataset's stronger policy\n", what, r.objects_regrouped);
    }
  }
  return r.ok() ? kExitOk : kExitIntegrity;
}

}  // namespace

void AddVolumeCommands(CLI::App& app, Globals& g, int& exit_code) {
  auto* volume = app.add_subcommand("volume", "Volumes (directories on separate disks) and the redundancy policy");
  volume->require_subcommand(1);

  auto* add = volume->add_subcommand("add", "Add an empty or new directory as a volume in its own failure domain");
  static std::string add_dir, add_domain, add_capacity;
  add->add_option("dir", add_dir, "The volume's directory")->required();
  add->add_option("--domain", add_domain, "Failure domain, most general first: rack1/host2/disk3")->required();
  add->add_option("--capacity", add_capacity,
                  "Capacity, e.g. 500G; when every volume has one, `volume rebalance` fills them in proportion");
  static bool add_no_rebalance = false;
  add->add_flag("--no-rebalance", add_no_rebalance,
                "Do not start `strata volume rebalance` in the background (run it later yourself)");
  add->callback([&g] {
    auto repo = OpenRepo(g);
    VolumeSpec spec{add_dir, add_domain, Check(ParseCapacity(add_capacity))};
    std::string id = Check(repo->volumes()->AddVolume(spec));
    // Fragments already spread over the other volumes move onto the new one in the background:
    // a rebalance runs beside puts and reads, keeps every pack at its policy, and resumes after a
    // kill when run again.
    int pid = 0;
    std::string log;
    if (!add_no_rebalance && Check(repo->volumes()->GetSummary()).placed_packs > 0) {
      log = JoinPath(RepoUrl(g), "catalog/rebalance.log");
      auto started = StartDetached(g, {"volume", "rebalance"}, log);
      if (started.ok()) {
        pid = *started;
        std::ofstream(log, std::ios::app) << fmt::format("{} volume {} added: rebalance started (pid {})\n",
                                                         TimeString(std::time(nullptr)), id, pid);
      } else {
        std::cerr << fmt::format("warning: could not start the rebalance ({}): run `strata volume rebalance`\n",
                                 started.status().message());
      }
    }
    if (g.json) {
      nlohmann::json j = {{"id", id}, {"path", add_dir}, {"domain", add_domain}};
      if (pid) j["rebalance"] = {{"pid", pid}, {"log", log}};
      PrintJson(j);
    } else if (pid) {
      std::cout << fmt::format("added volume {} ({}, domain {}); new packs use it now, and existing fragments move "
                               "onto it in the background (pid {}, log {}; `strata volume status` shows the counts)\n",
                               id, add_dir, add_domain, pid, log);
    } else {
      std::cout << fmt::format("added volume {} ({}, domain {}); new packs use it now{}\n", id, add_dir, add_domain,
                               add_no_rebalance ? ", `strata volume rebalance` moves existing fragments onto it" : "");
    }
  });

  auto* rebalance = volume->add_subcommand(
      "rebalance", "Even out the fragments per volume, e.g. after adding volumes (resumable; puts may go on)\n"
                   "  strata volume rebalance            # or in the background: strata volume rebalance &");
  rebalance->callback([&g, &exit_code] {
    auto repo = OpenRepo(g);
    exit_code = PrintRepair(g, Check(repo->volumes()->Rebalance()), "rebalance");
  });

  auto print_volumes = [&g](bool with_counters) {
    auto repo = OpenRepo(g);
    RedundancyStatus st = Check(repo->volumes()->GetStatus());
    if (g.json) {
      nlohmann::json vols = nlohmann::json::array();
      for (const auto& v : st.volumes) {
        vols.push_back({{"id", v.id}, {"path", v.path}, {"domain", v.domain}, {"capacity", v.capacity},
                        {"draining", v.draining}, {"online", v.online}, {"fragments", v.fragments},
                        {"bytes", v.bytes}, {"degraded_reads", v.degraded_reads},
                        {"read_errors", v.read_errors}, {"write_errors", v.write_errors},
                        {"metadata_files", v.metadata_files}});
      }
      PrintJson({{"policy", st.policy}, {"archive_policy", st.archive_policy.empty() ? st.policy : st.archive_policy},
                 {"datasets", DatasetPolicies(st)}, {"volumes", vols}, {"placed_packs", st.placed_packs},
                 {"local_packs", st.local_packs}, {"degraded_reads", st.degraded_reads},
                 {"metadata_files", st.metadata_files}});
      return;
    }
    std::cout << fmt::format("policy {}{}; {} packs spread over volumes, {} in the repository directory\n", st.policy,
                             st.archive_policy.empty() ? "" : ", archive tier " + st.archive_policy, st.placed_packs,
                             st.local_packs);
    for (const auto& c : st.classes) std::cout << fmt::format("dataset {}: policy {}\n", c.label, c.policy);
    for (const auto& v : st.volumes) {
      std::cout << fmt::format("{:<4} {:<8} {:<24} {:>10} fragments {:>10.1f} MB  {}", v.id,
                               !v.online ? "OFFLINE" : v.draining ? "draining" : "online", v.domain, v.fragments,
                               v.bytes / 1e6, v.path);
      if (with_counters) {
        std::cout << fmt::format("  degraded reads {} read errors {} write errors {}  metadata {}/{}",
                                 v.degraded_reads, v.read_errors, v.write_errors, v.metadata_files,
                                 st.metadata_files);
      }
      std::cout << "\n";
    }
    if (with_counters) std::cout << fmt::format("degraded reads in total: {}\n", st.degraded_reads);
  };
  volume->add_subcommand("list", "List the volumes")->callback([print_volumes] { print_volumes(false); });
  volume->add_subcommand("status", "Volumes with their fragments and degraded-read and error counters")
      ->callback([print_volumes] { print_volumes(true); });

  auto* drain = volume->add_subcommand("drain", "Move every fragment off a volume (resumable; then `volume remove`)");
  static std::string drain_id;
  drain->add_option("id", drain_id, "Volume id (vN)")->required();
  drain->callback([&g, &exit_code] {
    auto repo = OpenRepo(g);
    exit_code = PrintRepair(g, Check(repo->volumes()->Drain(drain_id)), fmt::format("drain {}", drain_id).c_str());
  });

  auto* remove = volume->add_subcommand("remove", "Remove a drained volume from the repository");
  static std::string remove_id;
  remove->add_option("id", remove_id, "Volume id (vN)")->required();
  remove->callback([&g] {
    auto repo = OpenRepo(g);
    Check(repo->volumes()->RemoveVolume(remove_id));
    if (g.json) PrintJson({{"removed", remove_id}});
    else std::cout << fmt::format("removed volume {}\n", remove_id);
  });

  auto* recover = volume->add_subcommand(
      "recover",
      "Recreate the repository directory (-r, new or empty) from the copy of its metadata on a volume,\n"
      "after the disk that held it was lost; then check the passphrase and rebuild the catalog\n"
      "  strata -r /srv/repo volume recover --from /mnt/disk3/strata");
  static std::string recover_from;
  recover->add_option("--from", recover_from, "A volume directory of the repository")->required();
  recover->callback([&g] {
    if (g.repo.empty()) throw Failure{Status::InvalidArgument("give the repository directory to recreate with -r")};
    RecoveryReport recovered = Check(RecoverRepository(recover_from, g.repo));
    for (const auto& [dir, extra] : recovered.fuller) {
      std::cerr << fmt::format(
          "warning: the metadata copy on {} has {} files the copy on {} lacks: that volume may have missed writes; "
          "if this one was offline for a while, recover into an empty directory again --from {}\n",
          dir, extra, recover_from, dir);
    }
    auto repo = OpenRepo(g);  // the passphrase against the recovered key slots and config MAC
    auto rebuilt = Check(Lake::RebuildCatalog(repo.get()));
    for (const auto& w : rebuilt.warnings) std::cerr << "warning: " << w << "\n";
    auto summary = Check(repo->volumes()->GetSummary());
    if (g.json) {
      PrintJson({{"files", recovered.files}, {"fuller", recovered.fuller}, {"placed_packs", summary.placed_packs},
                 {"datasets", rebuilt.datasets},
                 {"refs", rebuilt.refs}, {"commits", rebuilt.commits}, {"warnings", rebuilt.warnings}});
    } else if (!g.quiet) {
      std::cout << fmt::format(
          "recovered {} from {}: {} metadata files, {} packs on the volumes, {} datasets, {} refs, {} commits; run "
          "`strata scrub` and `strata repair` next\n",
          g.repo, recover_from, recovered.files, summary.placed_packs, rebuilt.datasets, rebuilt.refs, rebuilt.commits);
    }
  });

  auto* policy = volume->add_subcommand("policy", "The redundancy policy of new packs: none, replicate:N, rs:K+M");
  policy->require_subcommand(1);
  auto* policy_set = policy->add_subcommand("set", "Set the policy for packs written from now on\n"
                                                   "  strata volume policy set rs:4+2\n"
                                                   "  strata volume policy set rs:8+4 --tier archive   # packs of `strata archive`\n"
                                                   "  strata volume policy set inherit --tier archive  # archive follows the hot policy\n"
                                                   "  strata volume policy set rs:6+3 --dataset raw    # one dataset's commits\n"
                                                   "  strata volume policy set inherit --dataset raw   # raw follows the repository again");
  static std::string policy_text, policy_tier = "hot", policy_dataset;
  policy_set->add_option("policy", policy_text,
                         "none | replicate:N | rs:K+M (e.g. rs:4+2); with --tier archive or --dataset also inherit")
      ->required();
  policy_set->add_option("--tier", policy_tier, "hot (default: every pack that is not archived) or archive")
      ->check(CLI::IsMember({"hot", "archive"}));
  policy_set->add_option("--dataset", policy_dataset,
                         "Only the packs this dataset's commits write (data it shares with others gets the "
                         "strongest of their policies at `policy apply`)")
      ->excludes("--tier");
  policy_set->callback([&g] {
    if (!policy_dataset.empty()) {
      auto s = OpenLake(g);
      Check(s->SetDatasetPolicy(policy_dataset, policy_text));
    } else {
      auto repo = OpenRepo(g);
      if (policy_tier == "archive") Check(repo->volumes()->SetArchivePolicy(policy_text));
      else Check(repo->volumes()->SetPolicy(policy_text));
    }
    const std::string scope = !policy_dataset.empty()      ? fmt::format("dataset {}: ", policy_dataset)
                              : policy_tier == "archive" ? "archive tier "
                                                         : "";
    if (g.json) PrintJson({{"policy", policy_text}, {"tier", policy_tier}, {"dataset", policy_dataset}});
    else std::cout << fmt::format("{}policy {} (existing packs: `strata volume policy apply`)\n", scope, policy_text);
  });
  policy->add_subcommand("show", "Print the policy (and the archive tier's and datasets', when they have their own)")
      ->callback([&g] {
        auto repo = OpenRepo(g);
        auto st = Check(repo->volumes()->GetSummary());
        const std::string archive = st.archive_policy.empty() ? st.policy : st.archive_policy;
        if (g.json) {
          PrintJson({{"policy", st.policy}, {"archive_policy", archive}, {"datasets", DatasetPolicies(st)}});
          return;
        }
        if (st.archive_policy.empty()) std::cout << st.policy << "\n";
        else std::cout << fmt::format("{} (archive tier {})\n", st.policy, archive);
        for (const auto& c : st.classes) std::cout << fmt::format("dataset {}: {}\n", c.label, c.policy);
      });
  policy
      ->add_subcommand("apply",
                       "Bring existing data to its policy (resumable): objects shared by datasets move to the "
                       "strongest of their policies, then packs are re-encoded and spread")
      ->callback([&g, &exit_code] {
        auto s = OpenLake(g);
        exit_code = PrintRepair(g, Check(s->ApplyRedundancy()), "policy apply");
      });

  auto* scrub = app.add_subcommand("scrub", "Check every fragment of every pack; report which pack/fragment/volume is bad");
  static ScrubOptions scrub_options;
  scrub->add_flag("--deep", scrub_options.deep, "Read every byte and check every block checksum");
  scrub->add_option("--rate", scrub_options.rate_mb_s, "Read at most this many MB/s");
  scrub->add_flag("--repair", scrub_options.repair, "Repair what was found");
  scrub->add_flag("--restart", scrub_options.restart, "Start over instead of resuming an interrupted scrub");
  scrub->callback([&g, &exit_code] {
    auto repo = OpenRepo(g);
    ScrubReport r = Check(repo->volumes()->Scrub(scrub_options));
    if (g.json) {
      nlohmann::json problems = nlohmann::json::array();
      for (const auto& p : r.problems) {
        problems.push_back({{"pack", p.pack}, {"fragment", p.fragment}, {"volume", p.volume}, {"problem", p.problem}});
      }
      PrintJson({{"packs", r.packs_checked}, {"fragments", r.fragments_checked}, {"bytes", r.bytes_read},
                 {"resumed", r.resumed}, {"problems", problems}, {"unreadable", r.unreadable},
                 {"warnings", r.warnings}});
    } else {
      for (const auto& p : r.problems) {
        std::cerr << fmt::format("bad: pack {} fragment {} on volume {}: {}\n", p.pack, p.fragment, p.volume, p.problem);
      }
      for (const auto& w : r.warnings) std::cerr << "warning: " << w << "\n";
      PrintUnreadable(r.unreadable);
      std::cout << fmt::format("scrub{}{}: {} packs, {} fragments, {:.1f} MB read, {} problems\n",
                               scrub_options.deep ? " --deep" : "", r.resumed ? " (resumed)" : "", r.packs_checked,
                               r.fragments_checked, r.bytes_read / 1e6, r.problems.size());
    }
    if (!r.ok() && !scrub_options.repair) exit_code = kExitIntegrity;
    if (!r.unreadable.empty()) exit_code = kExitIntegrity;
  });

  // `strata repair fragments`, next to `strata repair index` (when the store's commands are built).
  auto repairs = app.get_subcommands([](CLI::App* c) { return c->get_name() == "repair"; });
  if (!repairs.empty()) {
    CLI::App* repair = repairs.front();
    repair->add_subcommand("fragments", "Rebuild missing or bad fragments onto healthy volumes (resumable)")
        ->callback([&g, &exit_code] {
          auto repo = OpenRepo(g);
          exit_code = PrintRepair(g, Check(repo->volumes()->Repair()), "repair");
        });
  }
}

}  // namespace strata::cli
