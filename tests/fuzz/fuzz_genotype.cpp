// libFuzzer target for genotype files (models/genotype.h), which `pmpl train --genotype`, `pmpl
// eval` and resumed searches read: any input is refused with a pmpl::Error (one clear line, exit
// 2) or gives a genotype that survives a round trip through its JSON unchanged. Any other
// exception escaping from_json (a JSON type error, say) would be an exit-1 crash for a user's
// typo, and libFuzzer reports it.
#include <cstddef>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "core/error_core.h"
#include "models/genotype.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr, false);
  if (j.is_discarded()) return 0;  // not JSON: Genotype::load reports that itself
  pmpl::Genotype g;
  try {
    g = pmpl::Genotype::from_json(j, "input");
  } catch (const pmpl::Error&) {
    return 0;
  }
  const nlohmann::json once = g.to_json();
  if (pmpl::Genotype::from_json(once, "round trip").to_json() != once) __builtin_trap();
  return 0;
}
