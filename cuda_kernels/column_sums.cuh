// Deterministic per-channel sums over the rows of a [rows, c] array of values that a getter
// produces (get(r, j, a, b) sets the two terms, as doubles) (a plain array, or batchnorm's masked gradient computed on the fly, never stored):
// sum_a[j] = sum_r a(r, j) and, with two terms, sum_b[j] = sum_r b(r, j), in double.
//   Pass 1: a block covers a tile of up to 256 channels and a chunk of rows; its threads are
//   lanes over channels x lanes over rows (adjacent threads read adjacent addresses), each lane
//   adds its rows in order, then the row lanes are added in order.
//   Pass 2: a block per channel adds the chunks' partial sums in a fixed tree.
// The chunking depends only on (rows, c), so a result never depends on timing: the same inputs
// give the same bits on every run. The split itself is core/kernels/column_plan.h, plain C++
// that a CPU test checks covers every element once.
#pragma once

#include "cuda_kernels/launch.cuh"
#include "core/kernels/column_plan.h"

namespace pmpl::cuda {

using kernels::column_plan;
using kernels::ColumnPlan;
static_assert(kernels::kColumnThreads == kThreads, "the plan's block size is the launch's");

// Doubles of scratch column_sums_with needs.
inline int64_t column_scratch(const ColumnPlan& p) { return 2 * p.chunks * p.c; }

template <bool kTwo, class Get>
__global__ void column_chunks_kernel(Get get, ColumnPlan p, double* partial_a, double* partial_b) {
  __shared__ double sa[kThreads];
  __shared__ double sb[kThreads];
  kernels::ColumnWork w;
  const bool busy = kernels::column_work(p, blockIdx.x, blockIdx.y, static_cast<int>(threadIdx.x), w);
  double s = 0.0, d = 0.0;
  if (busy) {
    for (int64_t r = w.r0; r < w.r1; r += w.step) {
      double a, b;
      get(r, w.j, a, b);
      s += a;
      if (kTwo) d += b;
    }
  }
  sa[threadIdx.x] = s;
  sb[threadIdx.x] = d;
  __syncthreads();
  if (w.lane_r == 0 && w.j < p.c) {
    for (int l = 1; l < p.lanes_r; ++l) {
      s += sa[l * p.lanes_c + w.lane_c];
      if (kTwo) d += sb[l * p.lanes_c + w.lane_c];
    }
    partial_a[static_cast<int64_t>(blockIdx.y) * p.c + w.j] = s;
    if (kTwo) partial_b[static_cast<int64_t>(blockIdx.y) * p.c + w.j] = d;
  }
}

template <bool kTwo>
__global__ void column_finish_kernel(const double* partial_a, const double* partial_b, ColumnPlan p, double* sum_a,
                                     double* sum_b) {
  __shared__ double sa[kThreads];
  __shared__ double sb[kThreads];
  const int64_t j = blockIdx.x;
  double s = 0.0, d = 0.0;
  for (int64_t k = threadIdx.x; k < p.chunks; k += kThreads) {
    s += partial_a[k * p.c + j];
    if (kTwo) d += partial_b[k * p.c + j];
  }
  sa[threadIdx.x] = s;
  sb[threadIdx.x] = d;
  __syncthreads();
  for (int width = kThreads / 2; width > 0; width /= 2) {
    if (static_cast<int>(threadIdx.x) < width) {
      sa[threadIdx.x] += sa[threadIdx.x + width];
      if (kTwo) sb[threadIdx.x] += sb[threadIdx.x + width];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    sum_a[j] = sa[0];
    if (kTwo) sum_b[j] = sb[0];
  }
}

// sum_a (and, kTwo, sum_b): c doubles in device memory; scratch: column_scratch(p) doubles.
template <bool kTwo, class Get>
void column_sums_with(const Get& get, const ColumnPlan& p, double* sum_a, double* sum_b, double* scratch) {
  if (p.c == 0) return;
  if (p.chunks == 0) {  // no rows: zero sums
    CUDA_CHECK(cudaMemsetAsync(sum_a, 0, static_cast<size_t>(p.c) * sizeof(double)));
    if (kTwo) CUDA_CHECK(cudaMemsetAsync(sum_b, 0, static_cast<size_t>(p.c) * sizeof(double)));
    return;
  }
  double* partial_a = scratch;
  double* partial_b = scratch + p.chunks * p.c;
  column_chunks_kernel<kTwo><<<dim3(static_cast<unsigned>(p.tiles), static_cast<unsigned>(p.chunks)), kThreads>>>(
      get, p, partial_a, partial_b);
  check_launch();
  column_finish_kernel<kTwo><<<static_cast<unsigned>(p.c), kThreads>>>(partial_a, partial_b, p, sum_a, sum_b);
  check_launch();
}

}  // namespace pmpl::cuda
