// Counter-based random numbers (Philox4x32-10, Salmon et al. 2011). A draw is a pure function of
// (seed, counter), so the CPU and a CUDA kernel produce the same stream, any element can be drawn
// independently (parallel loops, recomputed dropout masks), and a generator's whole state is two
// integers (trivial to checkpoint and resume).
#pragma once

#include <cmath>
#include <cstdint>

#include "core/hd.h"

namespace pmpl {

struct Philox4 {
  uint32_t v[4];
};

// The full generator: 128-bit counter, 64-bit key (Random123's philox4x32 with 10 rounds).
PMPL_HD Philox4 philox4x32_raw(Philox4 counter, uint32_t k0, uint32_t k1) {
  uint32_t c0 = counter.v[0], c1 = counter.v[1], c2 = counter.v[2], c3 = counter.v[3];
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0;
    const uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2;
    const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<uint32_t>(p1);
    c3 = static_cast<uint32_t>(p0);
    c0 = n0;
    c2 = n2;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {{c0, c1, c2, c3}};
}

// splitmix64's finaliser (Steele et al. 2014): a fixed bijection of 64-bit integers, for seeded
// choices that must be the same with every compiler and standard library (std::shuffle's are not).
PMPL_HD uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Key = seed, counter = (counter, 0): the form every pmpl stream uses.
PMPL_HD Philox4 philox4x32(uint64_t seed, uint64_t counter) {
  const Philox4 c{{static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32), 0u, 0u}};
  return philox4x32_raw(c, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// Uniform in [0, 1) with 24 random bits: exactly representable in f32.
PMPL_HD float bits_to_unit(uint32_t bits) { return static_cast<float>(bits >> 8) * 0x1p-24f; }

// The i-th uniform of the stream that starts at `offset`: four draws per Philox call.
PMPL_HD float philox_uniform(uint64_t seed, uint64_t offset, uint64_t i) {
  const Philox4 r = philox4x32(seed, offset + i / 4);
  return bits_to_unit(r.v[i % 4]);
}

// The i-th standard normal of the stream at `offset` (Box-Muller on one Philox call's lanes).
PMPL_HD float philox_normal(uint64_t seed, uint64_t offset, uint64_t i) {
  const Philox4 r = philox4x32(seed, offset + i / 2);
  const uint32_t lane = static_cast<uint32_t>(i % 2) * 2;
  const float u1 = 1.0f - bits_to_unit(r.v[lane]);  // (0, 1]: log stays finite
  const float u2 = bits_to_unit(r.v[lane + 1]);
  const float radius = sqrtf(-2.0f * logf(u1));
  return radius * cosf(6.283185307179586f * u2);
}

// A stream position: `take(n)` hands out a fresh range of n draws and moves past it.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0, uint64_t offset = 0) : seed_(seed), offset_(offset) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset) {
    seed_ = seed;
    offset_ = offset;
  }
  // Offset of a fresh range of n draws; the generator moves past it. (Reserves one counter per
  // draw, more than the 1/4 or 1/2 needed, so that a range never depends on how it is drawn.)
  uint64_t take(uint64_t n) {
    const uint64_t start = offset_;
    offset_ += n;
    return start;
  }
  float uniform() { return philox_uniform(seed_, take(1), 0); }

 private:
  uint64_t seed_;
  uint64_t offset_;
};

}  // namespace pmpl
