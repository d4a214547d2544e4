// The `strata` binary's stand-in for `strata transform`: it executes strata-transform, the same
// command line interface built with the image pipelines, from the directory this binary runs
// from, with the arguments unchanged (help included). See commands.h for why.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "strata/env.h"
#include "cli/commands.h"

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

[[noreturn]] void ExecTransformBinary() {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) throw Failure{Status::IOError(fmt::format("cannot find this program's path: {}", ec.message()))};
  std::string path = (self.parent_path() / "strata-transform").string();
  std::vector<std::string> args = OwnArguments();
  if (args.empty()) args.emplace_back();
  args[0] = path;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execv(path.c_str(), argv.data());
  int err = errno;
  throw Failure{Status::NotFound(fmt::format(
      "`strata transform` runs {}, which could not be started ({}); build or install it next to strata",
      path, std::strerror(err)))};
}

}  // namespace

void AddTransformCommands(CLI::App& app, Globals& g) {
  auto* cmd = app.add_subcommand("transform", kTransformHelp);
  // Everything after the command name, --help included, is for strata-transform.
  cmd->set_help_flag();
  cmd->prefix_command();
  cmd->allow_extras();
  cmd->fallthrough(false);
  cmd->callback([] { ExecTransformBinary(); });
}

}  // namespace strata::cli
