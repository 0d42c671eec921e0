// Turning a runtime dtype into a compile-time type: dispatch_float for CPU kernels (f32, f64),
// dispatch_all for dtype-agnostic work (fills, conversions). The callable gets a value of the
// element type as its only argument: `[&](auto tag) { using T = decltype(tag); ... }`.
#pragma once

#include <type_traits>

#include "core/dtype.h"
#include "engine/error.h"

namespace pmpl {

template <class F>
decltype(auto) dispatch_float(DType dtype, const char* op, F&& f) {
  switch (dtype) {
    case DType::kF32: return f(float{});
    case DType::kF64: return f(double{});
    default:
      throw_error(fmt::format("{}: dtype {} is not supported by CPU kernels (use f32 or f64)", op,
                              dtype_name(dtype)));
  }
}

template <class F>
decltype(auto) dispatch_all(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kF32: return f(float{});
    case DType::kF64: return f(double{});
    case DType::kBF16: return f(bf16{});
    case DType::kF16: return f(f16{});
    case DType::kI32: return f(int32_t{});
    case DType::kI64: return f(int64_t{});
    case DType::kU8: return f(uint8_t{});
  }
  PMPL_ASSERT(false, "unknown dtype {}", static_cast<int>(dtype));
}

}  // namespace pmpl
