#include "models/deploy/mobilenetv2_graph.h"

#include "engine/error.h"
#include "models/genotype.h"
#include "models/mobilenetv2.h"

namespace pmpl::deploy {
namespace {

class GraphBuilder {
 public:
  // Adds a node reading `inputs`; returns the value it makes.
  int add(nlohmann::json node, std::vector<int> inputs) {
    node["inputs"] = inputs;
    nodes_.push_back(std::move(node));
    return static_cast<int>(nodes_.size());
  }
  int conv(const std::string& op, const std::string& name, int x, int kernel, int stride, const char* act) {
    return add({{"op", op}, {"name", name}, {"kernel", kernel}, {"stride", stride}, {"pad", kernel / 2}, {"act", act}},
               {x});
  }
  nlohmann::json graph(int output) const { return {{"nodes", nodes_}, {"output", output}}; }

 private:
  nlohmann::json nodes_ = nlohmann::json::array();
};

}  // namespace

nlohmann::json mobilenetv2_graph(const nlohmann::json& config) {
  std::string architecture;
  double width = 1.0;
  bool small_input = false;
  Genotype genotype;
  try {
    architecture = config.at("architecture");
    width = config.at("width");
    small_input = config.at("small_input");
    if (architecture == "mobilenetv2_mp") genotype = Genotype::from_json(config.at("genotype"), "the model");
  } catch (const nlohmann::json::exception& e) {
    PMPL_CHECK(false, "the model description is incomplete ({}); re-export it", e.what());
  }
  PMPL_CHECK(architecture == "mobilenetv2" || architecture == "mobilenetv2_mp",
             "unknown architecture {} (a file of another backbone carries its graph; re-export it)", architecture);
  const ArchitectureSpec spec = mobilenetv2_spec(width, small_input);
  GraphBuilder g;
  int x = g.conv("conv", "features.0.0", 0, 3, spec.stem_stride, "relu6");
  size_t enhancer = 0;
  for (const BlockSpec& b : spec.blocks) {
    const std::string block = "features." + std::to_string(b.index), p = block + ".conv.";
    int y = x, child = 0;
    if (b.expand != 1) y = g.conv("conv", p + std::to_string(child++) + ".0", y, 1, 1, "relu6");
    y = g.conv("depthwise", p + std::to_string(child++) + ".0", y, 3, b.stride, "relu6");
    if (architecture == "mobilenetv2_mp" && b.expand != 1) {
      PMPL_CHECK(enhancer < genotype.enhancers.size(), "the genotype has {} enhancers, the network more",
                 genotype.enhancers.size());
      const Genotype::Entry& entry = genotype.enhancers[enhancer++];
      PMPL_CHECK(entry.name == block + ".enhancer" && entry.fixed(), "the genotype's enhancer {} is not the "
                 "network's {}.enhancer, or not fixed; re-export it", entry.name, block);
      if (!entry.removed) {
        nlohmann::json ops = nlohmann::json::array();
        for (PoolOp op : entry.ops) ops.push_back(std::string(pool_op_name(op)));
        y = g.add({{"op", "enhancer"}, {"name", entry.name}, {"ops", ops}}, {y});
      }
    }
    y = g.conv("conv", p + std::to_string(child), y, 1, 1, "none");
    x = b.residual() ? g.add({{"op", "add"}, {"name", block}}, {x, y}) : y;
  }
  PMPL_CHECK(enhancer == genotype.enhancers.size(), "the genotype lists {} enhancers, the network has {}",
             genotype.enhancers.size(), enhancer);
  x = g.conv("conv", "features.18.0", x, 1, 1, "relu6");
  x = g.add({{"op", "global_avg_pool"}, {"name", "avgpool"}, {"keep_dims", false}}, {x});
  return g.graph(g.add({{"op", "linear"}, {"name", "classifier.1"}}, {x}));
}

nlohmann::json deployment_graph(const nlohmann::json& config) {
  return config.contains("graph") ? config.at("graph") : mobilenetv2_graph(config);
}

}  // namespace pmpl::deploy
