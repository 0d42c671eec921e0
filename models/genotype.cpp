#include "models/genotype.h"

#include <cstdio>
#include <fstream>

#include "engine/error.h"

namespace pmpl {

std::string Genotype::Entry::label() const {
  if (removed) return std::string(kRemovedName);
  std::string text;
  for (PoolOp op : ops) {
    if (!text.empty()) text += '+';
    text += pool_op_name(op);
  }
  return text;
}

bool Genotype::complete() const {
  for (const Entry& e : enhancers) {
    if (!e.fixed()) return false;
  }
  return !enhancers.empty();
}

nlohmann::json Genotype::to_json() const {
  nlohmann::json list = nlohmann::json::array();
  for (const Entry& e : enhancers) {
    nlohmann::json ops = nlohmann::json::array();
    if (e.removed) ops.push_back(std::string(kRemovedName));
    for (PoolOp op : e.ops) ops.push_back(std::string(pool_op_name(op)));
    list.push_back({{"name", e.name}, {"ops", ops}});
  }
  return {{"format", "pmpl-genotype"}, {"version", 1}, {"enhancers", list}};
}

Genotype Genotype::from_json(const nlohmann::json& j, const std::string& where) {
  // Types are checked before values are read: a wrong type is the user's mistake, not a JSON
  // library exception (found by tests/fuzz/fuzz_genotype.cpp).
  PMPL_CHECK(j.is_object() && j.contains("format") && j["format"].is_string() &&
                 j["format"].get<std::string>() == "pmpl-genotype",
             "{} is not a pmpl genotype (no \"format\": \"pmpl-genotype\")", where);
  PMPL_CHECK(j.contains("version") && j["version"].is_number_integer() && j["version"].get<int64_t>() == 1,
             "{}: genotype version {} is not supported (expected 1)", where,
             j.contains("version") ? j["version"].dump() : std::string("(none)"));
  PMPL_CHECK(j.contains("enhancers") && j["enhancers"].is_array(),
             "{}: genotype has no \"enhancers\" list", where);
  Genotype g;
  for (const nlohmann::json& e : j["enhancers"]) {
    PMPL_CHECK(e.is_object() && e.contains("name") && e["name"].is_string() && e.contains("ops") &&
                   e["ops"].is_array(),
               "{}: each enhancer needs a \"name\" string and an \"ops\" list", where);
    Entry entry{e["name"].get<std::string>(), {}};
    for (const nlohmann::json& op : e["ops"]) {
      PMPL_CHECK(op.is_string(), "{}: {} has an op that is not a string", where, entry.name);
      const std::string name = op.get<std::string>();
      if (name == kRemovedName) {
        PMPL_CHECK(e["ops"].size() == 1, "{}: {} lists \"{}\" with other ops (\"{}\" removes the enhancer: list it "
                   "alone)", where, entry.name, kRemovedName, kRemovedName);
        entry.removed = true;
        continue;
      }
      entry.ops.push_back(parse_pool_op(name));
    }
    PMPL_CHECK(entry.ops.size() <= 2, "{}: {} lists {} ops (at most 2)", where, entry.name,
               entry.ops.size());
    g.enhancers.push_back(std::move(entry));
  }
  return g;
}

Genotype Genotype::load(const std::string& path) {
  std::ifstream in(path);
  PMPL_CHECK(in.good(), "cannot read genotype {}: check the path", path);
  nlohmann::json j;
  try {
    in >> j;
  } catch (const nlohmann::json::exception& e) {
    PMPL_CHECK(false, "{} is not valid JSON ({})", path, e.what());
  }
  return from_json(j, path);
}

void Genotype::save(const std::string& path) const {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    PMPL_CHECK(out.good(), "cannot write {}: check the directory exists and is writable", tmp);
    out << to_json().dump(2) << "\n";
    PMPL_CHECK(out.good(), "writing {} failed (disk full?)", tmp);
  }
  PMPL_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "cannot rename {} to {}", tmp, path);
}

}  // namespace pmpl
