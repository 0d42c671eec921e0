// The index arithmetic of the simpler CUDA kernels (broadcast binary ops, sum_to, im2col/col2im,
// strip pooling), as per-element functions a CPU test runs over every element against the CPU
// ops (IndexKernels.*), so a wrong stride or bound shows up in CI without a GPU.
#pragma once

#include <cstdint>

#include "core/hd.h"
#include "core/kernels/storage.h"

namespace pmpl::kernels {

// Shapes right-aligned into five dimensions; element strides, 0 where an operand is broadcast.
struct Broadcast5 {
  int64_t dims[5];
  int64_t a[5];
  int64_t b[5];
};

// The elements of a and b that output element i combines.
PMPL_HD void broadcast_offsets(int64_t i, const Broadcast5& p, int64_t& ao, int64_t& bo) {
  int64_t rest = i;
  ao = 0;
  bo = 0;
  for (int axis = 4; axis >= 0; --axis) {
    const int64_t idx = rest % p.dims[axis];
    rest /= p.dims[axis];
    ao += idx * p.a[axis];
    bo += idx * p.b[axis];
  }
}

// ops::channel_shuffle: the input channel that output channel o of c takes (groups divides c).
PMPL_HD int64_t shuffle_source(int64_t o, int64_t c, int64_t groups) {
  return (o % groups) * (c / groups) + o / groups;
}

struct Dims5 {
  int64_t in[5], out[5];
};

// Output element o of x summed over the axes where out is 1 and in is not (both right-aligned
// to five dimensions): the reduced elements in row-major order, in double.
template <class S>
PMPL_HD double sum_to_value(const S* x, const Dims5& d, int64_t o) {
  int64_t stride[5], kept[5], reduced = 1;
  int64_t s = 1, rest = o;
  for (int a = 4; a >= 0; --a) {
    stride[a] = s;
    s *= d.in[a];
    kept[a] = rest % d.out[a];
    rest /= d.out[a];
    if (d.out[a] == 1 && d.in[a] != 1) reduced *= d.in[a];
  }
  double acc = 0.0;
  for (int64_t r = 0; r < reduced; ++r) {
    int64_t left = r, offset = 0;
    for (int a = 4; a >= 0; --a) {
      int64_t idx = kept[a];
      if (d.out[a] == 1 && d.in[a] != 1) {
        idx = left % d.in[a];
        left /= d.in[a];
      }
      offset += idx * stride[a];
    }
    acc += static_cast<double>(load_value(x, offset));
  }
  return acc;
}

struct ConvShape {
  int64_t h, w, cin, kh, kw, ho, wo;
  int stride, padding;
};

// Column-matrix element e ([images * ho * wo, kh * kw * cin], a row per output pixel in
// (ki, kj, c) order) of x [images, h, w, cin]: zero outside the image.
template <class S>
PMPL_HD S im2col_value(const S* x, const ConvShape& g, int64_t e) {
  const int64_t k = g.kh * g.kw * g.cin;
  const int64_t col = e % k, pixel = e / k;
  const int64_t c = col % g.cin, kj = (col / g.cin) % g.kw, ki = col / (g.cin * g.kw);
  const int64_t ow = pixel % g.wo, oh = (pixel / g.wo) % g.ho, n = pixel / (g.wo * g.ho);
  const int64_t ih = oh * g.stride - g.padding + ki, iw = ow * g.stride - g.padding + kj;
  const bool inside = ih >= 0 && ih < g.h && iw >= 0 && iw < g.w;
  return inside ? x[((n * g.h + ih) * g.w + iw) * g.cin + c] : S(0.0f);
}

// Input-gradient element e of x from the column gradients: the entries that copied it, gathered
// in increasing (oh, ow) order (the CPU's scatter order), summed in compute_t<S>.
template <class S, class T = compute_t<S>>
PMPL_HD T col2im_value(const S* dcols, const ConvShape& g, int64_t e) {
  const int64_t k = g.kh * g.kw * g.cin;
  const int64_t c = e % g.cin, iw = (e / g.cin) % g.w, ih = (e / (g.cin * g.w)) % g.h, n = e / (g.cin * g.w * g.h);
  T acc = T(0);
  // Output rows oh with oh * stride - padding + ki == ih for some tap ki: larger ki, smaller oh.
  for (int64_t ki = g.kh - 1; ki >= 0; --ki) {
    const int64_t t = ih + g.padding - ki;
    if (t < 0 || t % g.stride != 0 || t / g.stride >= g.ho) continue;
    const int64_t oh = t / g.stride;
    for (int64_t kj = g.kw - 1; kj >= 0; --kj) {
      const int64_t u = iw + g.padding - kj;
      if (u < 0 || u % g.stride != 0 || u / g.stride >= g.wo) continue;
      const int64_t ow = u / g.stride;
      acc += load_value(dcols, ((n * g.ho + oh) * g.wo + ow) * k + (ki * g.kw + kj) * g.cin + c);
    }
  }
  return acc;
}

// Strip pooling, [n, h, w, c] -> [n, h + w, c]: element o is a row's mean over w (o's position
// < h) or a column's mean over h, summed in double in order.
template <class S>
PMPL_HD double strip_pool_value(const S* x, int64_t h, int64_t w, int64_t c, int64_t o) {
  const int64_t j = o % c, pos = (o / c) % (h + w), i = o / ((h + w) * c);
  double acc = 0.0;
  if (pos < h) {
    for (int64_t q = 0; q < w; ++q) acc += static_cast<double>(load_value(x, ((i * h + pos) * w + q) * c + j));
    return acc / static_cast<double>(w);
  }
  const int64_t q = pos - h;
  for (int64_t r = 0; r < h; ++r) acc += static_cast<double>(load_value(x, ((i * h + r) * w + q) * c + j));
  return acc / static_cast<double>(h);
}

// Its gradient at input element e: the row's and the column's gradients, each over its count.
template <class S, class T = compute_t<S>>
PMPL_HD T strip_pool_grad(const S* gy, int64_t h, int64_t w, int64_t c, int64_t e) {
  const int64_t j = e % c, q = (e / c) % w, r = (e / (c * w)) % h, i = e / (c * w * h);
  const S* rows = gy + i * (h + w) * c;
  return load_value(rows, r * c + j) * (T(1) / static_cast<T>(w)) +
         load_value(rows, (h + q) * c + j) * (T(1) / static_cast<T>(h));
}

}  // namespace pmpl::kernels
