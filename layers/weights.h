// Saving and loading a module's parameters and buffers as a safetensors file, by name.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "engine/io/safetensors.h"
#include "layers/module.h"

namespace pmpl {

void save_weights(const Module& module, const std::string& path,
                  const std::map<std::string, std::string>& metadata = {});

// Copies every tensor of `module` from `file` (converted to the module's dtype). Tensors named
// "optim.*" and "ema.*" (a checkpoint's optimiser state and average of the weights) are ignored. A tensor the module has but the file
// lacks, one the file has but the module lacks, or a shape mismatch is a
// pmpl::Error naming the first few and `where` (the file) — usually a --model/--width/
// --num-classes/--genotype that differs from the one the weights were trained with.
void load_weights(Module& module, const TensorFile& file, const std::string& where);
void load_weights(Module& module, const std::string& path);

// A checkpoint's tensor that is not part of the network: "optim.*" or "ema.*".
bool is_training_state(const std::string& name);
// "a, b, c and 4 more": the first names of a list, for an error.
std::string first_few(const std::vector<std::string>& names);

}  // namespace pmpl
