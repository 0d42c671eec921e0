// The GPU's deterministic column sums split a [rows, c] array among blocks and threads by
// core/kernels/column_plan.h; enumerating every (block, thread) as the kernel does must visit
// every (row, channel) exactly once, and each channel's partial slot once per chunk, for shapes
// around every boundary (c below, at and above the 256-thread block; rows below and above the
// 64-row minimum chunk; rows not a multiple of anything).
#include <gtest/gtest.h>

#include <vector>

#include "core/kernels/column_plan.h"

namespace pmpl {
namespace {

TEST(ColumnPlan, CoversEveryElementOnce) {
  for (int64_t c : {1, 3, 24, 96, 144, 255, 256, 257, 960, 1280}) {
    for (int64_t rows : {0, 1, 2, 63, 64, 65, 300, 1023, 4097, 100003}) {
      SCOPED_TRACE(testing::Message() << "rows " << rows << " c " << c);
      const kernels::ColumnPlan p = kernels::column_plan(rows, c);
      ASSERT_LE(p.lanes_c * p.lanes_r, kernels::kColumnThreads);
      ASSERT_LE(p.chunks, 65535);  // a grid's y dimension
      std::vector<int> seen(static_cast<size_t>(rows * c), 0);
      std::vector<int> slots(static_cast<size_t>(p.chunks * c), 0);
      for (int64_t tile = 0; tile < p.tiles; ++tile) {
        for (int64_t chunk = 0; chunk < p.chunks; ++chunk) {
          for (int thread = 0; thread < kernels::kColumnThreads; ++thread) {
            kernels::ColumnWork w;
            if (kernels::column_work(p, tile, chunk, thread, w)) {
              for (int64_t r = w.r0; r < w.r1; r += w.step) ++seen[static_cast<size_t>(r * c + w.j)];
            }
            if (w.lane_r == 0 && w.j < c) ++slots[static_cast<size_t>(chunk * c + w.j)];
          }
        }
      }
      int64_t wrong = 0;
      for (int v : seen) wrong += v != 1;
      EXPECT_EQ(wrong, 0) << "elements not summed exactly once";
      for (int v : slots) wrong += v != 1;
      EXPECT_EQ(wrong, 0) << "partial slots not written exactly once";
    }
  }
}

}  // namespace
}  // namespace pmpl
