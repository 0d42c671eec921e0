#include "models/deploy/graph.h"

#include <cmath>

#include "engine/error.h"

namespace pmpl::deploy {
namespace {

FoldedTensor folded(const Tensor& t) {
  return {t.shape().vec(), t.to(Device::cpu()).to(DType::kF64).to_vector<double>()};
}

const Tensor& tensor_of(const TraceNode& node, const std::string& key) {
  auto it = node.tensors.find(key);
  PMPL_ASSERT(it != node.tensors.end(), "export: {} ({}) has no tensor {}", node.name, node.op, key);
  return it->second;
}

// A batchnorm in evaluation mode as y = x * scale + shift (tensors "<prefix>weight", ...).
std::pair<FoldedTensor, FoldedTensor> batchnorm_affine(const TraceNode& node, const std::string& prefix, double eps) {
  const FoldedTensor gamma = folded(tensor_of(node, prefix + "weight")), beta = folded(tensor_of(node, prefix + "bias"));
  const FoldedTensor mean = folded(tensor_of(node, prefix + "running_mean"));
  const FoldedTensor var = folded(tensor_of(node, prefix + "running_var"));
  FoldedTensor scale = gamma, shift = beta;
  for (size_t c = 0; c < gamma.data.size(); ++c) {
    scale.data[c] = gamma.data[c] / std::sqrt(var.data[c] + eps);
    shift.data[c] = beta.data[c] - mean.data[c] * scale.data[c];
  }
  return {scale, shift};
}

// A conv's weight [Cout, ...] and bias [Cout] followed by y * scale + shift.
void fold_affine_into(FoldedTensor& weight, FoldedTensor& bias, const FoldedTensor& scale, const FoldedTensor& shift) {
  const size_t out = scale.data.size(), per = weight.data.size() / out;
  PMPL_ASSERT(bias.data.size() == out && per * out == weight.data.size(), "export: a batchnorm of {} channels after a "
              "conv of {}", out, bias.data.size());
  for (size_t o = 0; o < out; ++o) {
    for (size_t i = 0; i < per; ++i) weight.data[o * per + i] *= scale.data[o];
    bias.data[o] = shift.data[o] + bias.data[o] * scale.data[o];
  }
}

// A node on its way to the file: tensors by suffix ("weight", "scale", "strip.conv1.bias", ...).
struct Work {
  std::string op, name;
  std::vector<int> inputs;
  nlohmann::json attrs;
  std::map<std::string, FoldedTensor> tensors;
  bool dead = false;
};

Work conv_work(const TraceNode& node) {
  Work w{node.op, node.name, node.inputs, node.attrs, {}};
  w.tensors["weight"] = folded(tensor_of(node, "weight"));
  const int64_t out = w.tensors["weight"].shape[0];
  w.tensors["bias"] = node.tensors.count("bias") ? folded(node.tensors.at("bias"))
                                                  : FoldedTensor{{out}, std::vector<double>(static_cast<size_t>(out))};
  w.attrs["pad"] = node.attrs.at("kernel").get<int>() / 2;
  w.attrs["act"] = "none";
  // For tools/torch_convert.py's from-export, which rebuilds the trained modules' state_dict.
  w.attrs["conv_bias"] = node.tensors.count("bias") > 0;
  return w;
}

Work enhancer_work(const TraceNode& node) {
  Work w{node.op, node.name, node.inputs, node.attrs, {}};
  auto [scale, shift] = batchnorm_affine(node, "bn.", node.attrs.at("eps"));
  w.tensors["scale"] = scale;
  w.tensors["shift"] = shift;
  if (node.tensors.count("strip.conv1.weight")) {
    FoldedTensor weight = folded(tensor_of(node, "strip.conv1.weight")), bias = folded(tensor_of(node, "strip.conv1.bias"));
    auto [s, t] = batchnorm_affine(node, "strip.bn1.", node.attrs.at("strip_eps"));
    fold_affine_into(weight, bias, s, t);
    w.tensors["strip.conv1.weight"] = weight;
    w.tensors["strip.conv1.bias"] = bias;
    for (const char* gate : {"strip.conv_h.weight", "strip.conv_h.bias", "strip.conv_w.weight", "strip.conv_w.bias"}) {
      w.tensors[gate] = folded(tensor_of(node, gate));
    }
  }
  return w;
}

bool takes_act(const Work& w) {
  return (w.op == "conv" || w.op == "depthwise" || w.op == "affine") && w.attrs.value("act", "none") == "none";
}

}  // namespace

nlohmann::json fold_trace(const Trace& trace, int output, std::map<std::string, FoldedTensor>& tensors) {
  const std::vector<TraceNode>& nodes = trace.nodes();
  std::vector<int> users(nodes.size() + 1, 0), alias(nodes.size() + 1);
  for (size_t v = 0; v < alias.size(); ++v) alias[v] = static_cast<int>(v);
  for (const TraceNode& n : nodes) {
    for (int v : n.inputs) ++users[v];
  }
  ++users[output];
  std::vector<Work> work;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const TraceNode& n = nodes[i];
    const int self = static_cast<int>(i) + 1;
    std::vector<int> inputs;
    for (int v : n.inputs) inputs.push_back(alias[v]);
    // The node making this one's input, if it may absorb this one.
    Work* producer = inputs.size() == 1 && inputs[0] > 0 && users[inputs[0]] == 1 ? &work[inputs[0] - 1] : nullptr;
    if (n.op == "conv" || n.op == "depthwise") {
      work.push_back(conv_work(n));
    } else if (n.op == "batchnorm") {
      auto [scale, shift] = batchnorm_affine(n, "", n.attrs.at("eps"));
      if (producer != nullptr && (producer->op == "conv" || producer->op == "depthwise") && takes_act(*producer)) {
        fold_affine_into(producer->tensors.at("weight"), producer->tensors.at("bias"), scale, shift);
        producer->attrs["act"] = n.attrs.at("act");
        producer->attrs["batchnorm"] = n.name;
        producer->attrs["batchnorm_eps"] = n.attrs.at("eps");
        work.push_back({n.op, n.name, {}, {}, {}, true});
      } else {
        work.push_back({"affine", n.name, {}, n.attrs, {{"scale", scale}, {"shift", shift}}});
      }
    } else if (n.op == "act" && producer != nullptr && takes_act(*producer)) {
      producer->attrs["act"] = n.attrs.at("act");
      work.push_back({n.op, n.name, {}, {}, {}, true});
    } else if (n.op == "linear") {
      work.push_back({n.op, n.name, {}, n.attrs, {{"weight", folded(tensor_of(n, "weight"))}, {"bias", folded(tensor_of(n, "bias"))}}});
    } else if (n.op == "enhancer") {
      work.push_back(enhancer_work(n));
    } else {
      work.push_back({n.op, n.name, {}, n.attrs, {}});
    }
    Work& w = work.back();
    w.inputs = inputs;
    if (w.dead) {
      alias[self] = inputs[0];
      users[inputs[0]] = users[self];
    }
  }

  // Number the nodes that are left afresh.
  std::vector<int> renumbered(nodes.size() + 1, -1);
  renumbered[0] = 0;
  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < work.size(); ++i) {
    Work& w = work[i];
    if (w.dead) continue;
    nlohmann::json node = {{"op", w.op}, {"name", w.name}};
    nlohmann::json inputs = nlohmann::json::array();
    for (int v : w.inputs) {
      PMPL_ASSERT(renumbered[v] >= 0, "export: {} reads a value that was folded away", w.name);
      inputs.push_back(renumbered[v]);
    }
    node["inputs"] = inputs;
    for (const auto& [key, value] : w.attrs.items()) node[key] = value;
    for (auto& [suffix, t] : w.tensors) {
      const std::string name = w.name + "." + suffix;
      PMPL_ASSERT(!tensors.count(name), "export: two nodes write tensor {}", name);
      tensors[name] = std::move(t);
    }
    out.push_back(node);
    renumbered[i + 1] = static_cast<int>(out.size());
  }
  PMPL_ASSERT(renumbered[alias[output]] >= 0, "export: the network's output was folded away");
  return {{"nodes", out}, {"output", renumbered[alias[output]]}};
}

}  // namespace pmpl::deploy
