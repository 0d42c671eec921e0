// Every op of the engine: one declaration here, forward and backward side by side in
// engine/ops/<family>.cpp. Each op validates its arguments (pmpl::Error on misuse), computes,
// and records its backward when autograd needs it. Activations are NHWC: the channel is the
// last dimension. CPU kernels run in f32 or f64.
#pragma once

#include <functional>

#include <vector>

#include "engine/tensor.h"

namespace pmpl {
class Generator;
}

namespace pmpl::ops {

// ---- elementwise (engine/ops/binary.cpp, engine/ops/activation.cpp) ----
// Binary ops broadcast NumPy-style (size-1 or missing leading dims stretch); a per-channel
// operand of shape [C] against [..., C] is the fast common case.
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& x, double factor);
// sum_k w[k] * xs[k]: xs of one shape, w [K]. One pass forward; backward gives each x_k its
// w[k] * dy and w its K dot products in one pass (the Meta-Pooling mixture).
Tensor weighted_sum(const Tensors& xs, const Tensor& w);
// dst += alpha * src, in place and unrecorded (gradient accumulation, optimizer updates).
void axpy_(Tensor& dst, double alpha, const Tensor& src);
// x *= factor, in place and unrecorded (averaging all-reduced gradients).
void scale_(const Tensor& x, double factor);
// counter += delta for a one-element i64 tensor, in place and unrecorded; on a GPU queued like a
// kernel, so the host does not wait (batchnorm's num_batches_tracked).
void increment_(const Tensor& counter, int64_t delta);

Tensor relu(const Tensor& x);
Tensor relu6(const Tensor& x);
Tensor hardswish(const Tensor& x);
Tensor hardsigmoid(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor silu(const Tensor& x);  // x * sigmoid(x) (EfficientNet's activation)

// ---- shape (engine/ops/shape.cpp) ----
Tensor reshape(const Tensor& x, const Shape& shape);
// Concatenation along `axis` and its inverse (sizes along axis, summing to x.dim(axis)).
Tensor concat(const Tensors& xs, int axis);
Tensors split(const Tensor& x, const std::vector<int64_t>& sizes, int axis);

// Reorders dimensions: output dim i is input dim dims[i] (NCHW -> NHWC is {0, 2, 3, 1}).
Tensor permute(const Tensor& x, const std::vector<int>& dims);
// ShuffleNet's channel shuffle over the last dimension: channels seen as [groups, C / groups],
// transposed (output channel j * groups + i is input channel i * C / groups + j). Its backward is
// the shuffle with C / groups groups.
Tensor channel_shuffle(const Tensor& x, int groups);

// ---- reductions (engine/ops/reduce.cpp) ----
// Over the listed axes (all axes when empty).
Tensor sum(const Tensor& x, const std::vector<int>& axes = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int>& axes = {}, bool keepdim = false);
// Sums a broadcast result back to `shape` (the backward of broadcasting).
Tensor sum_to_shape(const Tensor& x, const Shape& shape);

// ---- softmax and loss (engine/ops/softmax.cpp, engine/ops/cross_entropy.cpp) ----
Tensor softmax(const Tensor& x);      // over the last axis
Tensor log_softmax(const Tensor& x);  // over the last axis
// Mean over the batch of -sum_k q_k log softmax(logits)_k, with q = (1 - eps) one_hot(label)
// + eps / K (PyTorch's label_smoothing). logits [N, K]; labels i64 [N] in [0, K).
Tensor cross_entropy(const Tensor& logits, const Tensor& labels, double label_smoothing = 0.0);

// ---- linear algebra (engine/ops/matmul.cpp, engine/ops/linear.cpp) ----
// 2-D: op(a) [M, K] x op(b) [K, N], op = transpose when the flag is set.
Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a = false, bool transpose_b = false);
// x [..., in] times weight [out, in] transposed, plus bias [out] when defined.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// ---- convolutions (engine/ops/conv2d.cpp, depthwise_conv.cpp, pointwise_conv.cpp) ----
// Dense: x [N, H, W, Cin], weight [Cout, kh, kw, Cin] -> [N, Ho, Wo, Cout]; zero padding.
Tensor conv2d(const Tensor& x, const Tensor& weight, int stride = 1, int padding = 0);
// Depthwise: x [N, H, W, C], weight [C, k, k] -> [N, Ho, Wo, C]; zero padding.
Tensor depthwise_conv2d(const Tensor& x, const Tensor& weight, int stride = 1, int padding = 0);
// 1x1: x [..., Cin], weight [Cout, 1, 1, Cin] -> [..., Cout]; one GEMM over all rows.
Tensor pointwise_conv(const Tensor& x, const Tensor& weight);

// ---- normalisation (engine/ops/batchnorm.cpp) ----
// Over every dimension but the last. Training: batch statistics, and the running ones (when
// defined) move by `momentum` towards them, the variance unbiased (PyTorch's rule). Eval: the
// running statistics. gamma, beta, running_mean, running_var: [C]. With kReLU6 the activation is
// applied in the same pass (and its mask recomputed in backward): relu6(batch_norm(x)) without
// the intermediate tensor or the two extra passes over it.
//
// Synchronised batchnorm (data-parallel --sync-bn): with `sync`, training sums the per-channel
// sums behind the statistics, and in backward the sums behind dx, over every process (`sync`
// adds the other processes' values into its argument, an f64 tensor on the input's device, in
// place: MPI for host tensors, NCCL for GPU ones), so the statistics are those of the union of
// all processes' batches. dgamma and dbeta stay this process's own sums: the gradient all-reduce
// that follows adds them up.
// The activation fused after the normalisation (ReLU6 in MobileNetV2's blocks, hardswish in the
// Meta-Pooling enhancer and its strip attention, ReLU or hardswish in MobileNetV3's, SiLU in
// EfficientNet's): one pass
// less each way, the same bits as the separate op.
enum class BnActivation : uint8_t { kNone, kReLU6, kHardswish, kReLU, kSiLU };
using SumReducer = std::function<void(const Tensor&)>;
Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor running_mean,
                  Tensor running_var, bool training, double momentum = 0.1, double eps = 1e-5,
                  BnActivation activation = BnActivation::kNone, const SumReducer* sync = nullptr);

// ---- the Meta-Pooling search mixture (engine/ops/pool_mix.cpp) ----
// sum_k w[k] * op_k(x) over the eight candidates in PoolOp order (skip, strip, max3, max5, max7,
// avg3, avg5, avg7; pools stride 1, same padding). The strip branch is (x * a_w) * a_h with its
// module's attention a_h [N, H, 1, C] and a_w [N, 1, W, C], formed inside (never stored); the
// six pools come from separable row and column stages over x, without temporaries.
// x [N, H, W, C], w [8]. Forward equals ops::weighted_sum over the separate ops bit for bit.
Tensor meta_pool_mix(const Tensor& x, const Tensor& a_h, const Tensor& a_w, const Tensor& w);

// ---- per-channel affine (engine/ops/channel_affine.cpp) ----
// act(x * scale + shift) over the last dimension in one pass; `scale` may be undefined (a bias).
// What folded batchnorms and conv biases become in the deployment runtime.
// The numbers are core/math.h's channel_activation's.
enum class ChannelActivation : uint8_t { kNone, kReLU6, kHardswish, kReLU, kSiLU, kSigmoid, kHardsigmoid };
Tensor channel_affine(const Tensor& x, const Tensor& scale, const Tensor& shift,
                      ChannelActivation act = ChannelActivation::kNone);

// ---- pooling (engine/ops/pooling.cpp, engine/ops/global_pool.cpp) ----
// k x k windows, x [N, H, W, C]. Max never picks padding; avg divides by the whole window,
// padding included (PyTorch's count_include_pad=True).
Tensor max_pool2d(const Tensor& x, int kernel, int stride, int padding);
Tensor avg_pool2d(const Tensor& x, int kernel, int stride, int padding);
Tensor global_avg_pool(const Tensor& x);  // [N, H, W, C] -> [N, C]
// Coordinate-attention strip pooling: [N, H, W, C] -> [N, H + W, C]; rows 0..H-1 are the means
// over W of each row, rows H..H+W-1 the means over H of each column.
Tensor strip_pool(const Tensor& x);

// ---- input (engine/ops/normalize.cpp) ----
// uint8 images [N, H, W, 3] to (x / 255 - mean[c]) / std[c], computed in f32 and stored as
// `dtype` (f32; bf16 or f16 on a GPU for mixed precision): the model's first step (the loader
// hands over bytes). Not recorded (inputs need no gradient).
Tensor normalize_images(const Tensor& images, const float mean[3], const float stddev[3],
                        DType dtype = DType::kF32);
// Random erasing's fill (data/random_erasing.h), in place on a normalised input x [N, H, W, 3]:
// image i's boxes (i32 [N, K, 4]: top, left, height, width; height 0 for none) get
// kernels::erase_value(fill, keys[i], ...) (core/kernels/erase.h), the same numbers on CPU and GPU.
void erase_boxes_(Tensor& x, const Tensor& boxes, const Tensor& keys, int fill);

// ---- mixed precision (engine/ops/cast.cpp) ----
// x converted to `dtype` (the same tensor when it already is); the gradient goes back converted
// to x's dtype, so an f32 parameter cast to bf16 for a layer still gets an f32 gradient.
Tensor cast(const Tensor& x, DType dtype);

// ---- regularisation (engine/ops/dropout.cpp) ----
// Zeroes each element with probability p and scales the rest by 1/(1-p) (identity when not
// training). The mask comes from the counter-based generator and is recomputed in backward.
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen);

}  // namespace pmpl::ops
