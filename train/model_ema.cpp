#include "train/model_ema.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/ops.h"

namespace pmpl {
namespace {

bool averaged(const Tensor& t) { return t.dtype() == DType::kF32 || t.dtype() == DType::kF64; }

}  // namespace

ModelEma::ModelEma(Module& model, ParameterGroup& weights, ModelEmaOptions options)
    : model_(model), weights_(weights), options_(options), flat_(weights.values().clone()), buffers_(model.buffers()) {
  PMPL_CHECK(options.decay >= 0 && options.decay < 1, "--model-ema-decay {} is outside [0, 1)", options.decay);
  for (const NamedTensor& b : buffers_) averaged_.push_back(b.tensor.clone());
}

double ModelEma::decay_at(int64_t t) const {
  const int64_t step = t - 1;
  if (step <= 0) return 0.0;
  if (!options_.warmup) return options_.decay;
  return std::min(options_.decay, 1.0 - std::pow(1.0 + static_cast<double>(step), -2.0 / 3.0));
}

void ModelEma::update(int64_t t) {
  NoGradGuard no_grad;
  const double d = decay_at(t);
  ops::scale_(flat_, d);
  ops::axpy_(flat_, 1.0 - d, weights_.values());
  for (size_t i = 0; i < buffers_.size(); ++i) {
    Tensor& avg = averaged_[i];
    if (averaged(avg)) {
      ops::scale_(avg, d);
      ops::axpy_(avg, 1.0 - d, buffers_[i].tensor);
    } else {
      avg.copy_(buffers_[i].tensor);
    }
  }
}

std::map<std::string, Tensor> ModelEma::by_name() const {
  std::map<std::string, Tensor> out;
  for (size_t i = 0; i < weights_.params().size(); ++i) {
    const NamedParameter& p = weights_.params()[i];
    out[p.name] = flat_.view_slice(weights_.offset(i), p.tensor.shape());
  }
  for (size_t i = 0; i < buffers_.size(); ++i) out[buffers_[i].name] = averaged_[i];
  return out;
}

std::vector<std::pair<std::string, Tensor>> ModelEma::tensors() const {
  const std::map<std::string, Tensor> avg = by_name();
  std::vector<std::pair<std::string, Tensor>> out;
  for (const NamedTensor& t : model_.state()) {
    const auto it = avg.find(t.name);
    out.emplace_back("ema." + t.name, it != avg.end() ? it->second : t.tensor);
  }
  return out;
}

bool ModelEma::restore(const TensorFile& file, const std::string& where) {
  const std::map<std::string, Tensor> avg = by_name();
  size_t expected = 0, present = 0;
  for (const NamedTensor& t : model_.state()) {
    const auto it = avg.find(t.name);
    if (it == avg.end()) continue;  // an open alpha: not averaged
    ++expected;
    const Tensor saved = file.find("ema." + t.name);
    if (!saved.defined()) continue;
    ++present;
    PMPL_CHECK(saved.shape() == it->second.shape(), "{}: ema.{} is {}, the network's {}", where, t.name,
               saved.shape().str(), it->second.shape().str());
    Tensor dst = it->second;
    dst.copy_(saved);
  }
  PMPL_CHECK(present == 0 || present == expected, "{} holds {} of the network's {} ema. tensors: it is damaged or "
             "not pmpl's; resume from another checkpoint", where, present, expected);
  return present > 0;
}

void ModelEma::reset() {
  flat_.copy_(weights_.values());
  for (size_t i = 0; i < buffers_.size(); ++i) averaged_[i].copy_(buffers_[i].tensor);
}

void ModelEma::follow(const std::function<void()>& change) {
  NoGradGuard no_grad;
  // Copies, since on the CPU `to` returns the live tensor itself; after the change a view will do.
  const auto copy = [](const Tensor& t) { return t.to(Device::cpu()).clone(); };
  const Tensor weights_before = copy(weights_.values());
  std::vector<Tensor> buffers_before;
  for (const NamedTensor& b : buffers_) buffers_before.push_back(copy(b.tensor));
  change();
  const auto rewritten = [](const Tensor& before, const Tensor& after) {
    return std::memcmp(before.raw_data(), after.raw_data(), before.nbytes()) != 0;
  };
  const Tensor live = weights_.values();
  const Tensor weights_after = live.to(Device::cpu());
  for (size_t i = 0; i < weights_.params().size(); ++i) {
    const Shape& shape = weights_.params()[i].tensor.shape();
    const int64_t offset = weights_.offset(i);
    if (!rewritten(weights_before.view_slice(offset, shape), weights_after.view_slice(offset, shape))) continue;
    Tensor dst = flat_.view_slice(offset, shape);
    dst.copy_(live.view_slice(offset, shape));
  }
  for (size_t i = 0; i < buffers_.size(); ++i) {
    if (rewritten(buffers_before[i], buffers_[i].tensor.to(Device::cpu()))) averaged_[i].copy_(buffers_[i].tensor);
  }
}

ModelEma::Swap::Swap(ModelEma& ema) : ema_(ema), weights_(ema.weights_.values().clone()) {
  Tensor live = ema.weights_.values();
  live.copy_(ema.flat_);
  for (size_t i = 0; i < ema.buffers_.size(); ++i) {
    buffers_.push_back(ema.buffers_[i].tensor.clone());
    Tensor dst = ema.buffers_[i].tensor;
    dst.copy_(ema.averaged_[i]);
  }
}

ModelEma::Swap::~Swap() {
  Tensor live = ema_.weights_.values();
  live.copy_(weights_);
  for (size_t i = 0; i < buffers_.size(); ++i) {
    Tensor dst = ema_.buffers_[i].tensor;
    dst.copy_(buffers_[i]);
  }
}

}  // namespace pmpl
