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

// Writes to a temporary file next to `path`, syncs it to the disk and renames it into place, so a
// crash never leaves a partial file; a failed write (a full disk) removes the temporary file,
// leaves `path` as it was and is a pmpl::Error. With `keep_previous_as`, an existing `path` is
// renamed to it first (a kill between the two renames leaves the old file under that name). The
// metadata gains "pmpl.crc32", zlib's CRC-32 of the header (its digits
// zeroed) and the data, which load_safetensors checks. Tensors are copied from any device; names
// must be unique.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {},
                      const std::string& keep_previous_as = "");

// Loads every tensor to the CPU. A missing, truncated, corrupt or foreign file, or one whose
// "pmpl.crc32" does not match its bytes, is a pmpl::Error naming the file and what is wrong; no
// read goes past the end of the file. Files without a checksum (other writers') load unchecked.
TensorFile load_safetensors(const std::string& path);

}  // namespace pmpl
