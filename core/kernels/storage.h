// Storage and compute types of the shared per-element kernels: f32 and f64 compute as
// themselves; bf16 and f16 (mixed precision on a GPU) are loaded to f32, computed in f32, and
// rounded once when the caller stores the result.
#pragma once

#include <cstring>

#include "core/half.h"

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

// V consecutive channels moved as one aligned access (16 bytes for 4 f32 or 8 bf16/f16 on a
// GPU). The caller keeps i a multiple of V and the base pointer aligned to V elements.
template <class S, int V>
struct alignas(sizeof(S) * V) ChannelPack {
  S v[V];
};

// (On the host, memcpy: the same bytes without aliasing S as a pack.)
template <int V, class S, class T = compute_t<S>>
PMPL_HD void load_channels(const S* p, int64_t i, T (&out)[V]) {
  ChannelPack<S, V> pack;
#if defined(__CUDA_ARCH__)
  pack = *reinterpret_cast<const ChannelPack<S, V>*>(p + i);
#else
  std::memcpy(&pack, p + i, sizeof(pack));
#endif
  for (int j = 0; j < V; ++j) out[j] = static_cast<T>(pack.v[j]);
}

template <int V, class S, class T>
PMPL_HD void store_channels(S* p, int64_t i, const T (&values)[V]) {
  ChannelPack<S, V> pack;
  for (int j = 0; j < V; ++j) pack.v[j] = S(values[j]);
#if defined(__CUDA_ARCH__)
  *reinterpret_cast<ChannelPack<S, V>*>(p + i) = pack;
#else
  std::memcpy(p + i, &pack, sizeof(pack));
#endif
}

}  // namespace pmpl::kernels
