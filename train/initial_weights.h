// `pmpl train --initial-checkpoint FILE`: fine-tuning, or searching from pretrained weights. Every
// tensor of the network takes the file's tensor of its name (a pmpl checkpoint, or torchvision
// weights converted by tools/torch_convert.py), except:
//   - the classifier's, when the file's class count differs: they keep their fresh initialisation;
//   - Meta-Pooling enhancers the file lacks (plain MobileNetV2 weights for mobilenetv2_mp): fresh,
//     which is what a new enhancer is meant to be (it starts as an affine map, docs/PMPL.md §3).
// Anything else missing or of another shape, or a tensor of the file the network lacks (other than
// optimiser state and the weights' average), is one clear error: a wrong --width or --model.
#pragma once

#include <string>

#include "engine/io/safetensors.h"
#include "layers/module.h"

namespace pmpl {

struct InitialWeights {
  int64_t loaded = 0;          // tensors taken from the file
  int64_t fresh_enhancers = 0; // enhancer tensors left at their initialisation
  bool classifier_reset = false;
  std::string summary() const;
};

InitialWeights load_initial_weights(Module& model, const TensorFile& file, const std::string& where);

}  // namespace pmpl
