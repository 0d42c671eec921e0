// Every backbone but MobileNetV2 exports as a deployment graph (models/deploy/graph.h): the
// runtime on the folded graph computes what the network computes in evaluation mode, every
// batchnorm and activation that can be folded is, ONNX export writes the graph, and the graph
// quantised to int8 tracks it. MobileNetV2's fixed layout means the graph that tracing it gives.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include "engine/autograd.h"
#include "models/deploy/export.h"
#include "models/deploy/graph.h"
#include "models/deploy/mobilenetv2_graph.h"
#include "models/deploy/onnx_export.h"
#include "models/deploy/quantize.h"
#include "models/deploy/pmpl_c.h"
#include "models/deploy/runtime.h"
#include "models/registry.h"
#include "tests/test_util.h"

namespace pmpl {
namespace {

namespace fs = std::filesystem;

constexpr int kSize = 32;

bool graph_backbone(const std::string& name) { return name.rfind("mobilenetv2", 0) != 0; }

// `name` at small input with random batchnorm parameters and running statistics gathered from a
// few batches (momentum 0.5, so that MobileNetV3's 0.01 does not leave them at 0 and 1); a `_mp`
// network fixed with every op, alone and summed in pairs, and with enhancers removed.
std::shared_ptr<Network> randomized(const std::string& name) {
  ModelConfig config = test::tiny_config(7);
  if (name.rfind("shufflenetv2", 0) == 0) config.width = 1.0;
  if (name.size() > 3 && name.compare(name.size() - 3, 3, "_mp") == 0) {
    config.genotype = test::every_choice_genotype(build_model(name, config)->genotype());
  }
  auto model = build_model(name, config);
  NoGradGuard no_grad;
  uint64_t seed = 5;
  for (const NamedParameter& p : model->parameters()) {
    if (p.kind != ParamKind::kNoDecay) continue;
    Tensor t = p.tensor;
    t.copy_(ops::add(t, test::random(t.shape(), seed++, false, 0.3, DType::kF32)));
  }
  model->set_bn_momentum(0.5);
  model->train();
  for (int i = 0; i < 3; ++i) model->forward(test::random({4, kSize, kSize, 3}, 10 + i, false, 1.5, DType::kF32));
  model->eval();
  return model;
}

deploy::DeployModel folded_at_test_size(const Network& model) {
  deploy::ExportOptions options;
  options.architecture = model.name();
  options.input_size = kSize;
  return deploy::fold_model(model, options);
}

// The int8 file of a folded graph, calibrated on random images like those it then runs on: its
// 1x1, depthwise and linear nodes are int8 (the stem is not), its logits track the f32 runtime's,
// and the C API runs it to the same bits.
void expect_int8_tracks_f32(const deploy::DeployModel& folded, const deploy::Runtime& f32, const Tensor& x,
                            const std::string& path) {
  deploy::Calibrator calibrator({"minmax", 99.99});
  for (int i = 0; i < 4; ++i) {
    f32.run_observed(test::random({8, kSize, kSize, 3}, 200 + i, false, 1.0, DType::kF32),
                     [&](const std::string& p, const Tensor& t) { calibrator.observe(p, t); });
  }
  const deploy::DeployModel q = deploy::quantize_model(folded, calibrator, 32);
  int int8 = 0;
  for (const nlohmann::json& n : folded.config.at("graph").at("nodes")) {
    const std::string weight = n.at("name").get<std::string>() + ".weight";
    if (!q.tensors.count(weight)) continue;
    const bool expected = n.at("op") == "linear" || n.at("op") == "depthwise" || n.at("kernel") == 1;
    EXPECT_EQ(q.tensors.at(weight).int8, expected && n.at("inputs").at(0) != 0) << weight;
    int8 += q.tensors.at(weight).int8;
  }
  EXPECT_GT(int8, 10);
  deploy::write_deploy_file(q, false, path);
  const deploy::Runtime runtime(path);
  ASSERT_TRUE(runtime.quantized());
  const double err = test::relative_error(runtime.run(x), f32.run(x));
  // Measured: MobileNetV3 5e-4 to 9e-4, ShuffleNetV2 2.8e-3 to 6.8e-3, EfficientNet-B0 9.8e-3 and
  // 1.9e-2 (16 blocks, SE and SiLU re-quantised after every conv); an int8 layer reading its own
  // output's parameters instead of its input's gives 0.027-0.13, 0.65-1.1 and 1.4-7.2.
  const std::string arch = folded.config.at("architecture");
  const double bound = arch.rfind("mobilenetv3", 0) == 0 ? 0.005 : arch.rfind("shufflenetv2", 0) == 0 ? 0.015 : 0.04;
  EXPECT_LT(err, bound) << "int8 vs f32 logits";
  ::testing::Test::RecordProperty(arch + "_int8_relative_error", std::to_string(err));
  pmpl_model* m = pmpl_model_load(path.c_str());
  ASSERT_NE(m, nullptr) << pmpl_last_error();
  Tensor images = Tensor::empty(Shape{2, kSize, kSize, 3}, DType::kU8);
  for (int64_t i = 0; i < images.numel(); ++i) images.data<uint8_t>()[i] = static_cast<uint8_t>(i * 29 % 251);
  std::vector<float> logits(static_cast<size_t>(2 * runtime.num_classes()));
  ASSERT_EQ(pmpl_model_run(m, images.data<uint8_t>(), 2, PMPL_INPUT_U8_NHWC, logits.data()), 0) << pmpl_last_error();
  EXPECT_EQ(logits, runtime.run_u8(images).to_vector<float>());
  pmpl_model_free(m);
  EXPECT_THROW(runtime.run_observed(x, [](const std::string&, const Tensor&) {}), Error) << "calibrated twice";
  fs::remove(path);
}

TEST(ExportGraph, EveryBackboneMatchesItsNetwork) {
  int checked = 0;
  for (const std::string& name : model_names()) {
    if (!graph_backbone(name)) continue;
    SCOPED_TRACE(name);
    auto model = randomized(name);
    const deploy::DeployModel folded = folded_at_test_size(*model);
    ASSERT_TRUE(folded.config.contains("graph"));
    // Every batchnorm went into a conv and every activation but the classifier's into the layer
    // before it: what is left runs as fast as the layers themselves.
    std::map<std::string, int> count;
    const nlohmann::json& nodes = folded.config.at("graph").at("nodes");
    for (const nlohmann::json& n : nodes) {
      ++count[n.at("op").get<std::string>()];
      if (n.at("op") == "act") {
        EXPECT_EQ(nodes.at(n.at("inputs").at(0).get<int>() - 1).at("op"), "linear") << n.dump();
      }
    }
    EXPECT_EQ(count["affine"], 0);
    // A removed enhancer leaves no node; each _mp backbone has at least one (every_choice_genotype).
    const auto enhancers = model->enhancers();
    const auto removed = std::count_if(enhancers.begin(), enhancers.end(), [](const auto& e) { return e.second->removed(); });
    EXPECT_EQ(removed > 0, !enhancers.empty());
    EXPECT_EQ(count["enhancer"], static_cast<int>(enhancers.size() - removed));
    EXPECT_GT(count["conv"], 10);

    const std::string path = (fs::temp_directory_path() / ("pmpl_graph_" + name + ".pmpl")).string();
    deploy::write_deploy_file(folded, false, path);
    const deploy::Runtime runtime(path);
    EXPECT_EQ(runtime.num_classes(), 7);
    const Tensor x = test::random({3, kSize, kSize, 3}, 99, false, 1.0, DType::kF32);
    NoGradGuard no_grad;
    const Tensor expected = model->forward(x);
    // f32: folding reorders the arithmetic, nothing more (measured 1e-7 to 1e-6).
    const double err = test::relative_error(runtime.run(x), expected);
    EXPECT_LE(err, 1e-4);
    RecordProperty(name + "_relative_error", std::to_string(err));
    // The C API (libpmpl_runtime) runs the same file to the same bits.
    pmpl_model* m = pmpl_model_load(path.c_str());
    ASSERT_NE(m, nullptr) << pmpl_last_error();
    Tensor images = Tensor::empty(Shape{2, kSize, kSize, 3}, DType::kU8);
    for (int64_t i = 0; i < images.numel(); ++i) images.data<uint8_t>()[i] = static_cast<uint8_t>(i * 37 % 251);
    std::vector<float> logits(14);
    ASSERT_EQ(pmpl_model_run(m, images.data<uint8_t>(), 2, PMPL_INPUT_U8_NHWC, logits.data()), 0) << pmpl_last_error();
    EXPECT_EQ(logits, runtime.run_u8(images).to_vector<float>());
    pmpl_model_free(m);
    expect_int8_tracks_f32(folded, runtime, x, path + ".int8");
    // ONNX: a graph onnx's checker and its strict shape inference accept, logits [batch, 7]
    // (its numbers against onnxruntime: tools/check_onnx_export.py).
    onnx::ModelProto onnx_model;
    ASSERT_TRUE(onnx_model.ParseFromString(deploy::onnx_model_bytes(folded)));
    EXPECT_NO_THROW(onnx::shape_inference::InferShapes(onnx_model, onnx::OpSchemaRegistry::Instance(),
                                                       onnx::ShapeInferenceOptions(true, 1)));
    const auto& dims = onnx_model.graph().output(0).type().tensor_type().shape().dim();
    ASSERT_EQ(dims.size(), 2);
    EXPECT_EQ(dims[1].dim_value(), 7);
    fs::remove(path);
    ++checked;
  }
  EXPECT_EQ(checked, 10);
}

// MobileNetV2's files keep the fixed layout int8 reads, with no graph in them:
// deploy::mobilenetv2_graph says what graph that layout means, which must be the graph that
// tracing and folding the network gives, node for node and tensor for tensor (what the trace
// records only for tools/torch_convert.py aside), and the runtime on it must compute the network.
TEST(ExportGraph, MobileNetV2sLayoutIsItsTracedGraph) {
  for (const std::string name : {"mobilenetv2", "mobilenetv2_mp"}) {
    SCOPED_TRACE(name);
    auto model = randomized(name);
    const deploy::DeployModel legacy = folded_at_test_size(*model);
    ASSERT_FALSE(legacy.config.contains("graph"));
    Trace trace;
    const int output = model->trace(trace, Trace::kInput, "");
    deploy::DeployModel traced = legacy;
    traced.tensors.clear();
    traced.config["graph"] = deploy::fold_trace(trace, output, traced.tensors);
    nlohmann::json recorded = traced.config["graph"];
    for (nlohmann::json& n : recorded.at("nodes")) {
      for (const char* key : {"batchnorm", "batchnorm_eps", "conv_bias", "eps", "strip_eps"}) n.erase(key);
    }
    EXPECT_EQ(deploy::mobilenetv2_graph(legacy.config), recorded);
    ASSERT_EQ(traced.tensors.size(), legacy.tensors.size());
    for (const auto& [tensor, t] : traced.tensors) {
      ASSERT_TRUE(legacy.tensors.count(tensor)) << tensor;
      const deploy::FoldedTensor& l = legacy.tensors.at(tensor);
      ASSERT_EQ(l.shape, t.shape) << tensor;
      for (size_t i = 0; i < t.data.size(); ++i) ASSERT_NEAR(l.data[i], t.data[i], 1e-12 * (1 + std::abs(t.data[i]))) << tensor;
    }
    const Tensor x = test::random({2, kSize, kSize, 3}, 98, false, 1.0, DType::kF32);
    NoGradGuard no_grad;
    EXPECT_LE(test::relative_error(deploy::Runtime(traced).run(x), model->forward(x)), 1e-4);
  }
  nlohmann::json foreign = {{"architecture", "resnet50"}, {"width", 1.0}, {"small_input", false}};
  EXPECT_THROW(deploy::mobilenetv2_graph(foreign), Error);
}

// A traced graph is checked when loaded: an unknown op, a node reading a value not yet computed
// or a missing tensor is one error naming the file, never a crash at the first image.
TEST(ExportGraph, DamagedGraphsAreRefused) {
  const deploy::DeployModel good = folded_at_test_size(*randomized("mobilenetv3_small"));
  auto expect_refused = [&](const std::function<void(deploy::DeployModel&)>& damage, const std::string& what) {
    deploy::DeployModel bad = good;
    damage(bad);
    try {
      deploy::Runtime runtime(bad);
      ADD_FAILURE() << what << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("the exported model"), std::string::npos) << e.what();
    }
  };
  expect_refused([](deploy::DeployModel& m) { m.config["graph"]["nodes"][3]["op"] = "gelu"; }, "an unknown op");
  expect_refused([](deploy::DeployModel& m) { m.config["graph"]["nodes"][3]["inputs"][0] = 9; }, "a forward reference");
  expect_refused([](deploy::DeployModel& m) { m.config["graph"]["output"] = 100000; }, "a missing output");
  expect_refused([](deploy::DeployModel& m) { m.tensors.erase(m.tensors.begin()); }, "a missing tensor");
  expect_refused([](deploy::DeployModel& m) { m.config["graph"]["nodes"][0]["stride"] = 0; }, "a zero stride");

  // int8: what the quantised graph needs must be there and in range.
  deploy::Calibrator calibrator({"minmax", 99.99});
  deploy::Runtime(good).run_observed(test::random({4, kSize, kSize, 3}, 5, false, 1.0, DType::kF32),
                                     [&](const std::string& p, const Tensor& t) { calibrator.observe(p, t); });
  const deploy::DeployModel q = deploy::quantize_model(good, calibrator, 4);
  EXPECT_NO_THROW(deploy::Runtime{q});
  const nlohmann::json& nodes = q.config.at("graph").at("nodes");
  std::string int8_input;  // a value an int8 layer reads
  for (const nlohmann::json& n : nodes) {
    if (q.tensors.at(n.at("name").get<std::string>() + ".weight").int8 && n.at("op") == "depthwise") {
      int8_input = nodes.at(n.at("inputs").at(0).get<size_t>() - 1).at("name");
      break;
    }
  }
  ASSERT_FALSE(int8_input.empty());
  auto expect_int8_refused = [&](const std::function<void(deploy::DeployModel&)>& damage, const std::string& what) {
    deploy::DeployModel bad = q;
    damage(bad);
    EXPECT_THROW(deploy::Runtime{bad}, Error) << what << " was accepted";
  };
  expect_int8_refused([&](deploy::DeployModel& m) { m.config["quantization"]["activations"].erase(int8_input); },
                      "an int8 layer's input without parameters");
  expect_int8_refused([&](deploy::DeployModel& m) { m.config["quantization"]["activations"][int8_input][1] = 300; },
                      "a zero point of 300");
  expect_int8_refused([](deploy::DeployModel& m) { m.config["quantization"]["activations"] = 3; }, "no parameters");
  expect_int8_refused(
      [&](deploy::DeployModel& m) {
        const std::string stem = nodes.at(0).at("name");
        m.tensors[stem + ".weight_scale"] = m.tensors.at(stem + ".bias");
      },
      "int8 weights on the stem, which reads the images");
  expect_int8_refused(
      [&](deploy::DeployModel& m) {
        for (auto& [name, t] : m.tensors) {
          if (t.int8) {
            t.data[0] = 0.5;
            break;
          }
        }
      },
      "an int8 weight of 0.5");
}

}  // namespace
}  // namespace pmpl
