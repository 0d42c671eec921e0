// Row-major GEMM through OpenBLAS: C = alpha * op(A) op(B) + beta * C, op(A) [M, K], op(B) [K, N].
#pragma once

#include <cstdint>

namespace pmpl::blas {

template <class T>
void gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, T alpha,
          const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

}  // namespace pmpl::blas
