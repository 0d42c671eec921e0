#include "models/deploy/int8_vector.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define PMPL_HAVE_AVX2_KERNELS 1
// Only these functions use the instructions, so a build for an older -march still runs on any
// x86-64 and calls them only where available() found AVX2.
#define PMPL_AVX2 __attribute__((target("avx2")))
#endif

namespace pmpl::deploy::avx2 {

#ifdef PMPL_HAVE_AVX2_KERNELS

bool available() {
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes;
}

namespace {

using Out = Int8OutputView;

// Lanes 0 .. count - 1 all ones: the mask of a store of fewer than 8 channels.
PMPL_AVX2 inline __m256i lanes_below(int64_t count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(count)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// 8 accumulators (offsets included) of channels ch.. to the output, `count` (<= 8) of them, as
// Int8Output defines it: the product rounded to f32, the upper clamp first (it keeps the
// conversion in range; a value too negative for int32 converts to INT32_MIN, which the clamp to lo
// treats as any negative value), rounded to nearest even (the default rounding mode).
template <bool kU8>
PMPL_AVX2 inline void emit8(__m256i acc, const Out& o, int64_t ch, int64_t count, void* dst) {
  const __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), _mm256_loadu_ps(o.scale + ch));
  if constexpr (kU8) {
    __m256i q = _mm256_cvtps_epi32(_mm256_min_ps(v, _mm256_set1_ps(o.above)));
    q = _mm256_add_epi32(q, _mm256_set1_epi32(o.zero));
    q = _mm256_min_epi32(_mm256_max_epi32(q, _mm256_set1_epi32(o.lo)), _mm256_set1_epi32(o.hi));
    // Inside [0, 255] now, so the saturating packs are exact.
    const __m128i words = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    const __m128i bytes = _mm_packus_epi16(words, words);
    uint8_t* at = static_cast<uint8_t*>(dst) + ch;
    if (count == 8) {
      _mm_storel_epi64(reinterpret_cast<__m128i*>(at), bytes);
    } else {
      alignas(16) uint8_t row[16];
      _mm_store_si128(reinterpret_cast<__m128i*>(row), bytes);
      std::memcpy(at, row, static_cast<size_t>(count));
    }
  } else {
    const __m256 y = _mm256_add_ps(v, _mm256_loadu_ps(o.bias + ch));
    float* at = static_cast<float*>(dst) + ch;
    if (count == 8) {
      _mm256_storeu_ps(at, y);
    } else {
      _mm256_maskstore_ps(at, lanes_below(count), y);
    }
  }
}

// Inputs 4g .. 4g + bytes - 1 of one pixel widened to int16, the four repeated in every 64-bit
// unit: vpmaddwd against a block's packed weights (four consecutive inputs per channel, widened)
// then gives each channel two lanes, inputs 0-1 and 2-3 of the group. `bytes` < 4 only at the
// end of a row whose k is no multiple of 4: the missing inputs meet zero weights.
template <size_t kBytes>
PMPL_AVX2 inline __m256i broadcast_group(const uint8_t* x, size_t bytes) {
  int32_t v = 0;
  std::memcpy(&v, x, kBytes == 4 ? 4 : bytes);  // a constant 4 is one load, any other a call
  return _mm256_broadcastq_epi64(_mm_cvtepu8_epi16(_mm_cvtsi32_si128(v)));
}

// Group g of kRows pixels into their accumulators (kBytes 4, or 0 for the row's last `bytes`).
template <int kRows, size_t kBytes>
PMPL_AVX2 inline void dot_group(__m256i (&acc)[kRows][4], const uint8_t* x, int64_t k, const int8_t* w, int64_t g,
                                size_t bytes) {
  __m256i xb[kRows];
  for (int r = 0; r < kRows; ++r) xb[r] = broadcast_group<kBytes>(x + r * k + 4 * g, bytes);
  for (int q = 0; q < 4; ++q) {
    const __m256i wq = _mm256_cvtepi8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(w + g * 64 + q * 16)));
    for (int r = 0; r < kRows; ++r) acc[r][q] = _mm256_add_epi32(acc[r][q], _mm256_madd_epi16(xb[r], wq));
  }
}

// The two-lanes-per-channel sums of channels 0-3 (a) and 4-7 (b) to channels 0-7 in order: the
// horizontal add works within 128-bit halves (giving 0 1 4 5 | 2 3 6 7), the permute orders them.
PMPL_AVX2 inline __m256i channels8(__m256i a, __m256i b) {
  return _mm256_permute4x64_epi64(_mm256_hadd_epi32(a, b), _MM_SHUFFLE(3, 1, 2, 0));
}

// kRows pixels by one block of 16 channels (at ch0): 4 accumulators per pixel, 4 channels with
// two lanes each. At kRows 2, 8 accumulators, 2 broadcasts and a widened weight fit the 16
// registers; 3 rows would spill.
template <int kRows, bool kU8>
PMPL_AVX2 void pointwise_tile(const uint8_t* x, int64_t k, const int8_t* w, const Out& o, int64_t ch0, int64_t n,
                              void* out, int64_t out_bytes) {
  __m256i acc[kRows][4];
  for (int r = 0; r < kRows; ++r) {
    for (int q = 0; q < 4; ++q) acc[r][q] = _mm256_setzero_si256();
  }
  const int64_t full = k / 4;
  for (int64_t g = 0; g < full; ++g) dot_group<kRows, 4>(acc, x, k, w, g, 4);
  if (k % 4 != 0) dot_group<kRows, 0>(acc, x, k, w, full, static_cast<size_t>(k % 4));
  for (int r = 0; r < kRows; ++r) {
    void* row = static_cast<char*>(out) + r * n * out_bytes;
    for (int half = 0; half < 2; ++half) {
      const int64_t ch = ch0 + 8 * half;
      if (ch >= n) break;
      const __m256i sums = _mm256_add_epi32(channels8(acc[r][2 * half], acc[r][2 * half + 1]),
                                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(o.offset + ch)));
      emit8<kU8>(sums, o, ch, std::min<int64_t>(8, n - ch), row);
    }
  }
}

constexpr int kTileRows = 2;
using TileFn = void (*)(const uint8_t*, int64_t, const int8_t*, const Out&, int64_t, int64_t, void*, int64_t);

template <bool kU8>
constexpr std::array<TileFn, kTileRows> kTiles = {&pointwise_tile<1, kU8>, &pointwise_tile<2, kU8>};

// 8 channels of a pixel, zero-extended to 32-bit lanes; only `count` (<= 8) are read. (A copy of
// `count` bytes is a call to memcpy: the whole 8 take one load.)
PMPL_AVX2 inline __m256i load8(const uint8_t* px, int64_t count) {
  if (count == 8) return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(px)));
  int64_t v = 0;
  std::memcpy(&v, px, static_cast<size_t>(count));
  return _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(v));
}

// Taps 8 channels wide, each zero-extended to a 32-bit lane: vpmaddwd multiplies the low 16 bits
// of a lane with the low 16 bits of the tap and the high halves too, and the tap's high half is 0,
// so a lane of x - zero (sign in its high half) adds exactly (x - zero) * tap.
struct Rows {
  template <int kK, bool kU8>
  PMPL_AVX2 static void row(const uint8_t* x, int64_t h, int64_t w, const PackedDepthwise& p, const Out& o,
                            int64_t oy, int64_t wo, void* out, int64_t out_bytes) {
    constexpr int pad = kK / 2;
    const int stride = p.stride;
    const int64_t c = p.channels, iy0 = oy * stride - pad;
    const bool rows_inside = iy0 >= 0 && iy0 + kK <= h;
    const __m256i zero = _mm256_set1_epi32(p.x_zero);
    for (int64_t ch = 0; ch < c; ch += 8) {
      const int64_t count = std::min<int64_t>(8, c - ch);
      __m256i taps[kK * kK];
      for (int t = 0; t < kK * kK; ++t) {
        const int16_t* tap = p.taps.data() + t * p.padded + ch;
        taps[t] = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tap)));
      }
      const __m256i inner = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.inner_offset.data() + ch));
      const __m256i border = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(o.offset + ch));
      for (int64_t ox = 0; ox < wo; ++ox) {
        const int64_t ix0 = ox * stride - pad;
        __m256i acc;
        if (rows_inside && ix0 >= 0 && ix0 + kK <= w) {
          // The zero point is in `inner` already: the window adds sum x * tap.
          acc = inner;
          for (int ky = 0; ky < kK; ++ky) {
            const uint8_t* px = x + ((iy0 + ky) * w + ix0) * c + ch;
            for (int kx = 0; kx < kK; ++kx) {
              acc = _mm256_add_epi32(acc, _mm256_madd_epi16(load8(px + kx * c, count), taps[ky * kK + kx]));
            }
          }
        } else {
          acc = border;
          for (int ky = 0; ky < kK; ++ky) {
            const int64_t iy = iy0 + ky;
            if (iy < 0 || iy >= h) continue;
            for (int kx = 0; kx < kK; ++kx) {
              const int64_t ix = ix0 + kx;
              if (ix < 0 || ix >= w) continue;  // padding is the real 0: it adds nothing
              const __m256i v = _mm256_sub_epi32(load8(x + (iy * w + ix) * c + ch, count), zero);
              acc = _mm256_add_epi32(acc, _mm256_madd_epi16(v, taps[ky * kK + kx]));
            }
          }
        }
        emit8<kU8>(acc, o, ch, count, static_cast<char*>(out) + ox * c * out_bytes);
      }
    }
  }
};


}  // namespace

void pointwise(const uint8_t* x, int64_t m, const PackedPointwise& p, void* out) {
  const int64_t n = p.n(), k = p.k(), block_bytes = p.k_groups() * 64, out_bytes = p.out().u8 ? 1 : 4;
  const int64_t row_tiles = (m + kTileRows - 1) / kTileRows, blocks = p.blocks();
  const Out o(p.out());
  const auto& tiles = p.out().u8 ? kTiles<true> : kTiles<false>;
  // Blocks outermost: a thread's tiles share one block of weights, which stays in cache while the
  // pixels stream past.
#pragma omp parallel for schedule(static) if (m * n * k > (int64_t{1} << 20))
  for (int64_t t = 0; t < row_tiles * blocks; ++t) {
    const int64_t i0 = t % row_tiles * kTileRows, b = t / row_tiles;
    const int64_t rows = std::min<int64_t>(kTileRows, m - i0);
    tiles[static_cast<size_t>(rows - 1)](x + i0 * k, k, p.weights() + b * block_bytes, o, b * 16, n,
                                         static_cast<char*>(out) + i0 * n * out_bytes, out_bytes);
  }
}

bool depthwise(const uint8_t* x, int64_t batch, int64_t h, int64_t w, const PackedDepthwise& p, void* out) {
  return depthwise_with<Rows>(x, batch, h, w, p, out);
}

#else

bool available() { return false; }
void pointwise(const uint8_t*, int64_t, const PackedPointwise&, void*) {}
bool depthwise(const uint8_t*, int64_t, int64_t, int64_t, const PackedDepthwise&, void*) { return false; }

#endif

}  // namespace pmpl::deploy::avx2
