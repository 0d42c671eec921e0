// GraphProgram (models/deploy/graph.h): the deployment graph run node by node, each value
// released after its last reader. In an int8 graph (graph_int8.h) a value is uint8 (with its
// node's parameters) or f32, and each node converts what it reads to what it runs on.
#include <algorithm>

#include "engine/autograd.h"
#include "engine/error.h"
#include "layers/meta_pooling.h"
#include "models/deploy/graph.h"
#include "models/deploy/graph_int8.h"
#include "models/deploy/runtime_ops.h"

namespace pmpl::deploy {
namespace {

enum class Op : uint8_t {
  kConv, kDepthwise, kAffine, kAct, kLinear, kAdd, kMul, kMaxPool, kAvgPool, kGlobalAvgPool, kSlice, kConcat,
  kShuffle, kEnhancer
};

struct OpInfo {
  const char* name;
  Op op;
  int inputs;
};
constexpr OpInfo kOps[] = {
    {"conv", Op::kConv, 1},       {"depthwise", Op::kDepthwise, 1}, {"affine", Op::kAffine, 1},
    {"act", Op::kAct, 1},         {"linear", Op::kLinear, 1},       {"add", Op::kAdd, 2},
    {"mul", Op::kMul, 2},         {"max_pool", Op::kMaxPool, 1},    {"avg_pool", Op::kAvgPool, 1},
    {"global_avg_pool", Op::kGlobalAvgPool, 1},                     {"slice", Op::kSlice, 1},
    {"concat", Op::kConcat, 2},   {"channel_shuffle", Op::kShuffle, 1}, {"enhancer", Op::kEnhancer, 1},
};

ops::ChannelActivation parse_act(const std::string& name, const std::string& where) {
  static const std::pair<const char*, ops::ChannelActivation> kActs[] = {
      {"none", ops::ChannelActivation::kNone},       {"relu6", ops::ChannelActivation::kReLU6},
      {"hardswish", ops::ChannelActivation::kHardswish}, {"relu", ops::ChannelActivation::kReLU},
      {"silu", ops::ChannelActivation::kSiLU},       {"sigmoid", ops::ChannelActivation::kSigmoid},
      {"hardsigmoid", ops::ChannelActivation::kHardsigmoid}};
  for (const auto& [n, act] : kActs) {
    if (name == n) return act;
  }
  PMPL_CHECK(false, "{}: unknown activation {}", where, name);
  return ops::ChannelActivation::kNone;
}

Tensor activate(const Tensor& x, ops::ChannelActivation act) {
  using A = ops::ChannelActivation;
  switch (act) {
    case A::kNone: return x;
    case A::kReLU6: return ops::relu6(x);
    case A::kHardswish: return ops::hardswish(x);
    case A::kReLU: return ops::relu(x);
    case A::kSiLU: return ops::silu(x);
    case A::kSigmoid: return ops::sigmoid(x);
    case A::kHardsigmoid: break;
  }
  return ops::hardsigmoid(x);
}

}  // namespace

struct GraphProgram::Node {
  Op op;
  std::string name;
  std::vector<int> inputs{};
  int kernel = 1, stride = 1, pad = 0, groups = 1;
  int64_t begin = 0, end = 0;
  bool keep_dims = false;
  ops::ChannelActivation act = ops::ChannelActivation::kNone;
  Tensor weight{}, bias{};  // affine: scale, shift
  std::vector<PoolOp> pool_ops{};
  std::vector<int> release{};  // values read for the last time here
  bool quantized = false;      // int8 graphs: the value has calibrated parameters `out_q`
  QuantParams out_q{};
  std::shared_ptr<const Int8Layer> int8{};  // runs in int8
};

GraphProgram::~GraphProgram() = default;

GraphProgram::GraphProgram(const nlohmann::json& graph, const std::map<std::string, Tensor>& tensors,
                           const std::string& where, const nlohmann::json* activations)
    : tensors_(&tensors) {
  auto tensor = [&](const std::string& name, int rank) {
    auto it = tensors.find(name);
    PMPL_CHECK(it != tensors.end(), "{}: its tensors do not fit its architecture (tensor {} is missing); re-export it",
               where, name);
    PMPL_CHECK(it->second.rank() == rank, "{}: its tensors do not fit its architecture (tensor {} has rank {}, expected "
               "{}); re-export it", where, name, it->second.rank(), rank);
    return it->second;
  };
  auto weigh = [&](Node& n, const char* weight, int rank, const char* bias) {
    n.weight = tensor(n.name + weight, rank);
    n.bias = tensor(n.name + bias, 1);
  };
  const nlohmann::json& nodes = graph.at("nodes");
  PMPL_CHECK(nodes.is_array() && !nodes.empty(), "{}: the graph has no nodes", where);
  for (const nlohmann::json& j : nodes) {
    const std::string op = j.at("op");
    const OpInfo* info = std::find_if(std::begin(kOps), std::end(kOps), [&](const OpInfo& o) { return op == o.name; });
    PMPL_CHECK(info != std::end(kOps), "{}: unknown graph op {}", where, op);
    Node n{info->op, j.at("name")};
    const int self = static_cast<int>(nodes_.size()) + 1;
    n.inputs = j.at("inputs").get<std::vector<int>>();
    PMPL_CHECK(static_cast<int>(n.inputs.size()) == info->inputs, "{}: {} ({}) has {} inputs, expected {}", where,
               n.name, op, n.inputs.size(), info->inputs);
    for (int v : n.inputs) PMPL_CHECK(v >= 0 && v < self, "{}: {} reads value {}, not yet computed", where, n.name, v);
    n.kernel = j.value("kernel", 1);
    n.stride = j.value("stride", 1);
    n.pad = j.value("pad", 0);
    n.groups = j.value("groups", 1);
    n.begin = j.value("begin", int64_t{0});
    n.end = j.value("end", int64_t{0});
    n.keep_dims = j.value("keep_dims", false);
    n.act = parse_act(j.value("act", "none"), where);
    PMPL_CHECK(n.kernel >= 1 && n.stride >= 1 && n.pad >= 0 && n.groups >= 1 && n.begin >= 0 && (n.op != Op::kSlice || n.end > n.begin),
               "{}: {} has an implausible kernel, stride, padding, group count or slice", where, n.name);
    switch (n.op) {
      case Op::kConv: weigh(n, ".weight", 4, ".bias"); break;
      case Op::kDepthwise: weigh(n, ".weight", 3, ".bias"); break;
      case Op::kAffine: weigh(n, ".scale", 1, ".shift"); break;
      case Op::kLinear: weigh(n, ".weight", 2, ".bias"); break;
      case Op::kEnhancer:
        for (const std::string& name : j.at("ops").get<std::vector<std::string>>()) n.pool_ops.push_back(parse_pool_op(name));
        PMPL_CHECK(n.pool_ops.size() == 1 || n.pool_ops.size() == 2, "{}: {} has {} ops, expected 1 or 2", where, n.name,
                   n.pool_ops.size());
        break;
      default: break;
    }
    if (activations) quantize_node(n, j, *activations, where);
    nodes_.push_back(std::move(n));
  }
  output_ = graph.at("output");
  PMPL_CHECK(output_ > 0 && output_ <= static_cast<int>(nodes_.size()), "{}: the graph's output {} is no node", where,
             output_);
  std::vector<int> last(nodes_.size() + 1, -1);
  for (size_t i = 0; i < nodes_.size(); ++i) {
    for (int v : nodes_[i].inputs) last[v] = static_cast<int>(i);
  }
  for (size_t v = 0; v < last.size(); ++v) {
    if (last[v] >= 0 && static_cast<int>(v) != output_) nodes_[last[v]].release.push_back(static_cast<int>(v));
  }
}

void GraphProgram::quantize_node(Node& n, const nlohmann::json& j, const nlohmann::json& activations,
                                 const std::string& where) {
  using A = ops::ChannelActivation;
  try {
    n.quantized = activations.contains(n.name);
    if (n.quantized) n.out_q = activation_params(activations, n.name);
  } catch (const Error& e) {
    PMPL_CHECK(false, "{}: {}; re-export it", where, e.what());
  }
  if (!tensors_->count(n.name + ".weight_scale")) return;
  PMPL_CHECK(int8_node(j), "{}: {} ({}) has int8 weights but cannot run in int8; re-export it", where, n.name,
             j.at("op").get<std::string>());
  const Node& producer = nodes_[static_cast<size_t>(n.inputs[0] - 1)];
  PMPL_CHECK(producer.quantized, "{}: {} runs in int8 but what it reads ({}) has no quantisation parameters", where,
             n.name, producer.name);
  const bool clamp = n.act == A::kNone || n.act == A::kReLU || n.act == A::kReLU6;
  const bool u8_out = n.op != Op::kLinear && n.quantized && clamp;
  const Clamp c = n.act == A::kReLU6 ? Clamp::kReLU6 : n.act == A::kReLU ? Clamp::kReLU : Clamp::kNone;
  try {
    n.int8 = std::make_shared<const Int8Layer>(pack_int8_layer(*tensors_, n.name, j.at("op"), n.kernel, n.stride,
                                                               producer.out_q, u8_out ? &n.out_q : nullptr, c));
  } catch (const Error& e) {
    PMPL_CHECK(false, "{}: {}; re-export it", where, e.what());
  }
}

Tensor GraphProgram::run(const Tensor& images, const Observer* observe) const {
  NoGradGuard no_grad;
  std::vector<Tensor> values(nodes_.size() + 1);
  values[0] = images;
  const TensorLookup lookup = [this](const std::string& name) -> const Tensor& {
    auto it = tensors_->find(name);
    PMPL_CHECK(it != tensors_->end(), "tensor {} is missing", name);
    return it->second;
  };
  // What a node reads, as f32 or as uint8 with the parameters of the node that made it.
  const auto f32 = [&](int v) {
    const Tensor& t = values[static_cast<size_t>(v)];
    if (t.dtype() != DType::kU8) return t;
    Tensor out = Tensor::empty(t.shape(), DType::kF32);
    dequantize_u8(t.data<uint8_t>(), t.numel(), nodes_[static_cast<size_t>(v - 1)].out_q, out.data<float>());
    return out;
  };
  const auto u8 = [&](int v) {
    const Tensor& t = values[static_cast<size_t>(v)];
    if (t.dtype() == DType::kU8) return t;
    Tensor out = Tensor::empty(t.shape(), DType::kU8);
    quantize_u8(t.data<float>(), t.numel(), nodes_[static_cast<size_t>(v - 1)].out_q, out.data<uint8_t>());
    return out;
  };
  // Residual adds and global average pools run in uint8 where both sides have parameters.
  const auto has_q = [&](int v) { return v > 0 && nodes_[static_cast<size_t>(v - 1)].quantized; };
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const Node& n = nodes_[i];
    Tensor y;
    if (n.int8) {
      y = run_int8_layer(*n.int8, u8(n.inputs[0]));
      if (!n.int8->u8_out) y = activate(y, n.act);
    } else if (n.op == Op::kAdd && n.quantized && has_q(n.inputs[0]) && has_q(n.inputs[1])) {
      const Tensor a = u8(n.inputs[0]), b = u8(n.inputs[1]);
      PMPL_CHECK(a.shape() == b.shape(), "{}: adds {} and {}", n.name, a.shape().str(), b.shape().str());
      y = Tensor::empty(a.shape(), DType::kU8);
      add_u8(a.data<uint8_t>(), nodes_[n.inputs[0] - 1].out_q, b.data<uint8_t>(), nodes_[n.inputs[1] - 1].out_q,
             a.numel(), n.out_q, y.data<uint8_t>());
    } else if (n.op == Op::kGlobalAvgPool && n.quantized && has_q(n.inputs[0])) {
      const Tensor x = u8(n.inputs[0]);
      PMPL_CHECK(x.rank() == 4, "{}: pools {}", n.name, x.shape().str());
      y = Tensor::empty(n.keep_dims ? Shape{x.dim(0), 1, 1, x.dim(3)} : Shape{x.dim(0), x.dim(3)}, DType::kU8);
      global_avg_pool_u8(x.data<uint8_t>(), x.dim(0), x.dim(1) * x.dim(2), x.dim(3), nodes_[n.inputs[0] - 1].out_q,
                         n.out_q, y.data<uint8_t>());
    } else {
      y = run_f32(n, f32(n.inputs[0]), n.inputs.size() > 1 ? f32(n.inputs[1]) : Tensor(), lookup, observe);
    }
    if (observe) (*observe)(n.name, y);
    values[i + 1] = std::move(y);
    for (int v : n.release) values[v] = Tensor();
  }
  return values[output_];
}

Tensor GraphProgram::run_f32(const Node& n, const Tensor& x, const Tensor& x2, const TensorLookup& lookup,
                             const Observer* observe) const {
  if (observe && (n.op == Op::kConv || n.op == Op::kDepthwise || n.op == Op::kLinear)) (*observe)("input:" + n.name, x);
  Tensor y;
  switch (n.op) {
    case Op::kConv:
      if (n.kernel == 1 && n.stride == 1 && n.pad == 0) {
        y = run_conv1x1(x, n.weight, n.bias, n.act);
      } else {
        y = ops::channel_affine(ops::conv2d(x, n.weight, n.stride, n.pad), Tensor(), n.bias, n.act);
      }
      break;
    case Op::kDepthwise:
      y = ops::channel_affine(ops::depthwise_conv2d(x, n.weight, n.stride, n.pad), Tensor(), n.bias, n.act);
      break;
    case Op::kAffine: y = ops::channel_affine(x, n.weight, n.bias, n.act); break;
    case Op::kAct: y = activate(x, n.act); break;
    case Op::kLinear: y = ops::linear(x, n.weight, n.bias); break;
    case Op::kAdd: y = ops::add(x, x2); break;
    case Op::kMul: y = ops::mul(x, x2); break;
    case Op::kMaxPool: y = ops::max_pool2d(x, n.kernel, n.stride, n.pad); break;
    case Op::kAvgPool: y = ops::avg_pool2d(x, n.kernel, n.stride, n.pad); break;
    case Op::kGlobalAvgPool:
      y = ops::global_avg_pool(x);
      if (n.keep_dims) y = y.reshape(Shape{y.dim(0), 1, 1, y.dim(1)});
      break;
    case Op::kSlice: {
      const int64_t c = x.dim(-1);
      PMPL_CHECK(n.end <= c, "{}: slice [{}, {}) of {} channels", n.name, n.begin, n.end, c);
      std::vector<int64_t> sizes;
      for (int64_t s : {n.begin, n.end - n.begin, c - n.end}) {
        if (s > 0) sizes.push_back(s);
      }
      y = ops::split(x, sizes, x.rank() - 1)[n.begin > 0 ? 1 : 0];
      break;
    }
    case Op::kConcat: y = ops::concat({x, x2}, x.rank() - 1); break;
    case Op::kShuffle: y = ops::channel_shuffle(x, n.groups); break;
    case Op::kEnhancer: y = run_enhancer(x, n.pool_ops, n.name, lookup); break;
  }
  return y;
}

}  // namespace pmpl::deploy
