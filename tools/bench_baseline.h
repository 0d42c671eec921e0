// Baselines for `pmpl bench ...`: a JSON written by a tools/bench_*_torch.py script on the same
// machine, {"label": ..., "results": [{KEY_FIELD: ..., numbers...}]}, read into one table so
// each bench prints the baseline's number and the ratio beside its own.
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace pmpl::cli {

struct Baseline {
  std::string label = "baseline";
  std::map<std::string, nlohmann::json> results;  // by the key field

  // results[key][field]; a one-line error naming `script` (which writes it) when absent.
  double value(const std::string& key, const std::string& field) const;

  std::string path, command, script;
};

// Reads `path` (an empty path gives an empty Baseline). `command` ("bench train") and `script`
// ("tools/bench_torch_cpu.py") name the producer and consumer in error messages.
Baseline read_baseline(const std::string& path, const std::string& command, const std::string& script,
                       const std::string& key_field = "key");

}  // namespace pmpl::cli
