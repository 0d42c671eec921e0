// Packed parameters and the SGD update.
#include <cmath>
#include <map>

#include "layers/layers.h"
#include "models/registry.h"
#include "tests/test_util.h"
#include "train/parameters.h"
#include "train/recalibrate.h"
#include "train/adam.h"
#include "train/evaluate.h"
#include "train/model_ema.h"
#include "train/schedule.h"
#include "train/sgd.h"
#include "train/weight_optimizer.h"

namespace pmpl {
namespace {

TEST(Train, PackedParametersKeepValuesAndCollectGradients) {
  ModelConfig config = test::tiny_config(4, 0.0);
  auto model = build_model("mobilenetv2_mp", config);
  auto reference = build_model("mobilenetv2_mp", config);  // same seed: same values
  ParameterGroup group(model->parameters());
  const Tensor x = test::random({2, 12, 12, 3}, 1, false, 1.0, DType::kF32);
  const Tensor y = model->forward(x), y_ref = reference->forward(x);
  EXPECT_EQ(y.to_vector<float>(), y_ref.to_vector<float>());
  ops::sum(y).backward();
  ops::sum(y_ref).backward();
  // Every gradient landed in the flat buffer, at its parameter's slice.
  const auto packed = group.params();
  int64_t offset = 0, decayed = 0;
  std::map<std::string, Tensor> ref_params;
  for (const NamedParameter& p : reference->parameters()) ref_params[p.name] = p.tensor;
  for (const NamedParameter& p : packed) {
    const std::vector<float> slice = group.grads().view_slice(offset, p.tensor.shape()).to_vector<float>();
    EXPECT_EQ(slice, ref_params.at(p.name).grad().to_vector<float>()) << p.name;
    EXPECT_EQ(p.tensor.grad().raw_data(), group.grads().view_slice(offset, p.tensor.shape()).raw_data());
    if (p.kind == ParamKind::kWeight) {
      EXPECT_EQ(offset, decayed) << "weights come first";
      decayed += p.tensor.numel();
    }
    offset += p.tensor.numel();
  }
  EXPECT_EQ(offset, group.numel());
  EXPECT_EQ(decayed, group.decay_numel());
  group.zero_grad();
  for (float g : group.grads().to_vector<float>()) ASSERT_EQ(g, 0.0f);
}

// Three steps of torch.optim.SGD(lr=0.1, momentum=0.9, nesterov=True) with weight decay 0.01 on
// the weight and none on the bias, from PyTorch 1.13 in f64.
TEST(Train, SgdMatchesPyTorch) {
  Tensor w = Tensor::from_vector<double>({1.0, -2.0, 0.5}, Shape{3});
  Tensor b = Tensor::from_vector<double>({0.3, -0.7}, Shape{2});
  w.set_requires_grad(true);
  b.set_requires_grad(true);
  ParameterGroup group({{"b", b, ParamKind::kNoDecay}, {"w", w, ParamKind::kWeight}});
  Sgd sgd(group, {0.9, true, 0.01});
  const std::vector<std::pair<std::vector<double>, std::vector<double>>> grads = {
      {{0.5, -1.0, 2.0}, {0.1, 0.2}}, {{-0.3, 0.4, 1.0}, {-0.5, 0.05}}, {{0.2, 0.2, -0.6}, {0.3, -0.1}}};
  for (const auto& [gw, gb] : grads) {
    Tensor grad_w = w.grad(), grad_b = b.grad();
    grad_w.copy_(Tensor::from_vector(gw, Shape{3}));
    grad_b.copy_(Tensor::from_vector(gb, Shape{2}));
    sgd.step(0.1);
  }
  test::expect_close(w, Tensor::from_vector<double>({0.863721158191, -1.7873145163820001, -0.34639832122950004}, Shape{3}),
                     1e-12, 1e-12, "w");
  test::expect_close(b, Tensor::from_vector<double>({0.34410999999999997, -0.7633300000000001}, Shape{2}), 1e-12,
                     1e-12, "b");
  EXPECT_EQ(sgd.steps(), 3);
}

// Three steps from w = {1, -2, 0.5} (decayed) and b = {0.3, -0.7} (not), at learning rates 0.1,
// 0.05, 0.02 (a schedule's changes reach RMSpropTF through its momentum buffer), in f64.
void run_three_steps(WeightOptimizer& opt, Tensor& w, Tensor& b) {
  const std::vector<std::pair<std::vector<double>, std::vector<double>>> grads = {
      {{0.5, -1.0, 2.0}, {0.1, 0.2}}, {{-0.3, 0.4, 1.0}, {-0.5, 0.05}}, {{0.2, 0.2, -0.6}, {0.3, -0.1}}};
  const double lrs[] = {0.1, 0.05, 0.02};
  for (size_t i = 0; i < grads.size(); ++i) {
    Tensor grad_w = w.grad(), grad_b = b.grad();
    grad_w.copy_(Tensor::from_vector(grads[i].first, Shape{3}));
    grad_b.copy_(Tensor::from_vector(grads[i].second, Shape{2}));
    opt.step(lrs[i]);
  }
  EXPECT_EQ(opt.steps(), 3);
}

struct TwoParameters {
  Tensor w = Tensor::from_vector<double>({1.0, -2.0, 0.5}, Shape{3});
  Tensor b = Tensor::from_vector<double>({0.3, -0.7}, Shape{2});
  ParameterGroup group;
  TwoParameters() : group(make()) {}
  std::vector<NamedParameter> make() {
    w.set_requires_grad(true);
    b.set_requires_grad(true);
    return {{"b", b, ParamKind::kNoDecay}, {"w", w, ParamKind::kWeight}};
  }
};

// Gradient-norm clipping of a float64 group (the parity tests' dtype): gradients of norm 13
// scaled to norm 5 (torch.nn.utils.clip_grad_norm_'s factor, max / (norm + 1e-6)); below the
// bound they are left alone.
TEST(Train, ClippingScalesAFloat64Group) {
  TwoParameters p;
  Tensor g = p.group.grads();
  g.copy_(Tensor::from_vector<double>({3.0, 4.0, 0.0, 12.0, 0.0}, Shape{5}));
  const double norm = std::sqrt(p.group.clip_gradients(5.0).item());
  EXPECT_EQ(norm, 13.0) << "the norm before clipping";
  const double factor = 5.0 / (13.0 + 1e-6);
  EXPECT_EQ(p.group.grads().to_vector<double>(),
            (std::vector<double>{3.0 * factor, 4.0 * factor, 0.0, 12.0 * factor, 0.0}));
  g.copy_(Tensor::from_vector<double>({0.3, 0.4, 0.0, 1.2, 0.0}, Shape{5}));
  p.group.clip_gradients(5.0);
  EXPECT_EQ(p.group.grads().to_vector<double>(), (std::vector<double>{0.3, 0.4, 0.0, 1.2, 0.0}));
}

// timm 0.9.16's RMSpropTF(alpha=0.9, momentum=0.9, eps=1e-3, weight_decay=0.01), PyTorch 1.13
// (tools/make_optimizer_fixtures.py).
TEST(Train, RmspropTfMatchesTimm) {
  TwoParameters p;
  const auto opt = make_weight_optimizer(p.group, {"rmsproptf", 0.9, false, 0.01, 1e-3});
  run_three_steps(*opt, p.w, p.b);
  test::expect_close(p.w, Tensor::from_vector<double>({0.8817267236379545, -1.7660170041638412, -0.04944721983038691}, Shape{3}),
                     1e-14, 1e-12, "w");
  test::expect_close(p.b, Tensor::from_vector<double>({0.3165163897826959, -0.7599021258659289}, Shape{2}), 1e-14,
                     1e-12, "b");
}

// timm 0.9.16's Lamb(betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01, max_grad_norm=1.0),
// PyTorch 1.13 (tools/make_optimizer_fixtures.py; its global norm, a default-dtype scalar in timm,
// made float64 too): the global gradient norm is above 1 on every step, so its clipping is in
// play; the bias takes no decay and no trust ratio.
TEST(Train, LambMatchesTimm) {
  TwoParameters p;
  const auto opt = make_weight_optimizer(p.group, {"lamb", 0.0, false, 0.01, -1.0, 0.9, 0.999});
  run_three_steps(*opt, p.w, p.b);
  test::expect_close(p.w, Tensor::from_vector<double>({0.8565911484758921, -1.866893796163795, 0.23198301283895983}, Shape{3}),
                     1e-14, 1e-12, "w");
  test::expect_close(p.b, Tensor::from_vector<double>({0.2342572860226029, -0.8467947343808012}, Shape{2}), 1e-14,
                     1e-12, "b");
}

// --decay-norm-and-bias (ParameterGroup::decay_all): the bias then takes the decay a weight takes,
// in every optimiser: its steps equal those of a group where it is a weight, and differ from the
// default's.
TEST(Train, DecayAllDecaysBiasesAsWeights) {
  for (const char* kind : {"sgd", "rmsproptf", "adamw", "lamb"}) {
    SCOPED_TRACE(kind);
    const WeightOptimizerOptions o{kind, 0.9, false, 0.05, 1e-3};
    TwoParameters all, plain;
    all.group.decay_all();
    EXPECT_EQ(all.group.decay_numel(), 5);
    EXPECT_EQ(plain.group.decay_numel(), 3);
    Tensor w = Tensor::from_vector<double>({1.0, -2.0, 0.5}, Shape{3}), b = Tensor::from_vector<double>({0.3, -0.7}, Shape{2});
    w.set_requires_grad(true);
    b.set_requires_grad(true);
    ParameterGroup as_weights({{"b", b, ParamKind::kWeight}, {"w", w, ParamKind::kWeight}});
    run_three_steps(*make_weight_optimizer(all.group, o), all.w, all.b);
    run_three_steps(*make_weight_optimizer(plain.group, o), plain.w, plain.b);
    run_three_steps(*make_weight_optimizer(as_weights, o), w, b);
    test::expect_close(all.b, b, 0.0, 0.0, "the bias, decayed");
    test::expect_close(all.w, w, 0.0, 0.0, "the weight");
    EXPECT_NE(all.b.to_vector<double>(), plain.b.to_vector<double>());
  }
}

// torch.optim.AdamW(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05), PyTorch 1.13.
TEST(Train, AdamWMatchesPyTorch) {
  TwoParameters p;
  const auto opt = make_weight_optimizer(p.group, {"adamw", 0.0, false, 0.05, 1e-8, 0.9, 0.999});
  run_three_steps(*opt, p.w, p.b);
  test::expect_close(p.w, Tensor::from_vector<double>({0.8753558592352431, -1.8632083158214514, 0.3389429316536038}, Shape{3}),
                     1e-14, 1e-12, "w");
  test::expect_close(p.b, Tensor::from_vector<double>({0.23140840634882653, -0.8475009032713702}, Shape{2}), 1e-14,
                     1e-12, "b");
}

// Three steps of torch.optim.Adam(lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3), PyTorch 1.13,
// f64 (the PMPL architecture optimiser's settings).
TEST(Train, AdamMatchesPyTorch) {
  Tensor a = Tensor::from_vector<double>({0.1, -0.2, 0.3, 0.05}, Shape{4});
  a.set_requires_grad(true);
  ParameterGroup group({{"alpha", a, ParamKind::kArch}});
  Adam adam(group, {});
  for (const std::vector<double>& g : std::vector<std::vector<double>>{
           {0.5, -1.0, 0.25, 0.0}, {-0.3, 0.4, 1.0, 2.0}, {0.2, 0.2, -0.6, 0.1}}) {
    Tensor grad = a.grad();
    grad.copy_(Tensor::from_vector(g, Shape{4}));
    adam.step();
  }
  test::expect_close(a, Tensor::from_vector<double>({0.09963979112232545, -0.19971423461539942, 0.299400559147596,
                                                     0.04925417212439503}, Shape{4}),
                     1e-15, 1e-12, "alpha");
}

// Per epoch of 4 steps, torch.optim.lr_scheduler's values (PyTorch 1.13): StepLR(step_size=3,
// gamma=0.1) for 10 epochs, ExponentialLR(gamma=0.98) for 6; with a warm-up the decay counts from
// its end, as torchvision's SequentialLR does. The lr holds within an epoch unless per_step.
TEST(Train, SchedulesMatchPyTorch) {
  const int64_t per_epoch = 4;
  const std::vector<double> step_lr = {0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.001, 0.001, 0.001, 0.0001};
  const LrSchedule step({"step", 0.1, 0.0, 3.0, 0.1}, 0, per_epoch, 10 * per_epoch);
  for (int64_t e = 0; e < 10; ++e) {
    for (int64_t k = 0; k < per_epoch; ++k) EXPECT_NEAR(step.at(e * per_epoch + k), step_lr[e], 1e-15) << e << " " << k;
  }
  const std::vector<double> exp_lr = {0.1, 0.098, 0.09604, 0.0941192, 0.092236816, 0.09039207968};
  const LrSchedule exponential({"exponential", 0.1, 0.0, 1.0, 0.98}, 0, per_epoch, 6 * per_epoch);
  for (int64_t e = 0; e < 6; ++e) EXPECT_NEAR(exponential.at(e * per_epoch + 3), exp_lr[e], 1e-15) << e;
  // Two epochs of warm-up: the decay's epoch 0 is epoch 2.
  const LrSchedule warmed({"step", 0.1, 0.0, 3.0, 0.1}, 2 * per_epoch, per_epoch, 10 * per_epoch);
  EXPECT_NEAR(warmed.at(0), 0.1 / 8, 1e-15);
  EXPECT_NEAR(warmed.at(2 * per_epoch - 1), 0.1, 1e-15);
  EXPECT_NEAR(warmed.at(4 * per_epoch + 3), 0.1, 1e-15);
  EXPECT_NEAR(warmed.at(5 * per_epoch), 0.01, 1e-15);
  // Per step: half an epoch in, half an epoch's decay; timm's fractional step size.
  const LrSchedule smooth({"exponential", 0.1, 0.0, 1.0, 0.98, true}, 0, per_epoch, 6 * per_epoch);
  EXPECT_NEAR(smooth.at(2), 0.1 * std::sqrt(0.98), 1e-15);
  const LrSchedule timm({"step", 0.016, 0.0, 2.4, 0.973}, 0, per_epoch, 30 * per_epoch);
  for (int64_t e = 0; e < 30; ++e) {
    EXPECT_NEAR(timm.at(e * per_epoch), 0.016 * std::pow(0.973, static_cast<double>((e * 10) / 24)), 1e-15) << e;
  }
  // The floor, and the cosine's ends.
  EXPECT_NEAR(LrSchedule({"exponential", 0.1, 0.05, 1.0, 0.5}, 0, per_epoch, 40).at(39), 0.05, 1e-15);
  const LrSchedule cosine({"cosine", 0.1, 1e-4}, per_epoch, per_epoch, 10 * per_epoch);
  EXPECT_NEAR(cosine.at(per_epoch), 0.1, 1e-15);
  EXPECT_NEAR(cosine.at(10 * per_epoch), 1e-4, 1e-15);
  EXPECT_NEAR(LrSchedule({"constant", 0.1}, 0, per_epoch, 40).at(39), 0.1, 1e-15);
  EXPECT_THROW(LrSchedule({"linear", 0.1}, 0, per_epoch, 40), Error);
}

// timm 0.9.16's ModelEmaV3.get_decay: 0 at the first update, then the decay, or with warm-up
// 1 - (1 + t - 1)^(-2/3) capped at it.
TEST(Train, ModelEmaDecayIsTimms) {
  BatchNorm bn(2);
  ParameterGroup group(bn.parameters());
  const ModelEma plain(bn, group, {0.9, false});
  EXPECT_EQ(plain.decay_at(1), 0.0);
  EXPECT_EQ(plain.decay_at(2), 0.9);
  const ModelEma warm(bn, group, {0.9998, true});
  const std::vector<std::pair<int64_t, double>> timm = {{1, 0.0}, {2, 0.3700394750525634}, {3, 0.5192501432308638},
                                                        {10, 0.7845565309968117}, {1000, 0.99}, {1000000, 0.9998}};
  for (const auto& [t, d] : timm) EXPECT_NEAR(warm.decay_at(t), d, 1e-15) << t;
}

// The average of a batchnorm's weights and running statistics over three updates (decay 0.5 after
// the first, which copies), its counter copied; Swap puts the average in and the live values back.
TEST(Train, ModelEmaAveragesWeightsAndBuffers) {
  BatchNorm bn(2);
  ParameterGroup group(bn.parameters());
  ModelEma ema(bn, group, {0.5, false});
  const NamedTensor mean = bn.buffers()[0];
  ASSERT_EQ(mean.name, "running_mean");
  const std::vector<std::vector<float>> values = {{1, 2, 3, 4}, {5, 6, 7, 8}, {-1, 0, 1, 2}};
  for (size_t t = 0; t < values.size(); ++t) {
    Tensor live = group.values();
    live.copy_(Tensor::from_vector(values[t], Shape{4}));
    Tensor m = mean.tensor;
    m.fill_(static_cast<double>(t + 1));
    ema.update(static_cast<int64_t>(t + 1));
  }
  // ema = 0.5 * (0.5 * v0 + 0.5 * v1) + 0.5 * v2 after the copy of v0.
  std::map<std::string, Tensor> saved;
  for (const auto& [name, t] : ema.tensors()) saved[name] = t.to(Device::cpu());
  const float w0 = 0.25f * 1 + 0.25f * 5 + 0.5f * -1, w1 = 0.25f * 2 + 0.25f * 6 + 0.5f * 0;
  EXPECT_EQ(saved.at("ema.weight").to_vector<float>(), (std::vector<float>{w0, w1}));
  EXPECT_EQ(saved.at("ema.bias").to_vector<float>(), (std::vector<float>{0.25f * 3 + 0.25f * 7 + 0.5f, 0.25f * 4 + 0.25f * 8 + 1.0f}));
  EXPECT_EQ(saved.at("ema.running_mean").to_vector<float>(), (std::vector<float>{2.25f, 2.25f}));
  {
    const ModelEma::Swap in(ema);
    EXPECT_EQ(group.values().to_vector<float>()[0], w0);
    EXPECT_EQ(mean.tensor.to_vector<float>()[0], 2.25f);
  }
  EXPECT_EQ(group.values().to_vector<float>(), values.back());
  EXPECT_EQ(mean.tensor.to_vector<float>()[0], 3.0f);
}

// What a fix rewrites (here the weight and the running mean) the average takes as the fix left
// it; what it leaves alone (the bias, the running variance) keeps its average.
TEST(Train, ModelEmaFollowsWhatAChangeRewrote) {
  BatchNorm bn(2);
  ParameterGroup group(bn.parameters());
  ModelEma ema(bn, group, {0.5, false});
  const NamedTensor mean = bn.buffers()[0], var = bn.buffers()[1];
  ASSERT_EQ(var.name, "running_var");
  for (int64_t t = 1; t <= 2; ++t) {
    Tensor live = group.values();
    live.copy_(Tensor::from_vector<float>({1.0f * t, 2.0f * t, 3.0f * t, 4.0f * t}, Shape{4}));
    Tensor m = mean.tensor, v = var.tensor;
    m.fill_(static_cast<double>(t));
    v.fill_(static_cast<double>(t));
    ema.update(t);
  }
  ema.follow([&] {
    Tensor weight = group.values().view_slice(0, Shape{2});
    weight.copy_(Tensor::from_vector<float>({10.0f, 20.0f}, Shape{2}));
    Tensor m = mean.tensor;
    m.fill_(7.0);
  });
  std::map<std::string, Tensor> saved;
  for (const auto& [name, t] : ema.tensors()) saved[name] = t.to(Device::cpu());
  EXPECT_EQ(saved.at("ema.weight").to_vector<float>(), (std::vector<float>{10.0f, 20.0f}));
  EXPECT_EQ(saved.at("ema.running_mean").to_vector<float>(), (std::vector<float>{7.0f, 7.0f}));
  EXPECT_EQ(saved.at("ema.bias").to_vector<float>(), (std::vector<float>{4.5f, 6.0f}));
  EXPECT_EQ(saved.at("ema.running_var").to_vector<float>(), (std::vector<float>{1.5f, 1.5f}));
}

// A deactivated parameter keeps its value and optimiser state while the rest move on.
TEST(Train, InactiveParametersAreFrozen) {
  Tensor a = Tensor::from_vector<double>({1.0, 2.0}, Shape{2}), b = Tensor::from_vector<double>({3.0}, Shape{1});
  a.set_requires_grad(true);
  b.set_requires_grad(true);
  ParameterGroup group({{"a", a, ParamKind::kArch}, {"b", b, ParamKind::kArch}});
  Adam adam(group, {});
  Sgd sgd(group, {});
  group.deactivate("a");
  EXPECT_FALSE(group.active("a"));
  EXPECT_TRUE(group.active("b"));
  Tensor grads = group.grads();
  grads.fill_(1.0);
  adam.step();
  sgd.step(0.1);
  EXPECT_EQ(a.to_vector<double>(), (std::vector<double>{1.0, 2.0}));
  EXPECT_NE(b.to_vector<double>()[0], 3.0);
  EXPECT_EQ(adam.first_moment().to_vector<double>()[0], 0.0);
}

// Under BatchStatisticsGuard a batchnorm in evaluation mode normalises each batch with its own
// statistics, as in training, and leaves its running statistics and counter alone; once the
// guard is gone evaluation uses the running statistics again.
TEST(Train, BatchStatisticsGuardScoresWithBatchStatisticsAndKeepsTheRunningOnes) {
  BatchNorm bn(3);
  const Tensor x = test::random(Shape{8, 3}, 5, false, 2.0, DType::kF32);
  bn.train();
  bn.forward(test::random(Shape{8, 3}, 6, false, 1.0, DType::kF32));
  const std::vector<NamedTensor> buffers = bn.buffers();
  std::vector<std::vector<double>> before;
  for (const NamedTensor& b : buffers) before.push_back(b.tensor.to(DType::kF64).to_vector<double>());
  const NoGradGuard no_grad;
  const std::vector<float> trained = ops::batch_norm(x, bn.parameters()[0].tensor, bn.parameters()[1].tensor, Tensor(),
                                                     Tensor(), true, 0.1, 1e-5).to_vector<float>();
  bn.eval();
  const std::vector<float> evaluated = bn.forward(x).to_vector<float>();
  ASSERT_NE(evaluated, trained) << "the test cannot tell batch from running statistics";
  {
    const BatchStatisticsGuard guard(bn);
    EXPECT_EQ(bn.forward(x).to_vector<float>(), trained);
  }
  EXPECT_EQ(bn.forward(x).to_vector<float>(), evaluated);
  for (size_t i = 0; i < buffers.size(); ++i) {
    EXPECT_EQ(buffers[i].tensor.to(DType::kF64).to_vector<double>(), before[i]) << buffers[i].name;
  }
}

// Top-k counts ties for the earlier class, and a row with a NaN or infinite logit is a miss
// (NaN compares false, which would otherwise make an all-NaN network score 100%).
TEST(Train, TopKCountsTiesFirstAndNonFiniteRowsAsMisses) {
  const Tensor logits = Tensor::from_vector<float>({0.1f, 0.9f, 0.5f,     // label 1: top-1
                                                    0.7f, 0.7f, 0.1f,     // label 1: tie lost to class 0
                                                    0.2f, 0.3f, 0.1f,     // label 0: second
                                                    NAN, NAN, NAN,        // label 2: miss
                                                    0.1f, INFINITY, 0.2f},  // label 2: miss
                                                   Shape{5, 3});
  const Tensor labels = Tensor::from_vector<int64_t>({1, 1, 0, 2, 2}, Shape{5});
  EXPECT_EQ(count_top_k(logits, labels, 1), 1);
  EXPECT_EQ(count_top_k(logits, labels, 2), 3);
  EXPECT_EQ(count_top_k(logits, labels, 3), 3);
}

}  // namespace
}  // namespace pmpl
