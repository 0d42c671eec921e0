#include "models/deploy/graph_int8.h"

#include <cmath>
#include <utility>

#include "engine/error.h"

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

int64_t output_size(int64_t size, int kernel, int stride) { return (size + 2 * (kernel / 2) - kernel) / stride + 1; }

}  // namespace

nlohmann::json int8_activations(const nlohmann::json& config) {
  nlohmann::json out = config.at("quantization").at("activations");
  PMPL_CHECK(out.is_object(), "its quantisation parameters are not an object; re-export it");
  if (!config.contains("graph")) {
    for (const auto& [point, node] : kLegacyInt8Points) {
      if (out.contains(point)) out[node] = out.at(point);
    }
  }
  return out;
}

QuantParams activation_params(const nlohmann::json& activations, const std::string& name) {
  PMPL_CHECK(activations.contains(name), "no quantisation parameters for {}", name);
  const nlohmann::json& p = activations.at(name);
  const QuantParams out{p.at(0).get<float>(), p.at(1).get<int32_t>()};
  PMPL_CHECK(std::isfinite(out.scale) && out.scale > 0 && out.zero_point >= 0 && out.zero_point <= 255,
             "the quantisation of {} ({}, {}) is out of range", name, out.scale, out.zero_point);
  return out;
}

bool int8_node(const nlohmann::json& node) {
  const std::string op = node.at("op");
  if (node.at("inputs").at(0).get<int>() == 0) return false;
  if (op == "linear") return true;
  if (op == "conv") {
    return node.value("kernel", 1) == 1 && node.value("stride", 1) == 1 && node.value("pad", 0) == 0 &&
           node.value("groups", 1) == 1;
  }
  return op == "depthwise" && node.value("pad", 0) == node.value("kernel", 1) / 2;
}

Int8Layer pack_int8_layer(const std::map<std::string, Tensor>& tensors, const std::string& name, const std::string& op,
                          int kernel, int stride, QuantParams in_q, const QuantParams* out_q, Clamp clamp) {
  Int8Layer l;
  l.depthwise = op == "depthwise";
  l.kernel = kernel;
  l.stride = stride;
  l.in_q = in_q;
  const Tensor& w = tensor(tensors, name + ".weight");
  PMPL_CHECK(op != "conv" || (w.rank() == 4 && w.dim(1) == 1 && w.dim(2) == 1), "tensor {}.weight has shape {}, not "
             "a 1x1 conv's", name, w.shape().str());
  PMPL_CHECK(op != "linear" || w.rank() == 2, "tensor {}.weight has shape {}, not a linear layer's", name,
             w.shape().str());
  PMPL_CHECK(!l.depthwise || (w.rank() == 3 && w.dim(1) == kernel && w.dim(2) == kernel),
             "tensor {}.weight has shape {}, not a {}x{} depthwise conv's", name, w.shape().str(), kernel, kernel);
  l.out = w.dim(0);
  l.in = l.depthwise ? l.out : w.dim(-1);
  const std::vector<float> values = w.to_vector<float>();
  for (float v : values) {
    PMPL_CHECK(v == std::round(v) && std::abs(v) <= 127, "tensor {}.weight holds {}, not an int8 value", name, v);
  }
  const std::vector<int8_t> weight(values.begin(), values.end());
  const std::vector<float> scale = floats(tensors, name + ".weight_scale", l.out);
  const std::vector<float> bias = floats(tensors, name + ".bias", l.out);
  l.u8_out = out_q != nullptr;
  Int8Output output;
  if (l.u8_out) {
    const Requantize r = make_requantize(scale, bias, in_q, *out_q, clamp);
    output = make_int8_output(l.out, &r, nullptr);
  } else {
    const Dequantize d = make_dequantize(scale, bias, in_q);
    output = make_int8_output(l.out, nullptr, &d);
  }
  if (l.depthwise) {
    l.packed_depthwise = PackedDepthwise(weight.data(), l.out, kernel, stride, in_q.zero_point, std::move(output));
  } else {
    l.pointwise = PackedPointwise(weight.data(), l.out, l.in, in_q.zero_point, std::move(output));
  }
  return l;
}

Tensor run_int8_layer(const Int8Layer& l, const Tensor& x) {
  PMPL_CHECK(x.dtype() == DType::kU8 && x.dim(-1) == l.in, "an int8 layer of {} input channels got {} {}", l.in,
             dtype_name(x.dtype()), x.shape().str());
  Shape shape = x.shape();
  if (l.depthwise) {
    PMPL_CHECK(x.rank() == 4, "a depthwise conv got {}", x.shape().str());
    shape[1] = output_size(x.dim(1), l.kernel, l.stride);
    shape[2] = output_size(x.dim(2), l.kernel, l.stride);
  }
  shape[shape.rank() - 1] = l.out;
  Tensor y = Tensor::empty(shape, l.u8_out ? DType::kU8 : DType::kF32);
  void* out = l.u8_out ? static_cast<void*>(y.data<uint8_t>()) : static_cast<void*>(y.data<float>());
  if (l.depthwise) {
    depthwise_u8(x.data<uint8_t>(), x.dim(0), x.dim(1), x.dim(2), l.packed_depthwise, out);
  } else {
    pointwise_u8(x.data<uint8_t>(), x.numel() / l.in, l.pointwise, out);
  }
  return y;
}

}  // namespace pmpl::deploy
