// One image file through the evaluation transform (shorter side resized to size / 0.875, the
// centre size x size cropped), with the loader's own steps and options: what `pmpl infer` gives
// the deployment runtime, so that infer and `pmpl eval` see the same bytes for the same file.
#pragma once

#include <string>
#include <vector>

#include "data/image_decode.h"
#include "data/resample.h"
#include "engine/tensor.h"

namespace pmpl::data {

class EvalImageReader {
 public:
  // `pillow_exact` as LoaderOptions::pillow_exact (full-size JPEG decoding).
  explicit EvalImageReader(int size, bool pillow_exact = false);

  // uint8 RGB [1, size, size, 3]. pmpl::Error naming the file when it cannot be read or decoded.
  Tensor read(const std::string& path);

 private:
  int size_;
  bool pillow_exact_;
  std::vector<uint8_t> file_;
  DecodedRegion region_;
  ResampleScratch scratch_;
};

}  // namespace pmpl::data
