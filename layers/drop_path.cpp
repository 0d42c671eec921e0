#include "layers/drop_path.h"

#include <vector>

#include "engine/error.h"
#include "engine/ops.h"

namespace pmpl {

Tensor drop_path(const Tensor& branch, double p, Generator& gen) {
  PMPL_CHECK(branch.rank() == 4, "drop_path expects [N, H, W, C], got {}", branch.shape().str());
  const int64_t n = branch.dim(0);
  const double keep = 1.0 - p;
  const uint64_t offset = gen.take(static_cast<uint64_t>(n));
  std::vector<float> mask(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const float u = philox_uniform(gen.seed(), offset, static_cast<uint64_t>(i));
    mask[static_cast<size_t>(i)] = u < keep ? static_cast<float>(1.0 / keep) : 0.0f;
  }
  const Tensor m = Tensor::from_vector(mask, Shape{n, 1, 1, 1}).to(branch.dtype()).to(branch.device());
  return ops::mul(branch, m);
}

}  // namespace pmpl
