// Subcommands of the `pmpl` CLI: each file tools/cmd_<name>.cpp registers one on the app and
// returns the function that runs it once the command line is parsed.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace pmpl::cli {

using Runner = std::function<void()>;

// `pmpl bench ...`: speed measurements (never tests).
void add_bench_command(CLI::App& app, Runner& run);

}  // namespace pmpl::cli
