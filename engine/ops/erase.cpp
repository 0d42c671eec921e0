// erase_boxes_: random erasing's fill, on the normalised input (data/random_erasing.h).
#include "core/kernels/erase.h"
#include "engine/ops/op_util.h"
#if PMPL_CUDA
#include "cuda_kernels/elementwise.h"
#endif

namespace pmpl::ops {

void erase_boxes_(Tensor& x, const Tensor& boxes, const Tensor& keys, int fill) {
  PMPL_CHECK(x.rank() == 4 && x.dim(3) == 3 && !x.requires_grad(),
             "erase_boxes_: expected a normalised input [N, H, W, 3] without gradient, got {}", x.shape().str());
  PMPL_CHECK(boxes.dtype() == DType::kI32 && boxes.rank() == 3 && boxes.dim(0) == x.dim(0) && boxes.dim(2) == 4 &&
                 keys.dtype() == DType::kI64 && keys.shape() == Shape{x.dim(0)},
             "erase_boxes_: boxes must be i32 [N, K, 4] and keys i64 [N] for N = {}, got {} {} and {} {}", x.dim(0),
             dtype_name(boxes.dtype()), boxes.shape().str(), dtype_name(keys.dtype()), keys.shape().str());
  PMPL_CHECK(boxes.device() == x.device() && keys.device() == x.device(), "erase_boxes_: boxes and keys must be on {}",
             x.device().str());
  PMPL_CHECK(fill >= kernels::kEraseConst && fill <= kernels::kErasePixel, "erase_boxes_: unknown fill {}", fill);
  const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2);
  const int k = static_cast<int>(boxes.dim(1));
  if (x.is_cuda()) {
#if PMPL_CUDA
    cuda::erase_boxes(x.dtype(), x.raw_data(), n, h, w, boxes.data<int32_t>(), k, keys.data<int64_t>(), fill);
#endif
    return;
  }
  PMPL_CHECK(x.dtype() == DType::kF32, "erase_boxes_: a CPU input is f32, got {}", dtype_name(x.dtype()));
  float* out = x.data<float>();
  const int32_t* all_boxes = boxes.data<int32_t>();
  const int64_t* all_keys = keys.data<int64_t>();
  // Box by box, in order: where boxes overlap the last one's value stays, as covering_box picks.
#pragma omp parallel for if (n > 8)
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t key = static_cast<uint64_t>(all_keys[i]);
    for (int b = 0; b < k; ++b) {
      const int32_t* box = all_boxes + (i * k + b) * 4;
      for (int64_t y = box[0]; y < box[0] + box[2]; ++y) {
        for (int64_t xx = box[1]; xx < box[1] + box[3]; ++xx) {
          const int64_t pixel = y * w + xx;
          for (int c = 0; c < 3; ++c) out[(i * h * w + pixel) * 3 + c] = kernels::erase_value(fill, key, b, pixel, c);
        }
      }
    }
  }
}

}  // namespace pmpl::ops
