// Safetensors files, read and written by pmpl itself (https://huggingface.co/docs/safetensors):
// an 8-byte little-endian header length, a JSON header {name: {"dtype", "shape",
// "data_offsets": [begin, end]}, "__metadata__": {string: string}}, then the raw data. Python
// users open them with the `safetensors` package or tools/torch_convert.py.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace pmpl {

struct TensorFile {
  std::vector<std::pair<std::string, Tensor>> tensors;  // in file order
  std::map<std::string, std::string> metadata;
  // The tensor named `name`, or an undefined Tensor.
  Tensor find(const std::string& name) const;
};

// Writes to a temporary file next to `path` and renames it, so a crash never leaves a partial
// file. Tensors are copied from any device; names must be unique.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Loads every tensor to the CPU. A missing, truncated, corrupt or foreign file is a pmpl::Error
// naming the file and what is wrong; no read goes past the end of the file.
TensorFile load_safetensors(const std::string& path);

}  // namespace pmpl
