// Checkpoints and trained weights: safetensors files holding the network's tensors under their
// own names (so any of them loads as plain weights), optimiser state under "optim.*", and in the
// metadata what is needed to rebuild and resume:
//   pmpl.model    {"name", "width", "num_classes", "small_input", "dropout", "seed", "genotype"}
//   pmpl.fixed    the genotype of a searching network's enhancers fixed so far
//   pmpl.trainer  the training position (epoch, batch, step, loader and RNG positions, best top-1)
//   pmpl.classes  the class names, in label order
//   pmpl.input_size  the image side the network was trained at
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/io/safetensors.h"
#include "models/registry.h"
#include "train/model_description.h"

namespace pmpl {

// Fixes a searching network's enhancers as `fixed` lists (entries with no ops stay open), or
// removes them: the structure of a checkpoint's network, before its weights are loaded.
void apply_fixed(Network& model, const Genotype& fixed, const std::string& where);

// Rebuilds the network a pmpl checkpoint or weights file describes (with its enhancers fixed as
// recorded) and loads its tensors; with `ema`, the average of its weights a --model-ema run saved
// beside them ("ema." + each name). pmpl::Error if the file has no pmpl.model metadata, or no
// average when one is asked for.
std::shared_ptr<Network> load_model_from_file(const std::string& path, bool ema = false);

// The checkpoint's "ema." tensors under the network's names (pmpl::Error naming `where` if it has none).
TensorFile ema_weights(const TensorFile& file, const std::string& where);

// True when `file` carries pmpl.model metadata (a checkpoint or exported weights of pmpl's).
bool describes_model(const TensorFile& file);

}  // namespace pmpl
