// CUDA_CHECK, CUBLAS_CHECK, CUDNN_CHECK, NCCL_CHECK: one template (core/error_core.h), one traits
// specialisation per library. Include only from code built with PMPL_CUDA.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "core/error_core.h"

#if __has_include(<cudnn.h>)
#include <cudnn.h>
#define PMPL_HAVE_CUDNN_HEADER 1
#endif
#if __has_include(<nccl.h>)
#include <nccl.h>
#define PMPL_HAVE_NCCL_HEADER 1
#endif

namespace pmpl {

template <>
struct StatusTraits<cudaError_t> {
  static constexpr cudaError_t kSuccess = cudaSuccess;
  static constexpr const char* kLibrary = "CUDA";
  static const char* describe(cudaError_t s) { return cudaGetErrorString(s); }
};

template <>
struct StatusTraits<cublasStatus_t> {
  static constexpr cublasStatus_t kSuccess = CUBLAS_STATUS_SUCCESS;
  static constexpr const char* kLibrary = "cuBLAS";
  static const char* describe(cublasStatus_t s) { return cublasGetStatusString(s); }
};

#ifdef PMPL_HAVE_CUDNN_HEADER
template <>
struct StatusTraits<cudnnStatus_t> {
  static constexpr cudnnStatus_t kSuccess = CUDNN_STATUS_SUCCESS;
  static constexpr const char* kLibrary = "cuDNN";
  static const char* describe(cudnnStatus_t s) { return cudnnGetErrorString(s); }
};
#endif

#ifdef PMPL_HAVE_NCCL_HEADER
template <>
struct StatusTraits<ncclResult_t> {
  static constexpr ncclResult_t kSuccess = ncclSuccess;
  static constexpr const char* kLibrary = "NCCL";
  static const char* describe(ncclResult_t s) { return ncclGetErrorString(s); }
};
#endif

}  // namespace pmpl

#define CUDA_CHECK(call) PMPL_STATUS_CHECK(call)
#define CUBLAS_CHECK(call) PMPL_STATUS_CHECK(call)
#define CUDNN_CHECK(call) PMPL_STATUS_CHECK(call)
#define NCCL_CHECK(call) PMPL_STATUS_CHECK(call)
