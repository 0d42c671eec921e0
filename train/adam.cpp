#include "train/adam.h"

#include <cmath>

#include "engine/dispatch.h"
#include "engine/error.h"
#include "engine/kernels/optim.h"
#include "engine/profile.h"
#if PMPL_CUDA
#include "cuda_kernels/optim.h"
#endif

namespace pmpl {

Adam::Adam(ParameterGroup& group, AdamOptions options) : group_(group), options_(options) {
  if (!group.empty()) {
    m_ = zeros_like(group.values());
    v_ = zeros_like(group.values());
  }
}

void Adam::step() {
  if (group_.empty()) return;
  const ProfileRange range("adam step");
  ++steps_;
  const double c1 = 1.0 - std::pow(options_.beta1, static_cast<double>(steps_));
  const double c2 = 1.0 - std::pow(options_.beta2, static_cast<double>(steps_));
  if (group_.values().is_cuda()) {
#if PMPL_CUDA
    for (const auto& [begin, end] : group_.active_ranges()) {
      cuda::adam_step(group_.values().data<float>(), group_.grads().data<float>(), m_.data<float>(), v_.data<float>(),
                      begin, end, static_cast<float>(options_.beta1), static_cast<float>(options_.beta2),
                      static_cast<float>(options_.weight_decay), static_cast<float>(options_.eps),
                      static_cast<float>(options_.lr / c1), static_cast<float>(std::sqrt(c2)));
    }
#endif
    return;
  }
  dispatch_float(group_.values().dtype(), "adam", [&](auto tag) {
    using T = decltype(tag);
    T* w = group_.values().template data<T>();
    const T* g = group_.grads().template data<T>();
    T* m = m_.data<T>();
    T* v = v_.data<T>();
    const T b1 = static_cast<T>(options_.beta1), b2 = static_cast<T>(options_.beta2);
    const T wd = static_cast<T>(options_.weight_decay), eps = static_cast<T>(options_.eps);
    const T step_size = static_cast<T>(options_.lr / c1), root_c2 = static_cast<T>(std::sqrt(c2));
    for (const auto& [begin, end] : group_.active_ranges()) {
      for (int64_t i = begin; i < end; ++i) kernels::adam_update(w[i], g[i], m[i], v[i], b1, b2, wd, eps, step_size, root_c2);
    }
  });
}

void Adam::restore(const Tensor& m, const Tensor& v, int64_t steps) {
  PMPL_CHECK(m.shape() == m_.shape() && v.shape() == v_.shape(),
             "Adam state of {} elements does not fit {}", m.numel(), m_.numel());
  m_.copy_(m);
  v_.copy_(v);
  steps_ = steps;
}

}  // namespace pmpl
