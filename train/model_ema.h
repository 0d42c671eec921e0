// Weight EMA (`pmpl train --model-ema`), timm's ModelEmaV3: after every optimiser step each weight
// and each floating-point buffer (the batchnorm statistics) moves towards the network's,
// ema = d * ema + (1 - d) * live; integer buffers are copied. The decay at update t (the
// optimiser's step count) is 0 at the first update (the average starts as a copy), then `decay`,
// or with warm-up min(decay, 1 - (1 + t - 1)^(-2/3)) (timm's use_warmup, gamma 1, power 2/3), so a
// short run is not dominated by its initialisation. The alphas of a search are not averaged:
// they are the search's state, not weights, and an evaluation of the average uses the live ones.
// The weights are averaged in one flat buffer beside the ParameterGroup's (one update for all).
// The buffers are the network's when the average is made: a fix later drops an unchosen strip
// candidate's statistics (still averaged, never saved) and freezes an alpha into a buffer (saved
// as its live value, which no longer moves). A fix also rewrites live tensors (batchnorm
// statistics re-estimated for the fixed network, a removed enhancer's scale folded into the next
// convolution): `follow` gives the average those tensors as the fix left them, since an average
// of their values before it describes a network that no longer exists.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/io/safetensors.h"
#include "layers/module.h"
#include "train/parameters.h"

namespace pmpl {

struct ModelEmaOptions {
  double decay = 0.9998;
  bool warmup = false;
};

class ModelEma {
 public:
  ModelEma(Module& model, ParameterGroup& weights, ModelEmaOptions options);
  // The decay of update `t` (1-based), as above.
  double decay_at(int64_t t) const;
  void update(int64_t t);
  // The averaged network as checkpoint tensors, "ema." + each of the model's state names (an
  // open alpha: its live value).
  std::vector<std::pair<std::string, Tensor>> tensors() const;
  // From a checkpoint's "ema." tensors; false when it has none (a run saved without EMA).
  bool restore(const TensorFile& file, const std::string& where);
  // The average becomes the live network (resuming a run saved without EMA).
  void reset();
  // Runs `change` (a search's fix) on the live network; each weight or buffer it rewrote (any
  // value's bits differ) is then copied into the average, the others keep theirs.
  void follow(const std::function<void()>& change);

  // While alive, the network holds the averaged weights and buffers; the live ones come back at
  // its end (an evaluation of the average).
  class Swap {
   public:
    explicit Swap(ModelEma& ema);
    ~Swap();
    Swap(const Swap&) = delete;
    Swap& operator=(const Swap&) = delete;

   private:
    ModelEma& ema_;
    Tensor weights_;
    std::vector<Tensor> buffers_;
  };

 private:
  // The averaged tensor of each of the model's state names (slices of flat_ for the weights).
  std::map<std::string, Tensor> by_name() const;

  Module& model_;
  ParameterGroup& weights_;
  ModelEmaOptions options_;
  Tensor flat_;
  std::vector<NamedTensor> buffers_;  // the live buffers, as when the average was made
  std::vector<Tensor> averaged_;      // their averages, in the same order
};

}  // namespace pmpl
