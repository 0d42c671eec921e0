#include "train/amp.h"

#include "engine/cuda_runtime.h"
#include "engine/error.h"

namespace pmpl {

DType amp_dtype(const std::string& amp, Device device) {
  PMPL_CHECK(amp == "auto" || amp == "bf16" || amp == "fp16" || amp == "off",
             "--amp '{}': use auto, bf16, fp16 or off", amp);
  if (amp == "off" || (amp == "auto" && device.is_cpu())) return DType::kF32;
  PMPL_CHECK(device.is_cuda(), "--amp {}: mixed precision runs on a GPU; use --device cuda, or --amp off", amp);
  if (amp == "fp16") return DType::kF16;
  const bool has_bf16 = cuda::compute_capability() >= 80;
  if (amp == "auto") return has_bf16 ? DType::kBF16 : DType::kF32;
  PMPL_CHECK(has_bf16, "--amp bf16: this GPU (compute capability {}) has no bf16; use --amp fp16 or off",
             cuda::compute_capability());
  return DType::kBF16;
}

}  // namespace pmpl
