// cast: the dtype conversions of mixed precision, recorded so gradients flow back converted.
#include "engine/ops/op_util.h"

namespace pmpl::ops {

Tensor cast(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  PMPL_CHECK(is_floating(x.dtype()) && is_floating(dtype), "cast: {} to {}: only floating dtypes convert here",
             dtype_name(x.dtype()), dtype_name(dtype));
  Tensor y = x.detach().to(dtype);
  if (needs_grad({&x})) {
    record("cast", {&x}, {y}, [from = x.dtype()](const Tensors& g) -> Tensors { return {g[0].to(from)}; });
  }
  return y;
}

}  // namespace pmpl::ops
