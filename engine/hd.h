// PMPL_HD marks small functions that CPU and CUDA code share, so per-element math is written once.
#pragma once

#if defined(__CUDACC__)
#define PMPL_HD __host__ __device__ __forceinline__
#else
#define PMPL_HD inline
#endif
