// The little of the CUDA runtime the engine needs before the CUDA backend: device discovery,
// raw allocation and copies. Every build has these functions; without PMPL_CUDA they say so.
#pragma once

#include <cstddef>
#include <string>

namespace pmpl::cuda {

bool built_with_cuda();
// Number of usable GPUs; 0 without CUDA, without a driver, or without a device.
int device_count();
// Throws pmpl::Error naming what is missing when `device` cannot be used.
void require_device(int device);
// Makes `device` this thread's current GPU (where kernels launch); checks it exists first.
void set_device(int device);

void* raw_malloc(size_t nbytes, int device);
void raw_free(void* ptr, int device);
// Page-locked host memory; `device` is unused (the allocator interface passes it).
void* host_malloc_pinned(size_t nbytes, int device);
void host_free_pinned(void* ptr, int device);
void memset(void* device_ptr, int value, size_t nbytes);
void copy_to_device(void* dst, const void* host_src, size_t nbytes);
void copy_to_host(void* host_dst, const void* src, size_t nbytes);
void copy_device_to_device(void* dst, const void* src, size_t nbytes);
// `rows` rows of `width` bytes, row r from src + r * src_pitch to dst + r * dst_pitch (both on
// the device): concat and split along an inner axis.
void copy_rows_device(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width, size_t rows);
// Waits for all work queued on the current device (timing, tests).
void synchronize();
// The current device's name ("NVIDIA H100 80GB HBM3").
std::string device_name();
// The current device's compute capability as major * 10 + minor (90 for Hopper).
int compute_capability();

}  // namespace pmpl::cuda
