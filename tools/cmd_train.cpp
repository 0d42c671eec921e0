// `pmpl train` and `pmpl eval`.
#include <fmt/format.h>

#include "data/loader.h"
#include "engine/comm.h"
#include "engine/ops.h"
#include "engine/cuda_runtime.h"
#include "layers/weights.h"
#include "models/deploy/runtime.h"
#include "tools/commands.h"
#include "tools/model_flags.h"
#include "tools/train_recipes.h"
#include "train/amp.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/pmpl.h"
#include "train/recalibrate.h"
#include "train/search.h"
#include "train/trainer.h"

namespace pmpl::cli {
namespace {

void run_train(const TrainConfig& config) {
  const TrainResult r = run_training(config);
  if (process_comm().rank() != 0) return;  // under mpirun, rank 0 speaks for the job
  if (!r.completed) {
    fmt::print("stopped after step {} (--max-steps)\n", r.steps);
    return;
  }
  fmt::print("done: {} steps, val top-1 {:.2f}%, top-5 {:.2f}%; run in {}\n", r.steps, 100 * r.val_top1,
             100 * r.val_top5, config.output.empty() ? config.resume : config.output);
}

struct EvalCommand {
  std::string data, weights, deploy, split = "val", device = "cpu", amp = "auto";
  ModelFlags model;
  EvalOptions options;
  bool fix_remaining = false;
  bool ema = false;  // the checkpoint's average of the weights (--model-ema runs)
  int recalibrate_bn = 0;  // training batches to re-estimate batchnorm statistics on (0: none)
};

// --deploy: a deployment file (f32, f16 or int8) through the runtime, at its own input size.
void run_eval_deploy(CLI::App* cmd, const EvalCommand& e) {
  PMPL_CHECK(cmd->count("--model") + cmd->count("--width") + cmd->count("--small-input") + cmd->count("--genotype") +
                     cmd->count("--ema") + cmd->count("--fix-remaining") + cmd->count("--recalibrate-bn") ==
                 0,
             "{} is a finished network: drop the model flags, --ema, --fix-remaining and --recalibrate-bn", e.deploy);
  PMPL_CHECK(e.device == "cpu", "--device {}: the deployment runtime runs on the CPU", e.device);
  const deploy::Runtime runtime(e.deploy);
  const data::ImageFolder split(e.data, e.split);
  PMPL_CHECK(split.num_classes() == runtime.num_classes(), "{} has {} classes, {} {}", split.directory(),
             split.num_classes(), e.deploy, runtime.num_classes());
  EvalOptions options = e.options;
  if (cmd->count("--input-size") == 0) options.image_size = runtime.input_size();
  const EvalResult r = evaluate_with([&](const Tensor& images) { return runtime.run_u8(images); }, split, options);
  fmt::print("{}: {} images, top-1 {:.2f}%, top-5 {:.2f}% ({}, {})\n", split.directory(), r.images, 100 * r.top1,
             100 * r.top5, e.deploy, runtime.config().value("dtype", "f32"));
}

void run_eval(CLI::App* cmd, const EvalCommand& e) {
  PMPL_CHECK(e.weights.empty() != e.deploy.empty(), "pass either --weights (a checkpoint or weights) or --deploy "
             "(a file pmpl export wrote)");
  if (!e.deploy.empty()) return run_eval_deploy(cmd, e);
  // A pmpl checkpoint says which network it holds; plain weights need the model flags.
  const TensorFile file = load_safetensors(e.weights);
  std::shared_ptr<Network> model;
  if (describes_model(file)) {
    PMPL_CHECK(cmd->count("--model") + cmd->count("--width") + cmd->count("--small-input") + cmd->count("--genotype") == 0,
               "{} records its network; drop --model, --width, --small-input and --genotype", e.weights);
    model = load_model_from_file(e.weights, e.ema);
  } else {
    model = build_model_from_flags(e.model);
    load_weights(*model, e.ema ? ema_weights(file, e.weights) : file, e.weights);
  }
  const data::ImageFolder split(e.data, e.split);
  PMPL_CHECK(split.num_classes() == model->config().num_classes, "{} has {} classes, the network {}",
             split.directory(), split.num_classes(), model->config().num_classes);
  const Device device = parse_device(e.device);
  if (device.is_cuda()) cuda::set_device(device.index);
  model->to(device);
  model->set_compute_dtype(amp_dtype(e.amp, device));
  // Batchnorm statistics are re-estimated on the training split with the training transform: the
  // batches batchnorm sees while training.
  std::unique_ptr<data::ImageFolder> train_split;
  std::unique_ptr<data::Loader> train_loader;
  const auto next_input = [&] {
    if (!train_loader) {
      train_split = std::make_unique<data::ImageFolder>(e.data, "train");
      data::LoaderOptions lo;
      lo.batch_size = e.options.batch_size;
      lo.image_size = e.options.image_size;
      lo.workers = e.options.workers;
      train_loader = std::make_unique<data::Loader>(*train_split, lo);
      train_loader->start_epoch(0);
    }
    std::optional<data::Batch> batch = train_loader->next();
    PMPL_CHECK(batch.has_value(), "{} has too few images for a batchnorm re-estimate of {} batches of {}",
               train_split->directory(), std::max(e.recalibrate_bn, kRecalibrationBatches), e.options.batch_size);
    return ops::normalize_images(batch->images.to(device), kImageMean, kImageStd);
  };
  if (e.fix_remaining) {
    // As the trainer's forced fixing does, the batchnorms re-estimated (the statistics the fixed
    // ones have are the search mixture's; after a removal or a gate, every one's are stale).
    const RemainingFixes fixes = fix_remaining(model->enhancers());
    for (const std::string& line : fixes.lines) fmt::print("{}\n", line);
    recalibrate_batchnorm(*model, fixes.all_batchnorms_stale ? batchnorms(*model) : fixes.fixed, kRecalibrationBatches,
                          next_input);
  }
  if (e.recalibrate_bn > 0) recalibrate_batchnorm(*model, batchnorms(*model), e.recalibrate_bn, next_input);
  const EvalResult r = evaluate(*model, split, e.options);
  fmt::print("{}: {} images, top-1 {:.2f}%, top-5 {:.2f}%, loss {:.4f}\n", split.directory(), r.images,
             100 * r.top1, 100 * r.top5, r.loss);
}

}  // namespace

void add_train_command(CLI::App& app, Runner& run) {
  auto c = std::make_shared<TrainConfig>();
  CLI::App* cmd = app.add_subcommand(
      "train", "Train MobileNetV2 or V3, or search and train them with Meta-Pooling (PMPL)");
  cmd->add_option("--data", c->data, "Dataset folder: ROOT/{train,val}/<class>/<images>")->required();
  cmd->add_option("--output", c->output, "Run folder: config, log, genotype, checkpoints");
  cmd->add_option("--resume", c->resume, "Continue the run in this folder (or from this checkpoint)");
  cmd->add_option("--device", c->device, "cpu, cuda (this process's GPU: its local rank's under mpirun) or cuda:N")->capture_default_str();
  cmd->add_option("--amp", c->amp,
                  "Mixed precision on a GPU: auto (bf16 where the GPU has it), bf16, fp16 (with dynamic loss scaling) "
                  "or off (f32)")
      ->capture_default_str();
  cmd->add_option("--model", c->model, "mobilenetv2, mobilenetv3_large, mobilenetv3_small, efficientnet_b0, shufflenetv2_x0_5 or shufflenetv2_x1_0; with _mp, Meta-Pooling (searches unless --genotype)")
      ->capture_default_str();
  cmd->add_option("--width", c->width, "Width multiplier")->capture_default_str();
  cmd->add_option("--num-classes", c->num_classes, "Classes (default: the data's)");
  cmd->add_flag("--small-input", c->small_input, "28-64 px images: stem and first stride-2 stage at stride 1");
  cmd->add_option("--genotype", c->genotype, "Train this fixed architecture (genotype.json of a search)");
  cmd->add_option("--initial-checkpoint", c->initial_checkpoint,
                  "Start from these weights (a pmpl checkpoint, or torchvision's converted by tools/torch_convert.py): "
                  "a classifier of another class count is reset, enhancers the file lacks start fresh");
  cmd->add_option("--dropout", c->dropout, "Dropout before the classifier")->capture_default_str();
  cmd->add_option("--drop-path", c->drop_path,
                  "Stochastic depth: residual blocks drop their branch per sample, at rate x i / B in the i-th of the "
                  "network's B blocks (timm's rule, 0 in the first)")
      ->capture_default_str();
  cmd->add_option("--bn-momentum", c->bn_momentum,
                  "Every batchnorm's running-statistics momentum (0: the model's own, 0.1 in MobileNetV2, torchvision's "
                  "0.01 in MobileNetV3; short MobileNetV3 runs want 0.1, or their statistics lag the weights)")
      ->capture_default_str();
  cmd->add_option("--epochs", c->epochs, "Epochs")->capture_default_str();
  cmd->add_option("--batch-size", c->batch_size, "Images per batch (per process)")->capture_default_str();
  cmd->add_option("--grad-accum", c->grad_accum,
                  "Batches per optimiser step: their gradients summed (each loss / N), so a step sees batch x N x "
                  "processes images; the schedule and --max-steps count steps")
      ->capture_default_str();
  cmd->add_option("--opt", c->opt, "The weights' optimiser: sgd, rmsproptf (timm's RMSpropTF), adamw or lamb (timm's Lamb)")
      ->check(CLI::IsMember({"sgd", "rmsproptf", "adamw", "lamb"}))
      ->capture_default_str();
  CLI::Option* lr = cmd->add_option("--lr", c->lr, "Peak learning rate (default: 0.05 sgd, 0.01 rmsproptf, 1e-3 adamw and lamb)");
  cmd->add_option("--warmup-epochs", c->warmup_epochs, "Linear warmup, in epochs")->capture_default_str();
  cmd->add_option("--sched", c->sched,
                  "After the warm-up: cosine (to --min-lr), step (x --lr-gamma every --lr-step-size epochs), "
                  "exponential (x --lr-gamma per epoch) or constant")
      ->check(CLI::IsMember({"cosine", "step", "exponential", "constant"}))
      ->capture_default_str();
  CLI::Option* gamma = cmd->add_option("--lr-gamma", c->lr_gamma,
                                       "Decay factor of step (default 0.1) and exponential (default 0.98)");
  cmd->add_option("--lr-step-size", c->lr_step_size, "Epochs between step decays (fractions allowed: 2.4)")
      ->capture_default_str();
  cmd->add_flag("--lr-per-step", c->lr_per_step,
                "step and exponential decay continuously, not at epoch ends (timm's --sched-on-updates)");
  cmd->add_option("--min-lr", c->min_lr, "Cosine schedule's end; the floor of step and exponential")
      ->capture_default_str();
  CLI::Option* wd = cmd->add_option("--weight-decay", c->weight_decay,
                                    "On conv and linear weights, not BN, not biases unless --decay-norm-and-bias "
                                    "(default: 4e-5 sgd, 1e-5 rmsproptf, 0.05 adamw, 0.01 lamb; adamw's is decoupled)");
  cmd->add_flag("--decay-norm-and-bias", c->decay_norm_and_bias,
                "Weight decay on batchnorm scales and shifts and on biases too (torchvision's default; timm's and "
                "pmpl's leave them out)");
  cmd->add_option("--momentum", c->momentum, "Momentum of sgd and rmsproptf")->capture_default_str();
  cmd->add_option("--nesterov", c->nesterov, "Nesterov momentum for sgd (true/false)")->capture_default_str();
  cmd->add_option("--opt-eps", c->opt_eps, "Epsilon of rmsproptf (default 1e-10, inside the root), adamw (1e-8) and lamb (1e-6)");
  auto opt_betas = std::make_shared<std::vector<double>>(std::vector<double>{c->opt_beta1, c->opt_beta2});
  cmd->add_option("--opt-betas", *opt_betas, "adamw's and lamb's betas (two numbers)")->expected(2)->default_str("0.9 0.999");
  cmd->add_flag("--model-ema", c->model_ema,
                "Keep an exponential moving average of the weights, evaluated beside them each epoch; the best "
                "checkpoint is the average's best (export it with pmpl export --ema)");
  cmd->add_option("--model-ema-decay", c->model_ema_decay, "Decay of the average per step")->capture_default_str();
  cmd->add_flag("--model-ema-warmup", c->model_ema_warmup,
                "Warm the decay up as timm does (1 - (1 + t)^(-2/3), capped at the decay): for short runs");
  cmd->add_option("--label-smoothing", c->label_smoothing, "Cross-entropy label smoothing")->capture_default_str();
  cmd->add_option("--clip-grad", c->clip_grad, "Clip the weights' gradient norm (0: off)")->capture_default_str();
  cmd->add_option("--input-size", c->input_size, "Image side in pixels")->capture_default_str();
  cmd->add_option("--crop-scale", c->crop_scale, "Smallest area fraction of RandomResizedCrop")->capture_default_str();
  cmd->add_option("--auto-augment,--aa", c->auto_augment,
                  "Augmentation of each training image: timm's RandAugment (e.g. rand-m9-mstd0.5; keys m, n, mstd, mmax, "
                  "p, inc), torchvision's ta_wide (TrivialAugmentWide) or imagenet (AutoAugment); Pillow's ops byte for "
                  "byte (README, \"Recipes\")");
  cmd->add_option("--color-jitter", c->color_jitter,
                  "torchvision's ColorJitter on each training image (after --auto-augment, as timm orders them): one "
                  "strength for brightness, contrast and saturation (timm's 0.4), three, or four with hue");
  cmd->add_option("--reprob", c->reprob,
                  "Random erasing's chance per training image (timm's --reprob, e.g. 0.2; 0: off): a box of 2-33% of "
                  "the image, aspect 0.3-3.3, filled after normalisation")
      ->capture_default_str();
  cmd->add_option("--remode", c->remode, "Random erasing's fill: pixel (N(0, 1) per value), rand (one per box) or const (the mean)")
      ->capture_default_str();
  cmd->add_option("--recount", c->recount, "Random erasing: up to this many boxes per image (uniform count)")
      ->capture_default_str();
  cmd->add_option("--mixup", c->mixup,
                  "Mixup's Beta alpha (timm's --mixup, e.g. 0.2; 0: off): image i of a batch blended with image B-1-i, "
                  "the loss weighing both labels")
      ->capture_default_str();
  cmd->add_option("--cutmix", c->cutmix, "CutMix's Beta alpha (timm's --cutmix, e.g. 1.0; 0: off)")->capture_default_str();
  cmd->add_option("--mixup-prob", c->mixup_prob, "Chance that a batch (or image, or pair) is mixed at all")
      ->capture_default_str();
  cmd->add_option("--mixup-mode", c->mixup_mode,
                  "timm's: batch (one draw per batch), pair (per pair of images i, B-1-i) or elem (per image)")
      ->capture_default_str();
  cmd->add_option("--mixup-switch-prob", c->mixup_switch_prob, "With --mixup and --cutmix, the chance of CutMix")
      ->capture_default_str();
  cmd->add_option("--workers", c->workers, "Loader threads")->capture_default_str();
  cmd->add_option("--seed", c->seed, "Seed of initialisation, data order, crops, dropout")->capture_default_str();
  auto arch_lr = std::make_shared<std::string>("auto");
  cmd->add_option("--arch-lr", *arch_lr,
                  "Adam learning rate of the alphas: auto (0.4 / sqrt(the search's architecture steps), docs/PMPL.md) "
                  "or a number (the reference code's: 3e-4)")
      ->capture_default_str();
  auto betas = std::make_shared<std::vector<double>>(std::vector<double>{c->arch_beta1, c->arch_beta2});
  cmd->add_option("--arch-betas", *betas, "Adam betas of the alphas (two numbers)")
      ->expected(2)
      ->default_str("0.5 0.999");
  cmd->add_option("--arch-wd", c->arch_wd, "Adam weight decay of the alphas (the reference code's: 1e-3)")
      ->capture_default_str();
  cmd->add_option("--arch-split", c->arch_split, "Share of train/ held out for the alphas")->capture_default_str();
  cmd->add_option("--fix-threshold", c->fix_threshold, "Fix an enhancer when its top probability leads by this")
      ->capture_default_str();
  cmd->add_option("--arch-grad", c->arch_grad,
                  "The alphas' gradient: held-out (an architecture batch, first-order DARTS) or train (the weight "
                  "step's own batch, one backward for both: one-level)")
      ->check(CLI::IsMember({"held-out", "train"}))
      ->capture_default_str();
  cmd->add_option("--arch-start-epoch", c->arch_start_epoch,
                  "The alphas move from this epoch on; before it only the weights train, on the uniform mixture")
      ->capture_default_str();
  cmd->add_option("--force-fix-epoch", c->force_fix_epoch, "Fix every open enhancer from this epoch (default: half)");
  cmd->add_option("--fix-top", c->fix_top, "Forced fixing keeps the top 1 or top 2 ops")->capture_default_str();
  cmd->add_option("--skip-undecided", c->skip_undecided,
                  "Forced fixing by --select alpha takes --undecided's choice where the top probability leads the "
                  "second by less than this, instead of guessing (0: always the top ops; docs/PMPL.md sections 10-11)")
      ->capture_default_str();
  cmd->add_option("--undecided", c->undecided,
                  "What --skip-undecided fixes such an enhancer to: skip (the enhancer without pooling, its batchnorm "
                  "and hardswish kept) or none (the enhancer removed, the backbone's block)")
      ->check(CLI::IsMember({"skip", "none"}))
      ->capture_default_str();
  cmd->add_flag("--gate", c->gate,
                "Each searching enhancer also weighs itself against its removal (a gate: q_none * x + q_keep * "
                "enhancer(x)); a fix where q_none leads removes it (genotype op none; docs/PMPL.md section 12)");
  cmd->add_option("--select", c->select,
                  "How forced fixing picks an enhancer's ops: alpha (the most probable) or perturbation (the "
                  "candidate whose removal from the mixture raises the held-out loss most; docs/PMPL.md)")
      ->check(CLI::IsMember({"alpha", "perturbation"}))
      ->capture_default_str();
  cmd->add_option("--select-batches", c->select_batches, "Held-out batches --select perturbation measures on")
      ->capture_default_str();
  cmd->add_option("--eval-interval", c->eval_interval, "Evaluate every N epochs")->capture_default_str();
  cmd->add_option("--log-interval", c->log_interval, "Log every N steps")->capture_default_str();
  cmd->add_option("--save-interval", c->save_interval, "Also checkpoint every N steps (0: epoch ends only)")
      ->capture_default_str();
  cmd->add_option("--on-save-error", c->on_save_error,
                  "A checkpoint that cannot be written (a full disk): stop the run, or warn and train on")
      ->check(CLI::IsMember({"stop", "warn"}))
      ->capture_default_str();
  cmd->add_option("--limit-train", c->limit_train, "Use only N training images (quick runs)");
  cmd->add_option("--limit-val", c->limit_val, "Evaluate on the first N validation images");
  cmd->add_option("--max-steps", c->max_steps, "Stop after N steps as if killed (for testing --resume)");
  cmd->add_flag("--sync-bn", c->sync_bn, "Under mpirun: batchnorm statistics over every process's batch");
  cmd->add_option("--bucket-mb", c->bucket_mb, "Under mpirun: gradient all-reduce bucket size (MiB)")
      ->capture_default_str();
  cmd->add_option("--profile-steps", c->profile_steps,
                  "A:B: capture training steps A..B for Nsight Systems (nsys profile --capture-range=cudaProfilerApi; "
                  "see docs/PROFILING.md)");
  cmd->add_option("--comm-timeout", c->comm_timeout,
                  "Under mpirun: seconds a collective may wait for the other processes before the job is ended")
      ->capture_default_str();
  cmd->add_flag("--quiet", c->quiet, "No progress output");
  auto recipe = std::make_shared<std::string>();
  cmd->add_option("--recipe", *recipe,
                  "A published recipe's flags, each unless given: " + recipe_names() + " (README, \"Recipes\")");
  cmd->callback([&run, cmd, c, betas, arch_lr, opt_betas, lr, wd, gamma, recipe] {
    PMPL_CHECK((*opt_betas)[0] >= 0 && (*opt_betas)[0] < 1 && (*opt_betas)[1] >= 0 && (*opt_betas)[1] < 1,
               "--opt-betas must both be in [0, 1)");
    c->opt_beta1 = (*opt_betas)[0];
    c->opt_beta2 = (*opt_betas)[1];
    if (*arch_lr != "auto") {
      char* end = nullptr;
      c->arch_lr = std::strtod(arch_lr->c_str(), &end);
      PMPL_CHECK(end != arch_lr->c_str() && *end == '\0' && c->arch_lr > 0,
                 "--arch-lr must be auto or a positive number, got '{}'", *arch_lr);
    }
    PMPL_CHECK(!c->output.empty() || !c->resume.empty(), "pass --output DIR (or --resume DIR)");
    PMPL_CHECK((*betas)[0] >= 0 && (*betas)[0] < 1 && (*betas)[1] >= 0 && (*betas)[1] < 1,
               "--arch-betas must both be in [0, 1)");
    c->arch_beta1 = (*betas)[0];
    c->arch_beta2 = (*betas)[1];
    // The recipe fills what the command line left out; then each optimiser's own defaults.
    const std::set<std::string> from_recipe = recipe->empty() ? std::set<std::string>{} : apply_recipe(*recipe, *cmd, *c);
    const auto unset = [&](CLI::Option* o, const char* flag) { return o->count() == 0 && from_recipe.count(flag) == 0; };
    if (unset(gamma, "--lr-gamma") && c->sched == "exponential") c->lr_gamma = 0.98;
    // Each optimiser's usual scale (timm's and torch's): SGD's 0.05 would diverge AdamW.
    if (unset(lr, "--lr")) c->lr = c->opt == "sgd" ? 0.05 : c->opt == "rmsproptf" ? 0.01 : 1e-3;
    if (unset(wd, "--weight-decay")) {
      c->weight_decay = c->opt == "sgd" ? 4e-5 : c->opt == "rmsproptf" ? 1e-5 : c->opt == "lamb" ? 0.01 : 0.05;
    }
    run = [c] { run_train(*c); };
  });

  auto e = std::make_shared<EvalCommand>();
  CLI::App* ev = app.add_subcommand("eval", "Top-1 / top-5 of trained weights or a deployment file on ROOT/val");
  ev->add_option("--data", e->data, "Dataset folder")->required();
  ev->add_option("--weights", e->weights, "A checkpoint or weights file (.safetensors)");
  ev->add_option("--deploy", e->deploy, "Or a deployment file (.pmpl: f32, f16 or int8), run by the runtime");
  ev->add_option("--split", e->split, "val or train")->capture_default_str();
  add_model_flags(ev, e->model);
  ev->add_option("--input-size", e->options.image_size, "Image side in pixels")->capture_default_str();
  ev->add_option("--batch-size", e->options.batch_size, "Images per batch")->capture_default_str();
  ev->add_option("--workers", e->options.workers, "Loader threads")->capture_default_str();
  ev->add_option("--device", e->device, "cpu, cuda or cuda:N")->capture_default_str();
  ev->add_option("--amp", e->amp, "Mixed precision on a GPU: auto (bf16 where the GPU has it), bf16, fp16, off")
      ->capture_default_str();
  ev->add_flag("--ema", e->ema, "Evaluate the average of the weights a --model-ema run saved");
  ev->add_flag("--fix-remaining", e->fix_remaining,
               "A search checkpoint: first fix the enhancers still searching to their most probable op, as forced "
               "fixing does (their batchnorm statistics re-estimated on training batches)");
  ev->add_option("--recalibrate-bn", e->recalibrate_bn,
                 "First re-estimate every batchnorm's statistics on N training batches (training transform)");
  ev->callback([&run, e, ev] { run = [e, ev] { run_eval(ev, *e); }; });
}

}  // namespace pmpl::cli
