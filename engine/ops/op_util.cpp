#include "engine/ops/op_util.h"

#include <algorithm>

namespace pmpl::ops::detail {

void check_cpu_float(const char* op, std::initializer_list<const Tensor*> tensors) {
  const Tensor* first = nullptr;
  for (const Tensor* t : tensors) {
    if (!t->defined()) continue;
    PMPL_CHECK(t->device().is_cpu(),
               "{}: this CPU kernel got a tensor on {}; move the tensors to the CPU", op, t->device().str());
    PMPL_CHECK(t->dtype() == DType::kF32 || t->dtype() == DType::kF64,
               "{}: dtype {} is not supported by CPU kernels (use f32 or f64)", op,
               dtype_name(t->dtype()));
    if (first == nullptr) first = t;
    PMPL_CHECK(t->dtype() == first->dtype(), "{}: mixed dtypes {} and {}", op,
               dtype_name(first->dtype()), dtype_name(t->dtype()));
  }
}

bool check_float(const char* op, std::initializer_list<const Tensor*> tensors) {
  const Tensor* first = nullptr;
  for (const Tensor* t : tensors) {
    if (!t->defined()) continue;
    if (first == nullptr) first = t;
    PMPL_CHECK(t->device() == first->device(), "{}: tensors on {} and {}; move them to one device", op,
               first->device().str(), t->device().str());
  }
  if (first == nullptr || first->device().is_cpu()) {
    check_cpu_float(op, tensors);
    return false;
  }
  const DType dtype = first->dtype();
  PMPL_CHECK(dtype == DType::kF32 || dtype == DType::kBF16 || dtype == DType::kF16,
             "{}: on a GPU this op takes f32, bf16 or f16 tensors, got {}", op, dtype_name(dtype));
  for (const Tensor* t : tensors) {
    PMPL_CHECK(!t->defined() || t->dtype() == dtype, "{}: tensors of {} and {}; cast them to one dtype", op,
               dtype_name(dtype), dtype_name(t->dtype()));
  }
  return true;
}

void check_gpu_f32(const char* op, const Tensor& x) {
  PMPL_CHECK(!x.is_cuda() || x.dtype() == DType::kF32, "{}: on a GPU this op takes f32, got {}; cast it first", op,
             dtype_name(x.dtype()));
}

void check_rank(const char* op, const char* what, const Tensor& x, int rank, const char* layout) {
  PMPL_CHECK(x.rank() == rank, "{}: {} must have {} dimensions [{}], got shape {}", op, what, rank,
             layout, x.shape().str());
}

int64_t window_output_size(const char* op, int64_t input, int kernel, int stride, int padding) {
  PMPL_CHECK(kernel > 0 && stride > 0 && padding >= 0,
             "{}: kernel {}, stride {}, padding {} (kernel and stride must be positive, padding "
             "non-negative)", op, kernel, stride, padding);
  PMPL_CHECK(input + 2 * padding >= kernel,
             "{}: a {}-wide window does not fit an input of {} with padding {}", op, kernel, input,
             padding);
  return (input + 2 * padding - kernel) / stride + 1;
}

template <class T>
void column_sums(const T* x, int64_t rows, int64_t channels, double* out) {
  double* const outs[1] = {out};
  chunked_column_sums<1>(rows, channels, outs, [=](int64_t begin, int64_t end, double* acc) {
    for (int64_t r = begin; r < end; ++r) {
      const T* xr = x + r * channels;
#pragma omp simd
      for (int64_t c = 0; c < channels; ++c) acc[c] += static_cast<double>(xr[c]);
    }
  });
}

template <class T>
void column_sum_and_dot(const T* a, const T* b, int64_t rows, int64_t channels, double* sum_a,
                        double* dot_ab) {
  double* const outs[2] = {sum_a, dot_ab};
  chunked_column_sums<2>(rows, channels, outs, [=](int64_t begin, int64_t end, double* acc) {
    double* sums = acc;
    double* dots = acc + channels;
    for (int64_t r = begin; r < end; ++r) {
      const T* ar = a + r * channels;
      const T* br = b + r * channels;
#pragma omp simd
      for (int64_t c = 0; c < channels; ++c) {
        const double v = static_cast<double>(ar[c]);
        sums[c] += v;
        dots[c] += v * static_cast<double>(br[c]);
      }
    }
  });
}

template <class T>
double contiguous_sum(const T* x, int64_t n, bool parallel) {
  constexpr int64_t kChunk = 4096;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  if (chunks <= 1) {
    double total = 0.0;
#pragma omp simd reduction(+ : total)
    for (int64_t i = 0; i < n; ++i) total += static_cast<double>(x[i]);
    return total;
  }
  const Tensor partial_buffer = scratch<double>(chunks);
  double* partial = partial_buffer.data<double>();
#pragma omp parallel for schedule(static) if (parallel && n > 65536)
  for (int64_t c = 0; c < chunks; ++c) {
    double total = 0.0;
    const int64_t end = std::min(n, (c + 1) * kChunk);
#pragma omp simd reduction(+ : total)
    for (int64_t i = c * kChunk; i < end; ++i) total += static_cast<double>(x[i]);
    partial[c] = total;
  }
  double total = 0.0;
  for (int64_t c = 0; c < chunks; ++c) total += partial[c];
  return total;
}

template double contiguous_sum<float>(const float*, int64_t, bool);
template double contiguous_sum<double>(const double*, int64_t, bool);
template void column_sums<float>(const float*, int64_t, int64_t, double*);
template void column_sums<double>(const double*, int64_t, int64_t, double*);
template void column_sum_and_dot<float>(const float*, const float*, int64_t, int64_t, double*,
                                        double*);
template void column_sum_and_dot<double>(const double*, const double*, int64_t, int64_t, double*,
                                         double*);

}  // namespace pmpl::ops::detail
