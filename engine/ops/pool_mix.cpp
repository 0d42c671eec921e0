// meta_pool_mix: the Meta-Pooling search mixture in one op (arithmetic: core/kernels/pool_mix.h,
// whose per-element functions the CUDA kernels run). On the CPU the same arithmetic runs with
// channels innermost, so every loop vectorises: the row stage of a whole input row at once (kept
// in a ring of seven rows per thread, so each is computed once per chunk of output rows), then
// the column stage per output pixel.
//
// Against the separate ops and weighted_sum: no six pooled temporaries (each as large as x), no
// separate weighted_sum pass, and 7 + 7 instead of 49 steps per pixel for the three windows.
#if PMPL_CUDA
#include "cuda_kernels/pool_mix.h"
#endif
#include "engine/ops/op_util.h"
#include "engine/ops/pool_mix_cpu.h"

namespace pmpl::ops {
namespace {

using namespace pool_mix_cpu;

// The attention's shapes: a_h [N, H, 1, C] and a_w [N, 1, W, C] for x [N, H, W, C].
void check_shapes(const Tensor& x, const Tensor& a_h, const Tensor& a_w, const Tensor& w) {
  detail::check_rank("meta_pool_mix", "x", x, 4, "N, H, W, C");
  const Shape want_h{x.dim(0), x.dim(1), 1, x.dim(3)}, want_w{x.dim(0), 1, x.dim(2), x.dim(3)};
  PMPL_CHECK(a_h.shape() == want_h && a_w.shape() == want_w,
             "meta_pool_mix: the strip attention must be a_h {} and a_w {} for x {}, got {} and {}", want_h.str(),
             want_w.str(), x.shape().str(), a_h.shape().str(), a_w.shape().str());
  PMPL_CHECK(w.rank() == 1 && w.dim(0) == kPoolMixWeights, "meta_pool_mix: weights must be [{}], got {}",
             kPoolMixWeights, w.shape().str());
}

#if PMPL_CUDA
// The same op on a GPU (cuda_kernels/pool_mix.cu): x, a_h and a_w of one dtype (f32, bf16, f16),
// the weights f32, every tensor on one device.
Tensor meta_pool_mix_cuda(const Tensor& x, const Tensor& a_h, const Tensor& a_w, const Tensor& w,
                          const PoolMixShape& s) {
  detail::check_float("meta_pool_mix", {&x, &a_h, &a_w});
  PMPL_CHECK(w.device() == x.device() && w.dtype() == DType::kF32,
             "meta_pool_mix: on a GPU the weights must be f32 on {}, got {} on {}", x.device().str(),
             dtype_name(w.dtype()), w.device().str());
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  cuda::pool_mix_forward(x.dtype(), x.raw_data(), a_h.raw_data(), a_w.raw_data(), w.data<float>(), y.raw_data(), s);
  if (needs_grad({&x, &a_h, &a_w, &w})) {
    record("meta_pool_mix", {&x, &a_h, &a_w, &w}, {y},
           [xs = x.detach(), hs = a_h.detach(), ws_ = a_w.detach(), ws = w.detach(), s, grad_x = x.requires_grad(),
            grad_att = a_h.requires_grad() || a_w.requires_grad(), grad_w = w.requires_grad()](const Tensors& g) -> Tensors {
             const Device device = xs.device();
             Tensor gx = grad_x ? Tensor::empty(xs.shape(), xs.dtype(), device) : Tensor();
             Tensor ga_h = grad_att ? Tensor::empty(hs.shape(), xs.dtype(), device) : Tensor();
             Tensor ga_w = grad_att ? Tensor::empty(ws_.shape(), xs.dtype(), device) : Tensor();
             Tensor gw = grad_w ? Tensor::empty(ws.shape(), DType::kF32, device) : Tensor();
             const Tensor winners = Tensor::empty(Shape{2 * xs.numel()}, DType::kU8, device);
             const Tensor partials = Tensor::empty(Shape{cuda::pool_mix_partials(s)}, DType::kF64, device);
             cuda::pool_mix_backward(xs.dtype(), xs.raw_data(), hs.raw_data(), ws_.raw_data(), ws.data<float>(),
                                     g[0].raw_data(), grad_x ? gx.raw_data() : nullptr,
                                     grad_att ? ga_h.raw_data() : nullptr, grad_att ? ga_w.raw_data() : nullptr,
                                     grad_w ? gw.data<float>() : nullptr, winners.data<uint8_t>(),
                                     partials.data<double>(), s);
             return {gx, ga_h, ga_w, gw};
           });
  }
  return y;
}
#endif

}  // namespace

Tensor meta_pool_mix(const Tensor& x, const Tensor& a_h, const Tensor& a_w, const Tensor& w) {
  check_shapes(x, a_h, a_w, w);
  const PoolMixShape s{x.dim(0), x.dim(1), x.dim(2), x.dim(3)};
#if PMPL_CUDA
  if (x.is_cuda()) return meta_pool_mix_cuda(x, a_h, a_w, w, s);
#endif
  detail::check_cpu_float("meta_pool_mix", {&x, &a_h, &a_w, &w});
  Tensor y = empty_like(x);
  dispatch_float(x.dtype(), "meta_pool_mix", [&](auto tag) {
    using T = decltype(tag);
    forward(x.data<T>(), StripAttention<T>{a_h.data<T>(), a_w.data<T>()}, w.data<T>(), y.data<T>(), s);
  });
  if (needs_grad({&x, &a_h, &a_w, &w})) {
    record("meta_pool_mix", {&x, &a_h, &a_w, &w}, {y},
           [xs = x.detach(), hs = a_h.detach(), ws_ = a_w.detach(), ws = w.detach(), s, grad_x = x.requires_grad(),
            grad_att = a_h.requires_grad() || a_w.requires_grad(), grad_w = w.requires_grad()](const Tensors& g) -> Tensors {
             Tensor gx, ga_h, ga_w, gw;
             dispatch_float(xs.dtype(), "meta_pool_mix", [&](auto tag) {
               using T = decltype(tag);
               const StripAttention<T> att{hs.data<T>(), ws_.data<T>()};
               // Pass 1 feeds dw and dx (its winners: two bytes per element, uint16 lanes as the
               // CUDA kernels store them); the attention's gradients need neither.
               const Tensor winner_bytes = detail::scratch<uint8_t>(grad_x || grad_w ? 2 * xs.numel() : 0);
               auto* winners = reinterpret_cast<uint16_t*>(winner_bytes.data<uint8_t>());
               double dw[kPoolMixWeights];
               if (grad_x || grad_w) backward_pass1(xs.data<T>(), att, g[0].data<T>(), winners, dw, s);
               if (grad_w) {
                 gw = empty_like(ws);
                 for (int k = 0; k < kPoolMixWeights; ++k) gw.data<T>()[k] = static_cast<T>(dw[k]);
               }
               if (grad_x) {
                 gx = empty_like(xs);
                 backward_pass2(att, g[0].data<T>(), winners, ws.data<T>(), gx.data<T>(), s);
               }
               if (grad_att) {
                 ga_h = empty_like(hs);
                 ga_w = empty_like(ws_);
                 strip_attention_grads(xs.data<T>(), att, g[0].data<T>(), ws.data<T>()[1], ga_h.data<T>(),
                                       ga_w.data<T>(), s);
               }
             });
             return {gx, ga_h, ga_w, gw};
           });
  }
  return y;
}

}  // namespace pmpl::ops
