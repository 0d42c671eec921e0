#include "train/trainer.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <string_view>

#include <fmt/format.h>

#include "data/loader.h"
#include "engine/allocator.h"
#include "engine/autograd.h"
#include "engine/comm.h"
#include "engine/comm_nccl.h"
#include "engine/cuda_runtime.h"
#include "engine/ops.h"
#include "engine/profile.h"
#include "engine/rng.h"
#include "layers/weights.h"
#include "train/amp.h"
#include "train/checkpoint.h"
#include "train/data_parallel.h"
#include "train/evaluate.h"
#include "train/loss_scale.h"
#include "train/pmpl.h"
#include "train/progress.h"
#include "train/schedule.h"
#include "train/search.h"
#include "train/sgd.h"

namespace pmpl {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Where the run stands: everything a resumed run needs besides tensors.
struct TrainerState {
  int64_t epoch = 0;        // the epoch in progress
  int64_t batch = 0;        // its next batch
  int64_t global_step = 0;
  int64_t arch_epoch = 0;   // the architecture loader's position
  int64_t arch_batch = 0;
  double best_top1 = -1.0;
  uint64_t dropout_seed = 0, dropout_offset = 0;
  // fp16's dynamic loss scales (weights, and the architecture step's own) and their good steps in
  // a row; loss_scaled says the run scaled at all (fp16), so another --amp restores none of it.
  bool loss_scaled = false;
  double loss_scale = 1.0, arch_loss_scale = 1.0;
  int64_t loss_scale_good = 0, arch_loss_scale_good = 0;

  nlohmann::json to_json() const {
    return {{"epoch", epoch},
            {"batch", batch},
            {"global_step", global_step},
            {"arch_epoch", arch_epoch},
            {"arch_batch", arch_batch},
            {"best_top1", best_top1},
            {"dropout_seed", dropout_seed},
            {"dropout_offset", dropout_offset},
            {"loss_scaled", loss_scaled},
            {"loss_scale", loss_scale},
            {"loss_scale_good", loss_scale_good},
            {"arch_loss_scale", arch_loss_scale},
            {"arch_loss_scale_good", arch_loss_scale_good}};
  }
  static TrainerState from_json(const nlohmann::json& j) {
    TrainerState s;
    s.epoch = j.at("epoch");
    s.batch = j.at("batch");
    s.global_step = j.at("global_step");
    s.arch_epoch = j.at("arch_epoch");
    s.arch_batch = j.at("arch_batch");
    s.best_top1 = j.at("best_top1");
    s.dropout_seed = j.at("dropout_seed");
    s.dropout_offset = j.at("dropout_offset");
    // Absent in older checkpoints: those resume with the initial scales.
    s.loss_scaled = j.value("loss_scaled", false);
    s.loss_scale = j.value("loss_scale", 1.0);
    s.loss_scale_good = j.value("loss_scale_good", int64_t{0});
    s.arch_loss_scale = j.value("arch_loss_scale", 1.0);
    s.arch_loss_scale_good = j.value("arch_loss_scale_good", int64_t{0});
    return s;
  }
};

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

class Trainer {
 public:
  explicit Trainer(const TrainConfig& config)
      : cfg_(config), comm_(process_comm()), progress_(config.quiet || comm_.rank() != 0) {}
  TrainResult run();

 private:
  void prepare();
  void make_loaders(bool search);
  void resume(const std::string& path);
  void write_config();
  void fix(const std::vector<FixDecision>& decisions, const char* why);
  void assert_same_genotype();
  bool searching() const { return search_ && search_->open(); }
  Tensor forward_loss(const data::Batch& batch, Tensor* logits);
  data::Batch next_arch_batch();
  void architecture_step();
  void check_overflows(const LossScaler& scaler, const char* what, const char* lr_flag) const;
  void save(const std::string& file);
  void log(const nlohmann::json& line);

  bool writer() const { return comm_.rank() == 0; }  // the one process that logs and saves
  void spread_state();
  void choose_device();
  // Collectives on the model's tensors: NCCL's when training on GPUs with several processes.
  Communicator& tensor_comm() { return device_comm_ ? *device_comm_ : comm_; }

  TrainConfig cfg_;
  Communicator& comm_;
  Device device_ = Device::cpu();
  DType compute_dtype_ = DType::kF32;
  // fp16 loss scaling of the weight step (the architecture step has its own, in search_).
  std::unique_ptr<LossScaler> scaler_;
  int64_t arch_skipped_ = 0;  // architecture steps skipped since the last log line
  ProfileSteps profile_;
  std::unique_ptr<Communicator> device_comm_;
  Progress progress_;
  std::unique_ptr<data::ImageFolder> train_set_, val_set_;
  std::shared_ptr<MobileNetV2> model_;
  std::unique_ptr<ParameterGroup> weights_, arch_;
  std::unique_ptr<Sgd> sgd_;
  std::unique_ptr<GradientReducer> reducer_;
  std::unique_ptr<ArchitectureSearch> search_;  // null unless searching
  std::unique_ptr<data::Loader> loader_, arch_loader_;
  int64_t train_images_ = 0, arch_images_ = 0, steps_per_epoch_ = 0;
  double arch_lr_ = 0.0;  // resolved (--arch-lr auto)
  TrainerState state_;
  ModelDescription description_;
  std::ofstream log_;
};

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
  PMPL_CHECK(cfg_.fix_threshold > 0 && cfg_.fix_threshold <= 1, "--fix-threshold {} is outside (0, 1]", cfg_.fix_threshold);
  PMPL_CHECK(cfg_.log_interval > 0 && cfg_.eval_interval > 0, "--log-interval and --eval-interval must be positive");
  PMPL_CHECK(cfg_.crop_scale > 0 && cfg_.crop_scale <= 1, "--crop-scale {} is outside (0, 1]", cfg_.crop_scale);
  PMPL_CHECK(!cfg_.output.empty(), "--output is required (the run's folder)");
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

  description_.name = cfg_.model;
  description_.config.width = cfg_.width;
  description_.config.num_classes = cfg_.num_classes;
  description_.config.small_input = cfg_.small_input;
  description_.config.dropout = cfg_.dropout;
  description_.config.seed = cfg_.seed;
  if (!cfg_.genotype.empty()) description_.config.genotype = Genotype::load(cfg_.genotype);
  model_ = build_model(description_.name, description_.config);
  model_->to(device_);  // before the parameters are packed: the flat buffers live where they do
  compute_dtype_ = amp_dtype(cfg_.amp, device_);
  model_->set_compute_dtype(compute_dtype_);
  scaler_ = std::make_unique<LossScaler>(compute_dtype_ == DType::kF16);

  std::vector<NamedParameter> weights, arch;
  for (NamedParameter& p : model_->parameters()) (p.kind == ParamKind::kArch ? arch : weights).push_back(p);
  weights_ = std::make_unique<ParameterGroup>(std::move(weights));
  arch_ = std::make_unique<ParameterGroup>(std::move(arch));
  sgd_ = std::make_unique<Sgd>(*weights_, SgdOptions{cfg_.momentum, cfg_.nesterov, cfg_.weight_decay});
  reducer_ = std::make_unique<GradientReducer>(*weights_, tensor_comm(), static_cast<int64_t>(cfg_.bucket_mb * (1 << 20)));
  if (cfg_.sync_bn) sync_batchnorm(*model_, tensor_comm());
  const bool search = cfg_.model == "mobilenetv2_mp" && !description_.config.genotype;
  make_loaders(search);
  if (search) {
    // The alphas move from the first step to the force-fix epoch (or the end).
    const int64_t search_steps = steps_per_epoch_ * std::min(cfg_.force_fix_epoch, cfg_.epochs);
    arch_lr_ = cfg_.arch_lr > 0 ? cfg_.arch_lr : auto_arch_lr(search_steps);
    SearchOptions so;
    so.adam = AdamOptions{arch_lr_, cfg_.arch_beta1, cfg_.arch_beta2, 1e-8, cfg_.arch_wd};
    so.fix_threshold = cfg_.fix_threshold;
    so.fix_top = cfg_.fix_top;
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
    arch_loader_ = std::make_unique<data::Loader>(*train_set_, ao);
    PMPL_CHECK(static_cast<int64_t>(arch_part.size()) >= cfg_.batch_size * comm_.world(),
               "the architecture split has {} images, fewer than one batch of {}: raise --arch-split",
               arch_part.size(), cfg_.batch_size * comm_.world());
  }
}

// Fixes the decided enhancers (their batchnorms re-estimated on architecture batches), logs each.
void Trainer::fix(const std::vector<FixDecision>& decisions, const char* why) {
  if (decisions.empty()) return;
  search_->fix(decisions, [&] {
    const data::Batch batch = next_arch_batch();
    return ops::normalize_images(batch.images.to(device_), kImageMean, kImageStd, compute_dtype_);
  });
  for (const FixDecision& d : decisions) {
    std::string chosen;
    for (PoolOp op : d.ops) {
      if (!chosen.empty()) chosen += '+';
      chosen += pool_op_name(op);
    }
    const std::vector<PoolOp> top = top_ops(d.probs, 2);
    const double lead = d.probs[static_cast<size_t>(top[0])] - d.probs[static_cast<size_t>(top[1])];
    progress_.line(fmt::format("fixed {} to {} ({}, p = {:.3f}, lead {:.3f}, epoch {}, step {})", d.name, chosen, why,
                               d.probs[static_cast<size_t>(d.ops[0])], lead, state_.epoch + 1, state_.global_step));
    log({{"event", "fixed"}, {"name", d.name}, {"ops", chosen}, {"why", why}, {"epoch", state_.epoch},
         {"step", state_.global_step}, {"probs", d.probs}});
  }
  if (std::string_view(why) == "forced") {
    progress_.line(fmt::format("{} enhancers were fixed before their lead reached --fix-threshold {}: their ops are "
                               "the search's best guess so far; a longer search (more epochs or images) gathers more "
                               "evidence (docs/PMPL.md)",
                               decisions.size(), cfg_.fix_threshold));
  }
  if (writer()) model_->genotype().save(cfg_.output + "/genotype.json");
}

// Every rank takes its fixing decisions alone, from identical alphas; after each searching step
// they are checked to agree (one small all-reduce), so a disagreement stops the job at once.
void Trainer::assert_same_genotype() {
  if (comm_.world() == 1) return;
  const std::string text = model_->genotype().to_json().dump();
  const double mine = static_cast<double>(std::hash<std::string>{}(text) % 1000003);
  const std::vector<double> sums = sum_over_processes({mine, mine * mine}, comm_);
  PMPL_ASSERT(sums[0] * sums[0] == comm_.world() * sums[1], "rank {}: the ranks fixed different ops (step {})",
              comm_.rank(), state_.global_step);
}

Tensor Trainer::forward_loss(const data::Batch& batch, Tensor* logits) {
  const Tensor out =
      model_->forward(ops::normalize_images(batch.images.to(device_), kImageMean, kImageStd, compute_dtype_));
  if (logits != nullptr) *logits = out;
  // The labels go up with the images, so the loss needs no copy (and no wait) mid-step.
  return ops::cross_entropy(out, batch.labels.to(device_), cfg_.label_smoothing);
}

// One clear stop when a loss scaler gives up (LossScaler::gave_up).
void Trainer::check_overflows(const LossScaler& scaler, const char* what, const char* lr_flag) const {
  PMPL_CHECK(!scaler.gave_up(),
             "fp16 {} overflowed in {} steps in a row (loss scale now {:g}) at epoch {} step {}: use --amp bf16, or "
             "lower {}",
             what, scaler.skipped_in_a_row(), scaler.value(), state_.epoch + 1, state_.batch + 1, lr_flag);
}

// The architecture split's next batch; its loader starts another epoch when one runs out.
data::Batch Trainer::next_arch_batch() {
  std::optional<data::Batch> batch = arch_loader_->next();
  if (!batch) {
    arch_loader_->start_epoch(++state_.arch_epoch);
    state_.arch_batch = 0;
    batch = arch_loader_->next();
  }
  ++state_.arch_batch;
  return std::move(*batch);
}

// One Adam step on the open alphas from an architecture batch: the weights are not differentiated
// (their part of the graph is not even recorded up to the first enhancer).
void Trainer::architecture_step() {
  const data::Batch batch = next_arch_batch();
  if (!search_->step([&] { return forward_loss(batch, nullptr); })) {
    ++arch_skipped_;
    check_overflows(search_->scaler(), "architecture gradients", "--arch-lr");
  }
}

void Trainer::log(const nlohmann::json& line) {
  if (!writer()) return;
  log_ << line.dump() << "\n";
  log_.flush();
}

// Rank 0's weights, statistics and dropout stream position on every process: at the start
// (and after a resume) and before each evaluation, so every rank evaluates and goes on with the
// same network even where per-process batchnorm statistics have drifted apart. Each rank's
// dropout draws from a stream of its own, offset from rank 0's.
void Trainer::spread_state() {
  if (comm_.world() == 1) return;
  broadcast_state(*model_, tensor_comm());
  Generator& dropout = model_->dropout_generator();
  Tensor position = Tensor::from_vector<int64_t>({static_cast<int64_t>(dropout.seed()), static_cast<int64_t>(dropout.offset())},
                                                 Shape{2});
  comm_.broadcast(position, 0);
  const auto base = static_cast<uint64_t>(position.data<int64_t>()[0]);
  const auto offset = static_cast<uint64_t>(position.data<int64_t>()[1]);
  dropout.set_state(comm_.rank() == 0 ? base : base + static_cast<uint64_t>(comm_.rank()) * 0x9E3779B97F4A7C15ull, offset);
}

void Trainer::save(const std::string& file) {
  if (!writer()) return;
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const NamedTensor& t : model_->state()) tensors.emplace_back(t.name, t.tensor);
  tensors.emplace_back("optim.weights.momentum", sgd_->momentum_buffer());
  if (search_) {
    tensors.emplace_back("optim.arch.m", search_->adam().first_moment());
    tensors.emplace_back("optim.arch.v", search_->adam().second_moment());
  }
  state_.dropout_seed = model_->dropout_generator().seed();
  state_.dropout_offset = model_->dropout_generator().offset();
  state_.loss_scaled = scaler_->enabled();
  state_.loss_scale = scaler_->value();
  state_.loss_scale_good = scaler_->good_steps();
  if (search_) {
    state_.arch_loss_scale = search_->scaler().value();
    state_.arch_loss_scale_good = search_->scaler().good_steps();
  }
  nlohmann::json trainer = state_.to_json();
  trainer["sgd_steps"] = sgd_->steps();
  trainer["adam_steps"] = search_ ? search_->adam().steps() : 0;
  std::map<std::string, std::string> meta = {{"pmpl.model", description_.to_json().dump()},
                                             {"pmpl.trainer", trainer.dump()},
                                             {"pmpl.classes", nlohmann::json(train_set_->classes()).dump()},
                                             {"pmpl.input_size", std::to_string(cfg_.input_size)},
                                             {"pmpl.version", PMPL_VERSION}};
  if (search_) meta["pmpl.fixed"] = model_->genotype().to_json().dump();
  save_safetensors(cfg_.output + "/" + file, tensors, meta);
}

void Trainer::resume(const std::string& path_in) {
  const std::string path = fs::is_directory(path_in) ? path_in + "/checkpoint-last.safetensors" : path_in;
  const TensorFile file = load_safetensors(path);
  PMPL_CHECK(file.metadata.count("pmpl.trainer") && describes_model(file),
             "{} is not a pmpl training checkpoint (no pmpl.trainer metadata)", path);
  const ModelDescription saved =
      ModelDescription::from_json(nlohmann::json::parse(file.metadata.at("pmpl.model")), path);
  PMPL_CHECK(saved.to_json() == description_.to_json(),
             "{} was trained with another network ({}); resume with the same --model, --width, --num-classes, "
             "--small-input, --dropout, --seed and --genotype", path, saved.to_json().dump());
  if (file.metadata.count("pmpl.fixed")) {
    const Genotype fixed = Genotype::from_json(nlohmann::json::parse(file.metadata.at("pmpl.fixed")), path);
    apply_fixed(*model_, fixed, path);
    PMPL_ASSERT(search_ != nullptr, "{}: a search's checkpoint for a network that does not search", path);
    search_->deactivate_fixed();
  }
  load_weights(*model_, file, path);
  const nlohmann::json trainer = nlohmann::json::parse(file.metadata.at("pmpl.trainer"));
  state_ = TrainerState::from_json(trainer);
  sgd_->restore(file.find("optim.weights.momentum"), trainer.at("sgd_steps").get<int64_t>());
  if (search_) search_->adam().restore(file.find("optim.arch.m"), file.find("optim.arch.v"), trainer.at("adam_steps"));
  model_->dropout_generator().set_state(state_.dropout_seed, state_.dropout_offset);
  scaler_->restore(state_.loss_scaled, state_.loss_scale, state_.loss_scale_good);
  if (search_) search_->scaler().restore(state_.loss_scaled, state_.arch_loss_scale, state_.arch_loss_scale_good);
}

void Trainer::write_config() {
  nlohmann::json j = cfg_.to_json();
  j["version"] = PMPL_VERSION;
  j["classes"] = train_set_->classes();
  if (search_) j["arch_lr_resolved"] = arch_lr_;
  if (!writer()) return;
  std::ofstream out(cfg_.output + "/config.json.tmp");
  out << j.dump(2) << "\n";
  out.close();
  fs::rename(cfg_.output + "/config.json.tmp", cfg_.output + "/config.json");
}

TrainResult Trainer::run() {
  if (cfg_.output.empty() && !cfg_.resume.empty() && fs::is_directory(cfg_.resume)) cfg_.output = cfg_.resume;
  prepare();
  const bool resuming = !cfg_.resume.empty();
  PMPL_CHECK(resuming || !fs::exists(cfg_.output + "/checkpoint-last.safetensors"),
             "{} already holds a run: continue it with --resume {}, or choose another --output", cfg_.output,
             cfg_.output);
  if (writer()) fs::create_directories(cfg_.output);
  if (resuming) resume(cfg_.resume);
  else write_config();
  spread_state();
  if (writer()) {
    log_.open(cfg_.output + "/log.jsonl", std::ios::app);
    PMPL_CHECK(log_.good(), "cannot write {}/log.jsonl", cfg_.output);
  }

  if (search_) arch_loader_->start_epoch(state_.arch_epoch, state_.arch_batch);
  const int64_t steps_per_epoch = steps_per_epoch_;
  const auto warmup = static_cast<int64_t>(std::llround(cfg_.warmup_epochs * static_cast<double>(steps_per_epoch)));
  const CosineSchedule schedule(cfg_.lr, cfg_.min_lr, warmup, cfg_.epochs * steps_per_epoch);
  EvalOptions eo;
  eo.batch_size = std::max<int64_t>(cfg_.batch_size, 64);
  eo.image_size = cfg_.input_size;
  eo.workers = cfg_.workers;
  eo.limit = cfg_.limit_val;
  eo.comm = &comm_;
  const int64_t global_batch = cfg_.batch_size * comm_.world();
  progress_.line(fmt::format("pmpl train: {} {}{} on {} ({} classes; {} training images{}), {} epochs of {} steps, "
                             "batch {}, output {}{}",
                             cfg_.model, cfg_.width, cfg_.small_input ? " small-input" : "", cfg_.data, cfg_.num_classes,
                             train_images_, search_ ? fmt::format(", {} for the search, arch-lr {:.3g}", arch_images_, arch_lr_) : "",
                             cfg_.epochs, steps_per_epoch,
                             comm_.world() == 1 ? std::to_string(cfg_.batch_size)
                                                : fmt::format("{} ({} per process x {} processes, {}{})", global_batch,
                                                              cfg_.batch_size, comm_.world(), comm_.backend(),
                                                              cfg_.sync_bn ? ", synchronised batchnorm" : ""),
                             cfg_.output,
                             resuming ? fmt::format(", resumed at epoch {} step {}", state_.epoch + 1, state_.global_step) : ""));
  if (device_.is_cuda()) {
    progress_.line(fmt::format("device {} ({}), {}", device_.str(), cuda::device_name(),
                               compute_dtype_ == DType::kF32 ? std::string("f32")
                                                             : fmt::format("{} mixed precision{}", dtype_name(compute_dtype_),
                                                                           scaler_->enabled() ? " with loss scaling" : "")));
  }
  model_->train();
  TrainResult result;
  EvalResult last_eval;
  while (state_.epoch < cfg_.epochs) {
    if (searching() && state_.epoch >= cfg_.force_fix_epoch) fix(search_->forced_decisions(), "forced");
    loader_->start_epoch(state_.epoch, state_.batch);
    double interval_loss = 0.0, interval_wait = 0.0, interval_comm = 0.0, epoch_loss = 0.0;
    int64_t interval_steps = 0, interval_hits = 0, interval_images = 0, epoch_steps = 0, interval_skipped = 0;
    auto interval_start = Clock::now();
    const auto epoch_start = Clock::now();
    for (;;) {
      const auto wait_start = Clock::now();
      std::optional<data::Batch> batch = loader_->next();
      interval_wait += seconds_since(wait_start);
      if (!batch) break;
      profile_.before(state_.global_step + 1);
      std::optional<ProfileRange> step_range(std::in_place, "train step");
      if (searching()) architecture_step();
      const double lr = schedule.at(state_.global_step);
      arch_->set_requires_grad(false);
      weights_->zero_grad();
      Tensor logits;
      const Tensor loss = forward_loss(*batch, &logits);
      reducer_->backward(scaler_->scale(loss));
      interval_comm += reducer_->last_wait_seconds();
      arch_->set_requires_grad(true);
      const bool stepped = scaler_->unscale(*weights_);
      Tensor squares;  // the gradients' sum of squares, if clipping measured it (read below)
      if (stepped) {
        squares = weights_->clip_gradients(cfg_.clip_grad);
        sgd_->step(lr);
        scaler_->step_taken();
      } else {
        ++interval_skipped;
        check_overflows(*scaler_, "gradients", "--lr");
      }
      // Read after the step is queued: on a GPU the host waits once per step, at its end. A
      // divergence stops before anything is saved, so the last checkpoint stays good. Gradients
      // first: they are the same on every rank (averaged), so every rank stops at the same step.
      // (With fp16 the scaler has checked them and skipped the step instead.)
      const double loss_value = loss.item();
      if (!scaler_->enabled()) {
        const double sum = squares.defined() ? squares.item() : weights_->grad_sum_squares();
        PMPL_CHECK(std::isfinite(sum),
                   "the gradients became {} at epoch {} step {} (global step {}): lower --lr or --clip-grad; the "
                   "last good checkpoint, {}/checkpoint-last.safetensors, is intact",
                   sum, state_.epoch + 1, state_.batch + 1, state_.global_step + 1, cfg_.output);
      }
      PMPL_CHECK(!stepped || std::isfinite(loss_value),
                 "the loss became {} at epoch {} step {} (global step {}): lower --lr or --clip-grad; the last "
                 "good checkpoint, {}/checkpoint-last.safetensors, is intact",
                 loss_value, state_.epoch + 1, state_.batch + 1, state_.global_step + 1, cfg_.output);
      if (searching()) {
        fix(search_->threshold_decisions(), "threshold");
        assert_same_genotype();
      }
      ++state_.global_step;
      ++state_.batch;
      step_range.reset();
      profile_.after(state_.global_step);
      interval_loss += loss_value;
      epoch_loss += loss_value;
      interval_hits += count_top_k(logits, batch->labels, 1);
      interval_images += logits.dim(0);
      ++interval_steps;
      ++epoch_steps;
      const double elapsed = seconds_since(interval_start);
      // Every process's batches are the same size: this one's images times the number of processes.
      const double img_s = static_cast<double>(interval_images * comm_.world()) / std::max(elapsed, 1e-9);
      const double eta = static_cast<double>((cfg_.epochs - state_.epoch) * steps_per_epoch - state_.batch) *
                         static_cast<double>(global_batch) / std::max(img_s, 1e-9);
      progress_.update(state_.epoch, cfg_.epochs, state_.batch, steps_per_epoch, interval_loss / interval_steps, img_s, eta);
      if (state_.global_step % cfg_.log_interval == 0 || state_.batch == steps_per_epoch) {
        if (comm_.world() > 1) {  // the interval over every process's batches
          const std::vector<double> sums = sum_over_processes(
              {interval_loss, static_cast<double>(interval_hits), static_cast<double>(interval_images)}, comm_);
          interval_loss = sums[0] / comm_.world();
          interval_hits = std::llround(sums[1]);
          interval_images = std::llround(sums[2]);
        }
        nlohmann::json line = {{"type", "step"}, {"epoch", state_.epoch}, {"step", state_.global_step},
                               {"lr", lr}, {"loss", interval_loss / interval_steps},
                               {"train_top1", static_cast<double>(interval_hits) / static_cast<double>(interval_images)},
                               {"img_per_s", img_s}, {"data_wait", interval_wait / std::max(elapsed, 1e-9)}};
        if (comm_.world() > 1) line["comm_wait"] = interval_comm / std::max(elapsed, 1e-9);
        if (device_.is_cuda()) {  // the caching allocator's high-water mark: headroom for --batch-size
          line["gpu_mem_peak_gib"] = static_cast<double>(cuda_allocator(device_.index).stats().peak_allocated) / (1 << 30);
        }
        if (scaler_->enabled()) {
          line["loss_scale"] = scaler_->value();
          line["skipped_steps"] = interval_skipped;
          if (searching() || arch_skipped_ > 0) line["arch_skipped_steps"] = arch_skipped_;
          arch_skipped_ = 0;
        }
        if (search_) line["enhancers"] = search_->report(true);
        log(line);
        if (!progress_.tty()) {
          progress_.line(fmt::format("epoch {}/{} step {}/{}  loss {:.4f}  top-1 {:.1f}%  lr {:.4g}  {:.0f} img/s  ETA {}",
                                     state_.epoch + 1, cfg_.epochs, state_.batch, steps_per_epoch,
                                     interval_loss / interval_steps, 100.0 * interval_hits / interval_images, lr, img_s,
                                     format_duration(eta)));
        }
        interval_loss = interval_wait = interval_comm = 0.0;
        interval_steps = interval_hits = interval_images = interval_skipped = 0;
        interval_start = Clock::now();
      }
      if (cfg_.max_steps > 0 && state_.global_step >= cfg_.max_steps) {
        result.steps = state_.global_step;
        return result;  // as if killed: nothing more is written
      }
      if (cfg_.save_interval > 0 && state_.global_step % cfg_.save_interval == 0) save("checkpoint-last.safetensors");
    }
    const bool last = state_.epoch + 1 == cfg_.epochs;
    if (searching() && last) fix(search_->forced_decisions(), "forced");  // the final genotype is complete
    if (comm_.world() > 1) epoch_loss = sum_over_processes({epoch_loss}, comm_)[0] / comm_.world();
    spread_state();
    nlohmann::json line = {{"type", "epoch"}, {"epoch", state_.epoch}, {"step", state_.global_step},
                           {"train_loss", epoch_loss / std::max<int64_t>(epoch_steps, 1)},
                           {"seconds", seconds_since(epoch_start)}};
    const bool evaluate_now = last || (state_.epoch + 1) % cfg_.eval_interval == 0;
    if (evaluate_now) {
      const ProfileRange range("evaluate");
      last_eval = evaluate(*model_, *val_set_, eo);
      line["val_top1"] = last_eval.top1;
      line["val_top5"] = last_eval.top5;
      line["val_loss"] = last_eval.loss;
    }
    if (search_) line["enhancers"] = search_->report(false);
    log(line);
    progress_.line(fmt::format("epoch {}/{} done in {}: train loss {:.4f}{}", state_.epoch + 1, cfg_.epochs,
                               format_duration(seconds_since(epoch_start)), epoch_loss / std::max<int64_t>(epoch_steps, 1),
                               evaluate_now ? fmt::format(", val top-1 {:.2f}% top-5 {:.2f}%", 100 * last_eval.top1,
                                                          100 * last_eval.top5)
                                            : ""));
    ++state_.epoch;
    state_.batch = 0;
    const bool best = evaluate_now && last_eval.top1 > state_.best_top1;
    if (best) state_.best_top1 = last_eval.top1;
    save("checkpoint-last.safetensors");
    if (best) save("checkpoint-best.safetensors");
  }
  if (search_ && writer()) model_->genotype().save(cfg_.output + "/genotype.json");
  result.val_top1 = last_eval.top1;
  result.val_top5 = last_eval.top5;
  result.steps = state_.global_step;
  result.completed = true;
  return result;
}

}  // namespace

nlohmann::json TrainConfig::to_json() const {
  return {{"data", data}, {"output", output}, {"resume", resume}, {"device", device}, {"model", model},
          {"width", width}, {"num_classes", num_classes}, {"small_input", small_input}, {"genotype", genotype},
          {"dropout", dropout}, {"epochs", epochs}, {"batch_size", batch_size}, {"lr", lr},
          {"warmup_epochs", warmup_epochs}, {"min_lr", min_lr}, {"weight_decay", weight_decay},
          {"momentum", momentum}, {"nesterov", nesterov}, {"label_smoothing", label_smoothing},
          {"clip_grad", clip_grad}, {"input_size", input_size}, {"crop_scale", crop_scale}, {"workers", workers}, {"seed", seed},
          {"arch_lr", arch_lr > 0 ? nlohmann::json(arch_lr) : nlohmann::json("auto")}, {"arch_betas", {arch_beta1, arch_beta2}}, {"arch_wd", arch_wd},
          {"arch_split", arch_split}, {"fix_threshold", fix_threshold}, {"force_fix_epoch", force_fix_epoch},
          {"fix_top", fix_top}, {"eval_interval", eval_interval}, {"log_interval", log_interval},
          {"save_interval", save_interval}, {"limit_train", limit_train}, {"limit_val", limit_val}, {"amp", amp},
          {"sync_bn", sync_bn}, {"bucket_mb", bucket_mb}, {"comm_timeout", comm_timeout},
          {"profile_steps", profile_steps}};
}

TrainResult run_training(const TrainConfig& config) { return Trainer(config).run(); }

}  // namespace pmpl
