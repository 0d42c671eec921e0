// Translated, cluttered images: a small grayscale object placed at a random position on a larger
// black canvas, among pieces cut from other images of the same split (the "cluttered MNIST" of
// Mnih et al. 2014 and Jaderberg et al. 2015, for `pmpl data fashion-mnist --canvas`). A local
// window then sees clothes-like texture everywhere; telling the object from the clutter takes a
// window about the object's size, which is what Meta-Pooling's searched receptive fields are for.
// Every draw is a fixed function of (seed, image index), so a dataset is the same on every machine.
#pragma once

#include <cstdint>
#include <vector>

namespace pmpl::data {

struct Clutter {
  int canvas = 0;       // side of the written image; 0: the images as they are
  int pieces = 0;       // pieces of other images pasted under the object
  int piece_size = 9;   // their side
  uint64_t seed = 0;
};

// The margin kept free of the object on each side: torchvision's evaluation crop (resize to
// size / 0.875, crop the centre) drops 1/16 of each side, and the whole object must survive it.
int clutter_margin(int canvas);

// Throws a one-line error for a canvas too small for the object and its margins, or a piece that
// does not fit in a source image.
void check_clutter(const Clutter& clutter, int rows, int cols);

// Image `index` of a split on `clutter.canvas`^2 pixels: pieces of the `pool` images (indices into
// `images`, each rows x cols bytes) pasted by per-pixel maximum, then the object `index` the same
// way at a position drawn inside the margins.
std::vector<uint8_t> clutter_image(const uint8_t* images, int rows, int cols, const std::vector<int64_t>& pool,
                                   int64_t index, const Clutter& clutter);

}  // namespace pmpl::data
