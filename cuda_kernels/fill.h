// Fills device memory with a repeated element (1, 2, 4 or 8 bytes): every dtype's fill_ on CUDA.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pmpl::cuda {

void fill_pattern(void* data, size_t count, size_t element_size, uint64_t pattern);

}  // namespace pmpl::cuda
