// The backbones and their Meta-Pooling variants: structure, counts, fixing, weights files, and the
// whole network's backward against finite differences.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include "engine/io/npy.h"
#include "engine/autograd.h"
#include "engine/ops.h"
#include "layers/drop_path.h"
#include "layers/weights.h"
#include "models/mobilenetv3.h"
#include "models/registry.h"
#include "tests/test_util.h"

namespace pmpl {
namespace {

int64_t count_params(const Module& m) {
  int64_t n = 0;
  for (const NamedParameter& p : m.parameters()) n += p.tensor.numel();
  return n;
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("pmpl_test_" + std::to_string(::getpid()) + "_" + name)).string();
}

// Parameters and multiply-accumulates of one 224 px image (conv and linear layers), as pmpl
// summary counts them.
std::pair<int64_t, int64_t> counts(const std::string& name) {
  auto model = build_model(name, {});
  model->eval();
  LayerRecorder recorder;
  {
    NoGradGuard no_grad;
    model->forward(Tensor::zeros(Shape{1, 224, 224, 3}));
  }
  int64_t macs = 0;
  for (const LayerRecord& r : recorder.records()) macs += r.module->macs(r.input, r.output);
  return {count_params(*model), macs};
}

// torchvision 0.14's models with default arguments; MACs summed over its Conv2d and Linear
// layers by forward hooks (out elements x in/groups x kh x kw; in x out).
TEST(Model, MobileNetV2MatchesTorchvisionCounts) {
  EXPECT_EQ(counts("mobilenetv2"), std::make_pair(int64_t{3504872}, int64_t{300774272}));  // the quoted 300.8M
}

TEST(Model, MobileNetV3MatchesTorchvisionCounts) {
  EXPECT_EQ(counts("mobilenetv3_large"), std::make_pair(int64_t{5483032}, int64_t{216589760}));  // quoted 0.22 GFLOPS
  EXPECT_EQ(counts("mobilenetv3_small"), std::make_pair(int64_t{2542856}, int64_t{56510400}));   // quoted 0.06
}

TEST(Model, EfficientNetB0MatchesTorchvisionCounts) {
  EXPECT_EQ(counts("efficientnet_b0"), std::make_pair(int64_t{5288548}, int64_t{385814752}));  // quoted 0.39 GFLOPS
  // An enhancer in each of the 15 blocks with an expansion conv (not features.1.0).
  const auto enhancers = build_model("efficientnet_b0_mp", {})->enhancers();
  ASSERT_EQ(enhancers.size(), 15u);
  EXPECT_EQ(enhancers.front().first, "features.2.0.enhancer");
  EXPECT_EQ(enhancers.back().first, "features.7.0.enhancer");
}

TEST(Model, ShuffleNetV2MatchesTorchvisionCounts) {
  EXPECT_EQ(counts("shufflenetv2_x0_5"), std::make_pair(int64_t{1366792}, int64_t{40476448}));   // quoted 0.04 GFLOPS
  EXPECT_EQ(counts("shufflenetv2_x1_0"), std::make_pair(int64_t{2278604}, int64_t{144907992}));  // quoted 0.14
  // An enhancer in every unit's branch2, on half the unit's channels.
  const auto model = build_model("shufflenetv2_x1_0_mp", {});
  const auto enhancers = model->enhancers();
  ASSERT_EQ(enhancers.size(), 16u);
  EXPECT_EQ(enhancers.front().first, "stage2.0.enhancer");
  EXPECT_EQ(enhancers.back().first, "stage4.3.enhancer");
  EXPECT_EQ(enhancers.back().second->batchnorm().parameters()[0].tensor.numel(), 232);
  ModelConfig wide;
  wide.width = 2.0;
  EXPECT_THROW(build_model("shufflenetv2_x1_0", wide), Error);
  EXPECT_THROW(build_model("shufflenetv2_x1_0", {})->set_drop_path(0.1), Error) << "no residual blocks to drop";
}

TEST(Model, MakeDivisibleFollowsTorchvision) {
  EXPECT_EQ(make_divisible(32 * 1.0), 32);
  EXPECT_EQ(make_divisible(32 * 0.35), 16);  // 8 would lose more than 10%
  EXPECT_EQ(make_divisible(24 * 0.5), 16);   // 12 rounds half up to 16
  EXPECT_EQ(make_divisible(1280 * 1.4), 1792);
  EXPECT_EQ(make_divisible(16 * 0.25), 8);
}

TEST(Model, EnhancersSitInEveryExpandingBlock) {
  auto model = build_model("mobilenetv2_mp", {});
  const auto enhancers = model->enhancers();
  ASSERT_EQ(enhancers.size(), 16u);
  EXPECT_EQ(enhancers.front().first, "features.2.enhancer");
  EXPECT_EQ(enhancers.back().first, "features.17.enhancer");
  for (const auto& [name, e] : enhancers) {
    EXPECT_FALSE(e->fixed());
    EXPECT_EQ(e->probabilities().size(), 8u);
  }
  EXPECT_TRUE(build_model("mobilenetv2", {})->enhancers().empty());
}

// MobileNetV3: an enhancer after the depthwise conv of every block with an expansion conv (all but
// the first in both), on the expanded channels, before the squeeze-and-excitation.
TEST(Model, MobileNetV3EnhancersSitInEveryExpandingBlock) {
  for (const auto& [name, count, first_channels] :
       {std::tuple{"mobilenetv3_large_mp", 14u, int64_t{64}}, std::tuple{"mobilenetv3_small_mp", 10u, int64_t{72}}}) {
    SCOPED_TRACE(name);
    auto model = build_model(name, {});
    const auto enhancers = model->enhancers();
    ASSERT_EQ(enhancers.size(), count);
    EXPECT_EQ(enhancers.front().first, "features.2.enhancer");
    EXPECT_EQ(enhancers.back().first, fmt::format("features.{}.enhancer", count + 1));
    EXPECT_EQ(enhancers.front().second->batchnorm().parameters()[0].tensor.numel(), first_channels);
    // A genotype of the search builds the same network fixed.
    Genotype g = model->genotype();
    for (auto& e : g.enhancers) e.ops = {PoolOp::kMax3};
    ModelConfig config;
    config.genotype = g;
    EXPECT_EQ(build_model(name, config)->genotype().to_json(), g.to_json());
  }
  EXPECT_TRUE(build_model("mobilenetv3_small", {})->enhancers().empty());
  EXPECT_THROW(
      {
        try {
          build_model("mobilenetv4", {});
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("mobilenetv3_small_mp"), std::string::npos) << e.what();
          throw;
        }
      },
      Error);
}

// The small-input variant keeps the resolution of the stem and the first stride-2 block; that
// block becomes a residual one where its widths match (MobileNetV3-Small's first, 16 -> 16).
TEST(Model, MobileNetV3SmallInput) {
  ModelConfig config = test::tiny_config(10);
  auto model = build_model("mobilenetv3_small", config);
  model->eval();
  LayerRecorder recorder;
  NoGradGuard no_grad;
  EXPECT_EQ(model->forward(Tensor::zeros(Shape{2, 32, 32, 3})).shape(), (Shape{2, 10}));
  // Three stride-2 blocks are left: 32 -> 4 at the last convolution (144 = 6 x 24 channels).
  const LayerRecord& last_conv = recorder.records()[recorder.records().size() - 6];
  EXPECT_EQ(last_conv.output, (Shape{2, 4, 4, 144}));
  const V3ArchitectureSpec spec = mobilenetv3_spec(false, 0.25, true);
  EXPECT_EQ(spec.stem_stride, 1);
  EXPECT_TRUE(spec.blocks[0].residual());
  EXPECT_FALSE(mobilenetv3_spec(false, 0.25, false).blocks[0].residual());
}

TEST(Model, SmallInputKeepsResolutionLonger) {
  ModelConfig config = test::tiny_config(10);
  auto model = build_model("mobilenetv2", config);
  model->eval();
  LayerRecorder recorder;
  NoGradGuard no_grad;
  const Tensor logits = model->forward(Tensor::zeros(Shape{2, 32, 32, 3}));
  EXPECT_EQ(logits.shape(), (Shape{2, 10}));
  // Three stride-2 stages are left: 32 -> 4 at the last convolution.
  const LayerRecord& last_conv = recorder.records()[recorder.records().size() - 5];
  EXPECT_EQ(last_conv.output, (Shape{2, 4, 4, 1280}));
}

TEST(Model, FixingDropsCandidatesAndFreezesAlpha) {
  ModelConfig config = test::tiny_config(5);
  auto model = build_model("mobilenetv2_mp", config);
  MetaPooling* e = model->enhancers()[0].second;
  const std::vector<double> probs = e->probabilities();
  const int64_t before = count_params(*model);
  e->fix({PoolOp::kMax7});
  EXPECT_EQ(e->probabilities(), probs) << "alpha is kept, frozen";
  const auto params = model->parameters();
  for (const NamedParameter& p : params) {
    EXPECT_NE(p.name, "features.2.enhancer.alpha");
    EXPECT_EQ(p.name.rfind("features.2.enhancer.strip", 0), std::string::npos) << p.name;
  }
  EXPECT_LT(count_params(*model), before);
  bool alpha_buffer = false;
  for (const NamedTensor& b : model->buffers()) alpha_buffer |= b.name == "features.2.enhancer.alpha";
  EXPECT_TRUE(alpha_buffer);
  EXPECT_EQ(model->genotype().enhancers[0].ops, std::vector<PoolOp>{PoolOp::kMax7});
  EXPECT_TRUE(model->genotype().enhancers[1].ops.empty());
  EXPECT_THROW(e->fix({PoolOp::kAvg3}), InternalError);
  // The fixed model still trains end to end.
  const Tensor x = test::random({2, 16, 16, 3}, 3, false, 1.0, DType::kF32);
  ops::sum(model->forward(x)).backward();
}

TEST(Model, BuildsFixedFromAGenotypeFile) {
  auto search = build_model("mobilenetv2_mp", {});
  Genotype g = search->genotype();
  for (size_t i = 0; i < g.enhancers.size(); ++i) {
    g.enhancers[i].ops = i % 3 == 0 ? std::vector<PoolOp>{PoolOp::kStrip}
                                    : std::vector<PoolOp>{PoolOp::kMax3, PoolOp::kAvg5};
  }
  const std::string path = temp_path("genotype.json");
  g.save(path);
  ModelConfig config;
  config.genotype = Genotype::load(path);
  std::remove(path.c_str());
  auto fixed = build_model("mobilenetv2_mp", config);
  EXPECT_EQ(fixed->genotype().to_json(), g.to_json());
  int strips = 0, alphas = 0;
  for (const NamedParameter& p : fixed->parameters()) {
    strips += p.name.find("strip.conv1.weight") != std::string::npos;
    alphas += p.name.find("alpha") != std::string::npos;
  }
  EXPECT_EQ(strips, 6);  // enhancers 0, 3, 6, 9, 12, 15
  EXPECT_EQ(alphas, 0);
  // A genotype cannot fix the plain model, nor leave an enhancer open.
  EXPECT_THROW(build_model("mobilenetv2", config), Error);
  config.genotype->enhancers[4].ops.clear();
  EXPECT_THROW(build_model("mobilenetv2_mp", config), Error);
}

// "none" removes an enhancer: with every one removed, each Meta-Pooling variant is its backbone to
// the bit (the same tensors under the same names, the same logits in training and evaluation
// mode), and the genotype says "none" through a file and back.
TEST(Model, RemovedEnhancersLeaveTheBackboneExactly) {
  for (const std::string name : {"mobilenetv2", "mobilenetv3_small", "efficientnet_b0", "shufflenetv2_x0_5"}) {
    SCOPED_TRACE(name);
    ModelConfig config = test::tiny_config(5, 0.0);
    if (name.rfind("shufflenetv2", 0) == 0) config.width = 1.0;
    const auto plain = build_model(name, config);
    Genotype g = build_model(name + "_mp", config)->genotype();
    for (auto& e : g.enhancers) e.removed = true;
    const std::string path = temp_path("removed.json");
    g.save(path);
    config.genotype = Genotype::load(path);
    std::remove(path.c_str());
    ASSERT_TRUE(config.genotype->complete());
    EXPECT_EQ(config.genotype->enhancers[0].label(), "none");
    const auto removed = build_model(name + "_mp", config);
    EXPECT_EQ(removed->genotype().to_json(), g.to_json());
    const auto a = plain->state(), b = removed->state();
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].name, b[i].name);
      EXPECT_EQ(test::as_doubles(a[i].tensor), test::as_doubles(b[i].tensor)) << a[i].name;
    }
    const Tensor x = test::random({2, 32, 32, 3}, 3, false, 1.0, DType::kF32);
    for (const bool training : {true, false}) {
      plain->train(training);
      removed->train(training);
      NoGradGuard no_grad;
      EXPECT_EQ(test::as_doubles(plain->forward(x)), test::as_doubles(removed->forward(x)));
    }
  }
}

// A search network whose enhancers run skip alone (alpha all on it): removing them folds each
// enhancer batchnorm's per-channel scale into the projection conv after it, so in training mode on
// the batch its running statistics came from (momentum 1) the logits stay what they were; the
// projection's batchnorm removes what is left, a per-channel shift and, from the running
// variance's n / (n - 1), one scale per block. Without the fold each channel keeps its own scale.
TEST(Model, RemovingAnEnhancerFoldsItsScaleIntoTheNextConv) {
  auto model = build_model("mobilenetv2_mp", test::tiny_config(5, 0.0));
  model->set_bn_momentum(1.0);
  const Tensor x = test::random({4, 16, 16, 3}, 11, false, 1.0, DType::kF32);
  NoGradGuard no_grad;
  for (const auto& [name, e] : model->enhancers()) {
    Tensor alpha = e->alpha();
    alpha.copy_(Tensor::from_vector(std::vector<float>{40, 0, 0, 0, 0, 0, 0, 0}, alpha.shape()));
  }
  model->train();
  const Tensor before = model->forward(x);
  for (const auto& [name, e] : model->enhancers()) e->remove(/*fold=*/true);
  const Tensor after = model->forward(x);
  // Measured 3.4e-4: eps against channels of tiny variance makes n / (n - 1) weigh a little
  // unevenly. Without the fold: 1.05.
  const double err = test::relative_error(after, before);
  EXPECT_LE(err, 2e-3);
  RecordProperty("relative_error", std::to_string(err));
}

// --gate: each searching enhancer gets a gate [2], an architecture parameter at 0 that draws
// nothing from the generator, so every other tensor starts as the ungated network's. With q_keep
// at 1 the network computes the ungated one's logits; with q_none at 1 each block passes its input
// through, and removing the enhancers then folds nothing (the input reached the projection at a
// scale the same for every channel): the logits stay.
TEST(Model, GatedEnhancersWeighThemselvesAgainstTheirRemoval) {
  ModelConfig config = test::tiny_config(5, 0.0);
  auto plain = build_model("mobilenetv2_mp", config);
  config.gated = true;
  auto gated = build_model("mobilenetv2_mp", config);
  std::map<std::string, Tensor> ungated_state;
  for (const NamedTensor& t : plain->state()) ungated_state[t.name] = t.tensor;
  int gates = 0;
  for (const NamedParameter& p : gated->parameters()) {
    if (p.name.size() > 5 && p.name.compare(p.name.size() - 5, 5, ".gate") == 0) {
      EXPECT_EQ(p.kind, ParamKind::kArch) << p.name;
      EXPECT_EQ(p.tensor.to_vector<float>(), (std::vector<float>{0, 0})) << p.name;
      ++gates;
    } else {
      ASSERT_EQ(ungated_state.count(p.name), 1u) << p.name;
      EXPECT_EQ(p.tensor.to_vector<float>(), ungated_state[p.name].to_vector<float>()) << p.name;
    }
  }
  EXPECT_EQ(gates, static_cast<int>(gated->enhancers().size()));
  EXPECT_THROW(build_model("mobilenetv2", config), Error) << "a gate needs enhancers";

  plain->set_bn_momentum(1.0);
  gated->set_bn_momentum(1.0);
  const Tensor x = test::random({4, 16, 16, 3}, 11, false, 1.0, DType::kF32);
  NoGradGuard no_grad;
  const auto set_gates = [&](float none, float keep) {
    for (const auto& [name, e] : gated->enhancers()) {
      Tensor gate = e->gate();
      gate.copy_(Tensor::from_vector(std::vector<float>{none, keep}, gate.shape()));
    }
  };
  plain->train();
  gated->train();
  set_gates(-60, 60);
  EXPECT_LE(test::relative_error(gated->forward(x), plain->forward(x)), 1e-6) << "q_keep = 1: the ungated network";
  set_gates(60, -60);
  const Tensor before = gated->forward(x);
  for (const auto& [name, e] : gated->enhancers()) e->remove(/*fold=*/true);
  const Tensor after = gated->forward(x);
  EXPECT_LE(test::relative_error(after, before), 1e-5) << "q_none = 1: the enhancers already passed their input";
}

TEST(Model, GenotypeFilesAreValidated) {
  const std::string path = temp_path("bad_genotype.json");
  for (const char* text : {"not json", "{}", R"({"format": "pmpl-genotype", "version": 2})",
                           R"({"format": "pmpl-genotype", "version": 1, "enhancers": [{"name": "x", "ops": ["max9"]}]})",
                           // "none" removes the enhancer: it cannot come with an op.
                           R"({"format": "pmpl-genotype", "version": 1, "enhancers": [{"name": "x", "ops": ["none", "max3"]}]})",
                           // Wrong types (found by fuzzing): a clear error, not a JSON library exception.
                           R"({"format": 1, "version": 1, "enhancers": []})",
                           R"({"format": "pmpl-genotype", "version": "1", "enhancers": []})",
                           R"({"format": "pmpl-genotype", "version": 1.5, "enhancers": []})"}) {
    std::ofstream(path) << text;
    EXPECT_THROW(Genotype::load(path), Error) << text;
  }
  std::remove(path.c_str());
  EXPECT_THROW(Genotype::load("/nonexistent/genotype.json"), Error);
}

TEST(Model, WeightsRoundTripThroughSafetensors) {
  ModelConfig config = test::tiny_config(7);
  config.seed = 1;
  auto a = build_model("mobilenetv2_mp", config);
  config.seed = 2;
  auto b = build_model("mobilenetv2_mp", config);
  const Tensor x = test::random({2, 12, 12, 3}, 4, false, 1.0, DType::kF32);
  a->train();
  a->forward(x);  // moves the running statistics off their initial values
  const std::string path = temp_path("weights.safetensors");
  save_weights(*a, path, {{"model", "mobilenetv2_mp"}});
  load_weights(*b, path);
  a->eval();
  b->eval();
  NoGradGuard no_grad;
  EXPECT_EQ(a->forward(x).to_vector<float>(), b->forward(x).to_vector<float>());
  EXPECT_EQ(load_safetensors(path).metadata.at("model"), "mobilenetv2_mp");
  // A different architecture is refused with a clear error, not loaded half-way.
  config.num_classes = 8;
  auto c = build_model("mobilenetv2_mp", config);
  EXPECT_THROW(load_weights(*c, path), Error);
  EXPECT_THROW(load_weights(*build_model("mobilenetv2", {}), path), Error);
  std::remove(path.c_str());
}

TEST(Model, CorruptWeightFilesAreRefused) {
  const std::string good = temp_path("good.safetensors"), bad = temp_path("bad.safetensors");
  save_safetensors(good, {{"w", Tensor::ones(Shape{4, 4})}});
  std::string bytes;
  {
    std::ifstream in(good, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto write = [&](const std::string& content) {
    std::ofstream out(bad, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
  };
  write(bytes.substr(0, bytes.size() - 1));  // truncated data
  EXPECT_THROW(load_safetensors(bad), Error);
  write(bytes.substr(0, 5));  // shorter than the size field
  EXPECT_THROW(load_safetensors(bad), Error);
  write(std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8) + "{}");  // absurd header size
  EXPECT_THROW(load_safetensors(bad), Error);
  std::string garbled = bytes;
  garbled[8] = '#';  // the opening brace: the header is no longer JSON
  write(garbled);
  EXPECT_THROW(load_safetensors(bad), Error);
  EXPECT_THROW(load_safetensors("/nonexistent.safetensors"), Error);
  EXPECT_EQ(load_safetensors(good).find("w").to_vector<float>(), std::vector<float>(16, 1.0f));
  std::remove(good.c_str());
  std::remove(bad.c_str());
}

TEST(Model, NpyRoundTrip) {
  const std::string path = temp_path("x.npy");
  const Tensor x = test::random({2, 3, 5}, 5, false, 1.0, DType::kF32);
  save_npy(path, x);
  const Tensor y = load_npy(path);
  EXPECT_EQ(y.shape(), x.shape());
  EXPECT_EQ(y.to_vector<float>(), x.to_vector<float>());
  std::ofstream(path) << "not numpy";
  EXPECT_THROW(load_npy(path), Error);
  std::remove(path.c_str());
}

// A whole network in f64, training mode: sampled elements of every parameter tensor of the stem,
// the first and last enhanced blocks and the head, against finite differences. The enhancers are
// fixed to the smooth candidates (skip, strip, avg, and a strip + avg pair): with max pooling in
// 16 enhancers some window always has two values within 1e-8 of each other, so the loss has a
// kink inside any usable step (max pooling is checked op by op, and the searching mixture in the
// enhancer test below). Batchnorm over few values per channel makes the loss strongly curved,
// hence 32x32 inputs, a step of 1e-8, and 1e-4 relative plus 1e-6 absolute tolerance (the
// rounding left at this step is ~1e-7); wiring mistakes are O(1).
// Gradient checks want every enhancer's hardswish on its curve (at pmpl's initialisation it runs
// in its linear part, and the finite differences would check less): PyTorch's default (1, 0).
void put_enhancer_batchnorms_on_the_curve(MetaPooling& e) {
  for (NamedParameter& p : e.batchnorm().parameters()) p.tensor.fill_(p.name == "weight" ? 1.0 : 0.0);
}

// drop_path: about p of the samples dropped, the rest scaled by 1 / (1 - p), the gradient masked
// the same way, and the same masks from the same generator state.
TEST(Model, DropPathDropsSamplesAndKeepsTheExpectation) {
  const int64_t n = 4000;
  const double p = 0.3;
  Tensor x = Tensor::ones(Shape{n, 2, 1, 3}, DType::kF32);
  x.set_requires_grad(true);
  Generator gen(11, 5);
  const Tensor y = drop_path(x, p, gen);
  ops::sum(y).backward();
  const std::vector<float> out = y.to_vector<float>(), grad = x.grad().to_vector<float>();
  int64_t dropped = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float v = out[static_cast<size_t>(i * 6)];
    EXPECT_TRUE(v == 0.0f || v == static_cast<float>(1.0 / (1.0 - p))) << v;
    for (int64_t k = 0; k < 6; ++k) {
      EXPECT_EQ(out[static_cast<size_t>(i * 6 + k)], v) << "one draw per sample";
      EXPECT_EQ(grad[static_cast<size_t>(i * 6 + k)], v) << "the gradient is masked as the output";
    }
    dropped += v == 0.0f;
  }
  // Binomial(4000, 0.3): standard deviation 29; 5 of them.
  EXPECT_NEAR(static_cast<double>(dropped), p * n, 145.0);
  Generator again(11, 5);
  EXPECT_EQ(drop_path(x, p, again).to_vector<float>(), out);
}

// --drop-path acts in training only, on the residual blocks, rising from 0 in features.1.
TEST(Model, DropPathIsForTrainingOnly) {
  const ModelConfig config = test::tiny_config(3, 0.0);
  auto model = build_model("mobilenetv2", config);
  const Tensor x = test::random({8, 32, 32, 3}, 2, false, 1.0, DType::kF32);
  model->eval();
  const std::vector<float> before = model->forward(x).to_vector<float>();
  model->set_drop_path(0.5);
  EXPECT_EQ(model->forward(x).to_vector<float>(), before) << "evaluation is deterministic";
  model->train();
  const std::vector<float> a = model->forward(x).to_vector<float>();
  model->set_drop_path(0.0);
  const std::vector<float> b = model->forward(x).to_vector<float>();
  EXPECT_NE(a, b);
  EXPECT_THROW(model->set_drop_path(1.0), Error);
}

// Every backbone, its classifier dropout at 0.5: evaluation draws nothing (ShuffleNetV2's dropout,
// outside torchvision's module names, once missed eval() and dropped features at test time).
TEST(Model, EvaluationIsDeterministicForEveryBackbone) {
  for (const std::string& name : model_names()) {
    SCOPED_TRACE(name);
    ModelConfig config = test::tiny_config(3, 0.5);
    if (name.rfind("shufflenetv2", 0) == 0) config.width = 1.0;
    auto model = build_model(name, config);
    const Tensor x = test::random({2, 32, 32, 3}, 2, false, 1.0, DType::kF32);
    model->eval();
    NoGradGuard no_grad;
    EXPECT_EQ(model->forward(x).to_vector<float>(), model->forward(x).to_vector<float>());
  }
}

// The whole network in f64, training mode, on a 32 px batch of 2 (seeded by `seed`): sampled
// elements of every parameter under `prefixes` (more than `at_least` tensors) against finite
// differences.
void expect_network_gradients_match(Network& model, const std::vector<std::string>& prefixes, size_t at_least,
                                    uint64_t seed) {
  model.to(DType::kF64);
  const Tensor x = test::random({2, 32, 32, 3}, seed, false);
  std::vector<std::pair<std::string, Tensor>> params;
  for (const NamedParameter& p : model.parameters()) {
    for (const std::string& prefix : prefixes) {
      if (p.name.rfind(prefix, 0) == 0) {
        params.emplace_back(p.name, p.tensor);
        break;
      }
    }
  }
  ASSERT_GT(params.size(), at_least);
  test::GradCheckOptions options;
  options.eps = 1e-8;
  options.atol = 1e-6;
  options.rtol = 1e-4;
  test::expect_parameter_gradients_match([&] { return model.forward(x); }, params, 2, options);
}

TEST(Model, GradientsMatchFiniteDifferences) {
  ModelConfig config = test::tiny_config(3, 0.0);
  Genotype genotype = build_model("mobilenetv2_mp", config)->genotype();
  const std::vector<std::vector<PoolOp>> choices = {
      {PoolOp::kStrip, PoolOp::kAvg3}, {PoolOp::kAvg5}, {PoolOp::kSkip}, {PoolOp::kAvg7}, {PoolOp::kStrip}};
  for (size_t i = 0; i < genotype.enhancers.size(); ++i) genotype.enhancers[i].ops = choices[i % choices.size()];
  config.genotype = genotype;
  auto model = build_model("mobilenetv2_mp", config);
  for (const auto& [name, e] : model->enhancers()) put_enhancer_batchnorms_on_the_curve(*e);
  expect_network_gradients_match(*model, {"features.0.", "features.2.", "features.17.", "features.18.", "classifier."},
                                 30, 6);
}

// MobileNetV3-Small with fixed enhancers in f64, training mode: the stem, a block with
// squeeze-and-excitation (features.4: 5x5 depthwise, hardswish), the head and the classifier.
TEST(Model, MobileNetV3GradientsMatchFiniteDifferences) {
  ModelConfig config = test::tiny_config(3, 0.0);
  Genotype genotype = build_model("mobilenetv3_small_mp", config)->genotype();
  const std::vector<std::vector<PoolOp>> choices = {{PoolOp::kStrip, PoolOp::kMax3}, {PoolOp::kAvg5}, {PoolOp::kSkip}};
  for (size_t i = 0; i < genotype.enhancers.size(); ++i) genotype.enhancers[i].ops = choices[i % choices.size()];
  config.genotype = genotype;
  auto model = build_model("mobilenetv3_small_mp", config);
  for (const auto& [name, e] : model->enhancers()) put_enhancer_batchnorms_on_the_curve(*e);
  expect_network_gradients_match(*model, {"features.0.", "features.4.", "features.12.", "classifier."}, 20, 16);
}

// --bn-momentum replaces every batchnorm's momentum: after one training batch from zero, a running
// mean is momentum x the batch mean, so 0.1 gives 10x torchvision's MobileNetV3 0.01.
TEST(Model, BatchNormMomentumIsSetEverywhere) {
  const ModelConfig config = test::tiny_config(3, 0.0);
  auto own = build_model("mobilenetv3_small_mp", config), set = build_model("mobilenetv3_small_mp", config);
  set->set_bn_momentum(0.1);
  const Tensor x = test::random({4, 32, 32, 3}, 17, false, 1.0, DType::kF32);
  own->forward(x);
  set->forward(x);
  size_t compared = 0;
  const auto a = own->buffers(), b = set->buffers();
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name.find("running_mean") == std::string::npos || a[i].name.find("enhancer") != std::string::npos) continue;
    // Past the first batchnorm both see the same input only in exact arithmetic: the stem's.
    if (a[i].name != "features.0.1.running_mean") continue;
    const auto va = a[i].tensor.to_vector<float>(), vb = b[i].tensor.to_vector<float>();
    for (size_t c = 0; c < va.size(); ++c) EXPECT_NEAR(vb[c], 10.0f * va[c], 1e-5f * std::abs(vb[c]) + 1e-9f);
    ++compared;
  }
  EXPECT_EQ(compared, 1u);
  int batchnorms = 0;
  for (const auto& [name, m] : set->modules()) {
    if (const auto* bn = dynamic_cast<const BatchNorm*>(m)) {
      EXPECT_EQ(bn->momentum(), 0.1) << name;
      ++batchnorms;
    }
  }
  EXPECT_GT(batchnorms, 30);
  EXPECT_THROW(set->set_bn_momentum(0.0), Error);
  EXPECT_THROW(set->set_bn_momentum(1.5), Error);
}

// One searching enhancer, every candidate weighted: input gradient and every parameter (alpha,
// strip attention, batchnorm) against finite differences, alphas far from uniform.
// With --gate also the gate, away from its start.
TEST(Model, SearchingEnhancerGradientsMatchFiniteDifferences) {
  for (const bool gated : {false, true}) {
    SCOPED_TRACE(gated ? "gated" : "ungated");
    Generator gen(3);
    MetaPooling enhancer(8, gen, gated);
    put_enhancer_batchnorms_on_the_curve(enhancer);
    enhancer.to(DType::kF64);
    {
      NoGradGuard no_grad;
      Tensor alpha = enhancer.alpha();
      alpha.copy_(test::random({8}, 78, false));
      if (gated) {
        Tensor gate = enhancer.gate();
        gate.copy_(test::random({2}, 79, false));
      }
    }
    test::expect_gradients_match([&](const Tensors& t) { return enhancer.forward(t[0]); },
                                 {test::random({2, 6, 7, 8}, 9)});
    const Tensor x = test::random({2, 6, 7, 8}, 10, false);
    std::vector<std::pair<std::string, Tensor>> params;
    for (const NamedParameter& p : enhancer.parameters()) params.emplace_back(p.name, p.tensor);
    EXPECT_EQ(std::count_if(params.begin(), params.end(), [](const auto& p) { return p.first == "gate"; }), gated ? 1 : 0);
    test::expect_parameter_gradients_match([&] { return enhancer.forward(x); }, params, 4);
  }
}

}  // namespace
}  // namespace pmpl
