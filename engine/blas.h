// Row-major GEMM through OpenBLAS: C = alpha * op(A) op(B) + beta * C, op(A) [M, K], op(B) [K, N].
#pragma once

#include <cstdint>

namespace pmpl::blas {

template <class T>
void gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, T alpha,
          const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

// The same product on device pointers (cuBLAS, float32, row-major). Without CUDA: an error.
void gemm_device(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                 int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

}  // namespace pmpl::blas
