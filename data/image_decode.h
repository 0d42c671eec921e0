// Decoding one image file (JPEG through libjpeg-turbo, PNG through libpng) into RGB, reading only
// what a crop needs: the JPEG is decoded at the smallest DCT scale (1/8, 1/4, 1/2, 1) whose output still
// covers the crop with at least the requested number of pixels, and only the crop's rows (skipped
// with jpeg_skip_scanlines) and columns (jpeg_crop_scanline). Grayscale, CMYK and YCCK JPEGs come
// out as RGB. A file that cannot be decoded returns false with the reason; nothing in a file can
// crash or hang the decoder (libjpeg errors longjmp out, libpng's go through its image API).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pmpl::data {

enum class ImageFormat : uint8_t { kJpeg, kPng };

struct ImageHeader {
  ImageFormat format;
  int width = 0;
  int height = 0;
};

// A rectangle in source pixels (floating point: crops and resize boxes need not be integral).
struct Box {
  double x0 = 0, y0 = 0, width = 0, height = 0;
};

// The decoded part of the image: `pixels` is RGB, `width` x `height`, and the requested box maps
// to `box` inside it (same shape as the request, scaled by the DCT factor and shifted to the
// decoded origin).
struct DecodedRegion {
  std::vector<uint8_t> pixels;  // reused across calls: no per-image allocation once grown
  std::vector<uint8_t> scratch;  // CMYK rows, likewise reused
  int width = 0;
  int height = 0;
  Box box;
  int scale_eighths = 8;  // the DCT scale used, in eighths
};

// Reads just the header. False (with `error`) for anything but a readable JPEG or PNG.
bool read_image_header(const uint8_t* data, size_t size, ImageHeader& header, std::string& error);

// Decodes enough of the image to resample `box` (source pixels) to `out_width` x `out_height`.
// Without `dct_scaling` the JPEG is decoded at full size, as Pillow does: slower for big crops,
// but resampling then gives Pillow's bytes exactly.
bool decode_region(const uint8_t* data, size_t size, const ImageHeader& header, const Box& box,
                   int out_width, int out_height, DecodedRegion& region, std::string& error,
                   bool dct_scaling = true);

// The DCT scale (in eighths: 1, 2, 4 or 8) decode_region uses: the smallest whose scaled box is
// at least out_width x out_height.
int choose_scale_eighths(const Box& box, int out_width, int out_height);

// The whole file into `bytes` (reused: no allocation once it has grown); false with the reason.
bool read_file(const std::string& path, std::vector<uint8_t>& bytes, std::string& error);

}  // namespace pmpl::data
