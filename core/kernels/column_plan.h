// How cuda_kernels/column_sums.cuh splits a [rows, c] array among blocks and threads, in plain
// C++ so a CPU test can check, for any shape, that every (row, channel) is summed exactly once
// (ColumnPlan.CoversEveryElementOnce): a block covers a tile of up to 256 channels and a chunk of
// rows; its threads are lanes over channels x lanes over rows.
#pragma once

#include <cstdint>

#include "core/hd.h"

namespace pmpl::kernels {

inline constexpr int kColumnThreads = 256;

struct ColumnPlan {
  int64_t rows = 0, c = 0;
  int lanes_c = 1, lanes_r = 1;  // threads per block: lanes_c * lanes_r <= kColumnThreads
  int64_t tiles = 0, chunks = 0, rows_per_chunk = 1;
};

inline ColumnPlan column_plan(int64_t rows, int64_t c) {
  ColumnPlan p;
  p.rows = rows;
  p.c = c;
  p.lanes_c = static_cast<int>(c < kColumnThreads ? c : kColumnThreads);
  if (p.lanes_c < 1) p.lanes_c = 1;
  p.lanes_r = kColumnThreads / p.lanes_c;
  p.tiles = (c + p.lanes_c - 1) / p.lanes_c;
  if (rows == 0 || c == 0) return p;
  // About 1024 blocks (enough to fill any current GPU), at least 64 rows per chunk.
  const int64_t wanted = (1024 + p.tiles - 1) / p.tiles;
  const int64_t most = (rows + 63) / 64;
  const int64_t chunks = wanted < most ? wanted : most;
  p.rows_per_chunk = (rows + chunks - 1) / chunks;
  p.chunks = (rows + p.rows_per_chunk - 1) / p.rows_per_chunk;
  return p;
}

// Thread `thread` of block (tile, chunk): its channel j and rows r0, r0 + step, ... < r1; false
// when the thread has no work (past the channels, or a spare lane).
struct ColumnWork {
  int lane_c, lane_r;
  int64_t j, r0, r1, step;
};
PMPL_HD bool column_work(const ColumnPlan& p, int64_t tile, int64_t chunk, int thread, ColumnWork& w) {
  w.lane_c = thread % p.lanes_c;
  w.lane_r = thread / p.lanes_c;
  w.j = tile * p.lanes_c + w.lane_c;
  const int64_t first = chunk * p.rows_per_chunk;
  w.r0 = first + w.lane_r;
  w.r1 = first + p.rows_per_chunk < p.rows ? first + p.rows_per_chunk : p.rows;
  w.step = p.lanes_r;
  return w.lane_r < p.lanes_r && w.j < p.c;
}

}  // namespace pmpl::kernels
