// A genotype: for each Meta-Pooling enhancer (by name), the op or two ops it is fixed to, "none"
// for an enhancer removed (the backbone's block exactly, no batchnorm or hardswish either), or
// nothing while it is still searching. Written as JSON next to checkpoints:
//   {"format": "pmpl-genotype", "version": 1,
//    "enhancers": [{"name": "features.2.enhancer", "ops": ["max7"]}, ...]}
// ("ops": [] for an enhancer still open, ["none"] for one removed).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "layers/pool_op.h"

namespace pmpl {

struct Genotype {
  // The op name that removes an enhancer.
  static constexpr std::string_view kRemovedName = "none";

  struct Entry {
    std::string name;
    std::vector<PoolOp> ops;  // empty: still searching, unless removed
    bool removed = false;     // "none": no enhancer at all (ops is empty)

    bool fixed() const { return removed || !ops.empty(); }
    // "max3", "max3+avg5", "none", or "" while searching: what logs and summaries print.
    std::string label() const;
  };
  std::vector<Entry> enhancers;

  bool complete() const;
  nlohmann::json to_json() const;
  // Throws pmpl::Error (naming `where`) on anything but a well-formed genotype.
  static Genotype from_json(const nlohmann::json& j, const std::string& where);
  static Genotype load(const std::string& path);
  // Written to a temporary file and renamed: a crash never leaves half a genotype.
  void save(const std::string& path) const;
};

}  // namespace pmpl
