#include "engine/cuda_runtime.h"

#include "engine/error.h"

#ifdef PMPL_CUDA
#include "cuda_kernels/fill.h"
#include "core/cuda_check.h"
#endif

namespace pmpl::cuda {

#ifdef PMPL_CUDA

bool built_with_cuda() { return true; }

int device_count() {
  static const int count = [] {
    int n = 0;
    // No driver or no device is not an error here: CPU-only machines report zero GPUs.
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return n;
  }();
  return count;
}

void require_device(int device) {
  const int n = device_count();
  PMPL_CHECK(n > 0, "no CUDA GPU is visible on this machine: run with --device cpu");
  PMPL_CHECK(device >= 0 && device < n, "CUDA device {} does not exist (this machine has {})",
             device, n);
}

void set_device(int device) {
  require_device(device);
  CUDA_CHECK(cudaSetDevice(device));
  PMPL_CHECK(kernels_run_on_current_device(),
             "cuda:{} ({}, compute capability {}) cannot run this build's kernels, compiled for sm_{}: rebuild with "
             "-DCMAKE_CUDA_ARCHITECTURES={}",
             device, device_name(), compute_capability(), PMPL_CUDA_ARCHS, compute_capability());
}

void* raw_malloc(size_t nbytes, int device) {
  CUDA_CHECK(cudaSetDevice(device));
  void* p = nullptr;
  const cudaError_t status = cudaMalloc(&p, nbytes);
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    PMPL_CHECK(false, "out of GPU memory allocating {:.1f} MiB on cuda:{}: lower --batch-size",
               static_cast<double>(nbytes) / (1 << 20), device);
  }
  CUDA_CHECK(status);
  return p;
}

void raw_free(void* ptr, int device) {
  CUDA_CHECK(cudaSetDevice(device));
  CUDA_CHECK(cudaFree(ptr));
}

void* host_malloc_pinned(size_t nbytes, int) {
  void* p = nullptr;
  const cudaError_t status = cudaMallocHost(&p, nbytes);
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    PMPL_CHECK(false, "out of page-locked host memory allocating {:.1f} MiB: lower --batch-size or --workers",
               static_cast<double>(nbytes) / (1 << 20));
  }
  CUDA_CHECK(status);
  return p;
}

void host_free_pinned(void* ptr, int) { CUDA_CHECK(cudaFreeHost(ptr)); }

void memset(void* device_ptr, int value, size_t nbytes) {
  CUDA_CHECK(cudaMemset(device_ptr, value, nbytes));
}

void copy_to_device(void* dst, const void* host_src, size_t nbytes) {
  CUDA_CHECK(cudaMemcpy(dst, host_src, nbytes, cudaMemcpyHostToDevice));
}

void copy_to_host(void* host_dst, const void* src, size_t nbytes) {
  CUDA_CHECK(cudaMemcpy(host_dst, src, nbytes, cudaMemcpyDeviceToHost));
}

void copy_device_to_device(void* dst, const void* src, size_t nbytes) {
  CUDA_CHECK(cudaMemcpy(dst, src, nbytes, cudaMemcpyDeviceToDevice));
}

void copy_rows_device(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width, size_t rows) {
  if (width == 0 || rows == 0) return;
  CUDA_CHECK(cudaMemcpy2D(dst, dst_pitch, src, src_pitch, width, rows, cudaMemcpyDeviceToDevice));
}

void synchronize() { CUDA_CHECK(cudaDeviceSynchronize()); }

std::string device_name() {
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  return prop.name;
}

int compute_capability() {
  int device = 0, major = 0, minor = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  return major * 10 + minor;
}

#else

namespace {
[[noreturn]] void no_cuda() {
  throw_error("this pmpl was built without CUDA: rebuild with -DPMPL_CUDA=ON, or use --device cpu");
}
}  // namespace

bool built_with_cuda() { return false; }
int device_count() { return 0; }
void require_device(int) { no_cuda(); }
void set_device(int) { no_cuda(); }
void* raw_malloc(size_t, int) { no_cuda(); }
void raw_free(void*, int) { no_cuda(); }
void* host_malloc_pinned(size_t, int) { no_cuda(); }
void host_free_pinned(void*, int) { no_cuda(); }
void memset(void*, int, size_t) { no_cuda(); }
void copy_to_device(void*, const void*, size_t) { no_cuda(); }
void copy_to_host(void*, const void*, size_t) { no_cuda(); }
void copy_device_to_device(void*, const void*, size_t) { no_cuda(); }
void copy_rows_device(void*, size_t, const void*, size_t, size_t, size_t) { no_cuda(); }
void synchronize() { no_cuda(); }
std::string device_name() { no_cuda(); }
int compute_capability() { no_cuda(); }

#endif

}  // namespace pmpl::cuda
