#include "engine/flat_update.h"

#include <algorithm>
#include <cmath>

#include "core/kernels/optim.h"
#include "engine/dispatch.h"
#include "engine/error.h"
#if PMPL_CUDA
#include "cuda_kernels/optim.h"
#endif

namespace pmpl::flat {

void sgd_step(const Tensor& w, const Tensor& g, const Tensor& buffer, const Ranges& ranges, int64_t decay_end,
              double lr, double momentum, double weight_decay, bool nesterov, bool first) {
  if (w.is_cuda()) {
#if PMPL_CUDA
    for (const auto& [begin, end] : ranges) {
      cuda::sgd_step(w.data<float>(), g.data<float>(), buffer.data<float>(), begin, end, decay_end,
                     static_cast<float>(lr), static_cast<float>(momentum), static_cast<float>(weight_decay), nesterov,
                     first);
    }
#endif
    return;
  }
  dispatch_float(w.dtype(), "sgd", [&](auto tag) {
    using T = decltype(tag);
    T* wp = w.template data<T>();
    const T* gp = g.template data<T>();
    T* bp = buffer.template data<T>();
    const T rate = static_cast<T>(lr), mu = static_cast<T>(momentum), wd = static_cast<T>(weight_decay);
    for (const auto& [begin, end] : ranges) {
#pragma omp parallel for simd if (parallel: end - begin > 65536)
      for (int64_t i = begin; i < end; ++i) {
        kernels::sgd_update(wp[i], gp[i], bp[i], rate, mu, wd, i < decay_end, nesterov, first);
      }
    }
  });
}

void adam_step(const Tensor& w, const Tensor& g, const Tensor& m, const Tensor& v, const Ranges& ranges,
               double beta1, double beta2, double weight_decay, double eps, double step_size, double root_c2) {
  if (w.is_cuda()) {
#if PMPL_CUDA
    for (const auto& [begin, end] : ranges) {
      cuda::adam_step(w.data<float>(), g.data<float>(), m.data<float>(), v.data<float>(), begin, end,
                      static_cast<float>(beta1), static_cast<float>(beta2), static_cast<float>(weight_decay),
                      static_cast<float>(eps), static_cast<float>(step_size), static_cast<float>(root_c2));
    }
#endif
    return;
  }
  dispatch_float(w.dtype(), "adam", [&](auto tag) {
    using T = decltype(tag);
    T* wp = w.template data<T>();
    const T* gp = g.template data<T>();
    T* mp = m.template data<T>();
    T* vp = v.template data<T>();
    const T b1 = static_cast<T>(beta1), b2 = static_cast<T>(beta2);
    const T wd = static_cast<T>(weight_decay), e = static_cast<T>(eps);
    const T size = static_cast<T>(step_size), root = static_cast<T>(root_c2);
    for (const auto& [begin, end] : ranges) {
      for (int64_t i = begin; i < end; ++i) kernels::adam_update(wp[i], gp[i], mp[i], vp[i], b1, b2, wd, e, size, root);
    }
  });
}

void adamw_step(const Tensor& w, const Tensor& g, const Tensor& m, const Tensor& v, const Ranges& ranges,
                int64_t decay_end, double lr, double beta1, double beta2, double weight_decay, double eps,
                double step_size, double root_c2) {
  const double keep = 1.0 - lr * weight_decay;
  if (w.is_cuda()) {
#if PMPL_CUDA
    for (const auto& [begin, end] : ranges) {
      cuda::adamw_step(w.data<float>(), g.data<float>(), m.data<float>(), v.data<float>(), begin, end, decay_end,
                       static_cast<float>(beta1), static_cast<float>(beta2), static_cast<float>(keep),
                       static_cast<float>(eps), static_cast<float>(step_size), static_cast<float>(root_c2));
    }
#endif
    return;
  }
  dispatch_float(w.dtype(), "adamw", [&](auto tag) {
    using T = decltype(tag);
    T* wp = w.template data<T>();
    const T* gp = g.template data<T>();
    T* mp = m.template data<T>();
    T* vp = v.template data<T>();
    const T b1 = static_cast<T>(beta1), b2 = static_cast<T>(beta2), k = static_cast<T>(keep);
    const T e = static_cast<T>(eps), size = static_cast<T>(step_size), root = static_cast<T>(root_c2);
    for (const auto& [begin, end] : ranges) {
#pragma omp parallel for simd if (parallel: end - begin > 65536)
      for (int64_t i = begin; i < end; ++i) {
        kernels::adamw_update(wp[i], gp[i], mp[i], vp[i], b1, b2, i < decay_end ? k : T(1), e, size, root);
      }
    }
  });
}

void lamb_step(const Tensor& w, const Tensor& g, const Tensor& m, const Tensor& v, const Tensor& u,
               const std::vector<LambSegment>& segments, const Tensor& grad_squares, double max_grad_norm, double lr,
               double beta1, double beta2, double weight_decay, double eps, double c1, double root_c2) {
  if (segments.empty()) return;
  if (w.is_cuda()) {
#if PMPL_CUDA
    std::vector<int64_t> table;
    for (const LambSegment& s : segments) table.insert(table.end(), {s.begin, s.end, s.adapt ? 1 : 0});
    const Tensor device_table = Tensor::from_vector(table, Shape{static_cast<int64_t>(table.size())}).to(w.device());
    cuda::lamb_step(w.data<float>(), g.data<float>(), m.data<float>(), v.data<float>(), u.data<float>(),
                    device_table.data<int64_t>(), static_cast<int>(segments.size()), grad_squares.data<double>(),
                    max_grad_norm, static_cast<float>(lr), static_cast<float>(beta1), static_cast<float>(beta2),
                    static_cast<float>(weight_decay), static_cast<float>(eps), static_cast<float>(c1),
                    static_cast<float>(root_c2));
#endif
    return;
  }
  const double norm = std::sqrt(grad_squares.item());
  dispatch_float(w.dtype(), "lamb", [&](auto tag) {
    using T = decltype(tag);
    T* wp = w.template data<T>();
    const T* gp = g.template data<T>();
    T* mp = m.template data<T>();
    T* vp = v.template data<T>();
    T* up = u.template data<T>();
    const T clip = static_cast<T>(norm > max_grad_norm ? norm / max_grad_norm : 1.0);
    const T b1 = static_cast<T>(beta1), b2 = static_cast<T>(beta2), e = static_cast<T>(eps);
    const T bc1 = static_cast<T>(c1), root = static_cast<T>(root_c2), step = static_cast<T>(-lr);
#pragma omp parallel for schedule(dynamic) if (segments.size() > 8)
    for (size_t k = 0; k < segments.size(); ++k) {
      const LambSegment& s = segments[k];
      const T wd = s.adapt ? static_cast<T>(weight_decay) : T(0);
      double w_squares = 0.0, u_squares = 0.0;
      for (int64_t i = s.begin; i < s.end; ++i) {
        up[i] = kernels::lamb_direction(wp[i], gp[i] / clip, mp[i], vp[i], b1, b2, bc1, root, e, wd);
        w_squares += static_cast<double>(wp[i]) * static_cast<double>(wp[i]);
        u_squares += static_cast<double>(up[i]) * static_cast<double>(up[i]);
      }
      const T trust = static_cast<T>(kernels::lamb_trust_ratio(w_squares, u_squares, s.adapt && weight_decay != 0.0));
      for (int64_t i = s.begin; i < s.end; ++i) wp[i] = wp[i] + step * (up[i] * trust);
    }
  });
}

void rmsprop_tf_step(const Tensor& w, const Tensor& g, const Tensor& square_avg, const Tensor& buffer,
                     const Ranges& ranges, int64_t decay_end, double lr, double rho, double momentum,
                     double weight_decay, double eps) {
  if (w.is_cuda()) {
#if PMPL_CUDA
    for (const auto& [begin, end] : ranges) {
      cuda::rmsprop_tf_step(w.data<float>(), g.data<float>(), square_avg.data<float>(), buffer.data<float>(), begin,
                            end, decay_end, static_cast<float>(lr), static_cast<float>(rho),
                            static_cast<float>(momentum), static_cast<float>(weight_decay), static_cast<float>(eps));
    }
#endif
    return;
  }
  dispatch_float(w.dtype(), "rmsprop_tf", [&](auto tag) {
    using T = decltype(tag);
    T* wp = w.template data<T>();
    const T* gp = g.template data<T>();
    T* sp = square_avg.template data<T>();
    T* bp = buffer.template data<T>();
    const T rate = static_cast<T>(lr), r = static_cast<T>(rho), mu = static_cast<T>(momentum);
    const T wd = static_cast<T>(weight_decay), e = static_cast<T>(eps);
    for (const auto& [begin, end] : ranges) {
#pragma omp parallel for simd if (parallel: end - begin > 65536)
      for (int64_t i = begin; i < end; ++i) {
        kernels::rmsprop_tf_update(wp[i], gp[i], sp[i], bp[i], rate, r, mu, wd, e, i < decay_end);
      }
    }
  });
}

Tensor sum_squares(const Tensor& g, const Ranges& ranges) {
  if (g.is_cuda()) {
#if PMPL_CUDA
    int64_t longest = 0;
    for (const auto& [begin, end] : ranges) longest = std::max(longest, end - begin);
    const Tensor total = Tensor::zeros(Shape{1}, DType::kF64, g.device());
    const Tensor scratch =
        Tensor::empty(Shape{std::max<int64_t>(1, cuda::sum_squares_scratch(longest))}, DType::kF64, g.device());
    for (const auto& [begin, end] : ranges) {
      cuda::sum_squares(g.data<float>(), begin, end, total.data<double>(), scratch.data<double>());
    }
    return total;
#endif
  }
  double sq = 0.0;
  dispatch_float(g.dtype(), "sum_squares", [&](auto tag) {
    using T = decltype(tag);
    const T* gp = g.template data<T>();
    for (const auto& [begin, end] : ranges) {
      for (int64_t i = begin; i < end; ++i) sq += static_cast<double>(gp[i]) * static_cast<double>(gp[i]);
    }
  });
  return Tensor::full(Shape{1}, sq, DType::kF64);
}

void clip_by_norm(const Tensor& g, const Ranges& ranges, const Tensor& sum_squares, double max_norm) {
  if (g.is_cuda()) {
#if PMPL_CUDA
    float* gp = g.data<float>();
    for (const auto& [begin, end] : ranges) cuda::clip_by_norm(gp, begin, end, sum_squares.data<double>(), max_norm);
#endif
    return;
  }
  const double norm = std::sqrt(sum_squares.item());
  if (norm <= max_norm) return;
  dispatch_float(g.dtype(), "clip_by_norm", [&](auto tag) {
    using T = decltype(tag);
    T* gp = g.template data<T>();
    const auto factor = static_cast<T>(max_norm / (norm + 1e-6));
    for (const auto& [begin, end] : ranges) {
      for (int64_t i = begin; i < end; ++i) gp[i] *= factor;
    }
  });
}

}  // namespace pmpl::flat
