// normalize_images: the loader's bytes to the model's input, one pass.
#include "engine/ops/op_util.h"
#if PMPL_CUDA
#include "cuda_kernels/elementwise.h"
#endif

namespace pmpl::ops {

Tensor normalize_images(const Tensor& images, const float mean[3], const float stddev[3], DType dtype) {
  PMPL_CHECK(images.dtype() == DType::kU8 && images.rank() == 4 && images.dim(3) == 3,
             "normalize_images: expected u8 [N, H, W, 3], got {} {}", dtype_name(images.dtype()),
             images.shape().str());
  PMPL_CHECK(dtype == DType::kF32 || (images.is_cuda() && (dtype == DType::kBF16 || dtype == DType::kF16)),
             "normalize_images: output dtype {} (f32 anywhere; bf16 or f16 on a GPU)", dtype_name(dtype));
  Tensor out = Tensor::empty(images.shape(), dtype, images.device());
  float scale[3], shift[3];
  for (int c = 0; c < 3; ++c) {
    scale[c] = 1.0f / (255.0f * stddev[c]);
    shift[c] = -mean[c] / stddev[c];
  }
  const int64_t pixels = images.numel() / 3;
  if (images.is_cuda()) {
#if PMPL_CUDA
    cuda::normalize_images(images.data<uint8_t>(), out.raw_data(), dtype, pixels, scale, shift);
#endif
    return out;
  }
  const uint8_t* in = images.data<uint8_t>();
  float* o = out.data<float>();
#pragma omp parallel for if (pixels > 65536)
  for (int64_t p = 0; p < pixels; ++p) {
    for (int c = 0; c < 3; ++c) o[3 * p + c] = static_cast<float>(in[3 * p + c]) * scale[c] + shift[c];
  }
  return out;
}

}  // namespace pmpl::ops
