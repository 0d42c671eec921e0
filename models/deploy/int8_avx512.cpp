#include "models/deploy/int8_vector.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's own AVX-512 headers start their conversions from _mm512_undefined_*(), which its
// uninitialised-use analysis then reports at every call; nothing in this file is read unset.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#define PMPL_HAVE_AVX512_KERNELS 1
// Only these functions use the instructions: the file is compiled for the project's -march, so
// nothing else here (a std:: template the linker might pick for the whole program) can.
#define PMPL_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#endif

namespace pmpl::deploy::avx512 {

#ifdef PMPL_HAVE_AVX512_KERNELS

bool available() {
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  return yes;
}

namespace {

using Out = Int8OutputView;

__mmask16 channel_mask(int64_t left) { return left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1); }

// 16 accumulators (offsets included) of channels ch.. to int32 q = round(v) + zero, not yet
// clamped. The upper clamp keeps the conversion in range; a value too negative for int32
// converts to INT32_MIN, which the clamp to lo then treats as any negative value.
PMPL_VNNI inline __m512i requantize16(__m512i acc, const Out& o, int64_t ch) {
  const __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), _mm512_loadu_ps(o.scale + ch));
  const __m512i q = _mm512_cvt_roundps_epi32(_mm512_min_ps(v, _mm512_set1_ps(o.above)),
                                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return _mm512_add_epi32(q, _mm512_set1_epi32(o.zero));
}

// 16 channels (from `ch`) of one pixel whose accumulators hold their offsets, to `dst` (that
// pixel's row of outputs), the lanes of `mask` only.
template <bool kU8>
PMPL_VNNI inline void emit16(__m512i acc, const Out& o, int64_t ch, __mmask16 mask, void* dst) {
  if constexpr (kU8) {
    __m512i q = requantize16(acc, o, ch);
    q = _mm512_min_epi32(_mm512_max_epi32(q, _mm512_set1_epi32(o.lo)), _mm512_set1_epi32(o.hi));
    _mm_mask_storeu_epi8(static_cast<uint8_t*>(dst) + ch, mask, _mm512_cvtepi32_epi8(q));
  } else {
    const __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), _mm512_loadu_ps(o.scale + ch));
    _mm512_mask_storeu_ps(static_cast<float*>(dst) + ch, mask, _mm512_add_ps(v, _mm512_loadu_ps(o.bias + ch)));
  }
}

// Up to 64 channels (kBlocks blocks from ch0) of one pixel to uint8 with one store: two
// saturating packs put the four blocks' values in byte order within each 128-bit lane, a
// permute puts the lanes in order, and the clamp to [lo, hi] runs on bytes (0 <= lo, hi <= 255,
// so the packs' saturation to [0, 255] changes nothing it would not).
template <int kBlocks>
PMPL_VNNI inline void emit64_u8(const __m512i* acc, const Out& o, int64_t ch0, int64_t n, uint8_t* dst) {
  __m512i q[4];
  for (int b = 0; b < 4; ++b) q[b] = b < kBlocks ? requantize16(acc[b], o, ch0 + 16 * b) : _mm512_setzero_si512();
  const __m512i bytes = _mm512_packus_epi16(_mm512_packs_epi32(q[0], q[1]), _mm512_packs_epi32(q[2], q[3]));
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  __m512i out = _mm512_permutexvar_epi32(order, bytes);
  out = _mm512_min_epu8(_mm512_max_epu8(out, _mm512_set1_epi8(static_cast<char>(o.lo))),
                        _mm512_set1_epi8(static_cast<char>(o.hi)));
  // This tile's channels only: the next tile (another thread's, perhaps) owns those after them.
  const int64_t left = std::min<int64_t>(n - ch0, 16 * kBlocks);
  const __mmask64 mask = left >= 64 ? ~__mmask64(0) : (__mmask64(1) << left) - 1;
  _mm512_mask_storeu_epi8(dst + ch0, mask, out);
}

// k-group g (inputs 4g to 4g + bytes - 1) of kRows pixels into their accumulators: one 64-byte
// load per block, one broadcast per pixel. `bytes` < 4 only at the end of a row whose k is no
// multiple of 4: the missing inputs meet zero weights, and nothing past the row is read.
template <int kRows, int kBlocks>
PMPL_VNNI inline void dot_group(__m512i (&acc)[kRows][kBlocks], const uint8_t* x, int64_t k, const int8_t* w,
                                int64_t block_bytes, int64_t g, size_t bytes) {
  __m512i wb[kBlocks];
  for (int b = 0; b < kBlocks; ++b) wb[b] = _mm512_load_si512(w + b * block_bytes + g * 64);
  for (int r = 0; r < kRows; ++r) {
    int32_t v = 0;
    std::memcpy(&v, x + r * k + 4 * g, bytes);
    const __m512i a = _mm512_set1_epi32(v);
    for (int b = 0; b < kBlocks; ++b) acc[r][b] = _mm512_dpbusd_epi32(acc[r][b], a, wb[b]);
  }
}

// A tile of kRows pixels by kBlocks blocks of 16 channels: kRows * kBlocks accumulators (at most
// 24 of the 32 registers, beside kBlocks of weights and one broadcast).
template <int kRows, int kBlocks, bool kU8>
PMPL_VNNI void pointwise_tile(const uint8_t* x, int64_t k, const int8_t* w, int64_t block_bytes, const Out& o,
                              int64_t ch0, int64_t n, void* out, int64_t out_bytes) {
  __m512i acc[kRows][kBlocks];
  for (int b = 0; b < kBlocks; ++b) {
    const __m512i offset = _mm512_loadu_si512(o.offset + ch0 + 16 * b);
    for (int r = 0; r < kRows; ++r) acc[r][b] = offset;
  }
  const int64_t full = k / 4;
  for (int64_t g = 0; g < full; ++g) dot_group(acc, x, k, w, block_bytes, g, 4);
  if (k % 4 != 0) dot_group(acc, x, k, w, block_bytes, full, static_cast<size_t>(k % 4));
  for (int r = 0; r < kRows; ++r) {
    void* row = static_cast<char*>(out) + r * n * out_bytes;
    if constexpr (kU8) {
      emit64_u8<kBlocks>(acc[r], o, ch0, n, static_cast<uint8_t*>(row));
    } else {
      for (int b = 0; b < kBlocks; ++b) emit16<false>(acc[r][b], o, ch0 + 16 * b, channel_mask(n - ch0 - 16 * b), row);
    }
  }
}

constexpr int kTileRows = 6, kTileBlocks = 4;
using TileFn = void (*)(const uint8_t*, int64_t, const int8_t*, int64_t, const Out&, int64_t, int64_t, void*, int64_t);

template <bool kU8, size_t... I>
constexpr std::array<TileFn, sizeof...(I)> tile_table(std::index_sequence<I...>) {
  return {&pointwise_tile<static_cast<int>(I) / kTileBlocks + 1, static_cast<int>(I) % kTileBlocks + 1, kU8>...};
}

// table[(rows - 1) * kTileBlocks + blocks - 1]. (Splitting a layer's blocks evenly instead, with
// taller tiles where they are narrower, was 3% slower on MobileNetV2: 8 and 12 rows cost more
// than the 4 + 4 + 1 split of 144 channels did.)
template <bool kU8>
constexpr auto kTiles = tile_table<kU8>(std::make_index_sequence<kTileRows * kTileBlocks>());

// 16 channels of a pixel, zero-extended to 32-bit lanes; masked lanes read nothing.
PMPL_VNNI inline __m512i load16(const uint8_t* px, __mmask16 mask) {
  return _mm512_cvtepu8_epi32(mask == 0xFFFF ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(px))
                                             : _mm_maskz_loadu_epi8(mask, px));
}

// Taps 16 channels wide, each zero-extended to a 32-bit lane: vpdpwssd multiplies the low 16
// bits of a lane with the low 16 bits of the tap and the high halves too, and the tap's high
// half is 0, so a lane of x - zero (sign in its high half) adds exactly (x - zero) * tap.
struct Rows {
  template <int kK, bool kU8>
  PMPL_VNNI static void row(const uint8_t* x, int64_t h, int64_t w, const PackedDepthwise& p, const Out& o,
                            int64_t oy, int64_t wo, void* out, int64_t out_bytes) {
    constexpr int pad = kK / 2;
    const int stride = p.stride;
    const int64_t c = p.channels, iy0 = oy * stride - pad;
    const bool rows_inside = iy0 >= 0 && iy0 + kK <= h;
    const __m512i zero = _mm512_set1_epi32(p.x_zero);
    for (int64_t ch = 0; ch < c; ch += 16) {
      const __mmask16 mask = channel_mask(c - ch);
      __m512i taps[kK * kK];
      for (int t = 0; t < kK * kK; ++t) {
        const int16_t* tap = p.taps.data() + t * p.padded + ch;
        taps[t] = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tap)));
      }
      const __m512i inner = _mm512_loadu_si512(p.inner_offset.data() + ch), border = _mm512_loadu_si512(o.offset + ch);
      for (int64_t ox = 0; ox < wo; ++ox) {
        const int64_t ix0 = ox * stride - pad;
        __m512i acc;
        if (rows_inside && ix0 >= 0 && ix0 + kK <= w) {
          // The zero point is in `inner` already: the window adds sum x * tap.
          acc = inner;
          for (int ky = 0; ky < kK; ++ky) {
            const uint8_t* px = x + ((iy0 + ky) * w + ix0) * c;
            for (int kx = 0; kx < kK; ++kx) {
              acc = _mm512_dpwssd_epi32(acc, load16(px + kx * c + ch, mask), taps[ky * kK + kx]);
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
              const __m512i v = _mm512_sub_epi32(load16(x + (iy * w + ix) * c + ch, mask), zero);
              acc = _mm512_dpwssd_epi32(acc, v, taps[ky * kK + kx]);
            }
          }
        }
        emit16<kU8>(acc, o, ch, mask, static_cast<char*>(out) + ox * c * out_bytes);
      }
    }
  }
};


}  // namespace

void pointwise(const uint8_t* x, int64_t m, const PackedPointwise& p, void* out) {
  const int64_t n = p.n(), k = p.k(), block_bytes = p.k_groups() * 64, out_bytes = p.out().u8 ? 1 : 4;
  const int64_t row_tiles = (m + kTileRows - 1) / kTileRows;
  const int64_t col_tiles = (p.blocks() + kTileBlocks - 1) / kTileBlocks;
  const Out o(p.out());
  const auto& tiles = p.out().u8 ? kTiles<true> : kTiles<false>;
  // Column tiles outermost: a thread's tiles share one panel of weights, which stays in cache
  // while the pixels stream past.
#pragma omp parallel for schedule(static) if (m * n * k > (int64_t{1} << 20))
  for (int64_t t = 0; t < row_tiles * col_tiles; ++t) {
    const int64_t i0 = t % row_tiles * kTileRows, b0 = t / row_tiles * kTileBlocks;
    const int64_t rows = std::min<int64_t>(kTileRows, m - i0), blocks = std::min<int64_t>(kTileBlocks, p.blocks() - b0);
    tiles[static_cast<size_t>((rows - 1) * kTileBlocks + blocks - 1)](
        x + i0 * k, k, p.weights() + b0 * block_bytes, block_bytes, o, b0 * 16, n,
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

}  // namespace pmpl::deploy::avx512
