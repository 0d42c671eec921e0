// NumPy .npy files (format 1.0-3.0, little-endian, C order): how `pmpl forward` exchanges
// arrays with Python users.
#pragma once

#include <string>

#include "engine/tensor.h"

namespace pmpl {

// Reads f32, f64, i32, i64 or u8 arrays of up to 5 dimensions; anything else, and any malformed
// or truncated file, is a pmpl::Error naming the file.
Tensor load_npy(const std::string& path);
// Writes a CPU copy of `t` (temporary file, then rename).
void save_npy(const std::string& path, const Tensor& t);

}  // namespace pmpl
