// The autograd tape: accumulation, shared inputs, grad mode, release of saved tensors, and
// gradients landing in a flat buffer.
#include "tests/test_util.h"

namespace pmpl {
namespace {

TEST(Autograd, LeafGradientsAccumulateAcrossBackwardCalls) {
  Tensor w = Tensor::from_vector<double>({1.0, 2.0}, Shape{2}).set_requires_grad(true);
  ops::sum(ops::scale(w, 3.0)).backward();
  ops::sum(ops::scale(w, 3.0)).backward();
  EXPECT_EQ(w.grad().to_vector<double>(), (std::vector<double>{6.0, 6.0}));
  w.zero_grad();
  EXPECT_EQ(w.grad().to_vector<double>(), (std::vector<double>{0.0, 0.0}));
}

// y = x * x + x: x reaches the output along three edges; dy/dx = 2x + 1.
TEST(Autograd, SharedInputsSumTheirGradients) {
  Tensor x = Tensor::from_vector<double>({1.5, -2.0, 0.25}, Shape{3}).set_requires_grad(true);
  ops::sum(ops::add(ops::mul(x, x), x)).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{4.0, -3.0, 1.5}));
}

TEST(Autograd, NoGradGuardRecordsNothing) {
  Tensor x = test::random({3}, 1);
  {
    NoGradGuard guard;
    Tensor y = ops::relu(x);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(y.grad_fn(), nullptr);
  }
  EXPECT_TRUE(ops::relu(x).requires_grad());
  EXPECT_FALSE(ops::relu(x.detach()).requires_grad());
}

TEST(Autograd, SavedTensorsAreReleasedAfterTheirNodeRuns) {
  Tensor x = test::random({4, 5}, 2);
  std::weak_ptr<Storage> saved;  // saved tensors are detached views: watch the memory itself
  Tensor loss;
  {
    Tensor hidden = ops::sigmoid(test::random({4, 5}, 3, false));
    saved = hidden.impl()->storage;
    loss = ops::sum(ops::mul(x, hidden));  // mul saves `hidden` for x's gradient
  }
  EXPECT_FALSE(saved.expired()) << "the graph holds what backward needs";
  loss.backward();
  EXPECT_TRUE(saved.expired()) << "a node's saved tensors must be freed once it has run";
}

TEST(Autograd, SecondBackwardThroughAFreedGraphIsAClearError) {
  Tensor x = test::random({3}, 4);
  Tensor loss = ops::sum(ops::relu(x));
  loss.backward();
  EXPECT_THROW(loss.backward(), Error);
}

TEST(Autograd, BackwardNeedsAGradientForNonScalars) {
  Tensor x = test::random({3}, 5);
  EXPECT_THROW(ops::relu(x).backward(), Error);
  EXPECT_THROW(ops::relu(x.detach()).backward(Tensor::ones(Shape{3}, DType::kF64)), Error);
}

// Parameters whose gradients are views of one flat buffer: backward writes into the buffer.
TEST(Autograd, GradientsLandInAnInstalledFlatBuffer) {
  Tensor flat_grad = Tensor::zeros(Shape{5}, DType::kF64);
  Tensor a = test::random({2}, 6), b = test::random({3}, 7);
  a.set_grad(flat_grad.view_slice(0, Shape{2}));
  b.set_grad(flat_grad.view_slice(2, Shape{3}));
  ops::sum(ops::scale(a, 2.0)).backward();
  ops::sum(ops::scale(b, -1.0)).backward();
  ops::sum(ops::scale(b, -1.0)).backward();
  EXPECT_EQ(flat_grad.to_vector<double>(), (std::vector<double>{2, 2, -2, -2, -2}));
}

TEST(Autograd, DeepChainsDoNotOverflowTheStack) {
  Tensor x = test::random({2}, 8);
  Tensor y = x;
  for (int i = 0; i < 20000; ++i) y = ops::scale(y, 1.0);
  ops::sum(y).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{1.0, 1.0}));
}

}  // namespace
}  // namespace pmpl
