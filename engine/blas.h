// Row-major GEMM through OpenBLAS: C = alpha * op(A) op(B) + beta * C, op(A) [M, K], op(B) [K, N].
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace pmpl::blas {

template <class T>
void gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, T alpha,
          const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

// The same product on device pointers (cuBLAS, row-major), all three matrices of `dtype` (f32,
// or bf16 / f16 for mixed precision), accumulated in f32 (no TF32). Without CUDA: an error.
void gemm_device(DType dtype, bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const void* a, int64_t lda, const void* b, int64_t ldb, float beta, void* c, int64_t ldc);

// The int8 product of the quantised runtime: C[i][j] = sum_p (A[i][p] - a_zero) * B[j][p], exact
// in int32, A uint8 [M, K] (row stride lda), B int8 [N, K] (its rows are the output channels,
// stride ldb), C int32 [M, N] (stride ldc). oneDNN's u8s8s32 GEMM where the CPU has VNNI (its
// AVX2 and AVX-512BW kernels may saturate the int16 pair sums, so they are not used); plain
// loops otherwise, or with PMPL_REFERENCE_GEMM=1.
void gemm_u8s8s32(int64_t m, int64_t n, int64_t k, const uint8_t* a, int64_t lda, uint8_t a_zero, const int8_t* b,
                  int64_t ldb, int32_t* c, int64_t ldc);

// Whether gemm_u8s8s32 takes oneDNN's VNNI path on this machine (for benchmarks' headers).
bool int8_gemm_uses_vnni();

}  // namespace pmpl::blas
