#include "models/deploy/onnx_export.h"

#include <algorithm>
#include <map>
#include <set>
#include <type_traits>

#include <fmt/ranges.h>
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include "engine/error.h"
#include "models/deploy/graph_int8.h"
#include "models/deploy/mobilenetv2_graph.h"
#include "models/genotype.h"

namespace pmpl::deploy {
namespace {

// Builds the graph node by node; every value is named after the pmpl tensor or layer it comes
// from ("features.3.conv.1.0" and so on), so a viewer shows pmpl's names.
class GraphWriter {
 public:
  GraphWriter(const DeployModel& model, onnx::GraphProto* graph) : model_(model), graph_(graph) {}

  // The folded tensor `name`, checked against `shape` (-1: any size).
  const FoldedTensor& tensor(const std::string& name, const std::vector<int64_t>& shape) const {
    auto it = model_.tensors.find(name);
    PMPL_CHECK(it != model_.tensors.end(), "tensor {} is missing: the file does not fit its architecture; re-export it",
               name);
    bool fits = it->second.shape.size() == shape.size();
    for (size_t i = 0; fits && i < shape.size(); ++i) fits = shape[i] < 0 || shape[i] == it->second.shape[i];
    PMPL_CHECK(fits, "tensor {} has shape [{}] where its architecture needs [{}]; re-export it", name,
               fmt::join(it->second.shape, ", "), fmt::join(shape, ", "));
    return it->second;
  }

  std::string initializer(const std::string& name, const std::vector<int64_t>& dims, const std::vector<float>& values) {
    onnx::TensorProto* t = graph_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) t->add_dims(d);
    t->set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)));
    return name;
  }

  template <class T>
  std::string int8_initializer(const std::string& name, const std::vector<int64_t>& dims, const std::vector<T>& values) {
    static_assert(sizeof(T) == 1);
    onnx::TensorProto* t = graph_->add_initializer();
    t->set_name(name);
    t->set_data_type(std::is_signed_v<T> ? onnx::TensorProto::INT8 : onnx::TensorProto::UINT8);
    for (int64_t d : dims) t->add_dims(d);
    t->set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size()));
    return name;
  }

  // The weight `prefix`.weight, `values` in ONNX's layout [Cout, ...]: f32, or for an int8 file's
  // int8 weight DequantizeLinear of the int8 values with its scale per output channel (axis 0),
  // which onnxruntime fuses with the layer into its int8 kernels.
  std::string weight(const std::string& prefix, const std::vector<int64_t>& dims, const std::vector<float>& values) {
    if (!model_.tensors.at(prefix + ".weight").int8) return initializer(prefix + ".weight", dims, values);
    const int64_t cout = dims.at(0);
    const std::vector<int8_t> q(values.begin(), values.end());
    const std::string scale = prefix + ".weight_scale";
    tensor(scale, {cout});
    onnx::NodeProto* dq = node("DequantizeLinear",
                               {int8_initializer(prefix + ".weight_q", dims, q), initializer(scale, {cout}, floats(scale)),
                                int8_initializer(prefix + ".weight_zero", {cout}, std::vector<int8_t>(cout, 0))},
                               prefix + ".weight");
    integer(dq, "axis", 0);
    return prefix + ".weight";
  }

  // Value x quantised to uint8 with `q` and back (QuantizeLinear, DequantizeLinear): what pmpl's
  // int8 runtime holds. Returns the dequantised value's name, x + ".q".
  std::string fake_quantize(const std::string& x, float scale, int32_t zero) {
    const std::string s = initializer(x + ".q_scale", {}, {scale});
    const std::string z = int8_initializer(x + ".q_zero", {}, std::vector<uint8_t>{static_cast<uint8_t>(zero)});
    node("QuantizeLinear", {x, s, z}, x + ".u8");
    node("DequantizeLinear", {x + ".u8", s, z}, x + ".q");
    return x + ".q";
  }

  std::string int64_initializer(const std::string& name, const std::vector<int64_t>& values) {
    onnx::TensorProto* t = graph_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(static_cast<int64_t>(values.size()));
    for (int64_t v : values) t->add_int64_data(v);
    return name;
  }

  onnx::NodeProto* node(const std::string& op, const std::vector<std::string>& inputs, const std::string& output) {
    onnx::NodeProto* n = graph_->add_node();
    n->set_op_type(op);
    n->set_name(output);
    for (const std::string& in : inputs) n->add_input(in);
    n->add_output(output);
    return n;
  }

  static void ints(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& values) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t v : values) a->add_ints(v);
  }

  static void integer(onnx::NodeProto* n, const std::string& name, int64_t value) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(value);
  }

  static void real(onnx::NodeProto* n, const std::string& name, float value) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(value);
  }

  // pmpl's conv `prefix` (.weight, .bias) on x, making value `out` (default: prefix): a dense
  // [Cout, k, k, Cin] weight becomes ONNX's [Cout, Cin, k, k]; a depthwise [C, k, k] one
  // [C, 1, k, k] with group C.
  std::string conv(const std::string& x, const std::string& prefix, const std::vector<int64_t>& shape, int64_t stride,
                   int64_t pad, bool depthwise, std::string out = "") {
    if (out.empty()) out = prefix;
    const FoldedTensor& w = tensor(prefix + ".weight", shape);
    const int64_t cout = w.shape[0], k = w.shape[1], in = depthwise ? 1 : w.shape[3];
    tensor(prefix + ".bias", {cout});
    std::vector<float> weight(w.data.size());
    for (int64_t o = 0; o < cout; ++o) {
      for (int64_t i = 0; i < in; ++i) {
        for (int64_t r = 0; r < k * k; ++r) {
          weight[static_cast<size_t>((o * in + i) * k * k + r)] =
              static_cast<float>(w.data[static_cast<size_t>((o * k * k + r) * in + i)]);
        }
      }
    }
    const std::string w_name = this->weight(prefix, {cout, in, k, k}, weight);
    const std::string b_name = initializer(prefix + ".bias", {cout}, floats(prefix + ".bias"));
    onnx::NodeProto* n = node("Conv", {x, w_name, b_name}, out);
    ints(n, "kernel_shape", {k, k});
    ints(n, "strides", {stride, stride});
    ints(n, "pads", {pad, pad, pad, pad});
    if (depthwise) integer(n, "group", cout);
    return out;
  }

  // The graph's activation `act` on x (docs/FORMAT.md): ReLU6 is Clip(0, 6), SiLU x * Sigmoid(x),
  // hardsigmoid HardSigmoid(1/6, 1/2) = relu6(x + 3) / 6. Returns the value that holds it, named
  // `out` (default: x.<act>).
  std::string activation(const std::string& x, const std::string& act, std::string out = "") {
    if (act == "none") {
      if (out.empty()) return x;
      node("Identity", {x}, out);
      return out;
    }
    if (out.empty()) out = x + "." + act;
    if (act == "relu6") {
      if (!clip_bounds_) {
        initializer("relu6.min", {}, {0.0f});
        initializer("relu6.max", {}, {6.0f});
        clip_bounds_ = true;
      }
      node("Clip", {x, "relu6.min", "relu6.max"}, out);
    } else if (act == "relu") {
      node("Relu", {x}, out);
    } else if (act == "hardswish") {
      node("HardSwish", {x}, out);
    } else if (act == "sigmoid") {
      node("Sigmoid", {x}, out);
    } else if (act == "hardsigmoid") {
      onnx::NodeProto* n = node("HardSigmoid", {x}, out);
      real(n, "alpha", 1.0f / 6.0f);
      real(n, "beta", 0.5f);
    } else {
      PMPL_CHECK(act == "silu", "unknown activation {} after {}; re-export the model with this pmpl", act, x);
      node("Sigmoid", {x}, out + ".sigmoid");
      node("Mul", {x, out + ".sigmoid"}, out);
    }
    return out;
  }

  // The folded per-channel tensor `name` ([C]) as an initializer broadcasting over a value of
  // `rank` dimensions ([1, C, 1, 1] or [1, C]).
  std::string per_channel(const std::string& name, int64_t channels, int rank) {
    tensor(name, {channels});
    std::vector<int64_t> dims(static_cast<size_t>(rank), 1);
    dims[1] = channels;
    return initializer(name, dims, floats(name));
  }

  // A name for the value of graph node `name` (op `op`) that no other value has.
  std::string fresh_name(const std::string& name, const std::string& op) {
    std::string out = used_.count(name) ? name + "." + op : name;
    for (int i = 2; used_.count(out); ++i) out = name + "." + op + std::to_string(i);
    used_.insert(out);
    return out;
  }

  // Renames value `from` to `to` wherever a node makes or reads it.
  void rename(const std::string& from, const std::string& to) {
    for (onnx::NodeProto& n : *graph_->mutable_node()) {
      for (std::string& v : *n.mutable_input()) {
        if (v == from) v = to;
      }
      for (std::string& v : *n.mutable_output()) {
        if (v == from) v = to;
      }
    }
  }

  std::vector<float> floats(const std::string& name) const {
    const FoldedTensor& t = model_.tensors.at(name);
    return std::vector<float>(t.data.begin(), t.data.end());
  }

 private:
  const DeployModel& model_;
  onnx::GraphProto* graph_;
  bool clip_bounds_ = false;
  std::set<std::string> used_;
};

// A value of the graph as ONNX sees it: its name and its shape past the batch ([C, H, W] or [C]).
struct Value {
  std::string name;
  std::vector<int64_t> dims;
};

int64_t window_output_size(int64_t size, int64_t kernel, int64_t stride, int64_t pad) {
  return (size + 2 * pad - kernel) / stride + 1;
}

// Coordinate-attention strip pooling on y [N, C, H, W] (layers/meta_pooling.h's strip branch):
// row means and column means stacked along H, a 1x1 conv + hardswish, split back, a gate per row
// and per column (1x1 conv + sigmoid), y * a_w * a_h in the runtime's order.
std::string strip_attention(GraphWriter& g, const std::string& y, const std::string& e, int64_t c, int64_t h,
                            int64_t w) {
  const std::string s = e + ".strip";
  onnx::NodeProto* rows = g.node("ReduceMean", {y}, s + ".rows");
  GraphWriter::ints(rows, "axes", {3});
  onnx::NodeProto* cols = g.node("ReduceMean", {y}, s + ".cols");
  GraphWriter::ints(cols, "axes", {2});
  GraphWriter::ints(g.node("Transpose", {s + ".cols"}, s + ".cols_t"), "perm", {0, 1, 3, 2});
  GraphWriter::integer(g.node("Concat", {s + ".rows", s + ".cols_t"}, s + ".pooled"), "axis", 2);
  const std::string mixed = g.conv(s + ".pooled", s + ".conv1", {-1, 1, 1, c}, 1, 0, false);
  const int64_t m = g.tensor(s + ".conv1.weight", {-1, 1, 1, c}).shape[0];
  g.node("HardSwish", {mixed}, mixed + ".hardswish");
  const std::string sizes = g.int64_initializer(s + ".split_sizes", {h, w});
  onnx::NodeProto* split = g.node("Split", {mixed + ".hardswish", sizes}, s + ".part_h");
  split->add_output(s + ".part_w");
  GraphWriter::integer(split, "axis", 2);
  g.node("Sigmoid", {g.conv(s + ".part_h", s + ".conv_h", {c, 1, 1, m}, 1, 0, false)}, s + ".a_h");
  g.node("Sigmoid", {g.conv(s + ".part_w", s + ".conv_w", {c, 1, 1, m}, 1, 0, false)}, s + ".a_w_t");
  GraphWriter::ints(g.node("Transpose", {s + ".a_w_t"}, s + ".a_w"), "perm", {0, 1, 3, 2});
  g.node("Mul", {y, s + ".a_w"}, s + ".x_a_w");
  g.node("Mul", {s + ".x_a_w", s + ".a_h"}, s);
  return s;
}

// MaxPool or AveragePool (counting the padding, as pmpl's avg pools do).
std::string window_pool(GraphWriter& g, bool max, const std::string& y, const std::string& name, int64_t k,
                        int64_t stride, int64_t pad) {
  onnx::NodeProto* n = g.node(max ? "MaxPool" : "AveragePool", {y}, name);
  GraphWriter::ints(n, "kernel_shape", {k, k});
  GraphWriter::ints(n, "strides", {stride, stride});
  GraphWriter::ints(n, "pads", {pad, pad, pad, pad});
  if (!max) GraphWriter::integer(n, "count_include_pad", 1);
  return name;
}

// A fixed enhancer on y [C, H, W]: its ops summed, the folded batchnorm as a scale and shift per
// channel (broadcast as [1, C, 1, 1]), then hardswish.
std::string enhancer(GraphWriter& g, const nlohmann::json& node, const Value& y) {
  const std::string e = node.at("name");
  const int64_t c = y.dims[0];
  std::string mixed;
  const auto ops = node.at("ops").get<std::vector<std::string>>();
  PMPL_CHECK(!ops.empty() && ops.size() <= 2, "enhancer {} has {} ops, expected 1 or 2", e, ops.size());
  for (size_t i = 0; i < ops.size(); ++i) {
    const PoolOp op = parse_pool_op(ops[i]);
    const std::string_view op_name = pool_op_name(op);
    const int64_t k = op_name.back() - '0';
    const std::string branch = op == PoolOp::kSkip    ? y.name
                               : op == PoolOp::kStrip ? strip_attention(g, y.name, e, c, y.dims[1], y.dims[2])
                                                      : window_pool(g, op_name.substr(0, 3) == "max", y.name,
                                                                    e + "." + std::string(op_name), k, 1, k / 2);
    if (i == 0) {
      mixed = branch;
    } else {
      g.node("Add", {mixed, branch}, e + ".sum" + std::to_string(i));
      mixed = e + ".sum" + std::to_string(i);
    }
  }
  g.node("Mul", {mixed, g.per_channel(e + ".scale", c, 4)}, e + ".scaled");
  g.node("Add", {e + ".scaled", g.per_channel(e + ".shift", c, 4)}, e + ".bn");
  g.node("HardSwish", {e + ".bn"}, e);
  return e;
}

void metadata(onnx::ModelProto& m, const std::string& key, const std::string& value) {
  onnx::StringStringEntryProto* p = m.add_metadata_props();
  p->set_key(key);
  p->set_value(value);
}

void value_info(onnx::ValueInfoProto* v, const std::string& name, const std::vector<int64_t>& dims) {
  v->set_name(name);
  onnx::TypeProto_Tensor* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) {
    onnx::TensorShapeProto_Dimension* dim = t->mutable_shape()->add_dim();
    if (d < 0) {
      dim->set_dim_param("batch");
    } else {
      dim->set_dim_value(d);
    }
  }
}

// One node of the deployment graph (docs/FORMAT.md, "The graph") as ONNX nodes, reading `in`.
// `out` names the value it makes (node names repeat: an SE block's pool, gates and product share
// its path); `name` stays the prefix of the node's tensors.
Value write_node(GraphWriter& g, const nlohmann::json& node, const std::vector<const Value*>& in, const std::string& out) {
  const std::string op = node.at("op"), name = node.at("name");
  const Value& x = *in[0];
  const bool spatial = x.dims.size() == 3;
  auto needs_spatial = [&] {
    PMPL_CHECK(spatial, "{} ({}) reads a value without height and width; re-export the model", name, op);
  };
  const std::string act = node.value("act", "none");
  if (op == "conv" || op == "depthwise") {
    needs_spatial();
    const int64_t k = node.at("kernel"), stride = node.at("stride"), pad = node.at("pad");
    const bool depthwise = op == "depthwise";
    const std::vector<int64_t> shape = depthwise ? std::vector<int64_t>{x.dims[0], k, k}
                                                 : std::vector<int64_t>{-1, k, k, x.dims[0]};
    const std::string y = g.conv(x.name, name, shape, stride, pad, depthwise, out);
    const int64_t c = g.tensor(name + ".weight", shape).shape[0];
    return {g.activation(y, act), {c, window_output_size(x.dims[1], k, stride, pad),
                                   window_output_size(x.dims[2], k, stride, pad)}};
  }
  if (op == "affine") {
    const int rank = static_cast<int>(x.dims.size()) + 1;
    g.node("Mul", {x.name, g.per_channel(name + ".scale", x.dims[0], rank)}, out + ".scaled");
    g.node("Add", {out + ".scaled", g.per_channel(name + ".shift", x.dims[0], rank)}, out);
    return {g.activation(out, act), x.dims};
  }
  if (op == "act") return {g.activation(x.name, act, out), x.dims};
  if (op == "linear") {
    PMPL_CHECK(x.dims.size() == 1, "{} (linear) reads a value of rank {}, expected [N, features]", name,
               x.dims.size() + 1);
    const int64_t features = g.tensor(name + ".weight", {-1, x.dims[0]}).shape[0];
    g.tensor(name + ".bias", {features});
    const std::string w = g.weight(name, {features, x.dims[0]}, g.floats(name + ".weight"));
    const std::string b = g.initializer(name + ".bias", {features}, g.floats(name + ".bias"));
    GraphWriter::integer(g.node("Gemm", {x.name, w, b}, out), "transB", 1);
    return {out, {features}};
  }
  if (op == "add" || op == "mul") {
    g.node(op == "add" ? "Add" : "Mul", {x.name, in[1]->name}, out);
    return {out, x.dims};
  }
  if (op == "max_pool" || op == "avg_pool") {
    needs_spatial();
    const int64_t k = node.at("kernel"), stride = node.value("stride", 1), pad = node.value("pad", 0);
    window_pool(g, op == "max_pool", x.name, out, k, stride, pad);
    return {out, {x.dims[0], window_output_size(x.dims[1], k, stride, pad), window_output_size(x.dims[2], k, stride, pad)}};
  }
  if (op == "global_avg_pool") {
    needs_spatial();
    if (node.value("keep_dims", false)) {
      g.node("GlobalAveragePool", {x.name}, out);
      return {out, {x.dims[0], 1, 1}};
    }
    g.node("GlobalAveragePool", {x.name}, out + ".keep_dims");
    GraphWriter::integer(g.node("Flatten", {out + ".keep_dims"}, out), "axis", 1);
    return {out, {x.dims[0]}};
  }
  if (op == "slice") {
    const int64_t begin = node.at("begin"), end = node.at("end");
    PMPL_CHECK(begin >= 0 && end > begin && end <= x.dims[0], "{}: slice [{}, {}) of {} channels", name, begin, end,
               x.dims[0]);
    g.node("Slice", {x.name, g.int64_initializer(out + ".starts", {begin}), g.int64_initializer(out + ".ends", {end}),
                     g.int64_initializer(out + ".axes", {1})},
           out);
    std::vector<int64_t> dims = x.dims;
    dims[0] = end - begin;
    return {out, dims};
  }
  if (op == "concat") {
    PMPL_CHECK(x.dims.size() == in[1]->dims.size() &&
                   std::equal(x.dims.begin() + 1, x.dims.end(), in[1]->dims.begin() + 1),
               "{} (concat) joins values of different sizes", name);
    GraphWriter::integer(g.node("Concat", {x.name, in[1]->name}, out), "axis", 1);
    std::vector<int64_t> dims = x.dims;
    dims[0] += in[1]->dims[0];
    return {out, dims};
  }
  if (op == "channel_shuffle") {
    // torchvision's view [N, groups, C / groups, H, W], transpose(1, 2), view [N, C, H, W].
    needs_spatial();
    const int64_t groups = node.at("groups"), c = x.dims[0], h = x.dims[1], w = x.dims[2];
    PMPL_CHECK(groups >= 1 && c % groups == 0, "{}: {} channels in {} groups", name, c, groups);
    g.node("Reshape", {x.name, g.int64_initializer(out + ".grouped_shape", {0, groups, c / groups, h, w})},
           out + ".grouped");
    GraphWriter::ints(g.node("Transpose", {out + ".grouped"}, out + ".transposed"), "perm", {0, 2, 1, 3, 4});
    g.node("Reshape", {out + ".transposed", g.int64_initializer(out + ".shape", {0, c, h, w})}, out);
    return {out, x.dims};
  }
  if (op == "enhancer") {
    needs_spatial();
    return {enhancer(g, node, x), x.dims};
  }
  PMPL_CHECK(false, "unknown graph op {} ({}); re-export the model with this pmpl", op, name);
  return {};
}

// Where an int8 file's network holds uint8 values (graph_int8.h, docs/FORMAT.md "int8"), so that
// the ONNX graph quantises the same values with the same parameters: a node's output where the
// runtime makes it in uint8 (an int8 layer whose activation is a clamp, an add or a global
// average pool whose inputs all have parameters), and an edge into a node that reads in int8 what
// was made in f32. f32 files have none.
class Int8Edges {
 public:
  Int8Edges(const DeployModel& model, const nlohmann::json& graph) : model_(model) {
    if (!model.config.contains("quantization")) return;
    activations_ = int8_activations(model.config);
    const nlohmann::json& nodes = graph.at("nodes");
    names_.push_back("");
    for (const nlohmann::json& n : nodes) names_.push_back(n.at("name"));
  }

  bool makes_uint8(const nlohmann::json& node) const {
    const std::string name = node.at("name"), op = node.at("op"), act = node.value("act", "none");
    if (!has(name)) return false;
    if (int8_layer(node)) return op != "linear" && (act == "none" || act == "relu" || act == "relu6");
    if (op == "add" || op == "global_avg_pool") {
      for (int v : node.at("inputs").get<std::vector<int>>()) {
        if (v == 0 || !has(names_.at(static_cast<size_t>(v)))) return false;
      }
      return true;
    }
    return false;
  }

  // Whether `node` reads value v in uint8 (it runs in int8, or in uint8 as makes_uint8 says).
  bool reads_in_int8(const nlohmann::json& node, int v) const {
    return v > 0 && (int8_layer(node) || (makes_uint8(node) && node.at("op") != "conv" && node.at("op") != "depthwise"));
  }

  // Value v as an int8 node reads it: itself where it was made in uint8, else quantised (once).
  Value quantized(GraphWriter& g, const std::vector<Value>& values, int v) {
    const Value& x = values.at(static_cast<size_t>(v));
    if (uint8_.count(v)) return x;
    auto it = edges_.find(v);
    if (it == edges_.end()) {
      const QuantParams q = activation_params(activations_, names_.at(static_cast<size_t>(v)));
      it = edges_.emplace(v, Value{g.fake_quantize(x.name, q.scale, q.zero_point), x.dims}).first;
    }
    return it->second;
  }

  void made(size_t v, const nlohmann::json& node) {
    if (makes_uint8(node)) uint8_.insert(static_cast<int>(v));
  }

  QuantParams params(const nlohmann::json& node) const { return activation_params(activations_, node.at("name")); }

 private:
  bool has(const std::string& name) const { return activations_.is_object() && activations_.contains(name); }
  bool int8_layer(const nlohmann::json& node) const {
    auto it = model_.tensors.find(node.at("name").get<std::string>() + ".weight");
    return it != model_.tensors.end() && it->second.int8;
  }

  const DeployModel& model_;
  nlohmann::json activations_;
  std::vector<std::string> names_;
  std::set<int> uint8_;
  std::map<int, Value> edges_;
};

}  // namespace

std::string onnx_model_bytes(const DeployModel& model) {
  const nlohmann::json& config = model.config;
  std::string architecture;
  int64_t size = 0, classes = 0;
  nlohmann::json graph_json;
  try {
    architecture = config.at("architecture");
    size = config.at("input").at("size");
    classes = static_cast<int64_t>(config.at("classes").size());
  } catch (const nlohmann::json::exception& e) {
    PMPL_CHECK(false, "the model description is incomplete ({}); re-export it", e.what());
  }
  PMPL_CHECK(size >= 8 && classes > 0, "no classes or an implausible input size ({})", size);
  graph_json = deployment_graph(config);

  onnx::ModelProto m;
  m.set_ir_version(onnx::IR_VERSION);
  m.set_producer_name("pmpl");
  m.set_producer_version(PMPL_VERSION);
  m.set_doc_string("pmpl " + architecture + ": images [batch, 3, " + std::to_string(size) + ", " +
                   std::to_string(size) + "], RGB in [0, 1] normalised with the mean and std in metadata_props, "
                   "in, logits [batch, classes] out");
  onnx::OperatorSetIdProto* opset = m.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpset);
  onnx::GraphProto* graph = m.mutable_graph();
  graph->set_name("pmpl_" + architecture);
  value_info(graph->add_input(), "images", {-1, 3, size, size});
  value_info(graph->add_output(), "logits", {-1, classes});

  GraphWriter g(model, graph);
  std::vector<Value> values{{"images", {3, size, size}}};
  int output = 0;
  try {
    Int8Edges int8(model, graph_json);
    for (const nlohmann::json& node : graph_json.at("nodes")) {
      const std::vector<int> inputs = node.at("inputs").get<std::vector<int>>();
      const std::string op = node.at("op");
      PMPL_CHECK(!inputs.empty() && inputs.size() == (op == "add" || op == "mul" || op == "concat" ? 2u : 1u),
                 "{} ({}) has {} inputs", node.at("name").get<std::string>(), op, inputs.size());
      std::vector<Value> read;
      for (int v : inputs) {
        PMPL_CHECK(v >= 0 && v < static_cast<int>(values.size()), "{} reads value {}, not yet computed",
                   node.at("name").get<std::string>(), v);
        read.push_back(int8.reads_in_int8(node, v) ? int8.quantized(g, values, v) : values[static_cast<size_t>(v)]);
      }
      std::vector<const Value*> in;
      for (const Value& v : read) in.push_back(&v);
      Value made = write_node(g, node, in, g.fresh_name(node.at("name"), op));
      if (int8.makes_uint8(node)) made.name = g.fake_quantize(made.name, int8.params(node).scale, int8.params(node).zero_point);
      values.push_back(std::move(made));
      int8.made(values.size() - 1, node);
    }
    output = graph_json.at("output");
  } catch (const nlohmann::json::exception& e) {
    PMPL_CHECK(false, "the model's graph is incomplete ({}); re-export it", e.what());
  }
  PMPL_CHECK(output > 0 && output < static_cast<int>(values.size()) &&
                 values[static_cast<size_t>(output)].dims == std::vector<int64_t>{classes},
             "the graph's output is not one score per class; re-export the model");
  g.rename(values[static_cast<size_t>(output)].name, "logits");

  metadata(m, "pmpl.architecture", architecture);
  metadata(m, "pmpl.classes", config.at("classes").dump());
  metadata(m, "pmpl.input", config.at("input").dump());
  for (const char* key : {"width", "small_input", "genotype"}) {
    if (config.contains(key) && !config.at(key).is_null()) metadata(m, std::string("pmpl.") + key, config.at(key).dump());
  }

  try {
    onnx::checker::check_model(m);
  } catch (const std::exception& e) {
    PMPL_ASSERT(false, "the ONNX graph pmpl built fails onnx's checker: {}", e.what());
  }
  std::string bytes;
  PMPL_ASSERT(m.SerializeToString(&bytes), "serialising the ONNX model failed");
  return bytes;
}

void export_onnx(const DeployModel& model, const std::string& path) {
  write_file_atomically(path, onnx_model_bytes(model));
}

}  // namespace pmpl::deploy
