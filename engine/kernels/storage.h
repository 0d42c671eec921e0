// Storage and compute types of the shared per-element kernels: f32 and f64 compute as
// themselves; bf16 and f16 (mixed precision on a GPU) are loaded to f32, computed in f32, and
// rounded once when the caller stores the result.
#pragma once

#include "engine/half.h"

namespace pmpl::kernels {

template <class S>
struct Compute {
  using type = S;
};
template <>
struct Compute<bf16> {
  using type = float;
};
template <>
struct Compute<f16> {
  using type = float;
};
template <class S>
using compute_t = typename Compute<S>::type;

template <class S>
PMPL_HD compute_t<S> load_value(const S* p, int64_t i) {
  return static_cast<compute_t<S>>(p[i]);
}

}  // namespace pmpl::kernels
