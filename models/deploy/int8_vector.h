// The vector kernels behind int8_kernels.h's Int8Isa values, one namespace per instruction set:
//  - avx512 (int8_avx512.cpp): AVX-512 VNNI, vpdpbusd's dot products of four uint8 x int8 pairs.
//  - avx2 (int8_avx2.cpp): for x86 CPUs without VNNI. AVX2's one uint8 x int8 dot product,
//    vpmaddubsw, adds its pairs of products in int16 with saturation (why onnxruntime's u8s8
//    kernels lose accuracy on such CPUs), so these widen both operands to int16 and let vpmaddwd
//    add pairs of exact products in int32: the same integers, half the products per instruction.
// Each file is compiled for the project's -march with only its kernels marked for their
// instruction set, so they run only where available() found the CPU has it.
#pragma once

#include <cstdint>

#include "models/deploy/int8_kernels.h"

namespace pmpl::deploy {

namespace avx512 {
// Whether this build has the kernels and this CPU runs them (AVX-512 F, BW, VL and VNNI).
bool available();
void pointwise(const uint8_t* x, int64_t m, const PackedPointwise& p, void* out);
// False, having done nothing, for a kernel size without a kernel here (3 and 5 have one).
bool depthwise(const uint8_t* x, int64_t batch, int64_t h, int64_t w, const PackedDepthwise& p, void* out);
}  // namespace avx512

namespace avx2 {
// Whether this build has the kernels and this CPU runs them (AVX2).
bool available();
void pointwise(const uint8_t* x, int64_t m, const PackedPointwise& p, void* out);
// False, having done nothing, for a kernel size without a kernel here (3 and 5 have one).
bool depthwise(const uint8_t* x, int64_t batch, int64_t h, int64_t w, const PackedDepthwise& p, void* out);
}  // namespace avx2

// The depthwise driver both vector kernels share: the rows of output pixels, in parallel where the
// layer is large enough, each written by Rows::template row<kK, kU8>(image, h, w, p, o, oy, wo,
// dst, out_bytes) (dst: the row's first output). False, having done nothing, for a kernel size
// without a kernel (3 and 5 have one).
template <class Rows, int kK>
void depthwise_rows(const uint8_t* x, int64_t batch, int64_t h, int64_t w, const PackedDepthwise& p, void* out) {
  constexpr int pad = kK / 2;
  const int64_t ho = (h + 2 * pad - kK) / p.stride + 1, wo = (w + 2 * pad - kK) / p.stride + 1;
  const int64_t out_bytes = p.out.u8 ? 1 : 4, row_bytes = wo * p.channels * out_bytes;
  const Int8OutputView o(p.out);
#pragma omp parallel for if (batch * ho * wo * p.channels > 65536)
  for (int64_t r = 0; r < batch * ho; ++r) {
    const uint8_t* image = x + r / ho * h * w * p.channels;
    void* dst = static_cast<char*>(out) + r * row_bytes;
    if (p.out.u8) {
      Rows::template row<kK, true>(image, h, w, p, o, r % ho, wo, dst, out_bytes);
    } else {
      Rows::template row<kK, false>(image, h, w, p, o, r % ho, wo, dst, out_bytes);
    }
  }
}

template <class Rows>
bool depthwise_with(const uint8_t* x, int64_t batch, int64_t h, int64_t w, const PackedDepthwise& p, void* out) {
  switch (p.kernel) {
    case 3: depthwise_rows<Rows, 3>(x, batch, h, w, p, out); return true;
    case 5: depthwise_rows<Rows, 5>(x, batch, h, w, p, out); return true;
    default: return false;
  }
}

}  // namespace pmpl::deploy
