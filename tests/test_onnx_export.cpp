// ONNX export (models/deploy/onnx_export.h): the graph passes onnx's checker and strict shape
// inference, its initializers are the folded tensors in ONNX's layouts, its metadata carries what
// a deployment needs, and a model whose tensors do not fit its architecture is one clear error.
// The numbers against onnxruntime and PyTorch: tools/check_onnx_export.py (ctest Python.OnnxExport).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include "models/deploy/onnx_export.h"
#include "tests/test_util.h"

namespace pmpl {
namespace {

onnx::ModelProto parse(const std::string& bytes) {
  onnx::ModelProto m;
  EXPECT_TRUE(m.ParseFromString(bytes));
  return m;
}

const onnx::TensorProto* initializer(const onnx::ModelProto& m, const std::string& name) {
  for (const onnx::TensorProto& t : m.graph().initializer()) {
    if (t.name() == name) return &t;
  }
  return nullptr;
}

std::vector<float> floats(const onnx::TensorProto& t) {
  std::vector<float> v(t.raw_data().size() / sizeof(float));
  std::memcpy(v.data(), t.raw_data().data(), v.size() * sizeof(float));
  return v;
}

std::string metadata(const onnx::ModelProto& m, const std::string& key) {
  for (const auto& p : m.metadata_props()) {
    if (p.key() == key) return p.value();
  }
  return "";
}

std::string error_of(const deploy::DeployModel& model) {
  try {
    deploy::onnx_model_bytes(model);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(OnnxExport, TheGraphChecksAndCarriesTheFoldedWeights) {
  const auto network = test::trained_fixed_network();
  const deploy::DeployModel folded = deploy::fold_model(*network, test::mp_options());
  onnx::ModelProto m = parse(deploy::onnx_model_bytes(folded));
  EXPECT_NO_THROW(onnx::checker::check_model(m));
  // Strict: any node whose shapes do not follow, or an inferred output other than the declared
  // [batch, 7], throws.
  EXPECT_NO_THROW(onnx::shape_inference::InferShapes(m, onnx::OpSchemaRegistry::Instance(),
                                                     onnx::ShapeInferenceOptions(true, 1)));
  ASSERT_EQ(m.opset_import(0).version(), deploy::kOnnxOpset);
  const auto& out = m.graph().output(0).type().tensor_type().shape();
  ASSERT_EQ(out.dim_size(), 2);
  EXPECT_EQ(out.dim(0).dim_param(), "batch");
  EXPECT_EQ(out.dim(1).dim_value(), 7);

  // The stem: pmpl's [Cout, kh, kw, Cin] is ONNX's [Cout, Cin, kh, kw].
  const deploy::FoldedTensor& stem = folded.tensors.at("features.0.0.weight");
  const onnx::TensorProto* w = initializer(m, "features.0.0.weight");
  ASSERT_NE(w, nullptr);
  const int64_t cout = stem.shape[0];
  EXPECT_EQ(std::vector<int64_t>(w->dims().begin(), w->dims().end()), (std::vector<int64_t>{cout, 3, 3, 3}));
  const std::vector<float> got = floats(*w);
  for (int64_t o = 0; o < cout; ++o) {
    for (int64_t i = 0; i < 3; ++i) {
      for (int64_t r = 0; r < 9; ++r) {
        ASSERT_EQ(got[static_cast<size_t>((o * 3 + i) * 9 + r)],
                  static_cast<float>(stem.data[static_cast<size_t>((o * 9 + r) * 3 + i)]))
            << o << " " << i << " " << r;
      }
    }
  }
  // A depthwise conv: [C, 3, 3] as [C, 1, 3, 3] with group C.
  const onnx::TensorProto* dw = initializer(m, "features.2.conv.1.0.weight");
  ASSERT_NE(dw, nullptr);
  const int64_t c = folded.tensors.at("features.2.conv.1.0.weight").shape[0];
  EXPECT_EQ(std::vector<int64_t>(dw->dims().begin(), dw->dims().end()), (std::vector<int64_t>{c, 1, 3, 3}));
  EXPECT_EQ(floats(*dw), std::vector<float>(folded.tensors.at("features.2.conv.1.0.weight").data.begin(),
                                            folded.tensors.at("features.2.conv.1.0.weight").data.end()));

  // Every op kind of the genotype is in the graph, avg pools counting padding as PyTorch's do.
  std::set<std::string> kinds;
  for (const onnx::NodeProto& n : m.graph().node()) {
    kinds.insert(n.op_type());
    if (n.op_type() == "AveragePool") {
      bool counts_padding = false;
      for (const auto& a : n.attribute()) counts_padding |= a.name() == "count_include_pad" && a.i() == 1;
      EXPECT_TRUE(counts_padding) << n.name();
    }
  }
  for (const char* k : {"Conv", "Clip", "MaxPool", "AveragePool", "ReduceMean", "Split", "HardSwish", "Sigmoid", "Mul",
                        "Add", "GlobalAveragePool", "Gemm"}) {
    EXPECT_TRUE(kinds.count(k)) << k;
  }

  EXPECT_EQ(nlohmann::json::parse(metadata(m, "pmpl.classes")), folded.config.at("classes"));
  EXPECT_EQ(nlohmann::json::parse(metadata(m, "pmpl.genotype")), network->genotype().to_json());
  EXPECT_EQ(nlohmann::json::parse(metadata(m, "pmpl.input")).at("size"), 20);
  EXPECT_EQ(metadata(m, "pmpl.architecture"), "mobilenetv2_mp");
}

TEST(OnnxExport, AModelThatDoesNotFitItsArchitectureIsOneClearError) {
  const deploy::DeployModel folded = deploy::fold_model(*test::trained_fixed_network(), test::mp_options());
  deploy::DeployModel missing = folded;
  missing.tensors.erase("features.5.conv.2.weight");
  EXPECT_NE(error_of(missing).find("tensor features.5.conv.2.weight is missing"), std::string::npos)
      << error_of(missing);
  deploy::DeployModel misshapen = folded;
  misshapen.tensors.at("features.3.conv.1.0.weight").shape[1] = 5;
  EXPECT_NE(error_of(misshapen).find("tensor features.3.conv.1.0.weight has shape"), std::string::npos)
      << error_of(misshapen);
  deploy::DeployModel foreign = folded;
  foreign.config["architecture"] = "resnet50";
  EXPECT_NE(error_of(foreign).find("unknown architecture resnet50"), std::string::npos) << error_of(foreign);
  deploy::DeployModel open = folded;
  open.config["genotype"]["enhancers"][2]["ops"] = nlohmann::json::array();
  EXPECT_NE(error_of(open).find("not fixed"), std::string::npos) << error_of(open);
  deploy::DeployModel no_input = folded;
  no_input.config.erase("input");
  EXPECT_NE(error_of(no_input).find("the model description is incomplete"), std::string::npos)
      << error_of(no_input);
}

TEST(OnnxExport, FromADeploymentFileWritesTheSameBytesThroughATemporaryFile) {
  const auto network = test::trained_fixed_network();
  const test::TempDir dir("pmpl_onnx");
  const std::string pmpl_file = (dir.path / "mp.pmpl").string(), onnx_file = (dir.path / "mp.onnx").string();
  deploy::export_model(*network, test::mp_options(), pmpl_file);
  const deploy::DeployModel folded = deploy::fold_model(*network, test::mp_options());
  deploy::export_onnx(deploy::read_deploy_model(pmpl_file), onnx_file);
  std::ifstream in(onnx_file, std::ios::binary);
  const std::string written((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(written, deploy::onnx_model_bytes(folded));
  EXPECT_FALSE(std::filesystem::exists(onnx_file + ".tmp"));
}

}  // namespace
}  // namespace pmpl
