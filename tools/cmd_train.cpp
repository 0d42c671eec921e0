// `pmpl train` and `pmpl eval`.
#include <fmt/format.h>

#include "engine/comm.h"
#include "engine/cuda_runtime.h"
#include "layers/weights.h"
#include "tools/commands.h"
#include "tools/model_flags.h"
#include "train/amp.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
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
  std::string data, weights, split = "val", device = "cpu", amp = "auto";
  ModelFlags model;
  EvalOptions options;
};

void run_eval(CLI::App* cmd, const EvalCommand& e) {
  // A pmpl checkpoint says which network it holds; plain weights need the model flags.
  const TensorFile file = load_safetensors(e.weights);
  std::shared_ptr<MobileNetV2> model;
  if (describes_model(file)) {
    PMPL_CHECK(cmd->count("--model") + cmd->count("--width") + cmd->count("--small-input") + cmd->count("--genotype") == 0,
               "{} records its network; drop --model, --width, --small-input and --genotype", e.weights);
    model = load_model_from_file(e.weights);
  } else {
    model = build_model_from_flags(e.model);
    load_weights(*model, file, e.weights);
  }
  const data::ImageFolder split(e.data, e.split);
  PMPL_CHECK(split.num_classes() == model->config().num_classes, "{} has {} classes, the network {}",
             split.directory(), split.num_classes(), model->config().num_classes);
  const Device device = parse_device(e.device);
  if (device.is_cuda()) cuda::set_device(device.index);
  model->to(device);
  model->set_compute_dtype(amp_dtype(e.amp, device));
  const EvalResult r = evaluate(*model, split, e.options);
  fmt::print("{}: {} images, top-1 {:.2f}%, top-5 {:.2f}%, loss {:.4f}\n", split.directory(), r.images,
             100 * r.top1, 100 * r.top5, r.loss);
}

}  // namespace

void add_train_command(CLI::App& app, Runner& run) {
  auto c = std::make_shared<TrainConfig>();
  CLI::App* cmd = app.add_subcommand(
      "train", "Train MobileNetV2, or search and train MobileNetV2 with Meta-Pooling (PMPL)");
  cmd->add_option("--data", c->data, "Dataset folder: ROOT/{train,val}/<class>/<images>")->required();
  cmd->add_option("--output", c->output, "Run folder: config, log, genotype, checkpoints");
  cmd->add_option("--resume", c->resume, "Continue the run in this folder (or from this checkpoint)");
  cmd->add_option("--device", c->device, "cpu, cuda (this process's GPU: its local rank's under mpirun) or cuda:N")->capture_default_str();
  cmd->add_option("--amp", c->amp,
                  "Mixed precision on a GPU: auto (bf16 where the GPU has it), bf16, fp16 (with dynamic loss scaling) "
                  "or off (f32)")
      ->capture_default_str();
  cmd->add_option("--model", c->model, "mobilenetv2 or mobilenetv2_mp (searches unless --genotype)")
      ->capture_default_str();
  cmd->add_option("--width", c->width, "Width multiplier")->capture_default_str();
  cmd->add_option("--num-classes", c->num_classes, "Classes (default: the data's)");
  cmd->add_flag("--small-input", c->small_input, "28-64 px images: stem and first stride-2 stage at stride 1");
  cmd->add_option("--genotype", c->genotype, "Train this fixed architecture (genotype.json of a search)");
  cmd->add_option("--dropout", c->dropout, "Dropout before the classifier")->capture_default_str();
  cmd->add_option("--epochs", c->epochs, "Epochs")->capture_default_str();
  cmd->add_option("--batch-size", c->batch_size, "Images per step (per process)")->capture_default_str();
  cmd->add_option("--lr", c->lr, "Peak learning rate (SGD)")->capture_default_str();
  cmd->add_option("--warmup-epochs", c->warmup_epochs, "Linear warmup, in epochs")->capture_default_str();
  cmd->add_option("--min-lr", c->min_lr, "Cosine schedule's floor")->capture_default_str();
  cmd->add_option("--weight-decay", c->weight_decay, "On conv and linear weights (not BN, not biases)")
      ->capture_default_str();
  cmd->add_option("--momentum", c->momentum, "SGD momentum")->capture_default_str();
  cmd->add_option("--nesterov", c->nesterov, "Nesterov momentum (true/false)")->capture_default_str();
  cmd->add_option("--label-smoothing", c->label_smoothing, "Cross-entropy label smoothing")->capture_default_str();
  cmd->add_option("--clip-grad", c->clip_grad, "Clip the weights' gradient norm (0: off)")->capture_default_str();
  cmd->add_option("--input-size", c->input_size, "Image side in pixels")->capture_default_str();
  cmd->add_option("--crop-scale", c->crop_scale, "Smallest area fraction of RandomResizedCrop")->capture_default_str();
  cmd->add_option("--workers", c->workers, "Loader threads")->capture_default_str();
  cmd->add_option("--seed", c->seed, "Seed of initialisation, data order, crops, dropout")->capture_default_str();
  cmd->add_option("--arch-lr", c->arch_lr, "Adam learning rate of the alphas")->capture_default_str();
  auto betas = std::make_shared<std::vector<double>>(std::vector<double>{c->arch_beta1, c->arch_beta2});
  cmd->add_option("--arch-betas", *betas, "Adam betas of the alphas (two numbers)")
      ->expected(2)
      ->default_str("0.5 0.999");
  cmd->add_option("--arch-wd", c->arch_wd, "Adam weight decay of the alphas")->capture_default_str();
  cmd->add_option("--arch-split", c->arch_split, "Share of train/ held out for the alphas")->capture_default_str();
  cmd->add_option("--fix-threshold", c->fix_threshold, "Fix an enhancer when its top probability leads by this")
      ->capture_default_str();
  cmd->add_option("--force-fix-epoch", c->force_fix_epoch, "Fix every open enhancer from this epoch (default: half)");
  cmd->add_option("--fix-top", c->fix_top, "Forced fixing keeps the top 1 or top 2 ops")->capture_default_str();
  cmd->add_option("--eval-interval", c->eval_interval, "Evaluate every N epochs")->capture_default_str();
  cmd->add_option("--log-interval", c->log_interval, "Log every N steps")->capture_default_str();
  cmd->add_option("--save-interval", c->save_interval, "Also checkpoint every N steps (0: epoch ends only)")
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
  cmd->callback([&run, c, betas] {
    PMPL_CHECK(!c->output.empty() || !c->resume.empty(), "pass --output DIR (or --resume DIR)");
    PMPL_CHECK((*betas)[0] >= 0 && (*betas)[0] < 1 && (*betas)[1] >= 0 && (*betas)[1] < 1,
               "--arch-betas must both be in [0, 1)");
    c->arch_beta1 = (*betas)[0];
    c->arch_beta2 = (*betas)[1];
    run = [c] { run_train(*c); };
  });

  auto e = std::make_shared<EvalCommand>();
  CLI::App* ev = app.add_subcommand("eval", "Top-1 / top-5 of trained weights on ROOT/val");
  ev->add_option("--data", e->data, "Dataset folder")->required();
  ev->add_option("--weights", e->weights, "A checkpoint or weights file (.safetensors)")->required();
  ev->add_option("--split", e->split, "val or train")->capture_default_str();
  add_model_flags(ev, e->model);
  ev->add_option("--input-size", e->options.image_size, "Image side in pixels")->capture_default_str();
  ev->add_option("--batch-size", e->options.batch_size, "Images per batch")->capture_default_str();
  ev->add_option("--workers", e->options.workers, "Loader threads")->capture_default_str();
  ev->add_option("--device", e->device, "cpu, cuda or cuda:N")->capture_default_str();
  ev->add_option("--amp", e->amp, "Mixed precision on a GPU: auto (bf16 where the GPU has it), bf16, fp16, off")
      ->capture_default_str();
  ev->callback([&run, e, ev] { run = [e, ev] { run_eval(ev, *e); }; });
}

}  // namespace pmpl::cli
