#include "tools/train_recipes.h"

#include <functional>
#include <utility>
#include <vector>

#include "engine/error.h"

namespace pmpl::cli {
namespace {

struct Setting {
  const char* flag;
  std::function<void(TrainConfig&)> set;
};

struct Recipe {
  const char* name;
  std::vector<Setting> settings;
};

// torchvision's references/classification for mobilenet_v2 (71.88% top-1 on ImageNet):
// --epochs 300 --lr 0.045 --wd 0.00004 --lr-step-size 1 --lr-gamma 0.98 on 8 GPUs x 32, SGD with
// momentum 0.9 (no Nesterov), no label smoothing, no warm-up, no clipping, weight decay on every
// parameter (its --norm-weight-decay unset). The lr is for a global batch of 256: scale --lr with
// yours.
// timm-mobilenetv2-ra: timm's "RA" recipe, which trained its mobilenetv2_100.ra_in1k (72.97% top-1):
// the hparams timm's docs give for its EfficientNet / MobileNetV3 RandAugment runs (RMSpropTF,
// eps 1e-3, lr 0.016 for a global batch of 256, step decay 0.97 every 2.4 epochs after a 3-epoch
// warm-up, weight decay 1e-5, dropout and drop-path 0.2, EMA 0.9999, rand-m9-mstd0.5, random
// erasing 0.2 per pixel, label smoothing 0.1) over the Meta-Pooling reference code's 250 epochs.
// Differences: timm counts the decay's epochs from the start, pmpl from the warm-up's end (one
// decay later), and warms up from 0 rather than 1e-6.
// pmpl-search: the search with pmpl's measured defaults (docs/PMPL.md), spelled out.
const std::vector<Recipe>& recipes() {
  static const std::vector<Recipe> all = {
      {"torchvision-mobilenetv2",
       {{"--opt", [](TrainConfig& c) { c.opt = "sgd"; }},
        {"--epochs", [](TrainConfig& c) { c.epochs = 300; }},
        {"--batch-size", [](TrainConfig& c) { c.batch_size = 32; }},
        {"--lr", [](TrainConfig& c) { c.lr = 0.045; }},
        {"--momentum", [](TrainConfig& c) { c.momentum = 0.9; }},
        {"--nesterov", [](TrainConfig& c) { c.nesterov = false; }},
        {"--weight-decay", [](TrainConfig& c) { c.weight_decay = 4e-5; }},
        {"--decay-norm-and-bias", [](TrainConfig& c) { c.decay_norm_and_bias = true; }},
        {"--sched", [](TrainConfig& c) { c.sched = "step"; }},
        {"--lr-step-size", [](TrainConfig& c) { c.lr_step_size = 1.0; }},
        {"--lr-gamma", [](TrainConfig& c) { c.lr_gamma = 0.98; }},
        {"--min-lr", [](TrainConfig& c) { c.min_lr = 0.0; }},
        {"--warmup-epochs", [](TrainConfig& c) { c.warmup_epochs = 0.0; }},
        {"--label-smoothing", [](TrainConfig& c) { c.label_smoothing = 0.0; }},
        {"--clip-grad", [](TrainConfig& c) { c.clip_grad = 0.0; }},
        {"--dropout", [](TrainConfig& c) { c.dropout = 0.2; }},
        {"--crop-scale", [](TrainConfig& c) { c.crop_scale = 0.08; }},
        {"--input-size", [](TrainConfig& c) { c.input_size = 224; }}}},
      {"timm-mobilenetv2-ra",
       {{"--opt", [](TrainConfig& c) { c.opt = "rmsproptf"; }},
        {"--opt-eps", [](TrainConfig& c) { c.opt_eps = 1e-3; }},
        {"--momentum", [](TrainConfig& c) { c.momentum = 0.9; }},
        {"--epochs", [](TrainConfig& c) { c.epochs = 250; }},
        {"--batch-size", [](TrainConfig& c) { c.batch_size = 128; }},
        {"--lr", [](TrainConfig& c) { c.lr = 0.016; }},
        {"--warmup-epochs", [](TrainConfig& c) { c.warmup_epochs = 3.0; }},
        {"--sched", [](TrainConfig& c) { c.sched = "step"; }},
        {"--lr-step-size", [](TrainConfig& c) { c.lr_step_size = 2.4; }},
        {"--lr-gamma", [](TrainConfig& c) { c.lr_gamma = 0.97; }},
        {"--min-lr", [](TrainConfig& c) { c.min_lr = 0.0; }},
        {"--weight-decay", [](TrainConfig& c) { c.weight_decay = 1e-5; }},
        {"--dropout", [](TrainConfig& c) { c.dropout = 0.2; }},
        {"--drop-path", [](TrainConfig& c) { c.drop_path = 0.2; }},
        {"--model-ema", [](TrainConfig& c) { c.model_ema = true; }},
        {"--model-ema-decay", [](TrainConfig& c) { c.model_ema_decay = 0.9999; }},
        {"--auto-augment", [](TrainConfig& c) { c.auto_augment = "rand-m9-mstd0.5"; }},
        {"--reprob", [](TrainConfig& c) { c.reprob = 0.2; }},
        {"--remode", [](TrainConfig& c) { c.remode = "pixel"; }},
        {"--recount", [](TrainConfig& c) { c.recount = 1; }},
        {"--label-smoothing", [](TrainConfig& c) { c.label_smoothing = 0.1; }},
        {"--clip-grad", [](TrainConfig& c) { c.clip_grad = 0.0; }},
        {"--crop-scale", [](TrainConfig& c) { c.crop_scale = 0.08; }},
        {"--input-size", [](TrainConfig& c) { c.input_size = 224; }}}},
      {"pmpl-search",
       {{"--model", [](TrainConfig& c) { c.model = "mobilenetv2_mp"; }},
        {"--arch-lr", [](TrainConfig& c) { c.arch_lr = 0.0; }},
        {"--arch-betas", [](TrainConfig& c) { c.arch_beta1 = 0.5, c.arch_beta2 = 0.999; }},
        {"--arch-wd", [](TrainConfig& c) { c.arch_wd = 0.0; }},
        {"--arch-grad", [](TrainConfig& c) { c.arch_grad = "held-out"; }},
        {"--fix-threshold", [](TrainConfig& c) { c.fix_threshold = 0.2; }},
        {"--skip-undecided", [](TrainConfig& c) { c.skip_undecided = 0.1; }},
        {"--undecided", [](TrainConfig& c) { c.undecided = "none"; }},
        {"--select", [](TrainConfig& c) { c.select = "alpha"; }},
        {"--clip-grad", [](TrainConfig& c) { c.clip_grad = 5.0; }}}},
  };
  return all;
}

}  // namespace

std::string recipe_names() {
  std::string out;
  for (const Recipe& r : recipes()) out += (out.empty() ? "" : ", ") + std::string(r.name);
  return out;
}

std::set<std::string> apply_recipe(const std::string& name, const CLI::App& cmd, TrainConfig& c) {
  std::set<std::string> set;
  for (const Recipe& r : recipes()) {
    if (name != r.name) continue;
    for (const Setting& s : r.settings) {
      if (cmd.count(s.flag) > 0) continue;
      s.set(c);
      set.insert(s.flag);
    }
    c.recipe = name;
    return set;
  }
  PMPL_CHECK(false, "--recipe {} is not one pmpl has: use {}", name, recipe_names());
  return set;
}

}  // namespace pmpl::cli
