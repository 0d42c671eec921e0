// Fills device memory with a repeated element (1, 2, 4 or 8 bytes): every dtype's fill_ on CUDA.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pmpl::cuda {

void fill_pattern(void* data, size_t count, size_t element_size, uint64_t pattern);
// *counter += delta in device memory, queued like a kernel (batchnorm's num_batches_tracked).
void add_to_counter(int64_t* counter, int64_t delta);
// Whether this build's kernels can run on the current device (they are compiled for
// CMAKE_CUDA_ARCHITECTURES only: sm_90 by default).
bool kernels_run_on_current_device();

}  // namespace pmpl::cuda
