// Where a training run stands (a checkpoint's pmpl.trainer metadata): everything a resumed run
// needs besides tensors. Read with every field type- and range-checked (train/metadata_fields.h),
// so a damaged or foreign file is one clear line.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace pmpl::trainer {

struct TrainerState {
  int64_t epoch = 0;        // the epoch in progress
  int64_t batch = 0;        // its next batch
  int64_t global_step = 0;  // optimiser steps so far
  int64_t arch_epoch = 0;   // the architecture loader's position
  int64_t arch_batch = 0;
  double best_top1 = -1.0;
  uint64_t dropout_seed = 0, dropout_offset = 0;
  // fp16's dynamic loss scales (weights, and the architecture step's own) and their good steps in
  // a row; loss_scaled says the run scaled at all (fp16), so another --amp restores none of it.
  bool loss_scaled = false;
  double loss_scale = 1.0, arch_loss_scale = 1.0;
  int64_t loss_scale_good = 0, arch_loss_scale_good = 0;

  nlohmann::json to_json() const;
  // `where` names the file in errors.
  static TrainerState from_json(const nlohmann::json& j, const std::string& where);
};

}  // namespace pmpl::trainer
