// blas::gemm_device: cuBLAS on the legacy default stream, one handle per thread. Row-major
// C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T, so the operands go in swapped.
// Written without a GPU: compiled here, checked by Cuda.MatmulAndLinearMatchTheCpu.
#include "engine/blas.h"

#include "engine/error.h"

#if PMPL_CUDA
#include <climits>

#include "engine/cuda_check.h"
#endif

namespace pmpl::blas {

#if PMPL_CUDA
namespace {

cublasHandle_t handle() {
  thread_local cublasHandle_t h = [] {
    cublasHandle_t made = nullptr;
    CUBLAS_CHECK(cublasCreate(&made));
    return made;
  }();
  return h;
}

int as_int(int64_t v) {
  PMPL_CHECK(v <= INT_MAX, "matrix dimension {} is too large for cuBLAS's 32-bit sizes", v);
  return static_cast<int>(v);
}

}  // namespace

void gemm_device(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                 const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  CUBLAS_CHECK(cublasSgemm(handle(), tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, as_int(n),
                           as_int(m), as_int(k), &alpha, b, as_int(ldb), a, as_int(lda), &beta, c, as_int(ldc)));
}

#else

void gemm_device(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t, float,
                 float*, int64_t) {
  PMPL_CHECK(false, "this pmpl was built without CUDA: no GPU matrix products");
}

#endif

}  // namespace pmpl::blas
