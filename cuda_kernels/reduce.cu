#include "cuda_kernels/reduce.h"

#include <cmath>

#include "cuda_kernels/column_sums.cuh"
#include "core/kernels/indexing.h"
#include "core/kernels/softmax.h"

namespace pmpl::cuda {
namespace {

// a[r, j] and a[r, j] * b[r, j] of two [rows, c] arrays (b may be null: one term).
template <class S>
struct ArrayTerms {
  const S* a;
  const S* b;
  int64_t c;
  __device__ void operator()(int64_t r, int64_t j, double& ta, double& tb) const {
    ta = static_cast<double>(load(a, r * c + j));
    tb = b != nullptr ? ta * static_cast<double>(load(b, r * c + j)) : 0.0;
  }
};

template <class S>
__global__ void doubles_to_kernel(const double* in, double factor, S* out, int64_t n) {
  PMPL_FOR_EACH(i, n) store(out, i, static_cast<float>(in[i] * factor));
}

using kernels::Dims5;

template <class S>
__global__ void sum_to_kernel(const S* x, S* y, Dims5 d, int64_t outputs) {
  PMPL_FOR_EACH(o, outputs) store(y, o, static_cast<float>(kernels::sum_to_value(x, d, o)));
}

// One thread per row (the rows here are short: classes, or eight alphas).
__global__ void softmax_kernel(const float* x, float* y, int64_t rows, int64_t k, bool log_out) {
  PMPL_FOR_EACH(r, rows) kernels::softmax_row(x + r * k, y + r * k, k, log_out);
}

__global__ void softmax_backward_kernel(const float* y, const float* gy, float* gx, int64_t rows, int64_t k,
                                        bool log_out) {
  PMPL_FOR_EACH(r, rows) kernels::softmax_row_backward(y + r * k, gy + r * k, gx + r * k, k, log_out);
}

__global__ void cross_entropy_rows_kernel(const float* x, const int64_t* labels, int64_t n, int64_t k, double eps,
                                          float* probs, double* row_loss) {
  PMPL_FOR_EACH(r, n) row_loss[r] = kernels::cross_entropy_row(x + r * k, labels[r], k, eps, probs + r * k);
}

// The rows' losses added in order by one thread: n is a batch size.
__global__ void mean_kernel(const double* values, int64_t n, float* out) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) total += values[i];
  *out = static_cast<float>(total / static_cast<double>(n));
}

__global__ void cross_entropy_backward_kernel(const float* probs, const int64_t* labels, const float* gloss,
                                              int64_t n, int64_t k, double eps, float* gx) {
  const float scale_by = *gloss / static_cast<float>(n);
  const float smooth = static_cast<float>(eps / static_cast<double>(k)), hit = static_cast<float>(1.0 - eps);
  PMPL_FOR_EACH(i, n * k) {
    const int64_t r = i / k;
    gx[i] = kernels::cross_entropy_grad(probs[i], labels[r], i % k, k, smooth, hit, scale_by);
  }
}

template <class S>
__global__ void global_pool_kernel(const S* x, S* y, int64_t n, int64_t hw, int64_t c) {
  PMPL_FOR_EACH(o, n * c) {
    const int64_t i = o / c, j = o % c;
    double acc = 0.0;
    for (int64_t p = 0; p < hw; ++p) acc += static_cast<double>(load(x, (i * hw + p) * c + j));
    store(y, o, static_cast<float>(acc / static_cast<double>(hw)));
  }
}

template <class S>
__global__ void global_pool_backward_kernel(const S* gy, S* gx, int64_t n, int64_t hw, int64_t c) {
  const float inv = static_cast<float>(1.0 / static_cast<double>(hw));
  PMPL_FOR_EACH(e, n * hw * c) {
    const int64_t j = e % c, i = e / (hw * c);
    store(gx, e, load(gy, i * c + j) * inv);
  }
}

template <class S>
__global__ void strip_pool_kernel(const S* x, S* y, int64_t n, int64_t h, int64_t w, int64_t c) {
  PMPL_FOR_EACH(o, n * (h + w) * c) store(y, o, static_cast<float>(kernels::strip_pool_value(x, h, w, c, o)));
}

template <class S>
__global__ void strip_pool_backward_kernel(const S* gy, S* gx, int64_t n, int64_t h, int64_t w, int64_t c) {
  PMPL_FOR_EACH(e, n * h * w * c) store(gx, e, kernels::strip_pool_grad(gy, h, w, c, e));
}

}  // namespace

int64_t column_sums_scratch(int64_t rows, int64_t c) { return column_scratch(column_plan(rows, c)); }

void column_sums(DType dtype, const void* a, const void* b, int64_t rows, int64_t c, double* sum_a, double* dot_ab,
                 double* scratch) {
  const ColumnPlan plan = column_plan(rows, c);
  dispatch_storage(dtype, "column_sums", [&](auto tag) {
    using S = decltype(tag);
    const ArrayTerms<S> terms{static_cast<const S*>(a), static_cast<const S*>(b), c};
    if (b != nullptr) column_sums_with<true>(terms, plan, sum_a, dot_ab, scratch);
    else column_sums_with<false>(terms, plan, sum_a, nullptr, scratch);
  });
}

void doubles_to(const double* in, double factor, void* out, DType out_dtype, int64_t n) {
  if (n == 0) return;
  dispatch_storage(out_dtype, "doubles_to", [&](auto tag) {
    using S = decltype(tag);
    doubles_to_kernel<<<blocks_for(n), kThreads>>>(in, factor, static_cast<S*>(out), n);
  });
  check_launch();
}

void sum_to(DType dtype, const void* x, const int64_t in_dims[5], void* y, const int64_t out_dims[5]) {
  Dims5 d;
  int64_t outputs = 1;
  for (int a = 0; a < 5; ++a) {
    d.in[a] = in_dims[a];
    d.out[a] = out_dims[a];
    outputs *= out_dims[a];
  }
  if (outputs == 0) return;
  dispatch_storage(dtype, "sum_to", [&](auto tag) {
    using S = decltype(tag);
    sum_to_kernel<<<blocks_for(outputs), kThreads>>>(static_cast<const S*>(x), static_cast<S*>(y), d, outputs);
  });
  check_launch();
}

void softmax_rows(const float* x, float* y, int64_t rows, int64_t k, bool log_out) {
  if (rows == 0) return;
  softmax_kernel<<<blocks_for(rows), kThreads>>>(x, y, rows, k, log_out);
  check_launch();
}

void softmax_rows_backward(const float* y, const float* gy, float* gx, int64_t rows, int64_t k, bool log_out) {
  if (rows == 0) return;
  softmax_backward_kernel<<<blocks_for(rows), kThreads>>>(y, gy, gx, rows, k, log_out);
  check_launch();
}

void cross_entropy(const float* logits, const int64_t* labels, int64_t n, int64_t k, double eps, float* probs,
                   float* loss, double* row_loss) {
  if (n == 0) return;
  cross_entropy_rows_kernel<<<blocks_for(n), kThreads>>>(logits, labels, n, k, eps, probs, row_loss);
  check_launch();
  mean_kernel<<<1, 1>>>(row_loss, n, loss);
  check_launch();
}

void cross_entropy_backward(const float* probs, const int64_t* labels, const float* gloss, int64_t n, int64_t k,
                            double eps, float* gx) {
  if (n * k == 0) return;
  cross_entropy_backward_kernel<<<blocks_for(n * k), kThreads>>>(probs, labels, gloss, n, k, eps, gx);
  check_launch();
}

void global_avg_pool(DType dtype, const void* x, void* y, int64_t n, int64_t hw, int64_t c) {
  if (n * c == 0) return;
  dispatch_storage(dtype, "global_avg_pool", [&](auto tag) {
    using S = decltype(tag);
    global_pool_kernel<<<blocks_for(n * c), kThreads>>>(static_cast<const S*>(x), static_cast<S*>(y), n, hw, c);
  });
  check_launch();
}

void global_avg_pool_backward(DType dtype, const void* gy, void* gx, int64_t n, int64_t hw, int64_t c) {
  if (n * hw * c == 0) return;
  dispatch_storage(dtype, "global_avg_pool", [&](auto tag) {
    using S = decltype(tag);
    global_pool_backward_kernel<<<blocks_for(n * hw * c), kThreads>>>(static_cast<const S*>(gy), static_cast<S*>(gx),
                                                                      n, hw, c);
  });
  check_launch();
}

void strip_pool(DType dtype, const void* x, void* y, int64_t n, int64_t h, int64_t w, int64_t c) {
  if (n * (h + w) * c == 0) return;
  dispatch_storage(dtype, "strip_pool", [&](auto tag) {
    using S = decltype(tag);
    strip_pool_kernel<<<blocks_for(n * (h + w) * c), kThreads>>>(static_cast<const S*>(x), static_cast<S*>(y), n, h,
                                                                 w, c);
  });
  check_launch();
}

void strip_pool_backward(DType dtype, const void* gy, void* gx, int64_t n, int64_t h, int64_t w, int64_t c) {
  if (n * h * w * c == 0) return;
  dispatch_storage(dtype, "strip_pool", [&](auto tag) {
    using S = decltype(tag);
    strip_pool_backward_kernel<<<blocks_for(n * h * w * c), kThreads>>>(static_cast<const S*>(gy),
                                                                        static_cast<S*>(gx), n, h, w, c);
  });
  check_launch();
}

}  // namespace pmpl::cuda
