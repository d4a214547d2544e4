// The fixture of the end-to-end command tests: a fresh repository in a temporary directory and
// the real `strata` binary (STRATA_BINARY, defined by the test target) run on it in child
// processes. Header-only, because STRATA_BINARY belongs to the including target.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testutil/testutil.h"

namespace strata::testing {

class CliTest : public ::testing::Test {
 protected:
  static constexpr const char* kPass = "cli test passphrase";

  // The environment of every child: the passphrase, a fixed user for the audit log, and nothing
  // inherited that would change what the binary does.
  static EnvChanges BaseEnv() {
    return {std::string("STRATA_PASSWORD=") + kPass, "STRATA_REPO", "STRATA_NEW_PASSWORD", "STRATA_LOG",
            "USER=tester"};
  }

  // `strata init REPO` with the cheapest key derivation and `extra` options; the repository
  // is at repo_. Small chunks and packs by default, so tests see many of each.
  void InitRepo(std::vector<std::string> extra = {"--chunk-avg", "64", "--pack-size", "1048576"}) {
    repo_ = dir_ / "repo";
    std::vector<std::string> args = {"init", repo_, "--kdf-mem", "1", "--kdf-ops", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = Run(args);
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
  }

  // `strata ARGS...`
  ProcessResult Run(const std::vector<std::string>& args, const std::string& input = "") {
    std::vector<std::string> argv = {STRATA_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProcess(argv, BaseEnv(), input);
  }
  // `strata -r REPO ARGS...`
  ProcessResult S(const std::vector<std::string>& args) {
    std::vector<std::string> a = {"-r", repo_};
    a.insert(a.end(), args.begin(), args.end());
    return Run(a);
  }
  // `strata -r REPO --json ARGS...`, expecting exit code `want_exit`: its output parsed (null
  // when there is none).
  nlohmann::json J(const std::vector<std::string>& args, int want_exit = 0) {
    std::vector<std::string> a = {"--json"};
    a.insert(a.end(), args.begin(), args.end());
    auto r = S(a);
    EXPECT_EQ(r.exit_code, want_exit) << Describe(r);
    return r.out.empty() ? nlohmann::json() : ParseJson(r);
  }
  // The commit id NAME@REF names ("" if it names none).
  std::string HeadOf(const std::string& ref) {
    nlohmann::json j = J({"show", ref});
    return j.is_object() ? j.value("id", "") : "";
  }

  TempDir dir_;
  std::string repo_;
};

// For each pack with fragments on the volume directories `volumes`, the volumes that hold one
// (a volume once per fragment).
inline std::map<std::string, std::vector<std::string>> FragmentHolders(const std::vector<std::string>& volumes) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& v : volumes) {
    if (!std::filesystem::exists(v + "/fragments")) continue;
    for (const auto& e : std::filesystem::recursive_directory_iterator(v + "/fragments")) {
      if (!e.is_regular_file()) continue;
      std::string name = e.path().filename();
      out[name.substr(0, name.find('.'))].push_back(v);
    }
  }
  return out;
}

// How many fragments each pack has on `volumes`.
inline std::map<std::string, int> FragmentsPerPack(const std::vector<std::string>& volumes) {
  std::map<std::string, int> out;
  for (const auto& [pack, holders] : FragmentHolders(volumes)) out[pack] = static_cast<int>(holders.size());
  return out;
}

}  // namespace strata::testing
