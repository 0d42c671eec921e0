// The AVX-512 VNNI kernels behind int8_kernels.h's Int8Isa::kAvx512Vnni (int8_avx512.cpp). They are
// compiled for that instruction set function by function, so the rest of pmpl keeps its -march
// and these run only where best_int8_isa() found the CPU has them.
#pragma once

#include <cstdint>

#include "models/deploy/int8_kernels.h"

namespace pmpl::deploy::avx512 {

// Whether this build has the kernels and this CPU runs them (AVX-512 F, BW, VL and VNNI).
bool available();

void pointwise(const uint8_t* x, int64_t m, const PackedPointwise& p, void* out);

// False, having done nothing, for a kernel size without a kernel here (3 and 5 have one).
bool depthwise(const uint8_t* x, int64_t batch, int64_t h, int64_t w, const PackedDepthwise& p, void* out);

}  // namespace pmpl::deploy::avx512
