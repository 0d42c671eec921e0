// PMPL_HD marks small functions that CPU and CUDA code share, so per-element math is written once.
#pragma once

#if defined(__CUDACC__)
#define PMPL_HD __host__ __device__ __forceinline__
#else
#define PMPL_HD inline
#endif

// Full unrolling where nvcc compiles the loop (a register ring's shifts become renames); nothing
// for the host compiler.
#if defined(__CUDACC__)
#define PMPL_UNROLL _Pragma("unroll")
#else
#define PMPL_UNROLL
#endif
