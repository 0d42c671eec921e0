// Element types a tensor can hold. CPU kernels compute in f32 and f64 (f64 for gradient checks);
// bf16 and f16 are storage types for mixed precision; integers carry labels and image bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/half.h"

namespace pmpl {

enum class DType : uint8_t { kF32, kF64, kBF16, kF16, kI32, kI64, kU8 };

size_t dtype_size(DType dtype);
std::string_view dtype_name(DType dtype);
// Parses the names dtype_name() prints ("f32", "bf16", ...); throws pmpl::Error on anything else.
DType parse_dtype(std::string_view name);
bool is_floating(DType dtype);

template <class T>
struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::kF32; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::kF64; };
template <> struct DTypeOf<bf16> { static constexpr DType value = DType::kBF16; };
template <> struct DTypeOf<f16> { static constexpr DType value = DType::kF16; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::kI32; };
template <> struct DTypeOf<int64_t> { static constexpr DType value = DType::kI64; };
template <> struct DTypeOf<uint8_t> { static constexpr DType value = DType::kU8; };

template <class T>
inline constexpr DType dtype_of = DTypeOf<T>::value;

}  // namespace pmpl
