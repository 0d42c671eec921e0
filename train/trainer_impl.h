// The Trainer behind run_training (train/trainer.h), shared by the files that implement it, one
// job each:
//   trainer.cpp             the epoch loop (run) and TrainConfig's JSON
//   trainer_setup.cpp       flags checked, device, network, optimiser, loaders
//   trainer_step.cpp        the weight step: forward, backward, clipping, SGD, divergence checks
//   trainer_search.cpp      the architecture step and fixing enhancers
//   trainer_log.cpp         the start line, progress, step log lines
//   trainer_checkpoint.cpp  save, resume, config.json, state spread over processes
//   trainer_eval.cpp        the end of an epoch: evaluation, its log line, best checkpoint
// Not for use outside train/trainer*.cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/image_folder.h"
#include "data/loader.h"
#include "engine/comm.h"
#include "engine/profile.h"
#include "train/checkpoint.h"
#include "train/data_parallel.h"
#include "train/evaluate.h"
#include "train/loss_scale.h"
#include "train/parameters.h"
#include "train/progress.h"
#include "train/search.h"
#include "train/initial_weights.h"
#include "train/model_ema.h"
#include "train/schedule.h"
#include "train/weight_optimizer.h"
#include "train/trainer.h"
#include "train/trainer_state.h"

namespace pmpl::trainer {

using Clock = std::chrono::steady_clock;

// A run's folder holds its last checkpoint and the one before it, so a damaged last one (a bad
// disk, a partial copy) costs one save interval, not the run.
inline constexpr const char* kLastCheckpoint = "checkpoint-last.safetensors";
inline constexpr const char* kPreviousCheckpoint = "checkpoint-prev.safetensors";

inline double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// What is summed between two step log lines.
struct StepInterval {
  double loss = 0.0, wait = 0.0, comm = 0.0;  // wait: for the loader; comm: for gradient all-reduces
  int64_t steps = 0, hits = 0, images = 0, skipped = 0;
  Clock::time_point start = Clock::now();
};

// The current epoch's sums, for its log line.
struct EpochTotals {
  double loss = 0.0;
  int64_t steps = 0;
  Clock::time_point start = Clock::now();
};

class Trainer {
 public:
  explicit Trainer(const TrainConfig& config);
  TrainResult run();

 private:
  // trainer_setup.cpp
  void prepare();
  void choose_device();
  void make_loaders(bool search);
  EvalOptions eval_options() const;
  // trainer_step.cpp
  Tensor forward_loss(const data::Batch& batch, Tensor* logits);
  void begin_update();
  Tensor accumulate(const data::Batch& batch, double weight, bool last, StepInterval& interval, Tensor* logits);
  double finish_update(const std::vector<Tensor>& losses, double lr, StepInterval& interval);
  void check_overflows(const LossScaler& scaler, const char* what, const char* lr_flag) const;
  // trainer_search.cpp
  bool searching() const { return search_ && search_->open(); }
  // Whether this step moves the alphas (a search, from --arch-start-epoch on).
  bool alphas_move() const { return searching() && state_.epoch >= cfg_.arch_start_epoch; }
  data::Batch next_arch_batch();
  void architecture_step();
  // The forced fix's decisions, by --select.
  std::vector<FixDecision> forced_decisions();
  void fix(const std::vector<FixDecision>& decisions, const char* why);
  void assert_same_genotype();
  // trainer_log.cpp
  void log(const nlohmann::json& line);
  void print_start(bool resuming);
  void report_step(StepInterval& interval, double lr);
  // trainer_checkpoint.cpp
  void save(const std::string& file);
  void resume(const std::string& path);
  TensorFile load_checkpoint(const std::string& path_in, std::string& path);
  void restore(const TensorFile& file, const std::string& path);
  void restore_optimizer(const TensorFile& file, const nlohmann::json& trainer, const std::string& path);
  void write_config();
  void spread_state();
  // trainer_eval.cpp
  void end_epoch(const EpochTotals& totals, EvalResult& last_eval);

  bool writer() const { return comm_.rank() == 0; }  // the one process that logs and saves
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
  std::shared_ptr<Network> model_;
  std::unique_ptr<ParameterGroup> weights_, arch_;
  std::unique_ptr<WeightOptimizer> optimizer_;
  std::unique_ptr<LrSchedule> schedule_;
  std::unique_ptr<ModelEma> ema_;  // --model-ema
  std::string initial_weights_line_;  // what --initial-checkpoint loaded, printed at the start
  std::unique_ptr<GradientReducer> reducer_;
  std::unique_ptr<ArchitectureSearch> search_;  // null unless searching
  std::unique_ptr<data::Loader> loader_, arch_loader_;
  int64_t train_images_ = 0, arch_images_ = 0, steps_per_epoch_ = 0;
  int64_t updates_per_epoch_ = 0;  // optimiser steps: steps_per_epoch_ batches in groups of --grad-accum
  double arch_lr_ = 0.0;  // resolved (--arch-lr auto)
  TrainerState state_;
  nlohmann::json resume_warning_;  // a fallback to the previous checkpoint, logged once the log is open
  ModelDescription description_;
  std::ofstream log_;
};

}  // namespace pmpl::trainer
