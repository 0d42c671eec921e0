// `pmpl train`: trains MobileNetV2, searches and trains MobileNetV2 with Meta-Pooling (PMPL), or
// trains a fixed architecture from a genotype, on an ImageNet-layout folder.
//
// A PMPL step is two: an Adam step on the open enhancers' alphas on a batch of the held-out
// architecture split (never the validation set), then an SGD step on the weights on a training
// batch. After each architecture step an enhancer whose top probability leads the second by
// --fix-threshold is fixed to its argmax; at --force-fix-epoch the rest are fixed to their
// top-1 (or top-2). A run is resumable at any checkpoint and, on the CPU, a resumed run ends with
// bit-identical weights to an uninterrupted one.
//
// Under mpirun every process trains on its shard of each batch (train/data_parallel.h): rank r
// takes every world-th image of the epoch's shuffle, so the processes' batches together are the
// batch one process with world x --batch-size would see. Only rank 0 prints, logs and writes
// checkpoints; evaluation is sharded and summed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace pmpl {

struct TrainConfig {
  std::string data;
  std::string output;
  std::string resume;  // a run folder or a checkpoint file; empty: a new run
  std::string device = "cpu";
  std::string amp = "auto";  // mixed precision: auto (bf16 on GPUs that have it), bf16, fp16, off
  // Network.
  std::string model = "mobilenetv2";
  double width = 1.0;
  int64_t num_classes = 0;  // 0: as many as the data has
  bool small_input = false;
  std::string genotype;
  std::string initial_checkpoint;  // start from these weights (train/initial_weights.h)
  double dropout = 0.2;
  double drop_path = 0.0;  // stochastic depth rate (Network::set_drop_path)
  double bn_momentum = 0.0;  // every batchnorm's momentum (Network::set_bn_momentum); 0: the model's own
  // Optimisation.
  int64_t epochs = 10;
  int64_t batch_size = 64;
  int64_t grad_accum = 1;  // batches per optimiser step (their gradients summed, each loss / grad_accum)
  std::string recipe;  // the --recipe whose flags were applied (tools/train_recipes.cpp), for the record
  std::string opt = "sgd";  // the weights' optimiser: sgd, rmsproptf, adamw (train/weight_optimizer.h)
  double lr = 0.05;
  double warmup_epochs = 1.0;
  double min_lr = 1e-5;
  std::string sched = "cosine";  // cosine, step, exponential, constant (train/schedule.h)
  double lr_step_size = 1.0;     // epochs between step decays
  double lr_gamma = 0.1;         // step's and exponential's factor
  bool lr_per_step = false;      // step and exponential decay within epochs too
  double weight_decay = 4e-5;
  bool decay_norm_and_bias = false;  // torchvision's default; off: timm's (no decay on batchnorm and biases)
  double momentum = 0.9;  // sgd, rmsproptf
  bool nesterov = true;   // sgd
  double opt_eps = -1.0;  // rmsproptf, adamw: < 0, the optimiser's default
  double opt_beta1 = 0.9, opt_beta2 = 0.999;  // adamw
  bool model_ema = false;           // also keep and evaluate an average of the weights (train/model_ema.h)
  double model_ema_decay = 0.9998;
  bool model_ema_warmup = false;    // timm's warm-up of the decay
  double label_smoothing = 0.1;
  double clip_grad = 5.0;  // 0: off
  int input_size = 224;
  double crop_scale = 0.08;  // RandomResizedCrop's smallest area fraction
  // timm's --aa (data/rand_augment.h), e.g. rand-m9-mstd0.5; empty: off. The weights' images only.
  std::string auto_augment;
  // timm's --color-jitter (data/color_jitter.h): 1, 3 or 4 strengths; empty: off.
  std::vector<double> color_jitter;
  // timm's --reprob / --remode / --recount (data/random_erasing.h); the weights' images only.
  double reprob = 0.0;
  std::string remode = "pixel";
  int recount = 1;
  // timm's --mixup / --cutmix (data/mixup.h): Beta alphas, 0 off; on the weights' batches only.
  double mixup = 0.0, cutmix = 0.0;
  double mixup_prob = 1.0, mixup_switch_prob = 0.5;
  std::string mixup_mode = "batch";  // batch, pair or elem
  int workers = 4;
  uint64_t seed = 0;
  // Data-parallel (mpirun): batch_size is per process.
  bool sync_bn = false;        // batchnorm statistics over all processes' batches
  double bucket_mb = 4.0;      // gradient all-reduce bucket size
  double comm_timeout = 300.0; // seconds a collective may take before the job is ended
  // PMPL (docs/PMPL.md says why these defaults; the reference code's are 3e-4, 0.5/0.999, 1e-3).
  double arch_lr = 0.0;  // 0: auto, kArchLrScale / sqrt(the search's architecture steps)
  double arch_beta1 = 0.5;
  double arch_beta2 = 0.999;
  double arch_wd = 0.0;
  double arch_split = 0.1;
  double fix_threshold = 0.2;
  std::string arch_grad = "held-out";  // the alphas' gradient: "held-out" (an architecture batch) or "train" (the weight step's)
  int64_t arch_start_epoch = 0;  // the alphas stay put before this epoch (the weights warm up)
  int64_t force_fix_epoch = -1;  // -1: half the epochs, rounded up
  int fix_top = 1;
  // A forced fix (--select alpha) whose lead is below this takes skip (train/pmpl.h, forced_ops); 0.1
  // beat the argmax on MobileNetV2 and MobileNetV3-Small (docs/PMPL.md section 10).
  double skip_undecided = 0.1;
  // What such a fix takes: "none" (the enhancer removed: the backbone's block) or "skip" (the
  // enhancer without pooling, its batchnorm and hardswish kept). none beat skip by 0.76 on
  // MobileNetV2 (3 of 3 seeds) and was within the noise on MobileNetV3-Small (docs/PMPL.md 11).
  std::string undecided = "none";
  // Every searching enhancer also weighs itself against its removal (MetaPooling's gate): a fix
  // where q_none leads removes it, so the search can choose "none" itself (docs/PMPL.md 12).
  bool gate = false;
  // How forced fixing picks an open enhancer's ops: "alpha" (its most probable) or "perturbation"
  // (the candidates whose removal from the mixture raises the held-out loss most, DARTS-PT).
  std::string select = "alpha";
  int64_t select_batches = 8;  // held-out batches the perturbation losses are measured on
  // Bookkeeping.
  int64_t eval_interval = 1;   // epochs
  int64_t log_interval = 50;   // steps
  int64_t save_interval = 0;   // steps between checkpoints inside an epoch (0: epoch ends only)
  std::string on_save_error = "stop";  // a checkpoint that cannot be written: "stop" the run or "warn" and go on
  int64_t limit_train = 0;     // use only this many training images (0: all)
  int64_t limit_val = 0;
  int64_t max_steps = 0;       // stop after this many steps as if killed (testing resume)
  bool quiet = false;          // no progress output (tests)
  std::string profile_steps;   // "A:B": capture global steps A..B for Nsight Systems (empty: none)

  nlohmann::json to_json() const;
};

struct TrainResult {
  double val_top1 = 0.0;
  double val_top5 = 0.0;
  int64_t steps = 0;
  bool completed = false;  // false when stopped by max_steps
};

TrainResult run_training(const TrainConfig& config);

}  // namespace pmpl
