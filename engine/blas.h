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

// Whether PMPL_REFERENCE_GEMM=1 is in the environment: the GEMMs then run plain loops, and the
// int8 runtime its portable kernels.
bool reference_requested();

}  // namespace pmpl::blas
