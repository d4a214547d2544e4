// `strata archive` and `strata restore`: a dataset version's data between the hot and the
// archive storage tier (Lake::MoveToTier), and `strata archive list` for what is archived.
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.h"
#include "strata/lake.h"

namespace strata::cli {
namespace {

using nlohmann::json;

constexpr const char* kArchiveHelp =
    "Move the data of the dataset version NAME@REF (its tree, every file and its records) to the\n"
    "archive tier: recompressed with zstd at level 19 into archive packs (placed under the\n"
    "archive redundancy policy when volumes have one: `strata volume policy set rs:8+4 --tier\n"
    "archive`). Ids do not change, so the version stays readable as it was (ls, cat, checkout,\n"
    "diff, lineage), only slower to reach where the archive policy is. Data the version shares\n"
    "with other versions moves with it. `strata restore NAME@REF` brings it back to the hot tier.\n"
    "Needs the exclusive lock: refused (exit 6) while a put or commit runs.\n"
    "  strata archive fm@v1\n"
    "  strata archive fm@v1 --dry-run      # what would move\n"
    "  strata archive list                 # archived versions of every dataset";

constexpr const char* kRestoreHelp =
    "Bring the data of the dataset version NAME@REF back from the archive tier to the hot tier\n"
    "(recompressed at the repository's level). What it shares with other archived versions stays\n"
    "archived. A version that is not archived is left as it is.\n"
    "  strata restore fm@v1";

json ReportJson(const TierReport& r) {
  return {{"dataset", r.dataset},
          {"commit", r.commit.ToHex()},
          {"tier", StorageTierName(r.tier)},
          {"unchanged", r.unchanged},
          {"dry_run", r.dry_run},
          {"objects", r.objects_reachable},
          {"objects_moved", r.objects_moved},
          {"objects_in_tier", r.objects_in_tier},
          {"objects_kept", r.objects_kept},
          {"stored_before", r.stored_before},
          {"stored_after", r.stored_after},
          {"packs_rewritten", r.packs_rewritten},
          {"packs_written", r.packs_written},
          {"seconds", r.seconds}};
}

std::string Change(uint64_t before, uint64_t after) {
  if (before == 0) return fmt::format("{} -> {}", Bytes(before), Bytes(after));
  double pct = 100.0 * (double(after) - double(before)) / double(before);
  return fmt::format("{} -> {} ({:+.1f}%)", Bytes(before), Bytes(after), pct);
}

void PrintReport(const Globals& g, const std::string& spec, const TierReport& r) {
  if (g.json) {
    PrintJson(ReportJson(r));
    return;
  }
  if (g.quiet) return;
  const char* tier = StorageTierName(r.tier);
  const std::string version = fmt::format("{} (commit {})", spec, r.commit.Short());
  if (r.unchanged) {
    std::cout << fmt::format("{} is already in the {} tier ({} objects): nothing moved\n", version, tier,
                             r.objects_reachable);
    return;
  }
  if (r.dry_run) {
    std::cout << fmt::format("{}: {} of its {} objects would move to the {} tier ({} stored now; {} already there{})\n",
                             version, r.objects_moved, r.objects_reachable, tier, Bytes(r.stored_before),
                             r.objects_in_tier,
                             r.objects_kept ? fmt::format(", {} shared with archived versions stay", r.objects_kept) : "");
    return;
  }
  std::cout << fmt::format("{} {} to the {} tier: {} objects moved, stored {}; {} packs rewritten in {:.1f} s\n",
                           r.tier == StorageTier::kHot ? "restored" : "archived", version, tier, r.objects_moved,
                           Change(r.stored_before, r.stored_after), r.packs_rewritten, r.seconds);
  if (r.objects_in_tier) std::cout << fmt::format("  {} objects were already in the {} tier\n", r.objects_in_tier, tier);
  if (r.objects_kept) {
    std::cout << fmt::format("  {} objects shared with other archived versions stay archived\n", r.objects_kept);
  }
}

}  // namespace

void AddArchiveCommands(CLI::App& app, Globals& g) {
  auto* archive = app.add_subcommand("archive", "Move a dataset version's data to the archive tier (zstd 19, ids unchanged); `archive list`");
  archive->footer(kArchiveHelp);
  archive->require_subcommand(0, 1);
  static std::string a_spec, a_tier = "archive";
  static bool a_dry = false;
  static int a_level = -1;
  archive->add_option("spec", a_spec, "NAME@REF: a branch, tag or commit id prefix of a dataset");
  archive->add_option("--tier", a_tier, "Target tier: archive (default) or hot (same as `strata restore`)")
      ->check(CLI::IsMember({"archive", "hot"}));
  archive->add_flag("--dry-run", a_dry, "Report what would move; change nothing");
  archive->add_option("--level", a_level, "zstd level of the moved data (default: 19 for archive, the repository's for hot)")
      ->check(CLI::Range(1, 22));

  auto* list = archive->add_subcommand("list", "Archived dataset versions (of dataset NAME, or of all)");
  static std::string l_name;
  list->add_option("name", l_name, "Dataset");
  list->callback([&] {
    auto s = OpenLake(g);
    auto versions = Check(s->ListArchived(l_name));
    json a = json::array();
    for (const auto& v : versions) {
      a.push_back({{"dataset", v.dataset},
                   {"commit", v.commit.ToHex()},
                   {"tier", StorageTierName(v.tier)},
                   {"refs", v.refs},
                   {"since", v.changed_unix},
                   {"objects", v.objects},
                   {"stored_before", v.stored_before},
                   {"stored_after", v.stored_after}});
      if (!g.json) {
        std::cout << fmt::format("{}@{}  {}{}  since {}  {} objects, stored {}\n", v.dataset, v.commit.Short(),
                                 StorageTierName(v.tier),
                                 v.refs.empty() ? "" : fmt::format("  [{}]", fmt::join(v.refs, ", ")),
                                 TimeString(v.changed_unix), v.objects, Change(v.stored_before, v.stored_after));
      }
    }
    if (g.json) PrintJson(a);
    else if (versions.empty() && !g.quiet) std::cout << "no archived versions\n";
  });

  archive->callback([&, list] {
    if (list->parsed()) return;
    if (a_spec.empty()) {
      throw Failure{Status::InvalidArgument("archive needs a version: `strata archive NAME@REF` (or `strata archive list`)")};
    }
    StorageTier tier = Check(ParseStorageTier(a_tier));
    auto s = OpenLake(g);
    TierOptions o;
    o.dry_run = a_dry;
    o.compression_level = a_level;
    PrintReport(g, a_spec, Check(s->MoveToTier(a_spec, tier, o)));
  });

  auto* restore = app.add_subcommand("restore", "Bring a dataset version's data back to the hot tier");
  restore->footer(kRestoreHelp);
  static std::string r_spec;
  static bool r_dry = false;
  restore->add_option("spec", r_spec, "NAME@REF: a branch, tag or commit id prefix of a dataset")->required();
  restore->add_flag("--dry-run", r_dry, "Report what would move; change nothing");
  restore->callback([&] {
    auto s = OpenLake(g);
    TierOptions o;
    o.dry_run = r_dry;
    PrintReport(g, r_spec, Check(s->MoveToTier(r_spec, StorageTier::kHot, o)));
  });
}

}  // namespace strata::cli
