// Dtype conversion on the device (f32, f64, bf16, f16, i32, i64, u8 in any pair), rounding as the
// host's conversions do (core/half.h, cast_value): Tensor::copy_ between dtypes on a GPU and
// ops::cast, the casts of mixed precision. Written without a GPU: compiled here, checked against
// the host conversions by CudaOps.CastsMatchTheHost where a GPU is present.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace pmpl::cuda {

void convert(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n);

}  // namespace pmpl::cuda
