#include "data/pil_ops.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numbers>

namespace pmpl::data {
namespace {

using Lut = std::array<uint8_t, 256>;
using Histogram = std::array<std::array<int64_t, 256>, 3>;

void apply_luts(uint8_t* rgb, size_t pixels, const std::array<Lut, 3>& luts) {
  for (size_t i = 0; i < pixels; ++i) {
    for (int c = 0; c < 3; ++c) rgb[i * 3 + c] = luts[c][rgb[i * 3 + c]];
  }
}

void apply_lut(uint8_t* rgb, size_t pixels, const Lut& lut) { apply_luts(rgb, pixels, {lut, lut, lut}); }

Histogram histogram(const uint8_t* rgb, size_t pixels) {
  Histogram h{};
  for (size_t i = 0; i < pixels; ++i) {
    for (int c = 0; c < 3; ++c) ++h[c][rgb[i * 3 + c]];
  }
  return h;
}

Lut identity_lut() {
  Lut lut;
  for (int i = 0; i < 256; ++i) lut[i] = static_cast<uint8_t>(i);
  return lut;
}

// Convert.c's rgb2l: ITU-R 601-2 luma in 16-bit fixed point, rounded.
uint8_t luma(const uint8_t* p) {
  return static_cast<uint8_t>((p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16);
}

// Blend.c: out = in1 + alpha * (in2 - in1) in float, truncated; clipped only when alpha is outside
// [0, 1] (inside, the value cannot leave 0-255). Image.blend(degenerate, image, factor).
void blend(const uint8_t* degenerate, uint8_t* image, size_t bytes, double factor) {
  const float alpha = static_cast<float>(factor);
  if (alpha >= 0.0f && alpha <= 1.0f) {
    for (size_t i = 0; i < bytes; ++i) {
      const int a = degenerate[i], b = image[i];
      image[i] = static_cast<uint8_t>(static_cast<float>(a) + alpha * static_cast<float>(b - a));
    }
    return;
  }
  for (size_t i = 0; i < bytes; ++i) {
    const int a = degenerate[i], b = image[i];
    const float v = static_cast<float>(a) + alpha * static_cast<float>(b - a);
    image[i] = v <= 0.0f ? 0 : v >= 255.0f ? 255 : static_cast<uint8_t>(v);
  }
}

// Python's float % (the result takes the divisor's sign) and round(x, 15) (correctly rounded
// decimal digits, read back), as Image.rotate computes its matrix.
double python_mod(double a, double b) {
  double r = std::fmod(a, b);
  if (r != 0.0) {
    if ((b < 0) != (r < 0)) r += b;
  } else {
    r = std::copysign(0.0, b);
  }
  return r;
}

double python_round15(double x) {
  char text[64];
  std::snprintf(text, sizeof text, "%.15f", x);
  return std::strtod(text, nullptr);
}

}  // namespace

void pil_autocontrast(uint8_t* rgb, size_t pixels) {
  const Histogram h = histogram(rgb, pixels);
  std::array<Lut, 3> luts;
  for (int c = 0; c < 3; ++c) {
    int lo = 0, hi = 255;
    while (lo < 255 && h[c][lo] == 0) ++lo;
    while (hi > 0 && h[c][hi] == 0) --hi;
    if (hi <= lo) {
      luts[c] = identity_lut();
      continue;
    }
    const double scale = 255.0 / (hi - lo), offset = -lo * scale;
    for (int i = 0; i < 256; ++i) {
      const int v = static_cast<int>(i * scale + offset);  // Python's int(): toward zero
      luts[c][i] = static_cast<uint8_t>(std::clamp(v, 0, 255));
    }
  }
  apply_luts(rgb, pixels, luts);
}

void pil_equalize(uint8_t* rgb, size_t pixels) {
  const Histogram h = histogram(rgb, pixels);
  std::array<Lut, 3> luts;
  for (int c = 0; c < 3; ++c) {
    int64_t total = 0, last = 0, used = 0;
    for (int i = 0; i < 256; ++i) {
      if (h[c][i] == 0) continue;
      total += h[c][i];
      last = h[c][i];
      ++used;
    }
    const int64_t step = (total - last) / 255;
    if (used <= 1 || step == 0) {
      luts[c] = identity_lut();
      continue;
    }
    int64_t n = step / 2;
    for (int i = 0; i < 256; ++i) {
      luts[c][i] = static_cast<uint8_t>(std::min<int64_t>(n / step, 255));
      n += h[c][i];
    }
  }
  apply_luts(rgb, pixels, luts);
}

void pil_invert(uint8_t* rgb, size_t pixels) {
  for (size_t i = 0; i < pixels * 3; ++i) rgb[i] = static_cast<uint8_t>(255 - rgb[i]);
}

void pil_posterize(uint8_t* rgb, size_t pixels, int bits) {
  if (bits >= 8) return;
  const int mask = ~((1 << (8 - std::max(bits, 0))) - 1);
  Lut lut;
  for (int i = 0; i < 256; ++i) lut[i] = static_cast<uint8_t>(i & mask);
  apply_lut(rgb, pixels, lut);
}

void pil_solarize(uint8_t* rgb, size_t pixels, int threshold) {
  Lut lut;
  for (int i = 0; i < 256; ++i) lut[i] = static_cast<uint8_t>(i < threshold ? i : 255 - i);
  apply_lut(rgb, pixels, lut);
}

void pil_solarize_add(uint8_t* rgb, size_t pixels, int add, int threshold) {
  Lut lut;
  for (int i = 0; i < 256; ++i) lut[i] = static_cast<uint8_t>(i < threshold ? std::min(255, i + add) : i);
  apply_lut(rgb, pixels, lut);
}

namespace {

uint8_t clip8(int v) { return static_cast<uint8_t>(std::clamp(v, 0, 255)); }

// Convert.c's rgb2hsv_row, as C evaluates it: float variables, double literals.
void rgb_to_hsv(const uint8_t* in, uint8_t* out) {
  const uint8_t r = in[0], g = in[1], b = in[2];
  const uint8_t maxc = std::max(r, std::max(g, b)), minc = std::min(r, std::min(g, b));
  out[2] = maxc;
  if (minc == maxc) {
    out[0] = out[1] = 0;
    return;
  }
  const float cr = static_cast<float>(maxc - minc);
  const float s = cr / static_cast<float>(maxc);
  const float rc = static_cast<float>(maxc - r) / cr, gc = static_cast<float>(maxc - g) / cr,
              bc = static_cast<float>(maxc - b) / cr;
  float h;
  if (r == maxc) h = bc - gc;
  else if (g == maxc) h = static_cast<float>(2.0 + rc - bc);
  else h = static_cast<float>(4.0 + gc - rc);
  h = static_cast<float>(std::fmod(h / 6.0 + 1.0, 1.0));
  out[0] = clip8(static_cast<int>(h * 255.0));
  out[1] = clip8(static_cast<int>(s * 255.0));
}

// Convert.c's hsv2rgb.
void hsv_to_rgb(const uint8_t* in, uint8_t* out) {
  const uint8_t h = in[0], s = in[1], v = in[2];
  if (s == 0) {
    out[0] = out[1] = out[2] = v;
    return;
  }
  const int i = static_cast<int>(std::floor(static_cast<float>(h) * 6.0 / 255.0));
  const float f = static_cast<float>(static_cast<float>(h) * 6.0 / 255.0 - static_cast<float>(i));
  const float fs = static_cast<float>(static_cast<float>(s) / 255.0);
  const uint8_t p = clip8(static_cast<int>(std::round(static_cast<float>(v) * (1.0 - fs))));
  const uint8_t q = clip8(static_cast<int>(std::round(static_cast<float>(v) * (1.0 - fs * f))));
  const uint8_t t = clip8(static_cast<int>(std::round(static_cast<float>(v) * (1.0 - fs * (1.0 - f)))));
  const uint8_t rgb[6][3] = {{v, t, p}, {q, v, p}, {p, v, t}, {p, q, v}, {t, p, v}, {v, p, q}};
  std::copy_n(rgb[i % 6], 3, out);
}

}  // namespace

void pil_adjust_hue(uint8_t* rgb, size_t pixels, double factor) {
  // numpy's uint8(x) of a float: truncated toward zero, then taken modulo 256.
  const auto shift = static_cast<uint8_t>(static_cast<int>(factor * 255));
  for (size_t i = 0; i < pixels; ++i) {
    uint8_t hsv[3];
    rgb_to_hsv(rgb + i * 3, hsv);
    hsv[0] = static_cast<uint8_t>(hsv[0] + shift);
    hsv_to_rgb(hsv, rgb + i * 3);
  }
}

void pil_enhance_color(uint8_t* rgb, size_t pixels, double factor, std::vector<uint8_t>& scratch) {
  scratch.resize(pixels * 3);
  for (size_t i = 0; i < pixels; ++i) std::fill_n(scratch.data() + i * 3, 3, luma(rgb + i * 3));
  blend(scratch.data(), rgb, pixels * 3, factor);
}

void pil_enhance_contrast(uint8_t* rgb, size_t pixels, double factor, std::vector<uint8_t>& scratch) {
  // ImageStat's mean of the L image (a double sum over its histogram), + 0.5 and truncated.
  std::array<int64_t, 256> h{};
  for (size_t i = 0; i < pixels; ++i) ++h[luma(rgb + i * 3)];
  double sum = 0.0;
  for (int i = 0; i < 256; ++i) sum += static_cast<double>(i) * static_cast<double>(h[i]);
  const auto mean = static_cast<uint8_t>(static_cast<int>(sum / static_cast<double>(pixels) + 0.5));
  scratch.assign(pixels * 3, mean);
  blend(scratch.data(), rgb, pixels * 3, factor);
}

void pil_enhance_brightness(uint8_t* rgb, size_t pixels, double factor) {
  const std::vector<uint8_t> black(pixels * 3, 0);
  blend(black.data(), rgb, pixels * 3, factor);
}

void pil_enhance_sharpness(uint8_t* rgb, int width, int height, double factor, std::vector<uint8_t>& scratch) {
  // The degenerate image is ImageFilter.SMOOTH: the 3x3 kernel (1 1 1, 1 5 1, 1 1 1) / 13 in float,
  // summed as Filter.c does (the rounding half first, then the rows below, at and above, each left
  // to right) and truncated; the outermost rows and columns are left as they are.
  const size_t row = static_cast<size_t>(width) * 3;
  scratch.assign(rgb, rgb + row * static_cast<size_t>(height));
  const float k = 1.0f / 13.0f, centre = 5.0f / 13.0f;
  const auto three = [](const uint8_t* p, size_t l, size_t m, size_t r, float kl, float km, float kr) {
    return static_cast<float>(p[l]) * kl + static_cast<float>(p[m]) * km + static_cast<float>(p[r]) * kr;
  };
  for (int y = 1; y < height - 1; ++y) {
    const uint8_t* up = rgb + (y - 1) * row;
    const uint8_t* mid = rgb + y * row;
    const uint8_t* down = rgb + (y + 1) * row;
    for (int x = 1; x < width - 1; ++x) {
      for (int c = 0; c < 3; ++c) {
        const size_t l = (x - 1) * 3 + c, m = x * 3 + c, r = (x + 1) * 3 + c;
        float s = 0.5f;
        s = s + three(down, l, m, r, k, k, k);
        s = s + three(mid, l, m, r, k, centre, k);
        s = s + three(up, l, m, r, k, k, k);
        scratch[y * row + m] = s <= 0.0f ? 0 : s >= 255.0f ? 255 : static_cast<uint8_t>(s);
      }
    }
  }
  blend(scratch.data(), rgb, row * static_cast<size_t>(height), factor);
}

namespace {

// Bicubic convolution with a = -1, as Geometry.c's BICUBIC (Horner form, in double).
double bicubic(double v1, double v2, double v3, double v4, double d) {
  const double p1 = v2, p2 = -v1 + v3, p3 = 2 * (v1 - v2) + v3 - v4, p4 = -v1 + v2 - v3 + v4;
  return p1 + d * (p2 + d * (p3 + d * p4));
}

// Geometry.c's generic transform with its bilinear or bicubic filter: each output pixel's centre
// mapped into the source, the fill where it lands outside, else the filter at the shifted point
// with the taps clamped to the edges; both filters truncate.
void affine_filtered(const uint8_t* src, uint8_t* dst, int width, int height, const double (&m)[6],
                     const uint8_t (&fill)[3], bool cubic) {
  const auto at = [&](int y, int x, int c) { return static_cast<double>(src[(static_cast<size_t>(y) * width + x) * 3 + c]); };
  const auto column = [&](int x) { return std::clamp(x, 0, width - 1); };
  const auto inside = [&](int y) { return y >= 0 && y < height; };
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      uint8_t* out = dst + (static_cast<size_t>(y) * width + x) * 3;
      const double xo = x + 0.5, yo = y + 0.5;
      double xin = m[0] * xo + m[1] * yo + m[2];
      double yin = m[3] * xo + m[4] * yo + m[5];
      if (xin < 0.0 || xin >= width || yin < 0.0 || yin >= height) {
        std::copy_n(fill, 3, out);
        continue;
      }
      xin -= 0.5;
      yin -= 0.5;
      const int x0 = static_cast<int>(std::floor(xin)), y0 = static_cast<int>(std::floor(yin));
      const double dx = xin - x0, dy = yin - y0;
      for (int c = 0; c < 3; ++c) {
        if (!cubic) {
          const int xa = column(x0), xb = column(x0 + 1), ya = std::clamp(y0, 0, height - 1);
          double v1 = at(ya, xa, c) + (at(ya, xb, c) - at(ya, xa, c)) * dx;
          if (inside(y0 + 1)) {
            const double v2 = at(y0 + 1, xa, c) + (at(y0 + 1, xb, c) - at(y0 + 1, xa, c)) * dx;
            v1 = v1 + (v2 - v1) * dy;
          }
          out[c] = static_cast<uint8_t>(v1);  // within 0-255: no clamp
          continue;
        }
        // Taps at x0 - 1 .. x0 + 2; rows past an edge repeat the row before them.
        const auto row = [&](int yy) {
          return bicubic(at(yy, column(x0 - 1), c), at(yy, column(x0), c), at(yy, column(x0 + 1), c),
                         at(yy, column(x0 + 2), c), dx);
        };
        const double r0 = row(std::clamp(y0 - 1, 0, height - 1));
        const double r1 = inside(y0) ? row(y0) : r0;
        const double r2 = inside(y0 + 1) ? row(y0 + 1) : r1;
        const double r3 = inside(y0 + 2) ? row(y0 + 2) : r2;
        const double v = bicubic(r0, r1, r2, r3, dy);
        out[c] = v <= 0.0 ? 0 : v >= 255.0 ? 255 : static_cast<uint8_t>(v);
      }
    }
  }
}

// Geometry.c's COORD: -1 for anything left of the image, else truncation.
int coord(double v) { return v < 0.0 ? -1 : static_cast<int>(v); }

void copy_pixel(const uint8_t* src, int width, int x, int y, uint8_t* out) {
  std::copy_n(src + (static_cast<size_t>(y) * width + x) * 3, 3, out);
}

void affine_nearest(const uint8_t* src, uint8_t* dst, int width, int height, const double (&a)[6]) {
  if (a[1] == 0.0 && a[3] == 0.0) {
    // ImagingScaleAffine: each column's source from a running sum, each row's likewise.
    std::vector<int> columns(static_cast<size_t>(width));
    double xo = a[2] + a[0] * 0.5;
    for (int x = 0; x < width; ++x, xo += a[0]) columns[x] = coord(xo);
    double yo = a[5] + a[4] * 0.5;
    for (int y = 0; y < height; ++y, yo += a[4]) {
      const int yi = coord(yo);
      if (yi < 0 || yi >= height) continue;
      for (int x = 0; x < width; ++x) {
        if (columns[x] >= 0 && columns[x] < width) copy_pixel(src, width, columns[x], yi, dst + (static_cast<size_t>(y) * width + x) * 3);
      }
    }
    return;
  }
  const auto fits = [&](double x, double y) {
    return std::fabs(x * a[0] + y * a[1] + a[2]) < 32768.0 && std::fabs(x * a[3] + y * a[4] + a[5]) < 32768.0;
  };
  if (fits(0, 0) && fits(width, height) && fits(0, height) && fits(width, 0)) {
    // affine_fixed: 16.16 fixed point, rounded half up, stepped exactly.
    const auto fix = [](double v) {
      const double s = v * 65536.0 + 0.5;
      return s < 0.0 ? static_cast<int>(std::floor(s)) : static_cast<int>(s);
    };
    const int a0 = fix(a[0]), a1 = fix(a[1]), a3 = fix(a[3]), a4 = fix(a[4]);
    int a2 = fix(a[2] + a[0] * 0.5 + a[1] * 0.5), a5 = fix(a[5] + a[3] * 0.5 + a[4] * 0.5);
    for (int y = 0; y < height; ++y, a2 += a1, a5 += a4) {
      int xx = a2, yy = a5;
      for (int x = 0; x < width; ++x, xx += a0, yy += a3) {
        const int xi = xx >> 16, yi = yy >> 16;  // arithmetic shifts: floor
        if (xi >= 0 && xi < width && yi >= 0 && yi < height) {
          copy_pixel(src, width, xi, yi, dst + (static_cast<size_t>(y) * width + x) * 3);
        }
      }
    }
    return;
  }
  double xo = a[2] + a[1] * 0.5 + a[0] * 0.5, yo = a[5] + a[4] * 0.5 + a[3] * 0.5;
  for (int y = 0; y < height; ++y, xo += a[1], yo += a[4]) {
    double xx = xo, yy = yo;
    for (int x = 0; x < width; ++x, xx += a[0], yy += a[3]) {
      const int xi = coord(xx), yi = coord(yy);
      if (xi >= 0 && xi < width && yi >= 0 && yi < height) {
        copy_pixel(src, width, xi, yi, dst + (static_cast<size_t>(y) * width + x) * 3);
      }
    }
  }
}

}  // namespace

void pil_affine(const uint8_t* src, uint8_t* dst, int width, int height, const double (&matrix)[6],
                PilResample resample, const uint8_t (&fill)[3]) {
  if (resample != PilResample::kNearest) {
    affine_filtered(src, dst, width, height, matrix, fill, resample == PilResample::kBicubic);
    return;
  }
  // The output starts as the fill colour; pixels whose source is inside are overwritten.
  for (size_t i = 0; i < static_cast<size_t>(width) * height; ++i) std::copy_n(fill, 3, dst + i * 3);
  affine_nearest(src, dst, width, height, matrix);
}

void pil_rotate(const uint8_t* src, uint8_t* dst, int width, int height, double degrees, PilResample resample,
                const uint8_t (&fill)[3]) {
  const double angle = python_mod(degrees, 360.0);
  if (angle == 0.0) {
    std::copy_n(src, static_cast<size_t>(width) * height * 3, dst);
    return;
  }
  // Image.rotate: the inverse rotation about the centre (w / 2, h / 2), its terms rounded to 15
  // places. (Pillow transposes at 90, 180 and 270 degrees instead; the matrix then holds exact 0
  // and +-1, which map every pixel to the same one.)
  const double radians = -(angle * (std::numbers::pi / 180.0));
  double m[6] = {python_round15(std::cos(radians)), python_round15(std::sin(radians)), 0.0,
                 python_round15(-std::sin(radians)), python_round15(std::cos(radians)), 0.0};
  const double cx = width / 2.0, cy = height / 2.0;
  m[2] = m[0] * -cx + m[1] * -cy + m[2] + cx;
  m[5] = m[3] * -cx + m[4] * -cy + m[5] + cy;
  pil_affine(src, dst, width, height, m, resample, fill);
}

}  // namespace pmpl::data
