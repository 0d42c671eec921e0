#include "engine/blas.h"

#include <cstdlib>
#include <limits>
#include <string_view>

#ifndef PMPL_REFERENCE_BLAS
#include <cblas.h>
#endif

#ifdef PMPL_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#endif

#include "engine/error.h"

namespace pmpl::blas {

namespace {

// Plain loops: every element of C is its k products summed in order, rows in parallel, so a row's
// result depends on nothing but its operands: not on the thread count, on how many rows the call
// has, or on which CPU kernels a BLAS picks for them. Correct and slow. What PMPL_REFERENCE_BLAS
// builds always run, and what PMPL_REFERENCE_GEMM=1 in the environment asks for at run time.
template <class T>
void reference_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
                    int64_t ldb, T beta, T* c, int64_t ldc) {
#pragma omp parallel for if (m * n * k > 65536)
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      T acc = T(0);
      for (int64_t p = 0; p < k; ++p) acc += (ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
      c[i * ldc + j] = alpha * acc + (beta == T(0) ? T(0) : beta * c[i * ldc + j]);
    }
  }
}

}  // namespace

bool reference_requested() {
  static const bool on = [] {
    const char* value = std::getenv("PMPL_REFERENCE_GEMM");
    return value != nullptr && std::string_view(value) == "1";
  }();
  return on;
}

#ifdef PMPL_REFERENCE_BLAS
template <>
void gemm<float>(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                 const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  reference_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

template <>
void gemm<double>(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
                  const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  reference_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

#else
namespace {

blasint checked_int(int64_t v) {
  PMPL_CHECK(v <= std::numeric_limits<blasint>::max(),
             "matrix dimension {} is too large for this BLAS (32-bit indices)", v);
  return static_cast<blasint>(v);
}

CBLAS_TRANSPOSE flag(bool transpose) { return transpose ? CblasTrans : CblasNoTrans; }

}  // namespace

// f32 goes to oneDNN's sgemm where pmpl is built with it: on MobileNetV2's tall, narrow 1x1-conv
// products it is 1.5-4x faster than OpenBLAS on this machine's AVX-512 cores (measured with
// both on the same shapes). f64 (gradient checks only) stays with OpenBLAS.
template <>
void gemm<float>(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                 int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (reference_requested()) return reference_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#ifdef PMPL_ONEDNN
  const dnnl_status_t status =
      dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  PMPL_ASSERT(status == dnnl_success, "dnnl_sgemm({}, {}, {}) failed with status {}", m, n, k,
              static_cast<int>(status));
#else
  cblas_sgemm(CblasRowMajor, flag(ta), flag(tb), checked_int(m), checked_int(n), checked_int(k),
              alpha, a, checked_int(lda), b, checked_int(ldb), beta, c, checked_int(ldc));
#endif
}

template <>
void gemm<double>(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
                  int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (reference_requested()) return reference_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  cblas_dgemm(CblasRowMajor, flag(ta), flag(tb), checked_int(m), checked_int(n), checked_int(k),
              alpha, a, checked_int(lda), b, checked_int(ldb), beta, c, checked_int(ldc));
}

#endif

}  // namespace pmpl::blas
