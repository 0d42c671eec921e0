#include "tools/bench_baseline.h"

#include <fstream>

#include "engine/error.h"

namespace pmpl::cli {

double Baseline::value(const std::string& key, const std::string& field) const {
  auto it = results.find(key);
  PMPL_CHECK(it != results.end() && it->second.contains(field) && it->second[field].is_number(),
             "{}: {} has no {} for {} (run {} with the same flags)", command, path, field, key, script);
  return it->second[field].get<double>();
}

Baseline read_baseline(const std::string& path, const std::string& command, const std::string& script,
                       const std::string& key_field) {
  Baseline b;
  b.path = path;
  b.command = command;
  b.script = script;
  if (path.empty()) return b;
  std::ifstream in(path);
  PMPL_CHECK(in.good(), "{}: cannot read baseline {}", command, path);
  try {
    const nlohmann::json j = nlohmann::json::parse(in);
    b.label = j.value("label", "baseline");
    for (const auto& r : j.at("results")) b.results[r.at(key_field).get<std::string>()] = r;
  } catch (const nlohmann::json::exception& e) {
    PMPL_CHECK(false, "{}: {} is not a baseline written by {} ({})", command, path, script, e.what());
  }
  return b;
}

}  // namespace pmpl::cli
