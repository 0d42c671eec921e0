// libFuzzer target for a checkpoint's JSON metadata (train/trainer_state.h, pmpl.trainer, and
// train/model_description.h, pmpl.model), which `pmpl train --resume`, `eval` and `export` read:
// any input is refused with a pmpl::Error (one clear line, exit 2) or gives a value that survives
// a round trip through its JSON unchanged. A JSON library exception escaping, or a float converted
// to an integer out of range (UBSan), is a finding.
#include <cstddef>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "core/error_core.h"
#include "train/model_description.h"
#include "train/trainer_state.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr, false);
  if (j.is_discarded()) return 0;  // not JSON: the resume path reports that itself
  try {
    const nlohmann::json once = pmpl::trainer::TrainerState::from_json(j, "input").to_json();
    if (pmpl::trainer::TrainerState::from_json(once, "round trip").to_json() != once) __builtin_trap();
  } catch (const pmpl::Error&) {
  }
  try {
    const nlohmann::json once = pmpl::ModelDescription::from_json(j, "input").to_json();
    if (pmpl::ModelDescription::from_json(once, "round trip").to_json() != once) __builtin_trap();
  } catch (const pmpl::Error&) {
  }
  return 0;
}
