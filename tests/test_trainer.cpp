// pmpl train end to end on a tiny generated dataset: progressive fixing picks the argmax, a
// killed and resumed run ends bit-identical to an uninterrupted one, bad runs stop clearly.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/jpeg_encode.h"
#include "engine/cuda_runtime.h"
#include "engine/io/safetensors.h"
#include "models/registry.h"
#include "train/checkpoint.h"
#include "train/initial_weights.h"
#include "train/pmpl.h"
#include "train/trainer.h"
#include "tests/run_fixtures.h"
#include "tests/test_util.h"

namespace pmpl {
namespace {

using test::checkpoint_bytes;
using test::read_log;
using test::TempRun;
using test::tiny_search;

// The forced fixes of SearchFixesUndecidedEnhancersToSkip lead by 0.0001-0.0064 (5 of them) and
// 0.044-0.24 (11): the bound stands in the gap.
constexpr double kUndecidedBound = 0.025;

TEST(Pmpl, FixesTheArgmaxNotCandidateOne) {
  // Probabilities favouring max7 (index 4): the reference code would fix candidate 1 (strip).
  const std::vector<double> probs = {0.05, 0.1, 0.05, 0.05, 0.5, 0.1, 0.1, 0.05};
  ASSERT_TRUE(fix_decision(probs, 0.2).has_value());
  EXPECT_EQ(*fix_decision(probs, 0.2), PoolOp::kMax7);
  EXPECT_FALSE(fix_decision(probs, 0.45).has_value()) << "a lead of 0.4 is below 0.45";
  EXPECT_EQ(top_ops(probs, 2), (std::vector<PoolOp>{PoolOp::kMax7, PoolOp::kStrip}));
  const std::vector<double> avg = {0.05, 0.1, 0.1, 0.1, 0.1, 0.05, 0.1, 0.4};
  ASSERT_TRUE(fix_decision(avg, 0.2).has_value());
  EXPECT_EQ(*fix_decision(avg, 0.2), PoolOp::kAvg7);
}

// --skip-undecided: a forced fix keeps the top ops where the lead reaches the bound, else skip.
TEST(Pmpl, ForcedFixesFallBackToSkipBelowTheLead) {
  const std::vector<double> probs = {0.05, 0.1, 0.05, 0.05, 0.5, 0.1, 0.1, 0.05};  // max7 leads by 0.4
  EXPECT_DOUBLE_EQ(lead_of(probs), 0.4);
  EXPECT_EQ(forced_ops(probs, 1, 0.0), std::vector<PoolOp>{PoolOp::kMax7});
  EXPECT_EQ(forced_ops(probs, 1, 0.4), std::vector<PoolOp>{PoolOp::kMax7}) << "a lead equal to the bound keeps";
  EXPECT_EQ(forced_ops(probs, 1, 0.41), std::vector<PoolOp>{PoolOp::kSkip});
  EXPECT_EQ(forced_ops(probs, 2, 0.3), (std::vector<PoolOp>{PoolOp::kMax7, PoolOp::kStrip}));
  EXPECT_EQ(forced_ops(probs, 2, 0.5), std::vector<PoolOp>{PoolOp::kSkip}) << "one op, not skip twice";
}

// Runs `base` (a tiny search; output set here) to the end, then again killed after each of
// `kill_at` steps and resumed: the final weights, BN statistics and optimiser state must be
// byte for byte those of the run never stopped.
void expect_resumes_bit_identical(const TrainConfig& base, const std::vector<int64_t>& kill_at,
                                  const std::string& name) {
  TempRun full(name + "_full");
  TrainConfig c = base;
  c.output = full.dir;
  ASSERT_TRUE(run_training(c).completed);
  const auto expected = checkpoint_bytes(full.dir + "/checkpoint-last.safetensors");
  for (int64_t step : kill_at) {
    SCOPED_TRACE(testing::Message() << "killed after step " << step);
    TempRun broken(name + "_broken" + std::to_string(step));
    c.output = broken.dir;
    c.max_steps = step;
    EXPECT_FALSE(run_training(c).completed);
    TrainConfig again = base;
    again.output = "";
    again.resume = broken.dir;
    ASSERT_TRUE(run_training(again).completed);
    const auto resumed = checkpoint_bytes(broken.dir + "/checkpoint-last.safetensors");
    ASSERT_EQ(resumed.size(), expected.size());
    for (const auto& [tensor, bytes] : expected) {
      ASSERT_TRUE(resumed.count(tensor)) << tensor;
      EXPECT_TRUE(resumed.at(tensor) == bytes) << tensor << " differs";
    }
  }
}

// A search run with --skip-undecided: every forced fix below the bound is skip (--undecided skip)
// or removes the enhancer (--undecided none), logged as undecided; every other one is its argmax;
// the genotype is complete and says so, a removed enhancer leaves no tensor in the checkpoint, and
// a run killed before or after the removals resumes bit-identically.
TEST(Pmpl, SearchFixesUndecidedEnhancersToSkipOrRemovesThem) {
  for (const std::string undecided : {"skip", "none"}) {
    SCOPED_TRACE(undecided);
    TempRun run("undecided_" + undecided);
    TrainConfig c = tiny_search(run.dir);
    c.arch_lr = 0.3;
    c.fix_threshold = 1.0;  // every fix is forced
    c.skip_undecided = kUndecidedBound;
    c.undecided = undecided;
    ASSERT_TRUE(run_training(c).completed);
    std::vector<std::string> fallen;
    int kept = 0;
    for (const nlohmann::json& line : read_log(run.dir)) {
      if (line.value("event", "") != "fixed") continue;
      const std::vector<double> probs = line["probs"];
      if (lead_of(probs) < kUndecidedBound) {
        EXPECT_EQ(line["ops"].get<std::string>(), undecided) << line.dump();
        EXPECT_TRUE(line.value("undecided", false)) << line.dump();
        fallen.push_back(line["name"]);
      } else {
        EXPECT_EQ(line["ops"].get<std::string>(), std::string(pool_op_name(top_ops(probs, 1)[0]))) << line.dump();
        EXPECT_FALSE(line.contains("undecided")) << line.dump();
        ++kept;
      }
    }
    EXPECT_EQ(static_cast<int>(fallen.size()) + kept, 16);
    EXPECT_GT(fallen.size(), 0u) << "the bound should leave some enhancers undecided";
    EXPECT_GT(kept, 0) << "the bound should let some guesses through";
    const Genotype g = Genotype::load(run.dir + "/genotype.json");
    EXPECT_TRUE(g.complete());
    const auto tensors = checkpoint_bytes(run.dir + "/checkpoint-last.safetensors");
    for (const Genotype::Entry& e : g.enhancers) {
      const bool fell = std::find(fallen.begin(), fallen.end(), e.name) != fallen.end();
      EXPECT_EQ(e.removed, fell && undecided == "none") << e.name;
      EXPECT_EQ(tensors.count(e.name + ".bn.weight"), e.removed ? 0u : 1u) << e.name;
    }
    c.output = "";
    expect_resumes_bit_identical(c, {3, 6}, "undecided_" + undecided);  // before the fixes and after them
  }
}

// A gate's lead needs the logit gap an alpha's lead needs: two logits g apart lead by
// gate_lead_for(t) where a top candidate g above seven equal others leads by t.
TEST(Pmpl, GateLeadNeedsTheAlphasLogitGap) {
  EXPECT_DOUBLE_EQ(gate_lead_for(0.2), 0.5);
  for (const double t : {0.05, 0.1, 0.2, 0.5}) {
    SCOPED_TRACE(t);
    const double odds = (1.0 + 7.0 * t) / (1.0 - t);
    std::vector<double> eight(8, 1.0);
    eight[3] = odds;  // unnormalised softmax: the top's logit ln(odds) above seven zeros
    double sum = 0.0;
    for (double v : eight) sum += v;
    for (double& v : eight) v /= sum;
    EXPECT_NEAR(lead_of(eight), t, 1e-12);
    EXPECT_NEAR(gate_lead_for(t), (odds - 1.0) / (odds + 1.0), 1e-12);
    EXPECT_NEAR(gate_lead_for(t), std::tanh(0.5 * std::log(odds)), 1e-12);
  }
  EXPECT_EQ(gate_lead_for(0.0), 0.0);
  EXPECT_EQ(gate_lead_for(1.0), 1.0);
}

// --gate: every fix follows the gate first. Where q_none leads (by gate_lead_for(threshold) for
// a threshold fix, at all for a forced one) the enhancer is removed and logged as the gate's
// choice; where q_keep leads, the alphas decide as without a gate, and a forced fix whose gate
// leads by less than gate_lead_for(skip_undecided) is undecided. The gates are in the log, kept
// frozen in the checkpoint, the checkpoint says its network is gated (pmpl eval can rebuild it),
// and a run killed before or after the fixes resumes bit-identically.
TEST(Pmpl, GatedSearchRemovesWhereTheGateChoosesNone) {
  TempRun run("gated");
  TrainConfig c = tiny_search(run.dir);
  c.gate = true;
  c.arch_lr = 0.3;
  c.fix_threshold = 0.3;
  c.force_fix_epoch = 5;  // only the end forces
  c.skip_undecided = kUndecidedBound;
  ASSERT_TRUE(run_training(c).completed);
  int gated_out = 0, kept = 0;
  for (const nlohmann::json& line : read_log(run.dir)) {
    if (line.value("type", "") == "step") {
      for (const nlohmann::json& e : line["enhancers"]) EXPECT_TRUE(e.contains("keep")) << e.dump();
    }
    if (line.value("event", "") != "fixed") continue;
    const std::vector<double> gate = line["gate"];
    ASSERT_EQ(gate.size(), 2u) << line.dump();
    const double keep_lead = gate[MetaPooling::kGateKeep] - gate[MetaPooling::kGateNone];
    const bool threshold = line["why"] == "threshold";
    const std::vector<double> probs = line["probs"];
    if (line.value("gated_out", false)) {
      EXPECT_EQ(line["ops"].get<std::string>(), "none") << line.dump();
      EXPECT_LE(keep_lead, threshold ? -gate_lead_for(c.fix_threshold) : 0.0) << line.dump();
      ++gated_out;
    } else if (threshold) {
      EXPECT_GE(keep_lead, gate_lead_for(c.fix_threshold)) << line.dump();
      EXPECT_EQ(line["ops"].get<std::string>(), std::string(pool_op_name(top_ops(probs, 1)[0]))) << line.dump();
      ++kept;
    } else {
      EXPECT_GT(keep_lead, 0.0) << line.dump();
      const bool undecided = keep_lead < gate_lead_for(c.skip_undecided) || lead_of(probs) < c.skip_undecided;
      EXPECT_EQ(line.value("undecided", false), undecided) << line.dump();
      EXPECT_EQ(line["ops"].get<std::string>(), undecided ? "none" : std::string(pool_op_name(top_ops(probs, 1)[0])))
          << line.dump();
      kept += !undecided;
    }
  }
  EXPECT_GT(gated_out, 0) << "some gates should choose none at arch-lr 0.3";
  EXPECT_GT(kept, 0) << "some gates should keep their enhancer at arch-lr 0.3";
  const Genotype g = Genotype::load(run.dir + "/genotype.json");
  EXPECT_TRUE(g.complete());
  const std::string last = run.dir + "/checkpoint-last.safetensors";
  const auto tensors = checkpoint_bytes(last);
  for (const Genotype::Entry& e : g.enhancers) {
    EXPECT_EQ(tensors.count(e.name + ".gate"), 1u) << e.name << ": the gate is kept for the record";
    EXPECT_EQ(tensors.count(e.name + ".bn.weight"), e.removed ? 0u : 1u) << e.name;
  }
  const auto model = load_model_from_file(last, false);
  EXPECT_TRUE(model->config().gated);
  EXPECT_EQ(model->genotype().to_json(), g.to_json());
  c.output = "";
  expect_resumes_bit_identical(c, {3, 6}, "gated");
}

// --gate needs a search to weigh: refused (one line, exit 2 from the CLI) with a plain backbone,
// with a genotype, and with --select perturbation, which does not score gates.
TEST(Pmpl, GateNeedsASearchByTheAlphas) {
  TempRun run("gate_refused");
  std::filesystem::create_directories(run.dir);
  const auto refusal = [&](const TrainConfig& c) -> std::string {
    try {
      run_training(c);
    } catch (const Error& e) {
      return e.what();
    }
    return "(not refused)";
  };
  TrainConfig c = tiny_search(run.dir + "/out");
  c.gate = true;
  c.model = "mobilenetv2";
  EXPECT_NE(refusal(c).find("--gate weighs searching enhancers"), std::string::npos) << refusal(c);
  c = tiny_search(run.dir + "/out");
  c.gate = true;
  c.select = "perturbation";
  EXPECT_NE(refusal(c).find("use --select alpha"), std::string::npos) << refusal(c);
  const std::string genotype = run.dir + "/genotype.json";
  test::every_choice_genotype(build_model("mobilenetv2_mp", test::tiny_config(3))->genotype()).save(genotype);
  c = tiny_search(run.dir + "/out");
  c.gate = true;
  c.genotype = genotype;
  EXPECT_NE(refusal(c).find("--gate is for a search"), std::string::npos) << refusal(c);
}

TEST(Pmpl, SkipUndecidedIsALead) {
  TrainConfig c = tiny_search("");
  c.skip_undecided = 1.5;
  EXPECT_THROW(run_training(c), Error) << "a lead is at most 1";
  c.skip_undecided = -0.1;
  EXPECT_THROW(run_training(c), Error);
}

// A search whose alphas move fast: every enhancer fixed by the threshold is fixed to the argmax
// of its probabilities at that moment, and the final genotype is complete.
TEST(Pmpl, SearchFixesToTheLeaderAndWritesTheGenotype) {
  TempRun run("search");
  TrainConfig c = tiny_search(run.dir);
  c.arch_lr = 0.3;
  c.fix_threshold = 0.05;
  c.force_fix_epoch = 5;  // only the end forces
  c.skip_undecided = 0.0;  // every forced fix to its leader too
  const TrainResult r = run_training(c);
  EXPECT_TRUE(r.completed);
  int threshold_fixes = 0;
  for (const nlohmann::json& line : read_log(run.dir)) {
    if (line.value("event", "") != "fixed") continue;
    const std::vector<double> probs = line["probs"];
    const PoolOp leader = top_ops(probs, 1)[0];
    EXPECT_EQ(line["ops"].get<std::string>(), std::string(pool_op_name(leader))) << line.dump();
    threshold_fixes += line["why"] == "threshold";
  }
  EXPECT_GT(threshold_fixes, 0) << "the alphas should separate with arch-lr 0.3";
  const Genotype g = Genotype::load(run.dir + "/genotype.json");
  EXPECT_TRUE(g.complete());
  EXPECT_EQ(g.enhancers.size(), 16u);
  // The log carries what the issue asks for.
  bool step_line = false;
  for (const nlohmann::json& line : read_log(run.dir)) {
    if (line.value("type", "") != "step") continue;
    step_line = true;
    for (const char* key : {"epoch", "step", "lr", "loss", "train_top1", "img_per_s", "data_wait", "enhancers"}) {
      EXPECT_TRUE(line.contains(key)) << key;
    }
    EXPECT_EQ(line["enhancers"][0]["probs"].size(), 8u);
  }
  EXPECT_TRUE(step_line);
  // The trained search network evaluates from its checkpoint alone.
  auto model = load_model_from_file(run.dir + "/checkpoint-last.safetensors");
  EXPECT_EQ(model->genotype().to_json(), g.to_json());
}

// Every backbone's Meta-Pooling variant searches as MobileNetV2-MP does: the alphas move (some
// enhancer crosses the threshold), every enhancer is fixed by the end, and the genotype names
// them all. (Until 2026-12-06 only mobilenetv2_mp searched; the others trained the uniform
// mixture and wrote no genotype.)
TEST(Pmpl, EveryBackboneSearches) {
  for (const std::string& name : model_names()) {
    if (name.size() < 3 || name.compare(name.size() - 3, 3, "_mp") != 0 || name == "mobilenetv2_mp") continue;
    SCOPED_TRACE(name);
    TempRun run("search_" + name);
    TrainConfig c = tiny_search(run.dir);
    c.model = name;
    if (name.rfind("shufflenetv2", 0) == 0) c.width = 1.0;
    c.arch_lr = 0.3;
    c.fix_threshold = 0.05;
    c.force_fix_epoch = 5;  // only the end forces
    ASSERT_TRUE(run_training(c).completed);
    int threshold_fixes = 0, forced = 0;
    for (const nlohmann::json& line : read_log(run.dir)) {
      if (line.value("event", "") != "fixed") continue;
      threshold_fixes += line["why"] == "threshold";
      forced += line["why"] == "forced";
    }
    EXPECT_GT(threshold_fixes, 0) << "the alphas should separate with arch-lr 0.3";
    const Genotype g = Genotype::load(run.dir + "/genotype.json");
    EXPECT_TRUE(g.complete());
    ModelConfig mc;
    mc.width = c.width;
    mc.small_input = true;
    mc.num_classes = 3;
    EXPECT_EQ(g.enhancers.size(), build_model(name, mc)->enhancers().size());
    EXPECT_EQ(static_cast<size_t>(threshold_fixes + forced), g.enhancers.size());
  }
}

// Killed mid-epoch (last checkpoint two steps back) or right after forced fixing, resumed.
TEST(Pmpl, ResumedRunIsBitIdentical) { expect_resumes_bit_identical(tiny_search(""), {3, 6}, "cpu"); }

// Stochastic depth draws from the checkpointed generator: a resumed run draws the same masks.
TEST(Pmpl, DropPathResumesBitIdentically) {
  TrainConfig c = tiny_search("");
  c.drop_path = 0.3;
  expect_resumes_bit_identical(c, {3}, "droppath");
}

// timm's pair and elem mixup: per-row lambdas from a stream keyed by batch and row, so a killed
// run resumes bit-identically.
TEST(Pmpl, PerRowMixupResumesBitIdentically) {
  for (const char* mode : {"pair", "elem"}) {
    SCOPED_TRACE(mode);
    TrainConfig c = tiny_search("");
    c.mixup = 0.4;
    c.cutmix = 1.0;
    c.mixup_mode = mode;
    expect_resumes_bit_identical(c, {3}, std::string("mix_") + mode);
  }
}

// --grad-accum 3 on epochs of 4 batches: two optimiser steps per epoch (3 batches, then the last
// one alone), counted by the schedule, the log and the checkpoints; a run killed mid-epoch or at
// its end resumes bit-identically.
TEST(Pmpl, GradientAccumulationStepsPerGroupAndResumes) {
  TrainConfig c = tiny_search("");
  c.grad_accum = 3;
  c.save_interval = 1;
  expect_resumes_bit_identical(c, {2, 3}, "accum");
  TempRun run("accum_count");
  c.output = run.dir;
  ASSERT_TRUE(run_training(c).completed);
  std::vector<int64_t> steps;
  for (const nlohmann::json& line : read_log(run.dir)) {
    if (line.value("type", "") == "step") steps.push_back(line["step"].get<int64_t>());
  }
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 4}));
  const TensorFile file = load_safetensors(run.dir + "/checkpoint-last.safetensors");
  const nlohmann::json trainer = nlohmann::json::parse(file.metadata.at("pmpl.trainer"));
  EXPECT_EQ(trainer["weight_optimizer_steps"].get<int64_t>(), 4);
}

// Two accumulated batches of 8 make the step one batch of 16 makes. The images are all the same
// (two classes of one solid colour), so batchnorm's batch statistics do not depend on how the
// batch is split; the two steps agree to rounding, where a loss not divided by the 2 batches
// doubles every gradient.
TEST(Train, GradientAccumulationEqualsOneBigBatch) {
  const std::string data = test::make_uniform_dataset();
  const auto step = [&](int64_t batch, int64_t accum, double lr, const std::string& name) {
    TempRun run(name);
    TrainConfig c;
    c.data = data;
    c.output = run.dir;
    c.model = "mobilenetv2";
    c.width = 0.25;
    c.small_input = true;
    c.input_size = 12;
    c.epochs = 1;
    c.batch_size = batch;
    c.grad_accum = accum;
    c.dropout = 0.0;
    c.clip_grad = 0.0;  // clipping would scale a doubled gradient back
    c.lr = lr;
    c.min_lr = 0.0;
    c.warmup_epochs = 0;
    c.sched = "constant";
    c.workers = 1;
    c.quiet = true;
    EXPECT_TRUE(run_training(c).completed);
    const std::string kept = run.dir + ".safetensors";
    std::filesystem::copy_file(run.dir + "/checkpoint-last.safetensors", kept,
                               std::filesystem::copy_options::overwrite_existing);
    return kept;
  };
  // The initial weights: a step at an lr too small to move them.
  const std::string init = step(16, 1, 1e-12, "accum_init"), big = step(16, 1, 0.5, "accum_big"),
                    split = step(8, 2, 0.5, "accum_split");
  EXPECT_EQ(nlohmann::json::parse(load_safetensors(split).metadata.at("pmpl.trainer"))["weight_optimizer_steps"], 1);
  EXPECT_GT(test::step_distance(init, init, big), 0.99) << "the step moved the weights";
  // Measured 2e-4 on an AVX-512 Xeon and 1.75e-3 on an AVX2-only EPYC (batchnorm over identical
  // images divides rounding noise by sqrt(eps), and the two instruction sets round in different
  // orders); a loss not divided by 2 gives 1.
  EXPECT_LT(test::step_distance(init, split, big), 1e-2) << "two accumulated batches of 8 against one of 16";
  for (const std::string& f : {init, big, split}) std::filesystem::remove(f);
}

// RandAugment and random erasing draw from streams keyed by sample, Mixup and CutMix from one keyed
// by batch: a resumed run augments, erases and mixes its batches as the uninterrupted one did (the
// architecture batches are never augmented, erased or mixed).
TEST(Pmpl, AugmentedAndMixedRunsResumeBitIdentically) {
  TrainConfig c = tiny_search("");
  c.auto_augment = "rand-m9-mstd0.5";
  c.reprob = 0.5;
  c.recount = 2;
  c.mixup = 0.2;
  c.cutmix = 1.0;
  expect_resumes_bit_identical(c, {3}, "mixup");
}

// --select perturbation: every forced fix takes the candidate whose removal raises the held-out
// loss most, the rises logged with it; the batches it measures on come from the architecture
// stream, so a run killed before or after the fix resumes bit-identically.
TEST(Pmpl, PerturbationSelectionFixesTheLargestLossRiseAndResumes) {
  TempRun run("perturb");
  TrainConfig c = tiny_search(run.dir);
  // Trained harder than the other tiny searches, so the classifier reads the enhancers' features.
  c.fix_threshold = 1.0;  // every fix is forced, so every one is chosen by perturbation
  c.select = "perturbation";
  c.select_batches = 2;
  c.lr = 0.4;
  c.epochs = 3;
  c.force_fix_epoch = 2;  // at the start of epoch 3, after step 8
  ASSERT_TRUE(run_training(c).completed);
  int fixes = 0;
  double overall = 0.0;
  for (const nlohmann::json& line : read_log(run.dir)) {
    if (line.value("event", "") != "fixed") continue;
    ++fixes;
    ASSERT_TRUE(line.contains("loss_rise") && line.contains("held_out_loss")) << line.dump();
    EXPECT_GT(line["held_out_loss"].get<double>(), 0.0) << line.dump();
    const std::vector<double> rise = line["loss_rise"];
    ASSERT_EQ(rise.size(), 8u);
    EXPECT_EQ(line["ops"].get<std::string>(), std::string(pool_op_name(top_ops(rise, 1)[0]))) << line.dump();
    // A removal changes what the network computes, so at least one candidate's loss differs from
    // the base loss (if nothing were removed, every rise would be exactly 0).
    double largest = 0.0;
    for (double r : rise) largest = std::max(largest, std::abs(r));
    EXPECT_GT(largest, 0.0) << line.dump();
    overall = std::max(overall, largest);
  }
  EXPECT_EQ(fixes, 16);
  // A loss near 2.3 rounds at ~2e-7 in f32: somewhere in the network a removal moves it by more.
  EXPECT_GT(overall, 1e-5);  // measured 1.3e-3
  EXPECT_TRUE(Genotype::load(run.dir + "/genotype.json").complete());
  c.output = "";
  expect_resumes_bit_identical(c, {9, 11}, "perturb");  // resumed from before the fix, and from after it
}

// --arch-start-epoch 1: the weights train alone for the first epoch (the alphas keep their initial
// values, no architecture step is taken), then the search runs until the forced fix.
TEST(Pmpl, AlphasWaitForTheirStartEpoch) {
  TempRun run("archstart");
  TrainConfig c = tiny_search(run.dir);
  c.epochs = 3;
  c.force_fix_epoch = 3;
  c.arch_start_epoch = 1;
  c.arch_lr = 0.3;
  ASSERT_TRUE(run_training(c).completed);
  std::map<int64_t, std::vector<nlohmann::json>> probs;  // by epoch, features.2's probabilities per step line
  for (const nlohmann::json& line : read_log(run.dir)) {
    if (line.value("type", "") == "step") probs[line["epoch"].get<int64_t>()].push_back(line["enhancers"][0]["probs"]);
  }
  ASSERT_EQ(probs.size(), 3u);
  for (const nlohmann::json& p : probs[0]) EXPECT_EQ(p, probs[0].front()) << "the alphas moved before their epoch";
  EXPECT_NE(probs[1].back(), probs[0].front()) << "the alphas never moved";
  const TensorFile file = load_safetensors(run.dir + "/checkpoint-last.safetensors");
  const nlohmann::json trainer = nlohmann::json::parse(file.metadata.at("pmpl.trainer"));
  EXPECT_EQ(trainer["adam_steps"].get<int64_t>(), 2 * 4) << "architecture steps in epochs 2 and 3 only";
  EXPECT_EQ(trainer["weight_optimizer_steps"].get<int64_t>(), 3 * 4);
  c.arch_start_epoch = 3;
  TempRun other("archstart_late");
  c.output = other.dir;
  EXPECT_THROW(run_training(c), Error) << "no epoch left for the alphas";
}

// --arch-grad train (one-level): every weight step's backward also steps the alphas, and the
// held-out split is read only by the fixes' batchnorm re-estimate.
// The end of epoch 1's probabilities of features.2's enhancer in a run.
nlohmann::json first_epoch_probs(const std::string& dir) {
  nlohmann::json last;
  for (const nlohmann::json& line : read_log(dir)) {
    if (line.value("type", "") == "step" && line["epoch"] == 0) last = line["enhancers"][0]["probs"];
  }
  return last;
}

TEST(Pmpl, OneLevelSearchStepsTheAlphasFromTheWeightBatch) {
  TempRun run("onelevel"), held_out("heldout");
  TrainConfig c = tiny_search(held_out.dir);
  c.arch_lr = 0.3;
  ASSERT_TRUE(run_training(c).completed);
  c.output = run.dir;
  c.arch_grad = "train";
  ASSERT_TRUE(run_training(c).completed);
  EXPECT_NE(first_epoch_probs(run.dir), first_epoch_probs(held_out.dir)) << "the alphas saw the same batches";
  const TensorFile file = load_safetensors(run.dir + "/checkpoint-last.safetensors");
  const nlohmann::json trainer = nlohmann::json::parse(file.metadata.at("pmpl.trainer"));
  EXPECT_EQ(trainer["adam_steps"].get<int64_t>(), 4) << "one architecture step per weight step of epoch 1";
  const std::vector<nlohmann::json> log = read_log(run.dir);
  nlohmann::json first, last;
  for (const nlohmann::json& line : log) {
    if (line.value("type", "") != "step" || line["epoch"] != 0) continue;
    if (first.is_null()) first = line["enhancers"][0]["probs"];
    last = line["enhancers"][0]["probs"];
    EXPECT_TRUE(line["enhancers"][0].contains("grad_mean")) << "the alphas' gradients are reported";
  }
  EXPECT_NE(first, last);
}

// --initial-checkpoint: plain MobileNetV2 weights start a search (the enhancers fresh), a
// classifier of another class count is reset, and a wrong width is one clear error.
TEST(Pmpl, InitialCheckpointStartsFromPretrainedWeights) {
  TempRun plain("initial_plain"), search("initial_search");
  TrainConfig c = tiny_search(plain.dir);
  c.model = "mobilenetv2";
  c.epochs = 1;
  ASSERT_TRUE(run_training(c).completed);
  const std::string path = plain.dir + "/checkpoint-last.safetensors";
  const TensorFile file = load_safetensors(path);

  ModelConfig config;
  config.width = 0.25;
  config.small_input = true;
  config.num_classes = 3;
  auto mp = build_model("mobilenetv2_mp", config);
  const InitialWeights loaded = load_initial_weights(*mp, file, path);
  EXPECT_FALSE(loaded.classifier_reset);
  EXPECT_GT(loaded.fresh_enhancers, 16);
  EXPECT_EQ(loaded.loaded + loaded.fresh_enhancers, static_cast<int64_t>(mp->state().size()));
  for (const NamedTensor& t : mp->state()) {
    const Tensor src = file.find(t.name);
    if (src.defined() && t.tensor.dtype() == DType::kF32) {
      EXPECT_EQ(t.tensor.to_vector<float>(), src.to_vector<float>()) << t.name;
    }
  }
  config.num_classes = 5;
  auto five = build_model("mobilenetv2", config);
  const std::vector<float> fresh = five->state().back().tensor.to_vector<float>();
  const InitialWeights reset = load_initial_weights(*five, file, path);
  EXPECT_TRUE(reset.classifier_reset);
  EXPECT_EQ(reset.loaded + 2, static_cast<int64_t>(five->state().size())) << "all but the classifier's two";
  EXPECT_EQ(five->state().back().tensor.to_vector<float>(), fresh);
  config.width = 0.5;
  config.num_classes = 3;
  auto wide = build_model("mobilenetv2", config);
  try {
    load_initial_weights(*wide, file, path);
    ADD_FAILURE() << "width 0.25 weights into width 0.5 should stop";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("shapes differ"), std::string::npos) << e.what();
  }
  // End to end: a search from the plain weights.
  c = tiny_search(search.dir);
  c.initial_checkpoint = path;
  EXPECT_TRUE(run_training(c).completed);
}

// The other weight optimisers keep their state across a kill as SGD does (a search, so the
// architecture step's Adam runs beside them).
TEST(Pmpl, OtherOptimizersResumeBitIdentically) {
  for (const char* opt : {"rmsproptf", "adamw", "lamb"}) {
    SCOPED_TRACE(opt);
    TrainConfig c = tiny_search("");
    c.opt = opt;
    c.lr = std::string(opt) == "rmsproptf" ? 0.01 : 1e-3;
    c.opt_eps = 1e-3;
    expect_resumes_bit_identical(c, {3}, opt);
  }
}

// --model-ema: the average is saved (through the search's fixes, which change the network's
// buffers), resumed bit for bit, evaluated each epoch, and what `--ema` loads.
TEST(Pmpl, ModelEmaResumesAndLoads) {
  TrainConfig c = tiny_search("");
  c.model_ema = true;
  c.model_ema_decay = 0.9;
  expect_resumes_bit_identical(c, {3, 6}, "ema");
  TempRun run("ema");
  c.output = run.dir;
  ASSERT_TRUE(run_training(c).completed);
  int evaluated = 0;
  for (const nlohmann::json& line : read_log(run.dir)) evaluated += line.contains("val_top1_ema");
  EXPECT_EQ(evaluated, 2);
  const std::string path = run.dir + "/checkpoint-last.safetensors";
  const TensorFile file = load_safetensors(path);
  const auto averaged = load_model_from_file(path, true);
  const auto live = load_model_from_file(path);
  int differ = 0;
  for (const NamedTensor& t : averaged->state()) {
    const Tensor saved = file.find("ema." + t.name);
    ASSERT_TRUE(saved.defined()) << t.name;
    EXPECT_EQ(t.tensor.numel(), saved.numel());
    if (t.tensor.dtype() == DType::kF32) {
      EXPECT_EQ(t.tensor.to_vector<float>(), saved.to_vector<float>()) << t.name;
      differ += t.tensor.to_vector<float>() != file.find(t.name).to_vector<float>();
    }
  }
  EXPECT_GT(differ, 10) << "the average should differ from the last weights";
  TempRun plain("ema_none");
  c = tiny_search(plain.dir);
  c.epochs = 1;
  ASSERT_TRUE(run_training(c).completed);
  EXPECT_THROW(load_model_from_file(plain.dir + "/checkpoint-last.safetensors", true), Error);
}

// --model-ema through a fix: the tensors the fix rewrote (the statistics re-estimated, a removed
// enhancer's scale folded into its block's projection) are the average's as the fix left them,
// while the weights it did not touch keep their average. The search's one forced fix comes at its
// very end, after the last update, so the checkpoint shows the fix's effect alone; every enhancer
// is undecided at --skip-undecided 1, so every one is removed and every batchnorm re-estimated.
TEST(Pmpl, ModelEmaTakesWhatAFixRewrote) {
  TempRun run("ema_fix");
  TrainConfig c = tiny_search(run.dir);
  c.model_ema = true;
  c.model_ema_decay = 0.9;
  c.force_fix_epoch = c.epochs;
  c.fix_threshold = 1.0;
  c.skip_undecided = 1.0;
  ASSERT_TRUE(run_training(c).completed);
  std::vector<std::string> removed;
  for (const nlohmann::json& line : read_log(run.dir)) {
    if (line.value("event", "") == "fixed") {
      EXPECT_EQ(line["ops"], "none") << line.dump();
      removed.push_back(line["name"]);
    }
  }
  ASSERT_EQ(removed.size(), 16u);
  const auto bytes = checkpoint_bytes(run.dir + "/checkpoint-last.safetensors");
  const auto same = [&](const std::string& name) {
    EXPECT_TRUE(bytes.count(name) && bytes.count("ema." + name)) << name;
    return bytes.at(name) == bytes.at("ema." + name);
  };
  for (const std::string& enhancer : removed) {
    const std::string block = enhancer.substr(0, enhancer.size() - std::string(".enhancer").size());
    EXPECT_TRUE(same(block + ".conv.2.weight")) << "the folded projection after " << enhancer;
    EXPECT_TRUE(same(block + ".conv.3.running_mean")) << block;
    EXPECT_TRUE(same(block + ".conv.3.running_var")) << block;
  }
  EXPECT_TRUE(same("features.0.1.running_var"));
  EXPECT_FALSE(same("features.0.0.weight")) << "the stem, untouched by the fix, keeps its average";
  EXPECT_FALSE(same("features.2.conv.1.0.weight")) << "a depthwise conv, untouched by the fix, keeps its average";
}

// A checkpoint says which optimiser wrote it; resuming under another is one clear line.
TEST(Pmpl, ResumingUnderAnotherOptimizerIsOneClearError) {
  TempRun run("opt");
  TrainConfig c = tiny_search(run.dir);
  c.opt = "adamw";
  c.lr = 1e-3;
  c.max_steps = 3;  // the checkpoint of step 2 stays behind
  run_training(c);
  TrainConfig again = tiny_search("");
  again.resume = run.dir;
  try {
    run_training(again);
    ADD_FAILURE() << "an AdamW checkpoint resumed under SGD should stop";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("was trained with --opt adamw; resume it with --opt adamw"),
              std::string::npos)
        << e.what();
  }
}

TEST(Pmpl, BadRunsStopWithOneClearError) {
  TempRun run("bad");
  TrainConfig c = tiny_search(run.dir);
  c.data = "/nonexistent/data";
  EXPECT_THROW(run_training(c), Error);
  c = tiny_search(run.dir);
  c.model = "mobilenetv2";
  c.lr = 1e12;  // diverges at once
  c.clip_grad = 0;
  c.save_interval = 1;
  try {
    run_training(c);
    ADD_FAILURE() << "a diverging run should stop";
  } catch (const Error& e) {
    // Caught on the gradients (the same on every rank) or the loss, whichever goes first.
    const std::string what = e.what();
    EXPECT_TRUE(what.find("the gradients became") != std::string::npos ||
                what.find("the loss became") != std::string::npos)
        << what;
    EXPECT_NE(what.find("checkpoint-last.safetensors, is intact"), std::string::npos) << what;
  }
  // A second run into the same folder is refused rather than overwriting it.
  c = tiny_search(run.dir);
  c.model = "mobilenetv2";
  c.epochs = 1;
  c.max_steps = 2;  // the checkpoint of step 1 stays behind
  c.save_interval = 1;
  TempRun other("other");
  c.output = other.dir;
  run_training(c);
  c.max_steps = 0;
  EXPECT_THROW(run_training(c), Error);
}

TEST(Pmpl, CudaDeviceWithoutAGpuIsAClearError) {
  if (cuda::device_count() > 0) GTEST_SKIP() << "a GPU is present";
  TempRun run("nogpu");
  TrainConfig c = tiny_search(run.dir);
  c.device = "cuda";
  try {
    run_training(c);
    ADD_FAILURE() << "--device cuda without a GPU should stop";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_TRUE(what.find("no CUDA GPU") != std::string::npos || what.find("without CUDA") != std::string::npos)
        << what;
  }
  c.device = "gpu";
  EXPECT_THROW(run_training(c), Error);
}

// The search on a GPU follows the CPU's: after three steps (architecture steps included) every
// tensor of the checkpoint is close to the CPU run's. Float sums in another order and ReLU6
// kinks keep it from being exact, so the per-tensor relative error is held to a median and a
// worst case; a wrong kernel or a missed update is off by O(1).
// With --gate too (written without a GPU, 2026-12-07: not yet run on one).
TEST(CudaTrain, SearchOnTheGpuFollowsTheCpu) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU visible";
  for (const bool gated : {false, true}) {
    SCOPED_TRACE(gated ? "gated" : "ungated");
    std::map<std::string, Tensor> runs[2];
    TempRun cpu("cpu"), gpu("gpu");
    for (int on_gpu = 0; on_gpu < 2; ++on_gpu) {
      TrainConfig c = tiny_search(on_gpu ? gpu.dir : cpu.dir);
      c.device = on_gpu ? "cuda" : "cpu";
      c.amp = "off";  // f32 on both
      c.gate = gated;
      c.save_interval = 1;
      c.max_steps = 4;  // the checkpoint of step 3 stays
      run_training(c);
      for (const auto& [name, t] : load_safetensors(c.output + "/checkpoint-last.safetensors").tensors) {
        runs[on_gpu][name] = t;
      }
    }
    ASSERT_EQ(runs[0].size(), runs[1].size());
    std::vector<double> errors;
    for (const auto& [name, expected] : runs[0]) {
      ASSERT_TRUE(runs[1].count(name)) << name;
      if (is_floating(expected.dtype())) errors.push_back(test::relative_error(runs[1][name], expected));
    }
    std::sort(errors.begin(), errors.end());
    EXPECT_LT(errors[errors.size() / 2], 1e-4) << "median relative error per tensor";
    EXPECT_LT(errors.back(), 1e-2) << "worst relative error per tensor";
  }
}

// The GPU run is deterministic (fixed-order reductions everywhere, no atomics), in f32 and in
// bf16 mixed precision: killed and resumed, it ends bit for bit where an uninterrupted run ends.
TEST(CudaTrain, ResumedGpuRunIsBitIdentical) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU visible";
  for (const char* amp : {"off", "bf16"}) {
    SCOPED_TRACE(amp);
    TrainConfig c = tiny_search("");
    c.device = "cuda";
    c.amp = amp;
    expect_resumes_bit_identical(c, {3, 6}, std::string("gpu_") + amp);
  }
}

// The recipe features on the GPU (LAMB's block-per-tensor kernel, random erasing's fill,
// accumulated gradients, the per-row soft-target loss) in bf16 and fp16: a killed run resumes
// bit-identically.
TEST(CudaTrain, RecipeFeaturesResumeBitIdenticallyOnTheGpu) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU visible";
  for (const char* amp : {"bf16", "fp16"}) {
    SCOPED_TRACE(amp);
    TrainConfig c = tiny_search("");
    c.device = "cuda";
    c.amp = amp;
    c.opt = "lamb";
    c.lr = 1e-3;
    c.grad_accum = 2;
    c.reprob = 0.5;
    c.auto_augment = "rand-m9-mstd0.5";
    c.mixup = 0.2;
    c.mixup_mode = "elem";  // the per-row soft-target loss in the compute dtype
    expect_resumes_bit_identical(c, {3}, std::string("gpu_recipe_") + amp);
  }
}

// Mixed precision in the trainer: bf16 and fp16 (with loss scaling) searches, with and without
// --gate (whose weighted sum runs in f32), complete with a finite loss and validation loss.
TEST(CudaTrain, MixedPrecisionSearchesComplete) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU visible";
  for (const auto& [amp, gated] : std::vector<std::pair<std::string, bool>>{
           {"bf16", false}, {"fp16", false}, {"bf16", true}, {"fp16", true}}) {
    SCOPED_TRACE(amp + (gated ? " gated" : ""));
    TempRun run("amp_" + amp + (gated ? "_gated" : ""));
    TrainConfig c = tiny_search(run.dir);
    c.device = "cuda";
    c.amp = amp;
    c.gate = gated;
    const TrainResult r = run_training(c);
    ASSERT_TRUE(r.completed);
    EXPECT_GT(r.val_top1, 0.0);  // a NaN network scores 0 (count_top_k counts it as misses)
    for (const nlohmann::json& line : read_log(run.dir)) {
      if (line.contains("loss")) EXPECT_TRUE(std::isfinite(line["loss"].get<double>()));
      if (line.contains("val_loss")) EXPECT_TRUE(std::isfinite(line["val_loss"].get<double>()));
    }
  }
}

}  // namespace
}  // namespace pmpl
