#include "train/adam.h"

#include <cmath>

#include "engine/dispatch.h"
#include "engine/error.h"

namespace pmpl {

Adam::Adam(ParameterGroup& group, AdamOptions options) : group_(group), options_(options) {
  if (!group.empty()) {
    m_ = zeros_like(group.values());
    v_ = zeros_like(group.values());
  }
}

void Adam::step() {
  if (group_.empty()) return;
  ++steps_;
  const double c1 = 1.0 - std::pow(options_.beta1, static_cast<double>(steps_));
  const double c2 = 1.0 - std::pow(options_.beta2, static_cast<double>(steps_));
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
      for (int64_t i = begin; i < end; ++i) {
        const T d = g[i] + wd * w[i];
        m[i] = b1 * m[i] + (T(1) - b1) * d;
        v[i] = b2 * v[i] + (T(1) - b2) * d * d;
        w[i] -= step_size * m[i] / (std::sqrt(v[i]) / root_c2 + eps);
      }
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
