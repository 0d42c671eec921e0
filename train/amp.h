// --amp: the compute dtype of mixed precision. "auto" is bf16 on a GPU that has it (compute
// capability 8.0 and newer), f32 otherwise; bf16 and fp16 need a GPU; "off" is f32.
#pragma once

#include <string>

#include "engine/device.h"
#include "core/dtype.h"

namespace pmpl {

DType amp_dtype(const std::string& amp, Device device);

}  // namespace pmpl
