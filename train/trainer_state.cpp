#include "train/trainer_state.h"

#include <limits>

#include "train/metadata_fields.h"

namespace pmpl::trainer {

nlohmann::json TrainerState::to_json() const {
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

TrainerState TrainerState::from_json(const nlohmann::json& j, const std::string& where) {
  using namespace metadata;
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  constexpr double kHuge = std::numeric_limits<double>::max();
  TrainerState s;
  s.epoch = integer(j, "epoch", 0, kMax, where);
  s.batch = integer(j, "batch", 0, kMax, where);
  s.global_step = integer(j, "global_step", 0, kMax, where);
  s.arch_epoch = integer(j, "arch_epoch", 0, kMax, where);
  s.arch_batch = integer(j, "arch_batch", 0, kMax, where);
  s.best_top1 = number(j, "best_top1", -1.0, 1.0, where);
  s.dropout_seed = unsigned_integer(j, "dropout_seed", where);
  s.dropout_offset = unsigned_integer(j, "dropout_offset", where);
  // Absent in older checkpoints: those resume with the initial scales.
  s.loss_scaled = boolean_or(j, "loss_scaled", false, where);
  s.loss_scale = number_or(j, "loss_scale", 0.0, kHuge, 1.0, where);
  s.loss_scale_good = integer_or(j, "loss_scale_good", 0, kMax, 0, where);
  s.arch_loss_scale = number_or(j, "arch_loss_scale", 0.0, kHuge, 1.0, where);
  s.arch_loss_scale_good = integer_or(j, "arch_loss_scale_good", 0, kMax, 0, where);
  return s;
}

}  // namespace pmpl::trainer
