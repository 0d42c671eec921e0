// Shared by the op files: argument checks with clear messages, and the few loops several ops
// need (deterministic per-channel sums).
#pragma once

#include <algorithm>
#include <initializer_list>
#include <string_view>
#include <vector>

#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "core/kernels/indexing.h"
#include "engine/ops.h"
#include "engine/tensor.h"

namespace pmpl::ops::detail {

// All defined tensors are CPU tensors of one floating dtype (the first one's).
void check_cpu_float(const char* op, std::initializer_list<const Tensor*> tensors);
// For ops with a CUDA path: all defined tensors on one device, of one floating dtype (f32 or f64
// on the CPU; f32, bf16 or f16 on a GPU). True when they are on a GPU.
bool check_float(const char* op, std::initializer_list<const Tensor*> tensors);
// Ops whose GPU kernels are f32 only (the loss, softmax, the CPU search's weighted sum): a clear
// error for a low-precision tensor on a GPU, which mixed precision casts to f32 first.
void check_gpu_f32(const char* op, const Tensor& x);
// Runs f(T{}) for x's element type: f32 or f64 on the CPU; f32, bf16 or f16 on a GPU (where the
// kernels compute in f32). For ops whose code is written once for both devices.
template <class F>
decltype(auto) dispatch_device_float(const Tensor& x, const char* op, F&& f) {
  if (x.is_cuda()) {
    switch (x.dtype()) {
      case DType::kF32: return f(float{});
      case DType::kBF16: return f(bf16{});
      case DType::kF16: return f(f16{});
      default: break;
    }
    throw_error(fmt::format("{}: dtype {} has no GPU kernels (use f32, bf16 or f16)", op, dtype_name(x.dtype())));
  }
  return dispatch_float(x.dtype(), op, std::forward<F>(f));
}

// `x` has `rank` dimensions; `layout` names them for the message ("N, H, W, C").
void check_rank(const char* op, const char* what, const Tensor& x, int rank, const char* layout);
// Output size of a window op, with a clear error when the window does not fit.
int64_t window_output_size(const char* op, int64_t input, int kernel, int stride, int padding);

// out[c] = sum over rows of x[r * C + c], accumulated in double. Rows are cut into a fixed number
// of chunks that depends only on `rows`, so the result is the same for every thread count (the
// bit-exact resume promise relies on it).
template <class T>
void column_sums(const T* x, int64_t rows, int64_t channels, double* out);
// Sum of n contiguous values in double, in fixed chunks added in order (deterministic for any
// thread count); parallel when `parallel` and n is large.
template <class T>
double contiguous_sum(const T* x, int64_t n, bool parallel);

// Both in one pass: sum_a[c] = sum over rows of a, dot_ab[c] = sum over rows of a * b
// (b = a gives the sum of squares).
template <class T>
void column_sum_and_dot(const T* a, const T* b, int64_t rows, int64_t channels, double* sum_a,
                        double* dot_ab);

// The five-dimensional strides of a broadcast between shapes a and b, as the GPU kernels take
// them (kernels::broadcast_offsets); a clear error when the shapes do not broadcast.
kernels::Broadcast5 broadcast5(const char* op, const Shape& a, const Shape& b);

// x repeated NumPy-style to `shape` (unrecorded; the forward of a broadcast's backward).
Tensor broadcast_to(const Tensor& x, const Shape& shape);

// Scratch memory from the caching allocator. Large std::vectors go to mmap and back to the
// system on every call, and re-faulting them cost ~10% of a training step.
template <class T>
Tensor scratch(int64_t count) {
  return Tensor::empty(Shape{count}, dtype_of<T>);
}

// The chunk driver behind the column sums, for ops with their own per-row terms: runs
// add_rows(begin, end, acc) over fixed chunks of rows (the chunking depends only on `rows`),
// each into its own zeroed kOutputs x channels accumulator, in parallel, then adds the chunks in
// order into out[k].
template <int kOutputs, class AddRows>
void chunked_column_sums(int64_t rows, int64_t channels, double* const (&out)[kOutputs],
                         AddRows add_rows) {
  constexpr int64_t kRowsPerChunk = 256;
  const int64_t chunks = std::max<int64_t>(1, (rows + kRowsPerChunk - 1) / kRowsPerChunk);
  const Tensor partial_buffer = scratch<double>(kOutputs * chunks * channels);
  double* partial = partial_buffer.data<double>();
#pragma omp parallel for schedule(static) if (rows * channels > 32768)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    double* acc = partial + kOutputs * chunk * channels;
    std::fill(acc, acc + kOutputs * channels, 0.0);
    add_rows(chunk * kRowsPerChunk, std::min(rows, (chunk + 1) * kRowsPerChunk), acc);
  }
  for (int k = 0; k < kOutputs; ++k) {
    std::fill(out[k], out[k] + channels, 0.0);
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      const double* a = partial + (kOutputs * chunk + k) * channels;
      for (int64_t c = 0; c < channels; ++c) out[k][c] += a[c];
    }
  }
}

// Shape of `x` with `rows` flattened: [rows, last dim]. For per-channel work on NHWC tensors.
inline int64_t rows_of(const Tensor& x) { return x.numel() / x.dim(-1); }

}  // namespace pmpl::ops::detail
