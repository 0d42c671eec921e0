#include "cuda_kernels/fill.h"

#include "core/cuda_check.h"

namespace pmpl::cuda {
namespace {

template <class Word>
__global__ void fill_kernel(Word* data, size_t count, Word value) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    data[i] = value;
  }
}

template <class Word>
void launch(void* data, size_t count, uint64_t pattern) {
  constexpr int kThreads = 256;
  const size_t wanted = (count + kThreads - 1) / kThreads;
  const int blocks = static_cast<int>(wanted < 4096 ? wanted : 4096);
  fill_kernel<Word><<<blocks, kThreads>>>(static_cast<Word*>(data), count, static_cast<Word>(pattern));
  CUDA_CHECK(cudaGetLastError());
}

__global__ void add_kernel(int64_t* counter, int64_t delta) { *counter += delta; }

}  // namespace

bool kernels_run_on_current_device() {
  cudaFuncAttributes attributes{};
  const cudaError_t status = cudaFuncGetAttributes(&attributes, fill_kernel<uint8_t>);
  if (status == cudaSuccess) return true;
  cudaGetLastError();  // clear it: the caller reports
  return false;
}

void add_to_counter(int64_t* counter, int64_t delta) {
  add_kernel<<<1, 1>>>(counter, delta);
  CUDA_CHECK(cudaGetLastError());
}

void fill_pattern(void* data, size_t count, size_t element_size, uint64_t pattern) {
  if (count == 0) return;
  switch (element_size) {
    case 1: launch<uint8_t>(data, count, pattern); break;
    case 2: launch<uint16_t>(data, count, pattern); break;
    case 4: launch<uint32_t>(data, count, pattern); break;
    case 8: launch<uint64_t>(data, count, pattern); break;
    default:
      throw_internal(__FILE__, __LINE__, "fill_pattern: element size " + std::to_string(element_size));
  }
}

}  // namespace pmpl::cuda
