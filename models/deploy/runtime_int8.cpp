#include "models/deploy/runtime_int8.h"
#include "models/deploy/runtime_ops.h"

#include <cmath>

#include "engine/autograd.h"
#include "engine/blas.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "models/deploy/runtime.h"

namespace pmpl::deploy {
namespace {

const Tensor& tensor(const std::map<std::string, Tensor>& tensors, const std::string& name) {
  auto it = tensors.find(name);
  PMPL_CHECK(it != tensors.end(), "tensor {} is missing", name);
  return it->second;
}

std::vector<float> floats(const std::map<std::string, Tensor>& tensors, const std::string& name, int64_t n) {
  const Tensor& t = tensor(tensors, name);
  PMPL_CHECK(t.numel() == n, "tensor {} has {} values where {} are needed", name, t.numel(), n);
  return t.to_vector<float>();
}

QuantParams params(const nlohmann::json& q, const std::string& point) {
  const nlohmann::json& p = q.at("activations").at(point);
  QuantParams out{p.at(0).get<float>(), p.at(1).get<int32_t>()};
  PMPL_CHECK(std::isfinite(out.scale) && out.scale > 0 && out.zero_point >= 0 && out.zero_point <= 255,
             "the quantisation of {} ({}, {}) is out of range", point, out.scale, out.zero_point);
  return out;
}

// The conv `prefix` (int8 weight, f32 weight_scale and bias) between `in_q` and `out_q`.
QuantizedConv conv(const std::map<std::string, Tensor>& tensors, const std::string& prefix, int64_t in, int64_t out,
                   int kernel, int stride, bool depthwise, QuantParams in_q, QuantParams out_q, bool relu6) {
  QuantizedConv c;
  c.in = in;
  c.out = out;
  c.kernel = kernel;
  c.stride = stride;
  c.depthwise = depthwise;
  c.in_q = in_q;
  c.out_q = out_q;
  const Tensor& w = tensor(tensors, prefix + ".weight");
  const Shape want = depthwise ? Shape{out, kernel, kernel} : Shape{out, 1, 1, in};
  PMPL_CHECK(w.shape() == want, "tensor {}.weight has shape {} where {} is needed", prefix, w.shape().str(),
             want.str());
  const std::vector<float> values = w.to_vector<float>();
  for (float v : values) {
    PMPL_CHECK(v == std::round(v) && std::abs(v) <= 127, "tensor {}.weight holds {}, not an int8 value", prefix, v);
  }
  if (depthwise) {
    c.taps.resize(values.size());
    const int64_t taps = static_cast<int64_t>(kernel) * kernel;
    for (int64_t ch = 0; ch < out; ++ch) {
      for (int64_t t = 0; t < taps; ++t) {
        c.taps[static_cast<size_t>(t * out + ch)] = static_cast<int16_t>(values[static_cast<size_t>(ch * taps + t)]);
      }
    }
  } else {
    c.weight.assign(values.begin(), values.end());
  }
  c.requantize = make_requantize(floats(tensors, prefix + ".weight_scale", out), floats(tensors, prefix + ".bias", out),
                                 in_q, out_q, relu6);
  return c;
}

int64_t conv_output_size(int64_t size, int kernel, int stride) { return (size + 2 * (kernel / 2) - kernel) / stride + 1; }

}  // namespace

QuantizedLayers::QuantizedLayers(const nlohmann::json& q, const std::map<std::string, Tensor>& tensors,
                                 const ArchitectureSpec& spec, const Genotype& genotype) {
  stem_q = params(q, "features.0");
  QuantParams cur = stem_q;
  size_t enhancer = 0;
  for (const BlockSpec& b : spec.blocks) {
    const std::string p = "features." + std::to_string(b.index) + ".conv.";
    QuantizedBlock block;
    block.in_q = cur;
    int child = 0;
    QuantParams in = cur;
    if (b.expand != 1) {
      const std::string name = p + std::to_string(child++) + ".0";
      block.expand = conv(tensors, name, b.in, b.hidden, 1, 1, false, in, params(q, name), true);
      in = block.expand->out_q;
    }
    const std::string dw = p + std::to_string(child++) + ".0";
    block.depthwise = conv(tensors, dw, b.hidden, b.hidden, 3, b.stride, true, in, params(q, dw), true);
    in = block.depthwise.out_q;
    if (!genotype.enhancers.empty() && b.expand != 1) {
      PMPL_CHECK(enhancer < genotype.enhancers.size(), "the genotype has fewer enhancers than the network");
      block.enhancer = &genotype.enhancers[enhancer++];
      block.enhancer_q = params(q, block.enhancer->name);
      in = block.enhancer_q;
    }
    const std::string project = p + std::to_string(child);
    block.project = conv(tensors, project, b.hidden, b.out, 1, 1, false, in, params(q, project), false);
    block.residual = b.residual();
    block.out_q = block.residual ? params(q, "features." + std::to_string(b.index)) : block.project.out_q;
    cur = block.out_q;
    blocks.push_back(std::move(block));
  }
  last = conv(tensors, "features.18.0", spec.blocks.back().out, spec.last_channels, 1, 1, false, cur,
              params(q, "features.18.0"), true);
  features = spec.last_channels;
  pool_q = params(q, "pool");
  const Tensor& w = tensor(tensors, "classifier.1.weight");
  PMPL_CHECK(w.rank() == 2 && w.dim(1) == features, "tensor classifier.1.weight has shape {}", w.shape().str());
  classes = w.dim(0);
  for (float v : w.to_vector<float>()) {
    PMPL_CHECK(v == std::round(v) && std::abs(v) <= 127, "tensor classifier.1.weight holds {}, not an int8 value", v);
    classifier.push_back(static_cast<int8_t>(v));
  }
  classifier_bias = floats(tensors, "classifier.1.bias", classes);
  for (float s : floats(tensors, "classifier.1.weight_scale", classes)) classifier_scale.push_back(pool_q.scale * s);
}

Tensor Runtime::run_int8(const Tensor& images) const {
  NoGradGuard no_grad;
  const QuantizedLayers& q = *quantized_;
  const ArchitectureSpec spec = mobilenetv2_spec(width_, small_input_);
  const Tensor stem = ops::channel_affine(ops::conv2d(images, weight("features.0.0.weight"), spec.stem_stride, 1),
                                          Tensor(), weight("features.0.0.bias"), ops::ChannelActivation::kReLU6);
  const int64_t n = stem.dim(0);
  int64_t h = stem.dim(1), w = stem.dim(2), c = stem.dim(3);
  // Per thread and reused from call to call: fresh buffers cost page faults on every image.
  thread_local std::vector<uint8_t> x, y, z, sum;
  thread_local std::vector<int32_t> scratch;
  x.resize(static_cast<size_t>(stem.numel()));
  quantize_u8(stem.data<float>(), stem.numel(), q.stem_q, x.data());
  auto pointwise = [&](const QuantizedConv& conv, const std::vector<uint8_t>& in, std::vector<uint8_t>& out) {
    out.resize(static_cast<size_t>(n * h * w * conv.out));
    conv1x1_u8(in.data(), n * h * w, conv.in, conv.in_q.zero_point, conv.weight.data(), conv.out, conv.requantize,
               scratch, out.data());
  };
  for (const QuantizedBlock& b : q.blocks) {
    const std::vector<uint8_t>* in = &x;
    if (b.expand) {
      pointwise(*b.expand, x, y);
      in = &y;
      c = b.expand->out;
    }
    const QuantizedConv& dw = b.depthwise;
    const int64_t ho = conv_output_size(h, dw.kernel, dw.stride), wo = conv_output_size(w, dw.kernel, dw.stride);
    z.resize(static_cast<size_t>(n * ho * wo * c));
    depthwise_u8(in->data(), n, h, w, c, dw.in_q.zero_point, dw.taps.data(), dw.kernel, dw.stride, dw.requantize,
                 z.data());
    h = ho;
    w = wo;
    if (b.enhancer) {
      Tensor f = Tensor::empty(Shape{n, h, w, c}, DType::kF32);
      dequantize_u8(z.data(), f.numel(), dw.out_q, f.data<float>());
      const Tensor e = run_enhancer(f, b.enhancer->ops, b.enhancer->name,
                                    [this](const std::string& name) -> const Tensor& { return weight(name); });
      quantize_u8(e.data<float>(), e.numel(), b.enhancer_q, z.data());
    }
    pointwise(b.project, z, y);
    c = b.project.out;
    if (b.residual) {
      sum.resize(y.size());
      add_u8(x.data(), b.in_q, y.data(), b.project.out_q,
             static_cast<int64_t>(y.size()), b.out_q, sum.data());
      x.swap(sum);
    } else {
      x.swap(y);
    }
  }
  pointwise(q.last, x, y);
  std::vector<uint8_t> pooled(static_cast<size_t>(n * q.features));
  global_avg_pool_u8(y.data(), n, h * w, q.features, q.last.out_q, q.pool_q, pooled.data());
  std::vector<int32_t> acc(static_cast<size_t>(n * q.classes));
  blas::gemm_u8s8s32(n, q.classes, q.features, pooled.data(), q.features, static_cast<uint8_t>(q.pool_q.zero_point),
                     q.classifier.data(), q.features, acc.data(), q.classes);
  Tensor logits = Tensor::empty(Shape{n, q.classes}, DType::kF32);
  float* out = logits.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t o = 0; o < q.classes; ++o) {
      out[i * q.classes + o] =
          static_cast<float>(acc[static_cast<size_t>(i * q.classes + o)]) * q.classifier_scale[static_cast<size_t>(o)] +
          q.classifier_bias[static_cast<size_t>(o)];
    }
  }
  return logits;
}

}  // namespace pmpl::deploy
