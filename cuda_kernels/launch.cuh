// What every CUDA kernel file shares: the block size, grid sizing, a grid-stride loop, the
// launch check, and the storage types of GPU tensors (f32, and bf16 / f16 for mixed precision:
// loaded to f32, computed in f32, rounded once when stored).
#pragma once

#include <cstdint>

#include <string>

#include "core/cuda_check.h"
#include "core/dtype.h"

namespace pmpl::cuda {

inline constexpr int kThreads = 256;

// Blocks for n elements at one per thread, capped: the grid-stride loops cover the rest.
inline int blocks_for(int64_t n) {
  const int64_t wanted = (n + kThreads - 1) / kThreads;
  return static_cast<int>(wanted < 65535 * 32 ? wanted : 65535 * 32);
}

inline void check_launch() { CUDA_CHECK(cudaGetLastError()); }

#define PMPL_FOR_EACH(i, n)                                                               \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

template <class S>
__device__ __forceinline__ float load(const S* p, int64_t i) {
  return static_cast<float>(p[i]);
}
template <class S>
__device__ __forceinline__ void store(S* p, int64_t i, float v) {
  p[i] = S(v);
}

// Runs f(S{}) for a GPU tensor's storage type.
template <class F>
void dispatch_storage(DType dtype, const char* what, F&& f) {
  switch (dtype) {
    case DType::kF32: f(float{}); return;
    case DType::kBF16: f(bf16{}); return;
    case DType::kF16: f(f16{}); return;
    default: throw_internal(__FILE__, __LINE__, std::string(what) + ": no GPU kernel for " + std::string(dtype_name(dtype)));
  }
}

// Runs f(T{}) for any element type (conversions). engine/dispatch.h's dispatch_all does the same
// on the host, but its error formatting (fmt) does not compile under nvcc.
template <class F>
void dispatch_any(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kF32: f(float{}); return;
    case DType::kF64: f(double{}); return;
    case DType::kBF16: f(bf16{}); return;
    case DType::kF16: f(f16{}); return;
    case DType::kI32: f(int32_t{}); return;
    case DType::kI64: f(int64_t{}); return;
    case DType::kU8: f(uint8_t{}); return;
  }
  throw_internal(__FILE__, __LINE__, "unknown dtype " + std::to_string(static_cast<int>(dtype)));
}

}  // namespace pmpl::cuda
