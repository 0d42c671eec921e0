// libFuzzer target for the safetensors reader's layout checks (engine/io/safetensors_format.h):
// every input is either refused with a pmpl::Error or yields entries whose bytes lie inside the
// input and match their shapes, so load_safetensors never reads past the file. With ASan and
// UBSan, so an overflowing element count or offset is a finding too.
#include <cstddef>
#include <cstdint>

#include "core/error_core.h"
#include "engine/io/safetensors_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pmpl;
  safetensors::Layout layout;
  try {
    layout = safetensors::parse(data, size, "input");
  } catch (const Error&) {
    return 0;
  }
  const uint64_t data_size = size - layout.data_start;
  if (layout.data_start > size) __builtin_trap();
  for (const safetensors::Entry& e : layout.entries) {
    // An accepted shape's element count and byte size fit in 64 bits (Shape::numel is signed).
    int64_t numel = 1, bytes = 0;
    for (int64_t d : e.dims) {
      if (__builtin_mul_overflow(numel, d, &numel)) __builtin_trap();
    }
    if (__builtin_mul_overflow(numel, static_cast<int64_t>(dtype_size(e.dtype)), &bytes)) __builtin_trap();
    if (e.begin > e.end || e.end > data_size || e.end - e.begin != static_cast<uint64_t>(bytes)) __builtin_trap();
  }
  return 0;
}
