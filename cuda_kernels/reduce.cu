#include "cuda_kernels/reduce.h"

#include <cmath>

#include "engine/cuda_check.h"

namespace pmpl::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kRowsPerChunk = 256;

int blocks_for(int64_t n) { return static_cast<int>((n + kThreads - 1) / kThreads); }
int64_t chunks_of(int64_t rows) { return rows == 0 ? 0 : (rows + kRowsPerChunk - 1) / kRowsPerChunk; }
void check_launch() { CUDA_CHECK(cudaGetLastError()); }

// Thread (chunk, j): the chunk's rows of channel j, in order. Neighbouring threads take
// neighbouring channels, so reads coalesce.
__global__ void column_chunks_kernel(const float* a, const float* b, int64_t rows, int64_t c, double* partial_a,
                                     double* partial_ab) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= c) return;
  const int64_t chunk = blockIdx.y;
  const int64_t r1 = (chunk + 1) * kRowsPerChunk < rows ? (chunk + 1) * kRowsPerChunk : rows;
  double s = 0.0, d = 0.0;
  for (int64_t r = chunk * kRowsPerChunk; r < r1; ++r) {
    const double v = a[r * c + j];
    s += v;
    if (b != nullptr) d += v * static_cast<double>(b[r * c + j]);
  }
  partial_a[chunk * c + j] = s;
  if (b != nullptr) partial_ab[chunk * c + j] = d;
}

__global__ void column_total_kernel(const double* partial_a, const double* partial_ab, int64_t chunks, int64_t c,
                                    double* sum_a, double* dot_ab) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= c) return;
  double s = 0.0, d = 0.0;
  for (int64_t k = 0; k < chunks; ++k) {
    s += partial_a[k * c + j];
    if (partial_ab != nullptr) d += partial_ab[k * c + j];
  }
  sum_a[j] = s;
  if (dot_ab != nullptr) dot_ab[j] = d;
}

__global__ void to_floats_kernel(const double* in, double factor, float* out, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = static_cast<float>(in[i] * factor);
}

struct Dims5 {
  int64_t in[5], out[5];
};

__global__ void sum_to_kernel(const float* x, float* y, Dims5 d, int64_t outputs) {
  const int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (o >= outputs) return;
  // Input strides, the output's own index per axis, and the reduced extent.
  int64_t stride[5], kept[5], reduced = 1;
  int64_t s = 1, rest = o;
  for (int a = 4; a >= 0; --a) {
    stride[a] = s;
    s *= d.in[a];
    kept[a] = rest % d.out[a];
    rest /= d.out[a];
    if (d.out[a] == 1 && d.in[a] != 1) reduced *= d.in[a];
  }
  double acc = 0.0;
  for (int64_t r = 0; r < reduced; ++r) {
    int64_t left = r, offset = 0;
    for (int a = 4; a >= 0; --a) {
      int64_t idx = kept[a];
      if (d.out[a] == 1 && d.in[a] != 1) {
        idx = left % d.in[a];
        left /= d.in[a];
      }
      offset += idx * stride[a];
    }
    acc += x[offset];
  }
  y[o] = static_cast<float>(acc);
}

// One thread per row (the rows here are short: classes, or eight alphas).
__global__ void softmax_kernel(const float* x, float* y, int64_t rows, int64_t k, bool log_out) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  const float* xr = x + r * k;
  float* yr = y + r * k;
  float m = xr[0];
  for (int64_t j = 1; j < k; ++j) m = xr[j] > m ? xr[j] : m;
  double total = 0.0;
  for (int64_t j = 0; j < k; ++j) total += exp(static_cast<double>(xr[j] - m));
  if (log_out) {
    const float shift = m + static_cast<float>(log(total));
    for (int64_t j = 0; j < k; ++j) yr[j] = xr[j] - shift;
  } else {
    const double inv = 1.0 / total;
    for (int64_t j = 0; j < k; ++j) yr[j] = static_cast<float>(exp(static_cast<double>(xr[j] - m)) * inv);
  }
}

__global__ void softmax_backward_kernel(const float* y, const float* gy, float* gx, int64_t rows, int64_t k,
                                        bool log_out) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  const float* yr = y + r * k;
  const float* gr = gy + r * k;
  float* dr = gx + r * k;
  double dot = 0.0;
  if (log_out) {
    for (int64_t j = 0; j < k; ++j) dot += gr[j];
    for (int64_t j = 0; j < k; ++j) dr[j] = gr[j] - expf(yr[j]) * static_cast<float>(dot);
  } else {
    for (int64_t j = 0; j < k; ++j) dot += static_cast<double>(gr[j]) * yr[j];
    for (int64_t j = 0; j < k; ++j) dr[j] = yr[j] * (gr[j] - static_cast<float>(dot));
  }
}

__global__ void cross_entropy_rows_kernel(const float* x, const int64_t* labels, int64_t n, int64_t k, double eps,
                                          float* probs, double* row_loss) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= n) return;
  const float* xr = x + r * k;
  float m = xr[0];
  for (int64_t j = 1; j < k; ++j) m = xr[j] > m ? xr[j] : m;
  double total = 0.0, logit_sum = 0.0;
  for (int64_t j = 0; j < k; ++j) {
    total += exp(static_cast<double>(xr[j] - m));
    logit_sum += static_cast<double>(xr[j]);
  }
  const double log_z = static_cast<double>(m) + log(total);
  for (int64_t j = 0; j < k; ++j) probs[r * k + j] = static_cast<float>(exp(xr[j] - log_z));
  const double picked = static_cast<double>(xr[labels[r]]) - log_z;
  const double mean_logp = logit_sum / static_cast<double>(k) - log_z;
  row_loss[r] = -(1.0 - eps) * picked - eps * mean_logp;
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
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n * k) return;
  const int64_t r = i / k, j = i % k;
  const float scale_by = *gloss / static_cast<float>(n);
  const float q = static_cast<float>(eps / static_cast<double>(k)) + (j == labels[r] ? static_cast<float>(1.0 - eps) : 0.0f);
  gx[i] = (probs[i] - q) * scale_by;
}

__global__ void global_pool_kernel(const float* x, float* y, int64_t n, int64_t hw, int64_t c) {
  const int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (o >= n * c) return;
  const int64_t i = o / c, j = o % c;
  double acc = 0.0;
  for (int64_t p = 0; p < hw; ++p) acc += x[(i * hw + p) * c + j];
  y[o] = static_cast<float>(acc / static_cast<double>(hw));
}

__global__ void global_pool_backward_kernel(const float* gy, float* gx, int64_t n, int64_t hw, int64_t c) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= n * hw * c) return;
  const int64_t j = e % c, i = e / (hw * c);
  gx[e] = gy[i * c + j] * static_cast<float>(1.0 / static_cast<double>(hw));
}

__global__ void strip_pool_kernel(const float* x, float* y, int64_t n, int64_t h, int64_t w, int64_t c) {
  const int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (o >= n * (h + w) * c) return;
  const int64_t j = o % c, pos = (o / c) % (h + w), i = o / ((h + w) * c);
  double acc = 0.0;
  if (pos < h) {
    for (int64_t q = 0; q < w; ++q) acc += x[((i * h + pos) * w + q) * c + j];
    y[o] = static_cast<float>(acc / static_cast<double>(w));
  } else {
    const int64_t q = pos - h;
    for (int64_t r = 0; r < h; ++r) acc += x[((i * h + r) * w + q) * c + j];
    y[o] = static_cast<float>(acc / static_cast<double>(h));
  }
}

__global__ void strip_pool_backward_kernel(const float* gy, float* gx, int64_t n, int64_t h, int64_t w, int64_t c) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= n * h * w * c) return;
  const int64_t j = e % c, q = (e / c) % w, r = (e / (c * w)) % h, i = e / (c * w * h);
  const float* rows = gy + i * (h + w) * c;
  gx[e] = rows[r * c + j] * (1.0f / static_cast<float>(w)) + rows[(h + q) * c + j] * (1.0f / static_cast<float>(h));
}

}  // namespace

int64_t column_sums_scratch(int64_t rows, int64_t c) { return 2 * chunks_of(rows) * c; }

void column_sums(const float* a, const float* b, int64_t rows, int64_t c, double* sum_a, double* dot_ab,
                 double* scratch) {
  if (c == 0) return;
  const int64_t chunks = chunks_of(rows);
  double* partial_a = scratch;
  double* partial_ab = b != nullptr ? scratch + chunks * c : nullptr;
  if (chunks > 0) {
    column_chunks_kernel<<<dim3(static_cast<unsigned>(blocks_for(c)), static_cast<unsigned>(chunks)), kThreads>>>(
        a, b, rows, c, partial_a, partial_ab);
    check_launch();
  }
  column_total_kernel<<<blocks_for(c), kThreads>>>(partial_a, partial_ab, chunks, c, sum_a, dot_ab);
  check_launch();
}

void doubles_to_floats(const double* in, double factor, float* out, int64_t n) {
  if (n == 0) return;
  to_floats_kernel<<<blocks_for(n), kThreads>>>(in, factor, out, n);
  check_launch();
}

void sum_to(const float* x, const int64_t in_dims[5], float* y, const int64_t out_dims[5]) {
  Dims5 d;
  int64_t outputs = 1;
  for (int a = 0; a < 5; ++a) {
    d.in[a] = in_dims[a];
    d.out[a] = out_dims[a];
    outputs *= out_dims[a];
  }
  if (outputs == 0) return;
  sum_to_kernel<<<blocks_for(outputs), kThreads>>>(x, y, d, outputs);
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

void global_avg_pool(const float* x, float* y, int64_t n, int64_t hw, int64_t c) {
  if (n * c == 0) return;
  global_pool_kernel<<<blocks_for(n * c), kThreads>>>(x, y, n, hw, c);
  check_launch();
}

void global_avg_pool_backward(const float* gy, float* gx, int64_t n, int64_t hw, int64_t c) {
  if (n * hw * c == 0) return;
  global_pool_backward_kernel<<<blocks_for(n * hw * c), kThreads>>>(gy, gx, n, hw, c);
  check_launch();
}

void strip_pool(const float* x, float* y, int64_t n, int64_t h, int64_t w, int64_t c) {
  if (n * (h + w) * c == 0) return;
  strip_pool_kernel<<<blocks_for(n * (h + w) * c), kThreads>>>(x, y, n, h, w, c);
  check_launch();
}

void strip_pool_backward(const float* gy, float* gx, int64_t n, int64_t h, int64_t w, int64_t c) {
  if (n * h * w * c == 0) return;
  strip_pool_backward_kernel<<<blocks_for(n * h * w * c), kThreads>>>(gy, gx, n, h, w, c);
  check_launch();
}

}  // namespace pmpl::cuda
