#include "engine/blas.h"

#include <cblas.h>

#include <limits>

#include "engine/error.h"

namespace pmpl::blas {
namespace {

blasint checked_int(int64_t v) {
  PMPL_CHECK(v <= std::numeric_limits<blasint>::max(),
             "matrix dimension {} is too large for this BLAS (32-bit indices)", v);
  return static_cast<blasint>(v);
}

CBLAS_TRANSPOSE flag(bool transpose) { return transpose ? CblasTrans : CblasNoTrans; }

}  // namespace

template <>
void gemm<float>(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                 int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  cblas_sgemm(CblasRowMajor, flag(ta), flag(tb), checked_int(m), checked_int(n), checked_int(k),
              alpha, a, checked_int(lda), b, checked_int(ldb), beta, c, checked_int(ldc));
}

template <>
void gemm<double>(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
                  int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  cblas_dgemm(CblasRowMajor, flag(ta), flag(tb), checked_int(m), checked_int(n), checked_int(k),
              alpha, a, checked_int(lda), b, checked_int(ldb), beta, c, checked_int(ldc));
}

}  // namespace pmpl::blas
