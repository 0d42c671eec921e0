// `pmpl train --recipe NAME`: named sets of flags from published training scripts, each flag
// applied only where the command line does not give it (so any of them stays overridable), and
// recorded in config.json with the recipe's name.
#pragma once

#include <CLI/CLI.hpp>

#include <set>
#include <string>

#include "train/trainer.h"

namespace pmpl::cli {

// The recipes' names, for --help and errors.
std::string recipe_names();
// Sets `c`'s fields that the recipe names and `cmd` did not get on its command line; returns the
// flags it set.
std::set<std::string> apply_recipe(const std::string& name, const CLI::App& cmd, TrainConfig& c);

}  // namespace pmpl::cli
