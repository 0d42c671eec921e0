#include "data/resample.h"

#include <algorithm>
#include <cmath>

namespace pmpl::data {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow's PRECISION_BITS

double triangle(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

inline uint8_t clip8(int32_t v) {
  v >>= kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// Makes every output read exactly `taps` inputs: windows near the right edge start earlier, the
// extra leading weights zero. Sums are unchanged (adding zero); the inner loop gets a fixed trip
// count, which the compiler unrolls.
void pad_taps(ResampleAxis& axis, int in_size) {
  for (size_t xx = 0; xx < axis.first.size(); ++xx) {
    const int shift = std::max(0, axis.first[xx] + axis.taps - in_size);
    if (shift == 0) continue;
    int32_t* w = axis.weights.data() + xx * static_cast<size_t>(axis.taps);
    std::copy_backward(w, w + axis.count[xx], w + axis.count[xx] + shift);
    std::fill(w, w + shift, 0);
    axis.first[xx] -= shift;
    axis.count[xx] += shift;
  }
}

// One row of the horizontal pass; kTaps > 0 is the padded fixed-width case.
template <int kTaps>
void horizontal_row(const uint8_t* in, const ResampleAxis& h, int out_width, uint8_t* dst) {
  const int32_t half = 1 << (kPrecisionBits - 1);
  for (int xx = 0; xx < out_width; ++xx) {
    const int32_t* w = h.weights.data() + static_cast<size_t>(xx) * h.taps;
    const uint8_t* p = in + static_cast<size_t>(h.first[static_cast<size_t>(xx)]) * 3;
    const int count = kTaps > 0 ? kTaps : h.count[static_cast<size_t>(xx)];
    int32_t s0 = half, s1 = half, s2 = half;
    for (int t = 0; t < count; ++t) {
      s0 += p[3 * t] * w[t];
      s1 += p[3 * t + 1] * w[t];
      s2 += p[3 * t + 2] * w[t];
    }
    dst[3 * xx] = clip8(s0);
    dst[3 * xx + 1] = clip8(s1);
    dst[3 * xx + 2] = clip8(s2);
  }
}

}  // namespace

void build_resample_axis(double in0, double in_extent, int in_size, int out_size, ResampleAxis& axis) {
  const double scale = in_extent / out_size;
  const double filter_scale = std::max(scale, 1.0);
  const double support = 1.0 * filter_scale;
  const int taps = static_cast<int>(std::ceil(support)) * 2 + 1;
  axis.taps = taps;
  axis.first.assign(static_cast<size_t>(out_size), 0);
  axis.count.assign(static_cast<size_t>(out_size), 0);
  axis.weights.assign(static_cast<size_t>(out_size) * taps, 0);
  std::vector<double> k(static_cast<size_t>(taps));
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    const double inv = 1.0 / filter_scale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double total = 0.0;
    for (int x = 0; x < xmax; ++x) {
      k[static_cast<size_t>(x)] = triangle((x + xmin - center + 0.5) * inv);
      total += k[static_cast<size_t>(x)];
    }
    int32_t* w = axis.weights.data() + static_cast<size_t>(xx) * taps;
    for (int x = 0; x < xmax; ++x) {
      const double v = total != 0.0 ? k[static_cast<size_t>(x)] / total : k[static_cast<size_t>(x)];
      w[x] = static_cast<int32_t>(v < 0 ? std::trunc(-0.5 + v * (1 << kPrecisionBits))
                                        : std::trunc(0.5 + v * (1 << kPrecisionBits)));
    }
    axis.first[static_cast<size_t>(xx)] = xmin;
    axis.count[static_cast<size_t>(xx)] = std::max(xmax, 0);
  }
}

void resample_rgb(const uint8_t* src, int width, int height, const Box& box, int out_width,
                  int out_height, bool flip, uint8_t* out, ResampleScratch& scratch) {
  ResampleAxis& h = scratch.horizontal;
  ResampleAxis& v = scratch.vertical;
  build_resample_axis(box.x0, box.width, width, out_width, h);
  build_resample_axis(box.y0, box.height, height, out_height, v);
  // Only the input rows the vertical pass reads go through the horizontal pass.
  const int row0 = v.first.front();
  const int row1 = v.first.back() + v.count.back();
  const int rows = std::max(row1 - row0, 0);
  scratch.rows.resize(static_cast<size_t>(rows) * out_width * 3);
  const int32_t half = 1 << (kPrecisionBits - 1);
  const bool fixed = width >= h.taps && (h.taps == 3 || h.taps == 5 || h.taps == 7);
  if (fixed) pad_taps(h, width);
  for (int r = 0; r < rows; ++r) {
    const uint8_t* in = src + static_cast<size_t>(row0 + r) * width * 3;
    uint8_t* dst = scratch.rows.data() + static_cast<size_t>(r) * out_width * 3;
    switch (fixed ? h.taps : 0) {
      case 3: horizontal_row<3>(in, h, out_width, dst); break;
      case 5: horizontal_row<5>(in, h, out_width, dst); break;
      case 7: horizontal_row<7>(in, h, out_width, dst); break;
      default: horizontal_row<0>(in, h, out_width, dst); break;
    }
  }
  // Vertical pass tap by tap over whole rows, so the inner loop runs along memory.
  const size_t row_bytes = static_cast<size_t>(out_width) * 3;
  scratch.sums.resize(row_bytes);
  int32_t* acc = scratch.sums.data();
  for (int yy = 0; yy < out_height; ++yy) {
    const int32_t* w = v.weights.data() + static_cast<size_t>(yy) * v.taps;
    const int first = v.first[static_cast<size_t>(yy)] - row0;
    std::fill(acc, acc + row_bytes, half);
    for (int t = 0; t < v.count[static_cast<size_t>(yy)]; ++t) {
      const uint8_t* in = scratch.rows.data() + static_cast<size_t>(first + t) * row_bytes;
      const int32_t wt = w[t];
      for (size_t i = 0; i < row_bytes; ++i) acc[i] += in[i] * wt;
    }
    uint8_t* dst = out + static_cast<size_t>(yy) * row_bytes;
    if (!flip) {
      for (size_t i = 0; i < row_bytes; ++i) dst[i] = clip8(acc[i]);
    } else {
      for (int xx = 0; xx < out_width; ++xx) {
        const size_t from = static_cast<size_t>(xx) * 3, to = static_cast<size_t>(out_width - 1 - xx) * 3;
        dst[to] = clip8(acc[from]);
        dst[to + 1] = clip8(acc[from + 1]);
        dst[to + 2] = clip8(acc[from + 2]);
      }
    }
  }
}

}  // namespace pmpl::data
