// Seeds for tests/fuzz/fuzz_safetensors.cpp: small files as pmpl writes them (with metadata and
// its checksum, every dtype, a scalar and an empty tensor).
#include <string>

#include "engine/io/safetensors.h"

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const std::string dir = argv[1];
  using namespace pmpl;
  save_safetensors(dir + "/checkpoint.safetensors",
                   {{"w", Tensor::full(Shape{2, 3}, 0.5)},
                    {"d", Tensor::full(Shape{3}, -1.0, DType::kF64)},
                    {"h", Tensor::full(Shape{2, 1, 2}, 2.0, DType::kBF16)},
                    {"f", Tensor::full(Shape{1}, 3.0, DType::kF16)},
                    {"i", Tensor::full(Shape{}, 7.0, DType::kI64)},
                    {"j", Tensor::full(Shape{2}, 1.0, DType::kI32)},
                    {"u", Tensor::full(Shape{4}, 9.0, DType::kU8)},
                    {"empty", Tensor::zeros(Shape{0, 3})}},
                   {{"pmpl.trainer", "{\"epoch\": 1}"}, {"pmpl.version", "0.1.0"}});
  save_safetensors(dir + "/weights.safetensors", {{"x", Tensor::full(Shape{4, 4}, 1.0)}});
  return 0;
}
