// The `strata` binary's stand-ins for the commands that read foreign formats (ingest, curate,
// transform): each executes strata-data, the same command line interface built with those
// commands, from the directory this binary runs from, with the arguments unchanged (help
// included). See commands.h for why.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cli/commands.h"
#include "strata/env.h"

namespace strata::cli {
namespace {

// This process's arguments exactly as given (the parser has consumed its copy by now).
std::vector<std::string> OwnArguments() {
  auto text = ReadFileToString(Env::Default(), "/proc/self/cmdline");
  if (!text.ok()) throw Failure{text.status()};
  std::vector<std::string> args;
  size_t start = 0;
  while (start < text->size()) {
    size_t end = text->find('\0', start);
    if (end == std::string::npos) end = text->size();
    args.emplace_back(text->substr(start, end - start));
    start = end + 1;
  }
  return args;
}

[[noreturn]] void ExecDataBinary(const char* command) {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) throw Failure{Status::IOError(fmt::format("cannot find this program's path: {}", ec.message()))};
  std::string path = (self.parent_path() / "strata-data").string();
  std::vector<std::string> args = OwnArguments();
  if (args.empty()) args.emplace_back();
  args[0] = path;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execv(path.c_str(), argv.data());
  int err = errno;
  throw Failure{Status::NotFound(fmt::format(
      "`strata {}` runs {}, which could not be started ({}); build or install it next to strata", command,
      path, std::strerror(err)))};
}

// A command whose arguments, --help included, all go to strata-data.
void AddStandIn(CLI::App& app, const char* name, const char* help) {
  auto* cmd = app.add_subcommand(name, help);
  cmd->set_help_flag();
  cmd->prefix_command();
  cmd->allow_extras();
  cmd->fallthrough(false);
  cmd->callback([name] { ExecDataBinary(name); });
}

}  // namespace

void AddIngestCommands(CLI::App& app, Globals&) {
  AddStandIn(app, "ingest", kIngestHelp);
  AddStandIn(app, "curate", kCurateHelp);
}

void AddTransformCommands(CLI::App& app, Globals&) { AddStandIn(app, "transform", kTransformHelp); }

}  // namespace strata::cli
