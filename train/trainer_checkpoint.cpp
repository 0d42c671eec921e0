// The trainer's checkpoints (write, resume), its config.json and the state every process must
// share.
#include <filesystem>
#include <limits>
#include <map>

#include <fmt/format.h>

#include "layers/weights.h"
#include "train/metadata_fields.h"
#include "train/trainer_impl.h"

namespace pmpl::trainer {

namespace fs = std::filesystem;

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
  for (const auto& [name, t] : optimizer_->state()) tensors.emplace_back("optim.weights." + name, t);
  if (ema_) {
    for (auto& named : ema_->tensors()) tensors.push_back(std::move(named));
  }
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
  trainer["weight_optimizer"] = optimizer_->name();
  trainer["weight_optimizer_steps"] = optimizer_->steps();
  trainer["adam_steps"] = search_ ? search_->adam().steps() : 0;
  std::map<std::string, std::string> meta = {{"pmpl.model", description_.to_json().dump()},
                                             {"pmpl.trainer", trainer.dump()},
                                             {"pmpl.classes", nlohmann::json(train_set_->classes()).dump()},
                                             {"pmpl.input_size", std::to_string(cfg_.input_size)},
                                             {"pmpl.version", PMPL_VERSION}};
  if (search_) meta["pmpl.fixed"] = model_->genotype().to_json().dump();
  const bool last = file == kLastCheckpoint;
  try {
    save_safetensors(cfg_.output + "/" + file, tensors, meta, last ? cfg_.output + "/" + kPreviousCheckpoint : "");
  } catch (const Error& e) {
    if (cfg_.on_save_error != "warn") {
      throw Error(fmt::format("{}; the run stops at epoch {} step {}: make room, then continue it with --resume {} "
                              "(or pass --on-save-error warn to train on without checkpoints that fail)",
                              e.what(), state_.epoch + 1, state_.global_step, cfg_.output));
    }
    progress_.line(fmt::format("warning: {}; training goes on (--on-save-error warn)", e.what()));
    log({{"event", "save_failed"}, {"file", file}, {"step", state_.global_step}, {"error", e.what()}});
  }
}

// The checkpoint to resume: a file as named, or a run folder's last checkpoint. When that one
// cannot be read (damaged, truncated, missing after a kill between two renames), the one before it:
// the damaged file is kept beside it as *.damaged, so the next save does not rotate it into place.
TensorFile Trainer::load_checkpoint(const std::string& path_in, std::string& path) {
  if (!fs::is_directory(path_in)) {
    path = path_in;
    return load_safetensors(path);
  }
  path = path_in + "/" + kLastCheckpoint;
  const std::string previous = path_in + "/" + kPreviousCheckpoint;
  std::string why;
  try {
    return load_safetensors(path);
  } catch (const Error& e) {
    if (!fs::exists(previous)) throw;
    why = e.what();
  }
  TensorFile file;
  try {
    file = load_safetensors(previous);
  } catch (const Error& e) {
    PMPL_CHECK(false, "{} holds no readable checkpoint: {}; and {}", path_in, why, e.what());
  }
  if (writer() && fs::exists(path)) fs::rename(path, path + ".damaged");
  progress_.line(fmt::format("warning: {}; resuming from the checkpoint before it, {}{}", why, previous,
                             fs::exists(path + ".damaged") ? fmt::format(" ({} kept as {}.damaged)", path, path) : ""));
  resume_warning_ = {{"event", "resume_fallback"}, {"error", why}, {"checkpoint", previous}};
  path = previous;
  return file;
}

void Trainer::resume(const std::string& path_in) {
  std::string path;
  const TensorFile file = load_checkpoint(path_in, path);
  try {
    restore(file, path);
  } catch (const nlohmann::json::exception& e) {
    // Intact bytes (the checksum held) but metadata pmpl's trainer never writes: a foreign file.
    PMPL_CHECK(false, "{}: its pmpl metadata is malformed ({}); it was not written by pmpl's trainer: resume from "
                      "another checkpoint", path, e.what());
  }
}

void Trainer::restore(const TensorFile& file, const std::string& path) {
  PMPL_CHECK(file.metadata.count("pmpl.trainer") && describes_model(file),
             "{} is not a pmpl training checkpoint (no pmpl.trainer metadata)", path);
  const ModelDescription saved =
      ModelDescription::from_json(nlohmann::json::parse(file.metadata.at("pmpl.model")), path);
  PMPL_CHECK(saved.to_json() == description_.to_json(),
             "{} was trained with another network ({}); resume with the same --model, --width, --num-classes, "
             "--small-input, --dropout, --seed, --genotype and --gate", path, saved.to_json().dump());
  if (file.metadata.count("pmpl.fixed")) {
    const Genotype fixed = Genotype::from_json(nlohmann::json::parse(file.metadata.at("pmpl.fixed")), path);
    apply_fixed(*model_, fixed, path);
    PMPL_ASSERT(search_ != nullptr, "{}: a search's checkpoint for a network that does not search", path);
    search_->deactivate_fixed();
  }
  load_weights(*model_, file, path);
  const nlohmann::json trainer = nlohmann::json::parse(file.metadata.at("pmpl.trainer"));
  state_ = TrainerState::from_json(trainer, path + " (pmpl.trainer)");
  restore_optimizer(file, trainer, path);
  if (ema_) {
    if (!ema_->restore(file, path)) {
      ema_->reset();
      progress_.line(fmt::format("warning: {} was saved without --model-ema: the average starts from its weights",
                                 path));
    }
  }
  if (search_) {
    search_->adam().restore(file.find("optim.arch.m"), file.find("optim.arch.v"),
                            metadata::integer(trainer, "adam_steps", 0, std::numeric_limits<int64_t>::max(),
                                              path + " (pmpl.trainer)"));
  }
  model_->dropout_generator().set_state(state_.dropout_seed, state_.dropout_offset);
  scaler_->restore(state_.loss_scaled, state_.loss_scale, state_.loss_scale_good);
  if (search_) search_->scaler().restore(state_.loss_scaled, state_.arch_loss_scale, state_.arch_loss_scale_good);
}

// The weights' optimiser state; checkpoints from before --opt hold SGD's under "sgd_steps".
void Trainer::restore_optimizer(const TensorFile& file, const nlohmann::json& trainer, const std::string& path) {
  const std::string where = path + " (pmpl.trainer)";
  const std::string saved = trainer.contains("weight_optimizer") ? metadata::text(trainer, "weight_optimizer", where) : "sgd";
  PMPL_CHECK(saved == optimizer_->name(), "{} was trained with --opt {}; resume it with --opt {}", path, saved, saved);
  std::vector<Tensor> state;
  for (const auto& [name, t] : optimizer_->state()) {
    const std::string key = "optim.weights." + name;
    state.push_back(file.find(key));
    PMPL_CHECK(state.back().defined(), "{} holds no {} (a checkpoint of --opt {} has it): resume from another one",
               path, key, saved);
  }
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  const int64_t steps = trainer.contains("weight_optimizer_steps")
                            ? metadata::integer(trainer, "weight_optimizer_steps", 0, kMax, where)
                            : metadata::integer(trainer, "sgd_steps", 0, kMax, where);
  optimizer_->restore(state, steps);
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

}  // namespace pmpl::trainer
