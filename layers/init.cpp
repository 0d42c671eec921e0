#include "layers/init.h"

#include <cmath>

#include "engine/autograd.h"
#include "engine/ops.h"

namespace pmpl::init {

Tensor normal(const Shape& shape, double std, Generator& gen) {
  Tensor t = Tensor::randn(shape, gen);
  NoGradGuard no_grad;
  return ops::scale(t, std);
}

Tensor kaiming_normal_fan_out(const Shape& shape, int64_t fan_out, Generator& gen) {
  return normal(shape, std::sqrt(2.0 / static_cast<double>(fan_out)), gen);
}

}  // namespace pmpl::init
