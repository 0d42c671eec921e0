// Dropout with a counter-based mask: element i is kept when the i-th uniform of the generator's
// range is >= p. The backward recomputes the mask from (seed, offset) instead of storing it.
#include "engine/ops/op_util.h"
#include "core/rng.h"
#if PMPL_CUDA
#include "cuda_kernels/elementwise.h"
#endif

namespace pmpl::ops {
namespace {

void apply_mask_cuda(const Tensor& in, Tensor& out, double p, uint64_t seed, uint64_t offset) {
#if PMPL_CUDA
  cuda::dropout(in.dtype(), in.raw_data(), out.raw_data(), in.numel(), static_cast<float>(p),
                static_cast<float>(1.0 / (1.0 - p)), seed, offset);
#endif
}

template <class T>
void apply_mask(const T* in, T* out, int64_t n, double p, uint64_t seed, uint64_t offset) {
  const T keep_scale = static_cast<T>(1.0 / (1.0 - p));
  const float threshold = static_cast<float>(p);
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const bool keep = philox_uniform(seed, offset, static_cast<uint64_t>(i)) >= threshold;
    out[i] = keep ? in[i] * keep_scale : T(0);
  }
}

}  // namespace

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  const bool gpu = detail::check_float("dropout", {&x});
  PMPL_CHECK(p >= 0.0 && p < 1.0, "dropout: probability {} is outside [0, 1)", p);
  if (!training || p == 0.0) return x;
  const uint64_t seed = gen.seed(), offset = gen.take(static_cast<uint64_t>(x.numel()));
  Tensor y = empty_like(x);
  if (gpu) apply_mask_cuda(x, y, p, seed, offset);
  else dispatch_float(x.dtype(), "dropout", [&](auto tag) {
    using T = decltype(tag);
    apply_mask(x.data<T>(), y.data<T>(), x.numel(), p, seed, offset);
  });
  if (needs_grad({&x})) {
    record("dropout", {&x}, {y}, [p, seed, offset](const Tensors& g) -> Tensors {
      Tensor gx = empty_like(g[0]);
      if (gx.is_cuda()) apply_mask_cuda(g[0], gx, p, seed, offset);
      else dispatch_float(g[0].dtype(), "dropout", [&](auto tag) {
        using T = decltype(tag);
        apply_mask(g[0].data<T>(), gx.data<T>(), g[0].numel(), p, seed, offset);
      });
      return {gx};
    });
  }
  return y;
}

}  // namespace pmpl::ops
