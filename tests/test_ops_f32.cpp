// Across the op families: the f32 instantiations of the backward code (tolerances:
// tests/op_test_util.h).
#include <functional>

#include "tests/op_test_util.h"

namespace pmpl {
namespace {

using test::expect_close;
using test::f32;
using test::random;

// Every op's f32 backward against its f64 backward on the same inputs: the gradient checks run
// in f64 only, so this is what covers the f32 instantiations of the backward code.
TEST(OpRef, F32BackwardMatchesF64) {
  using Fn = std::function<Tensor(const Tensors&)>;
  const Tensor labels = Tensor::from_vector<int64_t>({1, 0, 4}, Shape{3});
  const std::vector<std::pair<const char*, std::pair<Fn, std::vector<Shape>>>> cases = {
      {"conv2d", {[](const Tensors& t) { return ops::conv2d(t[0], t[1], 2, 1); }, {{2, 7, 6, 3}, {4, 3, 3, 3}}}},
      {"depthwise", {[](const Tensors& t) { return ops::depthwise_conv2d(t[0], t[1], 2, 2); }, {{2, 9, 8, 5}, {5, 5, 5}}}},
      {"linear", {[](const Tensors& t) { return ops::linear(t[0], t[1], t[2]); }, {{3, 4}, {5, 4}, {5}}}},
      {"batch_norm", {[](const Tensors& t) { return ops::batch_norm(t[0], t[1], t[2], Tensor(), Tensor(), true); }, {{2, 3, 4, 5}, {5}, {5}}}},
      {"max_pool", {[](const Tensors& t) { return ops::max_pool2d(t[0], 5, 1, 2); }, {{2, 6, 7, 3}}}},
      {"avg_pool", {[](const Tensors& t) { return ops::avg_pool2d(t[0], 7, 1, 3); }, {{2, 6, 7, 3}}}},
      {"strip_pool", {[](const Tensors& t) { return ops::strip_pool(t[0]); }, {{2, 3, 4, 5}}}},
      {"cross_entropy", {[&](const Tensors& t) { return ops::cross_entropy(t[0], labels, 0.1); }, {{3, 5}}}},
      {"hardswish*sigmoid", {[](const Tensors& t) { return ops::mul(ops::hardswish(t[0]), ops::sigmoid(t[1])); }, {{4, 5}, {5}}}},
      {"softmax", {[](const Tensors& t) { return ops::softmax(t[0]); }, {{3, 6}}}},
      {"channel_affine", {[](const Tensors& t) { return ops::channel_affine(t[0], t[1], t[2], ops::ChannelActivation::kHardswish); }, {{2, 3, 4, 5}, {5}, {5}}}},
  };
  for (const auto& [name, spec] : cases) {
    SCOPED_TRACE(name);
    const auto& [fn, shapes] = spec;
    Tensors in64, in32;
    for (size_t i = 0; i < shapes.size(); ++i) {
      in64.push_back(random(shapes[i], 100 + i, true, 2.0));
      in32.push_back(f32(in64.back()).set_requires_grad(true));
    }
    const Tensor y64 = fn(in64), y32 = fn(in32);
    const Tensor g = random(y64.shape(), 7, false);
    y64.backward(g);
    y32.backward(f32(g));
    expect_close(y32, y64, test::kRefTol, test::kRefTol, "output");
    for (size_t i = 0; i < in64.size(); ++i) {
      expect_close(in32[i].grad(), in64[i].grad(), 1e-4, 1e-4, "gradient");
    }
  }
}

}  // namespace
}  // namespace pmpl
