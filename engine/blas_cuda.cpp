// blas::gemm_device: cuBLAS on the legacy default stream, one handle per thread. Row-major
// C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T, so the operands go in swapped.
// Written without a GPU: compiled here, checked by CudaOps.MatmulLinearAndPointwiseConv.
#include "engine/blas.h"

#include "engine/error.h"

#if PMPL_CUDA
#include <climits>

#include "core/cuda_check.h"
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

cudaDataType_t cuda_type(DType dtype) {
  switch (dtype) {
    case DType::kF32: return CUDA_R_32F;
    case DType::kBF16: return CUDA_R_16BF;
    case DType::kF16: return CUDA_R_16F;
    default: PMPL_ASSERT(false, "gemm_device: no GPU matrix product for {}", dtype_name(dtype));
  }
  return CUDA_R_32F;
}

}  // namespace

void gemm_device(DType dtype, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const void* a,
                 int64_t lda, const void* b, int64_t ldb, float beta, void* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  const cudaDataType_t type = cuda_type(dtype);
  CUBLAS_CHECK(cublasGemmEx(handle(), tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, as_int(n),
                            as_int(m), as_int(k), &alpha, b, type, as_int(ldb), a, type, as_int(lda), &beta, c, type,
                            as_int(ldc), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

#else

void gemm_device(DType, bool, bool, int64_t, int64_t, int64_t, float, const void*, int64_t, const void*, int64_t,
                 float, void*, int64_t) {
  PMPL_CHECK(false, "this pmpl was built without CUDA: no GPU matrix products");
}

#endif

}  // namespace pmpl::blas
