#include "data/clutter.h"

#include <algorithm>

#include "core/rng.h"
#include "engine/error.h"

namespace pmpl::data {
namespace {

// Pastes the `height` x `width` window at (sy, sx) of a `stride`-wide image at (dy, dx) on the canvas.
void paste_max(std::vector<uint8_t>& canvas, int side, const uint8_t* src, int stride, int sy, int sx, int height,
               int width, int dy, int dx) {
  for (int y = 0; y < height; ++y) {
    uint8_t* row = canvas.data() + static_cast<size_t>(dy + y) * static_cast<size_t>(side) + static_cast<size_t>(dx);
    const uint8_t* from = src + static_cast<size_t>(sy + y) * static_cast<size_t>(stride) + static_cast<size_t>(sx);
    for (int x = 0; x < width; ++x) row[x] = std::max(row[x], from[x]);
  }
}

}  // namespace

int clutter_margin(int canvas) { return canvas / 16; }

void check_clutter(const Clutter& clutter, int rows, int cols) {
  if (clutter.canvas == 0) {
    PMPL_CHECK(clutter.pieces == 0, "--clutter {} needs --canvas: give the side of the larger image", clutter.pieces);
    return;
  }
  const int need = std::max(rows, cols) + 2 * clutter_margin(clutter.canvas);
  PMPL_CHECK(clutter.canvas >= need && clutter.canvas <= 4096,
             "--canvas {}: the {}x{} object and its margins need at least {} (and at most 4096)", clutter.canvas, rows,
             cols, need);
  PMPL_CHECK(clutter.pieces >= 0 && clutter.pieces <= 1000, "--clutter {}: give 0 to 1000 pieces", clutter.pieces);
  PMPL_CHECK(clutter.piece_size >= 1 && clutter.piece_size <= std::min(rows, cols),
             "--clutter-size {}: a piece must fit in a {}x{} image", clutter.piece_size, rows, cols);
}

std::vector<uint8_t> clutter_image(const uint8_t* images, int rows, int cols, const std::vector<int64_t>& pool,
                                   int64_t index, const Clutter& clutter) {
  PMPL_CHECK(!pool.empty(), "clutter_image: an empty pool of clutter sources");
  const int side = clutter.canvas, piece = clutter.piece_size, margin = clutter_margin(side);
  const size_t image_bytes = static_cast<size_t>(rows) * static_cast<size_t>(cols);
  const uint64_t key = splitmix64(clutter.seed ^ splitmix64(static_cast<uint64_t>(index)));
  uint64_t k = 0;  // draw k of this image is splitmix64(key + k): no state to carry
  const auto draw = [&](uint64_t n) { return static_cast<int>(splitmix64(key + k++) % n); };
  std::vector<uint8_t> canvas(static_cast<size_t>(side) * static_cast<size_t>(side), 0);
  for (int p = 0; p < clutter.pieces; ++p) {
    const int64_t source = pool[static_cast<size_t>(draw(pool.size()))];
    const int sy = draw(static_cast<uint64_t>(rows - piece + 1)), sx = draw(static_cast<uint64_t>(cols - piece + 1));
    const int dy = draw(static_cast<uint64_t>(side - piece + 1)), dx = draw(static_cast<uint64_t>(side - piece + 1));
    paste_max(canvas, side, images + static_cast<size_t>(source) * image_bytes, cols, sy, sx, piece, piece, dy, dx);
  }
  const int oy = margin + draw(static_cast<uint64_t>(side - rows - 2 * margin + 1));
  const int ox = margin + draw(static_cast<uint64_t>(side - cols - 2 * margin + 1));
  paste_max(canvas, side, images + static_cast<size_t>(index) * image_bytes, cols, 0, 0, rows, cols, oy, ox);
  return canvas;
}

}  // namespace pmpl::data
