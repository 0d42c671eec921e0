// Resampling a box of an RGB image to an output size exactly as Pillow's Image.resize with
// BILINEAR does (what torchvision applies to PIL images): a triangle filter whose support widens
// with the downscale factor (antialiasing), separable, horizontal pass first into 8-bit rows,
// then vertical, in 22-bit fixed point with Pillow's rounding. The same inputs give Pillow's
// bytes.
#pragma once

#include <cstdint>
#include <vector>

#include "data/image_decode.h"

namespace pmpl::data {

// Filter taps along one axis, as Pillow's precompute_coeffs + normalize_coeffs_8bpc.
struct ResampleAxis {
  std::vector<int> first;       // first input index per output
  std::vector<int> count;       // taps per output
  std::vector<int32_t> weights; // [out][taps], fixed point
  int taps = 0;
};

void build_resample_axis(double in0, double in_extent, int in_size, int out_size, ResampleAxis& axis);

// Reusable buffers of one worker thread (nothing is allocated per image once they have grown).
struct ResampleScratch {
  ResampleAxis horizontal, vertical;
  std::vector<uint8_t> rows;  // the horizontal pass, only the rows the vertical pass reads
  std::vector<int32_t> sums;  // one output row of the vertical pass
};

// Resamples `box` of the RGB image `src` (width x height) to out_width x out_height RGB at `out`
// (row stride out_width * 3), mirrored left-right when `flip`.
void resample_rgb(const uint8_t* src, int width, int height, const Box& box, int out_width,
                  int out_height, bool flip, uint8_t* out, ResampleScratch& scratch);

}  // namespace pmpl::data
