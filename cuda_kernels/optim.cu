#include "cuda_kernels/optim.h"

#include "cuda_kernels/launch.cuh"
#include "core/kernels/optim.h"

namespace pmpl::cuda {
namespace {

constexpr int64_t kPerBlock = 8192;  // elements one block of sum_squares reduces

#define PMPL_FOR_RANGE(i, begin, end)                                                                   \
  for (int64_t i = (begin) + static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (end); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

__global__ void sgd_kernel(float* w, const float* g, float* buf, int64_t begin, int64_t end, int64_t decay_end,
                           float lr, float mu, float wd, bool nesterov, bool first) {
  PMPL_FOR_RANGE(i, begin, end) {
    kernels::sgd_update(w[i], g[i], buf[i], lr, mu, wd, i < decay_end, nesterov, first);
  }
}

__global__ void adam_kernel(float* w, const float* g, float* m, float* v, int64_t begin, int64_t end, float b1,
                            float b2, float wd, float eps, float step_size, float root_c2) {
  PMPL_FOR_RANGE(i, begin, end) {
    kernels::adam_update(w[i], g[i], m[i], v[i], b1, b2, wd, eps, step_size, root_c2);
  }
}

__global__ void adamw_kernel(float* w, const float* g, float* m, float* v, int64_t begin, int64_t end,
                             int64_t decay_end, float b1, float b2, float keep, float eps, float step_size,
                             float root_c2) {
  PMPL_FOR_RANGE(i, begin, end) {
    kernels::adamw_update(w[i], g[i], m[i], v[i], b1, b2, i < decay_end ? keep : 1.0f, eps, step_size, root_c2);
  }
}

__global__ void rmsprop_tf_kernel(float* w, const float* g, float* sq, float* buf, int64_t begin, int64_t end,
                                  int64_t decay_end, float lr, float rho, float mu, float wd, float eps) {
  PMPL_FOR_RANGE(i, begin, end) {
    kernels::rmsprop_tf_update(w[i], g[i], sq[i], buf[i], lr, rho, mu, wd, eps, i < decay_end);
  }
}

// Block b: the squares of [begin + b * kPerBlock, ...) in a fixed tree.
__global__ void block_squares_kernel(const float* g, int64_t begin, int64_t end, double* partial) {
  __shared__ double sums[kThreads];
  const int64_t first = begin + static_cast<int64_t>(blockIdx.x) * kPerBlock;
  const int64_t last = first + kPerBlock < end ? first + kPerBlock : end;
  double s = 0.0;
  for (int64_t i = first + threadIdx.x; i < last; i += kThreads) s += static_cast<double>(g[i]) * g[i];
  sums[threadIdx.x] = s;
  __syncthreads();
  for (int width = kThreads / 2; width > 0; width /= 2) {
    if (threadIdx.x < width) sums[threadIdx.x] += sums[threadIdx.x + width];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = sums[0];
}

__global__ void add_in_order_kernel(const double* partial, int64_t count, double* out) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  double s = 0.0;
  for (int64_t i = 0; i < count; ++i) s += partial[i];
  *out += s;
}

// Block b: segment b of the table. The moments and u in one pass, the squares of w and u summed
// in the block's fixed tree, then the update with the segment's trust ratio.
__global__ void lamb_kernel(float* w, const float* g, float* m, float* v, float* u, const int64_t* table,
                            const double* grad_squares, double max_grad_norm, float lr, float b1, float b2, float wd,
                            float eps, float c1, float root_c2) {
  __shared__ double w_sums[kThreads], u_sums[kThreads];
  __shared__ float trust;
  const int64_t begin = table[3 * blockIdx.x], end = table[3 * blockIdx.x + 1];
  const bool adapt = table[3 * blockIdx.x + 2] != 0;
  const double norm = sqrt(*grad_squares);
  const auto clip = static_cast<float>(norm > max_grad_norm ? norm / max_grad_norm : 1.0);
  const float decay = adapt ? wd : 0.0f;
  double ws = 0.0, us = 0.0;
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) {
    const float d = kernels::lamb_direction(w[i], g[i] / clip, m[i], v[i], b1, b2, c1, root_c2, eps, decay);
    u[i] = d;
    ws += static_cast<double>(w[i]) * w[i];
    us += static_cast<double>(d) * d;
  }
  w_sums[threadIdx.x] = ws;
  u_sums[threadIdx.x] = us;
  __syncthreads();
  for (int width = kThreads / 2; width > 0; width /= 2) {
    if (threadIdx.x < width) {
      w_sums[threadIdx.x] += w_sums[threadIdx.x + width];
      u_sums[threadIdx.x] += u_sums[threadIdx.x + width];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) trust = static_cast<float>(kernels::lamb_trust_ratio(w_sums[0], u_sums[0], adapt && wd != 0.0f));
  __syncthreads();
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) w[i] = w[i] + -lr * (u[i] * trust);
}

__global__ void clip_kernel(float* g, int64_t begin, int64_t end, const double* sum_squares, double max_norm) {
  const double norm = sqrt(*sum_squares);
  if (!(norm > max_norm)) return;
  const auto factor = static_cast<float>(max_norm / (norm + 1e-6));
  PMPL_FOR_RANGE(i, begin, end) g[i] *= factor;
}

}  // namespace

void clip_by_norm(float* g, int64_t begin, int64_t end, const double* sum_squares, double max_norm) {
  if (end <= begin) return;
  clip_kernel<<<blocks_for(end - begin), kThreads>>>(g, begin, end, sum_squares, max_norm);
  check_launch();
}

void sgd_step(float* w, const float* g, float* buf, int64_t begin, int64_t end, int64_t decay_end, float lr, float mu,
              float wd, bool nesterov, bool first) {
  if (end <= begin) return;
  sgd_kernel<<<blocks_for(end - begin), kThreads>>>(w, g, buf, begin, end, decay_end, lr, mu, wd, nesterov, first);
  check_launch();
}

void adam_step(float* w, const float* g, float* m, float* v, int64_t begin, int64_t end, float b1, float b2, float wd,
               float eps, float step_size, float root_c2) {
  if (end <= begin) return;
  adam_kernel<<<blocks_for(end - begin), kThreads>>>(w, g, m, v, begin, end, b1, b2, wd, eps, step_size, root_c2);
  check_launch();
}

int64_t sum_squares_scratch(int64_t n) { return (n + kPerBlock - 1) / kPerBlock; }

void sum_squares(const float* g, int64_t begin, int64_t end, double* out, double* scratch) {
  if (end <= begin) return;
  const int64_t blocks = sum_squares_scratch(end - begin);
  block_squares_kernel<<<static_cast<unsigned>(blocks), kThreads>>>(g, begin, end, scratch);
  check_launch();
  add_in_order_kernel<<<1, 1>>>(scratch, blocks, out);
  check_launch();
}

void adamw_step(float* w, const float* g, float* m, float* v, int64_t begin, int64_t end, int64_t decay_end, float b1,
                float b2, float keep, float eps, float step_size, float root_c2) {
  if (end <= begin) return;
  adamw_kernel<<<blocks_for(end - begin), kThreads>>>(w, g, m, v, begin, end, decay_end, b1, b2, keep, eps, step_size,
                                                      root_c2);
  check_launch();
}

void rmsprop_tf_step(float* w, const float* g, float* square_avg, float* buf, int64_t begin, int64_t end,
                     int64_t decay_end, float lr, float rho, float mu, float wd, float eps) {
  if (end <= begin) return;
  rmsprop_tf_kernel<<<blocks_for(end - begin), kThreads>>>(w, g, square_avg, buf, begin, end, decay_end, lr, rho, mu,
                                                           wd, eps);
  check_launch();
}

void lamb_step(float* w, const float* g, float* m, float* v, float* u, const int64_t* table, int segments,
               const double* grad_squares, double max_grad_norm, float lr, float b1, float b2, float wd, float eps,
               float c1, float root_c2) {
  if (segments <= 0) return;
  lamb_kernel<<<static_cast<unsigned>(segments), kThreads>>>(w, g, m, v, u, table, grad_squares, max_grad_norm, lr, b1,
                                                             b2, wd, eps, c1, root_c2);
  check_launch();
}

}  // namespace pmpl::cuda
