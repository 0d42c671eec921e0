// Pillow 9.4's image operations that timm's augmentations use, on HWC uint8 RGB images, byte for
// byte as Pillow computes them (tests/test_augment.cpp holds them to tests/fixtures/augment_pil.json,
// which tools/make_augment_fixtures.py writes with Pillow). In place unless a source is given.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pmpl::data {

// ImageOps
void pil_autocontrast(uint8_t* rgb, size_t pixels);  // cutoff 0, each channel stretched to 0-255
void pil_equalize(uint8_t* rgb, size_t pixels);
void pil_invert(uint8_t* rgb, size_t pixels);
void pil_posterize(uint8_t* rgb, size_t pixels, int bits);  // bits 0-8 kept; 0 makes the image black
void pil_solarize(uint8_t* rgb, size_t pixels, int threshold);  // values >= threshold become 255 - v
void pil_solarize_add(uint8_t* rgb, size_t pixels, int add, int threshold);  // timm's: v < threshold gets + add

// ImageEnhance: Image.blend(degenerate, image, factor) with each class's degenerate image.
void pil_enhance_color(uint8_t* rgb, size_t pixels, double factor, std::vector<uint8_t>& scratch);
void pil_enhance_contrast(uint8_t* rgb, size_t pixels, double factor, std::vector<uint8_t>& scratch);
void pil_enhance_brightness(uint8_t* rgb, size_t pixels, double factor);
void pil_enhance_sharpness(uint8_t* rgb, int width, int height, double factor, std::vector<uint8_t>& scratch);

// torchvision's adjust_hue on a PIL image: to Pillow's HSV (Convert.c's rgb2hsv, float with
// truncation), the hue byte shifted by uint8(factor * 255) with wrap-around, back to RGB
// (hsv2rgb, rounded); factor in [-0.5, 0.5].
void pil_adjust_hue(uint8_t* rgb, size_t pixels, double factor);

// Image.transform(size, AFFINE, matrix, resample, fillcolor=fill): output pixel (x, y) samples the
// source at (a x + b y + c, d x + e y + f) of its centre; where that is outside, `fill`. NEAREST
// takes Geometry.c's three paths (a scale-and-shift table, 16.16 fixed point, float steps);
// BICUBIC is its cubic convolution with a = -1 (not resize's -0.5).
enum class PilResample { kNearest, kBilinear, kBicubic };
void pil_affine(const uint8_t* src, uint8_t* dst, int width, int height, const double (&matrix)[6],
                PilResample resample, const uint8_t (&fill)[3]);
// Image.rotate(degrees, resample, fillcolor=fill) about the centre, same size (counter-clockwise).
void pil_rotate(const uint8_t* src, uint8_t* dst, int width, int height, double degrees, PilResample resample,
                const uint8_t (&fill)[3]);

}  // namespace pmpl::data
