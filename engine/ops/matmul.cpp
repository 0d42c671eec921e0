// matmul (2-D, optional transposes), linear and pointwise (1x1) conv: all one GEMM each way.
#include "engine/blas.h"
#include "engine/ops/op_util.h"
#if PMPL_CUDA
#include "cuda_kernels/elementwise.h"
#endif

namespace pmpl::ops {
namespace {

// y [M, N] = op(a) op(b) + (bias broadcast over rows, when defined); unrecorded.
Tensor gemm_forward(const char* name, const Tensor& a, const Tensor& b, bool ta, bool tb,
                    const Tensor& bias) {
  const int64_t m = ta ? a.dim(1) : a.dim(0), k = ta ? a.dim(0) : a.dim(1);
  const int64_t kb = tb ? b.dim(1) : b.dim(0), n = tb ? b.dim(0) : b.dim(1);
  PMPL_CHECK(k == kb, "{}: inner dimensions differ: {}{} x {}{}", name, a.shape().str(),
             ta ? "^T" : "", b.shape().str(), tb ? "^T" : "");
  Tensor y = Tensor::empty(Shape{m, n}, a.dtype(), a.device());
  if (a.is_cuda()) {
#if PMPL_CUDA
    // The bias goes in as every row of y, then the product is added to it (beta 1).
    if (bias.defined()) {
      const cuda::Broadcast5 rows{{1, 1, 1, m, n}, {0, 0, 0, n, 1}, {0, 0, 0, 0, 1}};
      cuda::binary(cuda::Binary::kSecond, y.dtype(), y.raw_data(), bias.raw_data(), y.raw_data(), m * n, &rows);
    }
    blas::gemm_device(a.dtype(), ta, tb, m, n, k, 1.0f, a.raw_data(), a.dim(1), b.raw_data(), b.dim(1),
                      bias.defined() ? 1.0f : 0.0f, y.raw_data(), n);
#endif
    return y;
  }
  dispatch_float(a.dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    T* py = y.data<T>();
    T beta = T(0);
    if (bias.defined()) {
      const T* pb = bias.data<T>();
#pragma omp parallel for if (m * n > 65536)
      for (int64_t r = 0; r < m; ++r) {
        for (int64_t c = 0; c < n; ++c) py[r * n + c] = pb[c];
      }
      beta = T(1);
    }
    blas::gemm<T>(ta, tb, m, n, k, T(1), a.data<T>(), a.dim(1), b.data<T>(), b.dim(1), beta, py, n);
  });
  return y;
}

// Unrecorded matmul used inside backward functions.
Tensor mm(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  return gemm_forward("matmul", a, b, ta, tb, Tensor());
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  detail::check_float("matmul", {&a, &b});
  detail::check_rank("matmul", "a", a, 2, "M, K");
  detail::check_rank("matmul", "b", b, 2, "K, N");
  Tensor y = gemm_forward("matmul", a, b, ta, tb, Tensor());
  if (needs_grad({&a, &b})) {
    const bool grad_a = a.requires_grad(), grad_b = b.requires_grad();
    record("matmul", {&a, &b}, {y},
           [as = a.detach(), bs = b.detach(), ta, tb, grad_a, grad_b](const Tensors& g) -> Tensors {
             // With A = op(a), B = op(b): dA = g B^T and dB = A^T g, transposed back where
             // the op was a transpose.
             Tensor ga, gb;
             if (grad_a) ga = ta ? mm(bs, g[0], tb, true) : mm(g[0], bs, false, !tb);
             if (grad_b) gb = tb ? mm(g[0], as, true, ta) : mm(as, g[0], !ta, false);
             return {ga, gb};
           });
  }
  return y;
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  detail::check_float("linear", {&x, &weight, &bias});
  detail::check_rank("linear", "weight", weight, 2, "out, in");
  PMPL_CHECK(x.rank() >= 1 && x.dim(-1) == weight.dim(1),
             "linear: input {} does not end in the weight's {} input features", x.shape().str(),
             weight.dim(1));
  PMPL_CHECK(!bias.defined() || (bias.rank() == 1 && bias.dim(0) == weight.dim(0)),
             "linear: bias must be [{}], got {}", weight.dim(0), bias.shape().str());
  const int64_t rows = detail::rows_of(x), in = weight.dim(1), out = weight.dim(0);
  const Tensor x2 = x.detach().reshape(Shape{rows, in});
  Tensor y2 = gemm_forward("linear", x2, weight, false, true, bias);
  Shape out_shape = x.shape();
  out_shape[x.rank() - 1] = out;
  Tensor y = y2.reshape(out_shape);
  if (needs_grad({&x, &weight, &bias})) {
    const bool grad_x = x.requires_grad(), grad_w = weight.requires_grad();
    const bool grad_b = bias.defined() && bias.requires_grad();
    record("linear", {&x, &weight, &bias}, {y},
           [x2, ws = weight.detach(), in_shape = x.shape(), rows, out, grad_x, grad_w,
            grad_b](const Tensors& g) -> Tensors {
             const Tensor g2 = g[0].reshape(Shape{rows, out});
             Tensor gx, gw, gb;
             if (grad_x) gx = mm(g2, ws, false, false).reshape(in_shape);
             if (grad_w) gw = mm(g2, x2, true, false);
             if (grad_b) gb = sum(g2, {0});
             return {gx, gw, gb};
           });
  }
  return y;
}

Tensor pointwise_conv(const Tensor& x, const Tensor& weight) {
  detail::check_rank("pointwise_conv", "weight", weight, 4, "Cout, 1, 1, Cin");
  PMPL_CHECK(weight.dim(1) == 1 && weight.dim(2) == 1,
             "pointwise_conv: weight must be [Cout, 1, 1, Cin], got {}", weight.shape().str());
  // The weight's reshape is recorded, so its gradient lands on the 4-D parameter.
  return linear(x, weight.reshape(Shape{weight.dim(0), weight.dim(3)}));
}

}  // namespace pmpl::ops
