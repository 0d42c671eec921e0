// Fills device memory with a repeated element (1, 2, 4 or 8 bytes): every dtype's fill_ on CUDA.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pmpl::cuda {

void fill_pattern(void* data, size_t count, size_t element_size, uint64_t pattern);
// *counter += delta in device memory, queued like a kernel (batchnorm's num_batches_tracked).
void add_to_counter(int64_t* counter, int64_t delta);

}  // namespace pmpl::cuda
