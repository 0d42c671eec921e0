// Data-parallel building blocks under `mpirun -np 2` (ctest Mpi.TwoProcesses runs this binary so;
// a plain run skips them): the MPI collectives, gradients reduced in buckets during backward, and
// synchronised batchnorm, each against one process computing the union of the two batches.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/autograd.h"
#include "engine/comm.h"
#include "engine/ops.h"
#include "layers/layers.h"
#include "layers/module.h"
#include "tests/test_util.h"
#include "train/data_parallel.h"
#include "train/parameters.h"
#include "train/sgd.h"

namespace pmpl {
namespace {

#define REQUIRE_TWO_PROCESSES(comm)                                                 \
  Communicator& comm = process_comm();                                              \
  if (comm.world() != 2) GTEST_SKIP() << "runs under mpirun -np 2 (ctest Mpi.TwoProcesses)"

// Rows [begin, end) of a [N, ...] tensor.
Tensor rows(const Tensor& t, int64_t begin, int64_t end) {
  Shape shape = t.shape();
  shape[0] = end - begin;
  return t.view_slice(begin * (t.numel() / t.dim(0)), shape).clone();
}

double relative_difference(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = test::as_doubles(a), y = test::as_doubles(b);
  double d = 0, n = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    d += (x[i] - y[i]) * (x[i] - y[i]);
    n += y[i] * y[i];
  }
  return std::sqrt(d / std::max(n, 1e-300));
}

TEST(Mpi, CollectivesSumAndBroadcast) {
  REQUIRE_TWO_PROCESSES(comm);
  EXPECT_STREQ(comm.backend(), "mpi");
  const int r = comm.rank();
  Tensor f = Tensor::from_vector<float>({1.5f + r, -2.0f * r, 3.0f}, Shape{3});
  comm.all_reduce_sum(f);
  EXPECT_EQ(f.to_vector<float>(), (std::vector<float>{4.0f, -2.0f, 6.0f}));
  Tensor d = Tensor::from_vector<double>({0.1 * (r + 1)}, Shape{1});
  comm.all_reduce_sum(d);
  EXPECT_DOUBLE_EQ(d.to_vector<double>()[0], 0.1 + 0.2);
  Tensor i = Tensor::from_vector<int64_t>({int64_t{1} << (40 + r)}, Shape{1});
  comm.all_reduce_sum(i);
  EXPECT_EQ(i.to_vector<int64_t>()[0], (int64_t{1} << 40) + (int64_t{1} << 41));
  Tensor b = Tensor::from_vector<float>({static_cast<float>(r + 7)}, Shape{1});
  comm.broadcast(b, 1);
  EXPECT_EQ(b.to_vector<float>()[0], 8.0f) << "rank 1's value everywhere";
  // Many asynchronous reductions at once complete in order, each with its own result.
  std::vector<Tensor> parts;
  std::vector<std::shared_ptr<CommWork>> works;
  for (int k = 0; k < 20; ++k) {
    parts.push_back(Tensor::full(Shape{1000 + k}, k + r, DType::kF32));
    works.push_back(comm.all_reduce_sum_async(parts.back()));
  }
  for (auto& w : works) w->wait();
  for (int k = 0; k < 20; ++k) EXPECT_EQ(parts[static_cast<size_t>(k)].to_vector<float>().back(), 2.0f * k + 1);
  comm.barrier();
}

// A network without batchnorm: two linear layers. Each rank takes half of a batch; the reduced
// gradient (buckets small enough that there are several, sent during backward) and the weights
// after a few SGD steps equal one process's on the whole batch.
TEST(Mpi, BucketedGradientsEqualOneProcessOnTheUnion) {
  REQUIRE_TWO_PROCESSES(comm);
  auto build = [] {
    Generator gen(5);
    auto net = std::make_shared<Sequential>();
    net->append(std::make_shared<Linear>(7, 16, gen));
    net->append(std::make_shared<ReLU6>());
    net->append(std::make_shared<Linear>(16, 16, gen));
    net->append(std::make_shared<ReLU6>());
    net->append(std::make_shared<Linear>(16, 3, gen));
    return net;
  };
  auto mine = build(), whole = build();
  ParameterGroup mine_params(mine->parameters()), whole_params(whole->parameters());
  Sgd mine_sgd(mine_params, {}), whole_sgd(whole_params, {});
  GradientReducer reducer(mine_params, comm, 256);
  EXPECT_GT(reducer.buckets(), 3);
  Generator data(11);
  for (int step = 0; step < 4; ++step) {
    const Tensor x = ops::scale(Tensor::randn(Shape{10, 7}, data), 3.0);
    const Tensor labels = Tensor::from_vector<int64_t>({0, 1, 2, 0, 1, 2, 2, 1, 0, 0}, Shape{10});
    mine_params.zero_grad();
    whole_params.zero_grad();
    const int64_t begin = comm.rank() * 5;
    reducer.backward(ops::cross_entropy(mine->forward(rows(x, begin, begin + 5)), rows(labels, begin, begin + 5), 0.1));
    ops::cross_entropy(whole->forward(x), labels, 0.1).backward();
    EXPECT_LT(relative_difference(mine_params.grads(), whole_params.grads()), 1e-6) << "step " << step;
    mine_sgd.step(0.1);
    whole_sgd.step(0.1);
  }
  EXPECT_LT(relative_difference(mine_params.values(), whole_params.values()), 1e-6);
  // Both ranks hold the same weights.
  Tensor theirs = mine_params.values().clone();
  comm.broadcast(theirs, 0);
  EXPECT_EQ(theirs.to_vector<float>(), mine_params.values().to_vector<float>());
}

// Synchronised batchnorm on half of a batch per rank: outputs, running statistics and the
// input gradient equal one process's batchnorm on the whole batch; dgamma and dbeta are each
// rank's share, summing to the whole.
TEST(Mpi, SyncBatchNormEqualsOneProcessOnTheUnion) {
  REQUIRE_TWO_PROCESSES(comm);
  const ops::SumReducer sync = [&comm](const Tensor& sums) { comm.all_reduce_sum(sums); };
  for (auto act : {ops::BnActivation::kNone, ops::BnActivation::kReLU6}) {
    SCOPED_TRACE(static_cast<int>(act));
    const Tensor x = ops::add(test::random({6, 3, 4, 5}, 3, false, 2.0), Tensor::full(Shape{5}, 1.5, DType::kF64));
    const Tensor dy = test::random({6, 3, 4, 5}, 4, false);
    const Tensor gamma = test::random({5}, 5, false), beta = test::random({5}, 6, false);
    auto run = [&](const Tensor& input, const Tensor& grad_out, const ops::SumReducer* s) {
      Tensor xi = input.clone().set_requires_grad(true), gi = gamma.clone().set_requires_grad(true);
      Tensor bi = beta.clone().set_requires_grad(true);
      Tensor rm = Tensor::zeros(Shape{5}, DType::kF64), rv = Tensor::ones(Shape{5}, DType::kF64);
      const Tensor y = ops::batch_norm(xi, gi, bi, rm, rv, true, 0.1, 1e-5, act, s);
      y.backward(grad_out);
      return std::vector<Tensor>{y, xi.grad(), gi.grad(), bi.grad(), rm, rv};
    };
    const int64_t begin = comm.rank() * 3;
    const auto whole = run(x, dy, nullptr);
    const auto half = run(rows(x, begin, begin + 3), rows(dy, begin, begin + 3), &sync);
    EXPECT_LT(relative_difference(half[0], rows(whole[0], begin, begin + 3)), 1e-12) << "y";
    EXPECT_LT(relative_difference(half[1], rows(whole[1], begin, begin + 3)), 1e-10) << "dx";
    Tensor dgamma = half[2].clone(), dbeta = half[3].clone();
    comm.all_reduce_sum(dgamma);
    comm.all_reduce_sum(dbeta);
    EXPECT_LT(relative_difference(dgamma, whole[2]), 1e-12) << "dgamma";
    EXPECT_LT(relative_difference(dbeta, whole[3]), 1e-12) << "dbeta";
    EXPECT_LT(relative_difference(half[4], whole[4]), 1e-12) << "running mean";
    EXPECT_LT(relative_difference(half[5], whole[5]), 1e-12) << "running var";
  }
}

}  // namespace
}  // namespace pmpl
