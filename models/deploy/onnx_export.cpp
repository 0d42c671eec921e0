#include "models/deploy/onnx_export.h"

#include <fmt/ranges.h>
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include "engine/error.h"
#include "models/genotype.h"
#include "models/mobilenetv2.h"

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

  // pmpl's conv `prefix` (.weight, .bias) on x: a dense [Cout, k, k, Cin] weight becomes ONNX's
  // [Cout, Cin, k, k]; a depthwise [C, k, k] one [C, 1, k, k] with group C.
  std::string conv(const std::string& x, const std::string& prefix, const std::vector<int64_t>& shape, int stride,
                   bool depthwise) {
    const FoldedTensor& w = tensor(prefix + ".weight", shape);
    const int64_t out = w.shape[0], k = w.shape[1], in = depthwise ? 1 : w.shape[3];
    tensor(prefix + ".bias", {out});
    std::vector<float> weight(w.data.size());
    for (int64_t o = 0; o < out; ++o) {
      for (int64_t i = 0; i < in; ++i) {
        for (int64_t r = 0; r < k * k; ++r) {
          weight[static_cast<size_t>((o * in + i) * k * k + r)] =
              static_cast<float>(w.data[static_cast<size_t>((o * k * k + r) * in + i)]);
        }
      }
    }
    const std::string w_name = initializer(prefix + ".weight", {out, in, k, k}, weight);
    const std::string b_name = initializer(prefix + ".bias", {out}, floats(prefix + ".bias"));
    onnx::NodeProto* n = node("Conv", {x, w_name, b_name}, prefix);
    ints(n, "kernel_shape", {k, k});
    ints(n, "strides", {stride, stride});
    ints(n, "pads", {k / 2, k / 2, k / 2, k / 2});
    if (depthwise) integer(n, "group", out);
    return prefix;
  }

  std::string relu6(const std::string& x) {
    if (!clip_bounds_) {
      initializer("relu6.min", {}, {0.0f});
      initializer("relu6.max", {}, {6.0f});
      clip_bounds_ = true;
    }
    node("Clip", {x, "relu6.min", "relu6.max"}, x + ".relu6");
    return x + ".relu6";
  }

  std::vector<float> floats(const std::string& name) const {
    const FoldedTensor& t = model_.tensors.at(name);
    return std::vector<float>(t.data.begin(), t.data.end());
  }

 private:
  const DeployModel& model_;
  onnx::GraphProto* graph_;
  bool clip_bounds_ = false;
};

int64_t conv_output_size(int64_t size, int stride) { return (size - 1) / stride + 1; }

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
  const std::string mixed = g.conv(s + ".pooled", s + ".conv1", {-1, 1, 1, c}, 1, false);
  const int64_t m = g.tensor(s + ".conv1.weight", {-1, 1, 1, c}).shape[0];
  g.node("HardSwish", {mixed}, mixed + ".hardswish");
  const std::string sizes = g.int64_initializer(s + ".split_sizes", {h, w});
  onnx::NodeProto* split = g.node("Split", {mixed + ".hardswish", sizes}, s + ".part_h");
  split->add_output(s + ".part_w");
  GraphWriter::integer(split, "axis", 2);
  g.node("Sigmoid", {g.conv(s + ".part_h", s + ".conv_h", {c, 1, 1, m}, 1, false)}, s + ".a_h");
  g.node("Sigmoid", {g.conv(s + ".part_w", s + ".conv_w", {c, 1, 1, m}, 1, false)}, s + ".a_w_t");
  GraphWriter::ints(g.node("Transpose", {s + ".a_w_t"}, s + ".a_w"), "perm", {0, 1, 3, 2});
  g.node("Mul", {y, s + ".a_w"}, s + ".x_a_w");
  g.node("Mul", {s + ".x_a_w", s + ".a_h"}, s);
  return s;
}

std::string pool(GraphWriter& g, PoolOp op, const std::string& y, const std::string& name) {
  const std::string_view op_name = pool_op_name(op);
  const int64_t k = op_name.back() - '0';
  onnx::NodeProto* n = g.node(op_name.substr(0, 3) == "max" ? "MaxPool" : "AveragePool", {y}, name);
  GraphWriter::ints(n, "kernel_shape", {k, k});
  GraphWriter::ints(n, "strides", {1, 1});
  GraphWriter::ints(n, "pads", {k / 2, k / 2, k / 2, k / 2});
  if (op_name.substr(0, 3) == "avg") GraphWriter::integer(n, "count_include_pad", 1);
  return name;
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

}  // namespace

std::string onnx_model_bytes(const DeployModel& model) {
  const nlohmann::json& config = model.config;
  PMPL_CHECK(!config.contains("quantization"), "this is an int8 model: ONNX export takes the f32 network (export "
             "it again without --dtype int8, or quantise the ONNX file with onnxruntime's tools)");
  std::string architecture;
  double width = 1.0;
  bool small_input = false;
  int64_t size = 0, classes = 0;
  Genotype genotype;
  try {
    architecture = config.at("architecture");
    width = config.at("width");
    small_input = config.at("small_input");
    size = config.at("input").at("size");
    classes = static_cast<int64_t>(config.at("classes").size());
    if (architecture == "mobilenetv2_mp") genotype = Genotype::from_json(config.at("genotype"), "the model");
  } catch (const nlohmann::json::exception& e) {
    PMPL_CHECK(false, "the model description is incomplete ({}); re-export it", e.what());
  }
  PMPL_CHECK(architecture == "mobilenetv2" || architecture == "mobilenetv2_mp",
             "ONNX export knows mobilenetv2 and mobilenetv2_mp so far, not {} (issue #15)", architecture);
  PMPL_CHECK(size >= 8 && classes > 0, "no classes or an implausible input size ({})", size);

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
  const ArchitectureSpec spec = mobilenetv2_spec(width, small_input);
  int64_t side = conv_output_size(size, spec.stem_stride);
  std::string x = g.relu6(g.conv("images", "features.0.0", {spec.stem_channels, 3, 3, 3}, spec.stem_stride, false));
  size_t enhancer = 0;
  for (const BlockSpec& b : spec.blocks) {
    const std::string p = "features." + std::to_string(b.index) + ".conv.";
    std::string y = x;
    int child = 0;
    if (b.expand != 1) y = g.relu6(g.conv(y, p + std::to_string(child++) + ".0", {b.hidden, 1, 1, b.in}, 1, false));
    y = g.relu6(g.conv(y, p + std::to_string(child++) + ".0", {b.hidden, 3, 3}, b.stride, true));
    side = conv_output_size(side, b.stride);
    if (architecture == "mobilenetv2_mp" && b.expand != 1) {
      PMPL_CHECK(enhancer < genotype.enhancers.size(), "the genotype has {} enhancers, the network more",
                 genotype.enhancers.size());
      const Genotype::Entry& entry = genotype.enhancers[enhancer++];
      const std::string e = "features." + std::to_string(b.index) + ".enhancer";
      PMPL_CHECK(entry.name == e && !entry.ops.empty(), "the genotype's enhancer {} is not the network's {}, or "
                 "not fixed; re-export it", entry.name, e);
      std::string mixed;
      for (size_t i = 0; i < entry.ops.size(); ++i) {
        const PoolOp op = entry.ops[i];
        const std::string branch = op == PoolOp::kSkip    ? y
                                   : op == PoolOp::kStrip ? strip_attention(g, y, e, b.hidden, side, side)
                                                          : pool(g, op, y, e + "." + std::string(pool_op_name(op)));
        if (i == 0) {
          mixed = branch;
        } else {
          g.node("Add", {mixed, branch}, e + ".sum" + std::to_string(i));
          mixed = e + ".sum" + std::to_string(i);
        }
      }
      // The enhancer's batchnorm as scale and shift over channels (broadcast as [1, C, 1, 1]).
      auto per_channel = [&](const std::string& name) {
        g.tensor(name, {b.hidden});
        return g.initializer(name, {1, b.hidden, 1, 1}, g.floats(name));
      };
      g.node("Mul", {mixed, per_channel(e + ".scale")}, e + ".scaled");
      g.node("Add", {e + ".scaled", per_channel(e + ".shift")}, e + ".bn");
      g.node("HardSwish", {e + ".bn"}, e);
      y = e;
    }
    y = g.conv(y, p + std::to_string(child), {b.out, 1, 1, b.hidden}, 1, false);
    if (b.residual()) {
      g.node("Add", {x, y}, "features." + std::to_string(b.index));
      y = "features." + std::to_string(b.index);
    }
    x = y;
  }
  PMPL_CHECK(enhancer == genotype.enhancers.size(), "the genotype lists {} enhancers, the network has {}",
             genotype.enhancers.size(), enhancer);
  x = g.relu6(g.conv(x, "features.18.0", {spec.last_channels, 1, 1, spec.blocks.back().out}, 1, false));
  g.node("GlobalAveragePool", {x}, "pooled");
  GraphWriter::integer(g.node("Flatten", {"pooled"}, "pooled.flat"), "axis", 1);
  g.tensor("classifier.1.weight", {classes, spec.last_channels});
  g.tensor("classifier.1.bias", {classes});
  const std::string w = g.initializer("classifier.1.weight", {classes, spec.last_channels},
                                      g.floats("classifier.1.weight"));
  const std::string bias = g.initializer("classifier.1.bias", {classes}, g.floats("classifier.1.bias"));
  GraphWriter::integer(g.node("Gemm", {"pooled.flat", w, bias}, "logits"), "transB", 1);

  metadata(m, "pmpl.architecture", architecture);
  metadata(m, "pmpl.classes", config.at("classes").dump());
  metadata(m, "pmpl.input", config.at("input").dump());
  metadata(m, "pmpl.width", config.at("width").dump());
  metadata(m, "pmpl.small_input", config.at("small_input").dump());
  if (architecture == "mobilenetv2_mp") metadata(m, "pmpl.genotype", config.at("genotype").dump());

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
