// The trainer's set-up: the flags checked, the device, the network and its optimisers, the
// loaders of the training and architecture splits.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>

#include "core/rng.h"
#include "engine/comm_nccl.h"
#include "engine/cuda_runtime.h"
#include "train/amp.h"
#include "train/pmpl.h"
#include "train/trainer_impl.h"

namespace pmpl::trainer {
namespace {

// A seeded permutation of 0..n-1 (the train split's held-out part and limits are cut from it).
std::vector<int64_t> permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  for (int64_t i = n - 1; i > 0; --i) {
    const Philox4 r = philox4x32(seed, static_cast<uint64_t>(i));
    const uint64_t bits = (static_cast<uint64_t>(r.v[0]) << 32) | r.v[1];
    std::swap(p[static_cast<size_t>(i)], p[static_cast<size_t>(bits % static_cast<uint64_t>(i + 1))]);
  }
  return p;
}

}  // namespace

Trainer::Trainer(const TrainConfig& config)
    : cfg_(config), comm_(process_comm()), progress_(config.quiet || comm_.rank() != 0) {}

// --device cuda takes the GPU of this process's local rank (one GPU per process under mpirun);
// cuda:N names one.
void Trainer::choose_device() {
  device_ = parse_device(cfg_.device);
  if (device_.is_cpu()) return;
  PMPL_CHECK(cfg_.device == "cuda" || comm_.world() == 1,
             "--device {} puts all {} processes on one GPU: under mpirun use --device cuda (each process takes the "
             "GPU of its local rank)",
             cfg_.device, comm_.world());
  if (cfg_.device == "cuda") device_ = Device::cuda(comm_.local_rank());
  cuda::set_device(device_.index);
  if (comm_.world() > 1) {
    PMPL_CHECK(built_with_nccl(), "training on GPUs with {} processes needs NCCL, and this pmpl was built without "
                                  "it: rebuild with -DPMPL_NCCL=ON, or run one process",
               comm_.world());
    device_comm_ = make_nccl_comm(comm_, device_.index);
  }
}

void Trainer::prepare() {
  PMPL_CHECK(cfg_.epochs > 0, "--epochs must be positive, got {}", cfg_.epochs);
  PMPL_CHECK(cfg_.lr > 0 && cfg_.min_lr >= 0 && cfg_.min_lr <= cfg_.lr, "--lr must be positive and --min-lr in [0, lr]");
  PMPL_CHECK(cfg_.arch_split > 0 && cfg_.arch_split < 1, "--arch-split {} is outside (0, 1)", cfg_.arch_split);
  PMPL_CHECK(cfg_.fix_top == 1 || cfg_.fix_top == 2, "--fix-top must be 1 or 2, got {}", cfg_.fix_top);
  PMPL_CHECK(cfg_.skip_undecided >= 0.0 && cfg_.skip_undecided <= 1.0,
             "--skip-undecided {} is not a lead between probabilities: give a number in [0, 1]", cfg_.skip_undecided);
  PMPL_CHECK(cfg_.undecided == "skip" || cfg_.undecided == "none", "--undecided must be skip or none, got '{}'",
             cfg_.undecided);
  PMPL_CHECK(cfg_.select == "alpha" || cfg_.select == "perturbation",
             "--select must be alpha or perturbation, got '{}'", cfg_.select);
  PMPL_CHECK(!cfg_.gate || cfg_.select == "alpha",
             "--gate decides removals from the gates' probabilities, which --select perturbation does not score: "
             "use --select alpha with it");
  PMPL_CHECK(cfg_.select_batches > 0, "--select-batches must be positive, got {}", cfg_.select_batches);
  PMPL_CHECK(cfg_.fix_threshold > 0 && cfg_.fix_threshold <= 1, "--fix-threshold {} is outside (0, 1]", cfg_.fix_threshold);
  PMPL_CHECK(cfg_.log_interval > 0 && cfg_.eval_interval > 0, "--log-interval and --eval-interval must be positive");
  PMPL_CHECK(cfg_.crop_scale > 0 && cfg_.crop_scale <= 1, "--crop-scale {} is outside (0, 1]", cfg_.crop_scale);
  PMPL_CHECK(cfg_.mixup >= 0 && cfg_.cutmix >= 0, "--mixup and --cutmix are Beta alphas: 0 (off) or positive, got {} and {}",
             cfg_.mixup, cfg_.cutmix);
  PMPL_CHECK(cfg_.mixup_prob >= 0 && cfg_.mixup_prob <= 1 && cfg_.mixup_switch_prob >= 0 && cfg_.mixup_switch_prob <= 1,
             "--mixup-prob and --mixup-switch-prob are probabilities in [0, 1], got {} and {}", cfg_.mixup_prob,
             cfg_.mixup_switch_prob);
  data::parse_auto_augment(cfg_.auto_augment);  // a bad string stops here, before any data is read
  data::parse_mix_mode(cfg_.mixup_mode);
  data::parse_color_jitter(cfg_.color_jitter);
  PMPL_CHECK(cfg_.grad_accum >= 1 && cfg_.grad_accum <= 4096, "--grad-accum must be 1 to 4096 batches per step, got {}",
             cfg_.grad_accum);
  PMPL_CHECK(cfg_.reprob >= 0 && cfg_.reprob <= 1, "--reprob is a probability in [0, 1], got {}", cfg_.reprob);
  PMPL_CHECK(cfg_.recount >= 1 && cfg_.recount <= 16, "--recount must be 1 to 16 boxes, got {}", cfg_.recount);
  data::parse_erase_fill(cfg_.remode);
  PMPL_CHECK(!cfg_.output.empty(), "--output is required (the run's folder)");
  PMPL_CHECK(cfg_.on_save_error == "stop" || cfg_.on_save_error == "warn",
             "--on-save-error must be stop or warn, got '{}'", cfg_.on_save_error);
  PMPL_CHECK(cfg_.bucket_mb > 0, "--bucket-mb must be positive, got {}", cfg_.bucket_mb);
  profile_ = ProfileSteps::parse(cfg_.profile_steps, parse_device(cfg_.device));
  set_comm_timeout(cfg_.comm_timeout);
  check_same_config(cfg_.to_json(), comm_);
  choose_device();
  // Processes sharing a node share its cores: unless OMP_NUM_THREADS says otherwise, each takes
  // its part rather than all of them (oversubscribed OpenMP threads spin against each other).
  if (comm_.local_world() > 1 && std::getenv("OMP_NUM_THREADS") == nullptr) {
    omp_set_num_threads(std::max(1, omp_get_num_procs() / comm_.local_world()));
  }

  train_set_ = std::make_unique<data::ImageFolder>(cfg_.data, "train");
  val_set_ = std::make_unique<data::ImageFolder>(cfg_.data, "val");
  PMPL_CHECK(val_set_->classes() == train_set_->classes(),
             "{}: train/ and val/ have different class folders", cfg_.data);
  if (cfg_.num_classes == 0) cfg_.num_classes = train_set_->num_classes();
  PMPL_CHECK(cfg_.num_classes == train_set_->num_classes(), "--num-classes {} but {} has {} classes",
             cfg_.num_classes, cfg_.data, train_set_->num_classes());
  if (cfg_.force_fix_epoch < 0) cfg_.force_fix_epoch = (cfg_.epochs + 1) / 2;
  PMPL_CHECK(cfg_.arch_grad == "held-out" || cfg_.arch_grad == "train",
             "--arch-grad must be held-out or train, got '{}'", cfg_.arch_grad);
  PMPL_CHECK(cfg_.arch_start_epoch >= 0, "--arch-start-epoch must not be negative, got {}", cfg_.arch_start_epoch);
  PMPL_CHECK(cfg_.arch_start_epoch == 0 || cfg_.arch_start_epoch < std::min(cfg_.force_fix_epoch, cfg_.epochs),
             "--arch-start-epoch {} leaves the alphas no epoch to move in: it must be below --force-fix-epoch ({}) "
             "and --epochs ({})",
             cfg_.arch_start_epoch, cfg_.force_fix_epoch, cfg_.epochs);

  description_.name = cfg_.model;
  description_.config.width = cfg_.width;
  description_.config.num_classes = cfg_.num_classes;
  description_.config.small_input = cfg_.small_input;
  description_.config.dropout = cfg_.dropout;
  description_.config.seed = cfg_.seed;
  if (!cfg_.genotype.empty()) description_.config.genotype = Genotype::load(cfg_.genotype);
  description_.config.gated = cfg_.gate;
  model_ = build_model(description_.name, description_.config);
  model_->set_drop_path(cfg_.drop_path);
  if (cfg_.bn_momentum != 0.0) model_->set_bn_momentum(cfg_.bn_momentum);
  // Before the groups pack the parameters; a resumed run takes its checkpoint's weights instead.
  if (!cfg_.initial_checkpoint.empty() && cfg_.resume.empty()) {
    const InitialWeights loaded =
        load_initial_weights(*model_, load_safetensors(cfg_.initial_checkpoint), cfg_.initial_checkpoint);
    initial_weights_line_ = fmt::format("initial weights from {}: {}", cfg_.initial_checkpoint, loaded.summary());
  }
  model_->to(device_);  // before the parameters are packed: the flat buffers live where they do
  compute_dtype_ = amp_dtype(cfg_.amp, device_);
  model_->set_compute_dtype(compute_dtype_);
  scaler_ = std::make_unique<LossScaler>(compute_dtype_ == DType::kF16);
  PMPL_CHECK(cfg_.arch_grad != "train" || compute_dtype_ != DType::kF16,
             "--arch-grad train takes the alphas' gradient from the weights' loss, whose fp16 loss scale is the "
             "weights' own: use --amp bf16 or off with it");

  std::vector<NamedParameter> weights, arch;
  for (NamedParameter& p : model_->parameters()) (p.kind == ParamKind::kArch ? arch : weights).push_back(p);
  weights_ = std::make_unique<ParameterGroup>(std::move(weights));
  if (cfg_.decay_norm_and_bias) weights_->decay_all();
  arch_ = std::make_unique<ParameterGroup>(std::move(arch));
  optimizer_ = make_weight_optimizer(*weights_, {cfg_.opt, cfg_.momentum, cfg_.nesterov, cfg_.weight_decay,
                                                 cfg_.opt_eps, cfg_.opt_beta1, cfg_.opt_beta2});
  if (cfg_.model_ema) {
    ema_ = std::make_unique<ModelEma>(*model_, *weights_, ModelEmaOptions{cfg_.model_ema_decay, cfg_.model_ema_warmup});
  }
  reducer_ = std::make_unique<GradientReducer>(*weights_, tensor_comm(), static_cast<int64_t>(cfg_.bucket_mb * (1 << 20)));
  if (cfg_.sync_bn) sync_batchnorm(*model_, tensor_comm());
  // Any Meta-Pooling network without a genotype searches (its enhancers are open).
  const bool search = !model_->enhancers().empty() && !description_.config.genotype;
  make_loaders(search);
  // The schedule counts optimiser steps: with --grad-accum, fewer than batches.
  updates_per_epoch_ = (steps_per_epoch_ + cfg_.grad_accum - 1) / cfg_.grad_accum;
  const auto warmup = static_cast<int64_t>(std::llround(cfg_.warmup_epochs * static_cast<double>(updates_per_epoch_)));
  schedule_ = std::make_unique<LrSchedule>(
      ScheduleOptions{cfg_.sched, cfg_.lr, cfg_.min_lr, cfg_.lr_step_size, cfg_.lr_gamma, cfg_.lr_per_step}, warmup,
      updates_per_epoch_, cfg_.epochs * updates_per_epoch_);
  if (search) {
    // The alphas move from the arch-start epoch to the force-fix epoch (or the end).
    const int64_t search_steps =
        updates_per_epoch_ * std::max<int64_t>(std::min(cfg_.force_fix_epoch, cfg_.epochs) - cfg_.arch_start_epoch, 1);
    arch_lr_ = cfg_.arch_lr > 0 ? cfg_.arch_lr : auto_arch_lr(search_steps);
    SearchOptions so;
    so.adam = AdamOptions{arch_lr_, cfg_.arch_beta1, cfg_.arch_beta2, 1e-8, cfg_.arch_wd};
    so.fix_threshold = cfg_.fix_threshold;
    so.fix_top = cfg_.fix_top;
    so.skip_undecided = cfg_.skip_undecided;
    so.remove_undecided = cfg_.undecided == "none";
    search_ = std::make_unique<ArchitectureSearch>(*model_, model_->enhancers(), *arch_, *weights_, so,
                                                   compute_dtype_ == DType::kF16, tensor_comm());
  }
}

// The training split: a seeded permutation; a search holds its first arch_split out for the
// alphas (never the validation set); --limit-train keeps a prefix of what remains.
void Trainer::make_loaders(bool search) {
  std::vector<int64_t> order = permutation(train_set_->size(), cfg_.seed ^ 0xA5A5A5A5ull);
  std::vector<int64_t> arch_part;
  if (search) {
    const auto held = std::max<int64_t>(1, static_cast<int64_t>(std::llround(cfg_.arch_split * static_cast<double>(order.size()))));
    arch_part.assign(order.begin(), order.begin() + held);
    order.erase(order.begin(), order.begin() + held);
  }
  if (cfg_.limit_train > 0 && cfg_.limit_train < static_cast<int64_t>(order.size())) {
    order.resize(static_cast<size_t>(cfg_.limit_train));
    if (search) {
      const auto arch_keep = std::max<int64_t>(cfg_.batch_size, static_cast<int64_t>(cfg_.arch_split * cfg_.limit_train));
      if (arch_keep < static_cast<int64_t>(arch_part.size())) arch_part.resize(static_cast<size_t>(arch_keep));
    }
  }
  data::LoaderOptions lo;
  lo.batch_size = cfg_.batch_size;
  lo.image_size = cfg_.input_size;
  lo.min_crop_scale = cfg_.crop_scale;
  lo.workers = cfg_.workers;
  lo.seed = cfg_.seed;
  lo.rank = comm_.rank();
  lo.world = comm_.world();
  lo.subset = order;
  lo.auto_augment = data::parse_auto_augment(cfg_.auto_augment);
  lo.color_jitter = data::parse_color_jitter(cfg_.color_jitter);
  lo.erasing.prob = cfg_.reprob;
  lo.erasing.fill = data::parse_erase_fill(cfg_.remode);
  lo.erasing.max_count = cfg_.recount;
  lo.mixup = {cfg_.mixup, cfg_.cutmix, cfg_.mixup_prob, cfg_.mixup_switch_prob, data::parse_mix_mode(cfg_.mixup_mode)};
  loader_ = std::make_unique<data::Loader>(*train_set_, lo);
  loader_->start_epoch(0);
  steps_per_epoch_ = loader_->batches_per_epoch();
  train_images_ = static_cast<int64_t>(order.size());
  arch_images_ = static_cast<int64_t>(arch_part.size());
  PMPL_CHECK(steps_per_epoch_ > 0, "{} training images make no full batch of {} per process: lower --batch-size",
             order.size(), cfg_.batch_size * comm_.world());
  if (search) {
    data::LoaderOptions ao = lo;
    ao.subset = arch_part;
    ao.seed = cfg_.seed + 1;
    ao.mixup = {};  // the alphas, and perturbation's scores, are judged on images as they are
    ao.auto_augment = {};
    ao.color_jitter = {};
    ao.erasing = {};
    arch_loader_ = std::make_unique<data::Loader>(*train_set_, ao);
    PMPL_CHECK(static_cast<int64_t>(arch_part.size()) >= cfg_.batch_size * comm_.world(),
               "the architecture split has {} images, fewer than one batch of {}: raise --arch-split",
               arch_part.size(), cfg_.batch_size * comm_.world());
  }
}

EvalOptions Trainer::eval_options() const {
  EvalOptions eo;
  eo.batch_size = std::max<int64_t>(cfg_.batch_size, 64);
  eo.image_size = cfg_.input_size;
  eo.workers = cfg_.workers;
  eo.limit = cfg_.limit_val;
  eo.comm = &comm_;
  return eo;
}

}  // namespace pmpl::trainer
