// The model flags shared by every subcommand that builds a network.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "models/registry.h"

namespace pmpl::cli {

struct ModelFlags {
  std::string name = "mobilenetv2";
  double width = 1.0;
  int64_t num_classes = 1000;
  bool small_input = false;
  std::string genotype;  // path; empty: none
  uint64_t seed = 0;
};

void add_model_flags(CLI::App* cmd, ModelFlags& flags);
std::shared_ptr<Network> build_model_from_flags(const ModelFlags& flags);

}  // namespace pmpl::cli
