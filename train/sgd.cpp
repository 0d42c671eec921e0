#include "train/sgd.h"

#include "engine/dispatch.h"
#include "engine/error.h"
#include "engine/kernels/optim.h"
#include "engine/profile.h"
#if PMPL_CUDA
#include "cuda_kernels/optim.h"
#endif

namespace pmpl {

Sgd::Sgd(ParameterGroup& group, SgdOptions options) : group_(group), options_(options) {
  if (!group.empty()) buffer_ = zeros_like(group.values());
}

void Sgd::step(double lr) {
  if (group_.empty()) return;
  const ProfileRange range("sgd step");
  const int64_t decay_end = group_.decay_numel();
  const bool first = steps_ == 0;
  if (group_.values().is_cuda()) {
#if PMPL_CUDA
    for (const auto& [begin, end] : group_.active_ranges()) {
      cuda::sgd_step(group_.values().data<float>(), group_.grads().data<float>(), buffer_.data<float>(), begin, end,
                     decay_end, static_cast<float>(lr), static_cast<float>(options_.momentum),
                     static_cast<float>(options_.weight_decay), options_.nesterov, first);
    }
#endif
    ++steps_;
    return;
  }
  dispatch_float(group_.values().dtype(), "sgd", [&](auto tag) {
    using T = decltype(tag);
    T* w = group_.values().template data<T>();
    const T* g = group_.grads().template data<T>();
    T* buf = buffer_.data<T>();
    const T rate = static_cast<T>(lr), mu = static_cast<T>(options_.momentum);
    const T wd = static_cast<T>(options_.weight_decay);
    const bool nesterov = options_.nesterov;
    for (const auto& [begin, end] : group_.active_ranges()) {
#pragma omp parallel for simd if (parallel: end - begin > 65536)
      for (int64_t i = begin; i < end; ++i) kernels::sgd_update(w[i], g[i], buf[i], rate, mu, wd, i < decay_end, nesterov, first);
    }
  });
  ++steps_;
}

void Sgd::restore(const Tensor& buffer, int64_t steps) {
  PMPL_CHECK(buffer.shape() == buffer_.shape(), "SGD state of {} elements does not fit {}",
             buffer.numel(), buffer_.numel());
  buffer_.copy_(buffer);
  steps_ = steps;
}

}  // namespace pmpl
