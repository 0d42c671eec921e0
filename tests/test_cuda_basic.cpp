// CUDA device tensors: allocation, copies and fill. Skipped (not passed) where no GPU is visible;
// the one test that runs everywhere checks that such a machine gets a clear error.
#include <cmath>

#include "engine/allocator.h"
#include "engine/comm.h"
#include "engine/comm_nccl.h"
#include "engine/cuda_runtime.h"
#include "tests/test_util.h"

namespace pmpl {
namespace {


TEST(Cuda, CopiesRoundTrip) {
  SKIP_WITHOUT_GPU();
  const Tensor host = test::random({3, 5, 7, 11}, 1, false, 1.0, DType::kF32);
  const Tensor device = host.to(Device::cuda());
  EXPECT_TRUE(device.is_cuda());
  const Tensor again = device.clone().to(Device::cpu());
  EXPECT_EQ(again.to_vector<float>(), host.to_vector<float>());
  EXPECT_EQ(test::as_doubles(device.to(DType::kBF16).to(Device::cpu())),
            test::as_doubles(host.to(DType::kBF16)));
}

TEST(Cuda, FillsEveryDtype) {
  SKIP_WITHOUT_GPU();
  for (DType dtype : {DType::kF32, DType::kF64, DType::kBF16, DType::kF16, DType::kI32, DType::kI64,
                      DType::kU8}) {
    // 1027 elements: not a multiple of the block size.
    const Tensor t = Tensor::full(Shape{1027}, 3.0, dtype, Device::cuda());
    for (double v : test::as_doubles(t)) ASSERT_EQ(v, 3.0) << dtype_name(dtype);
  }
}

TEST(Cuda, AllocatorCachesDeviceBlocks) {
  SKIP_WITHOUT_GPU();
  { Tensor t = Tensor::empty(Shape{1 << 20}, DType::kF32, Device::cuda()); }
  const size_t before = cuda_allocator(0).stats().system_allocs;
  { Tensor t = Tensor::empty(Shape{1 << 20}, DType::kF32, Device::cuda()); }
  EXPECT_EQ(cuda_allocator(0).stats().system_allocs, before);
}

TEST(Cuda, PinnedHostBuffersCopyBothWays) {
  SKIP_WITHOUT_GPU();
  Tensor pinned = Tensor::empty_pinned(Shape{4, 5}, DType::kU8);
  for (int i = 0; i < 20; ++i) pinned.data<uint8_t>()[i] = static_cast<uint8_t>(i * 7);
  const Tensor back = pinned.to(Device::cuda()).to(Device::cpu());
  EXPECT_EQ(back.to_vector<uint8_t>(), pinned.to_vector<uint8_t>());
  EXPECT_GT(pinned_allocator().stats().allocated, 0u);
}

// Without a GPU "pinned" buffers are plain host memory, so the loader works everywhere.
// One process, one GPU (all a single-GPU machine allows: NCCL refuses two ranks on one device):
// the NCCL communicator joins, sums over one rank (the identity), broadcasts and syncs on the
// GPU, and refuses host tensors.
TEST(Cuda, NcclCommunicatorOnOneRank) {
  SKIP_WITHOUT_GPU();
  if (!built_with_nccl()) GTEST_SKIP() << "built without NCCL";
  auto single = make_single_process_comm();
  auto nccl = make_nccl_comm(*single, 0);
  EXPECT_STREQ(nccl->backend(), "nccl");
  EXPECT_EQ(nccl->world(), 1);
  const Tensor host = test::random({1000, 3}, 2, false, 1.0, DType::kF32);
  const Tensor device = host.to(Device::cuda());
  nccl->all_reduce_sum(device);
  EXPECT_EQ(device.to(Device::cpu()).to_vector<float>(), host.to_vector<float>());
  nccl->broadcast(device, 0);
  nccl->barrier();
  EXPECT_THROW(nccl->all_reduce_sum(host), InternalError);
}

// The fused Meta-Pooling mixture on the GPU against the CPU op, on coarse values (ties in every
// window) and odd sizes: tensors smaller than one tile, {2, 37, 35, 19}, which spans several row
// tiles of every kernel (16 and 12 rows), three column tiles and a partial channel tile, and an
// empty batch (zero sums). y and dx are the shared per-element functions in the same order (nvcc
// builds with -fmad=false): bit for bit. The strip attention's and the weights' gradients sum in
// double in another order (tiles and blocks on the GPU), rounded once to float.
TEST(Cuda, MetaPoolMixMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  for (const Shape& shape :
       std::vector<Shape>{{2, 9, 11, 13}, {1, 2, 3, 5}, {3, 14, 14, 40}, {1, 1, 1, 3}, {2, 37, 35, 19}, {0, 4, 5, 3}}) {
    SCOPED_TRACE(shape.str());
    std::vector<float> v = test::random(shape, 1, false, 2.0, DType::kF32).to_vector<float>();
    for (float& e : v) e = std::round(e * 2.0f) / 2.0f;
    const Tensor x = Tensor::from_vector(v, shape);
    const Tensor a_h = ops::sigmoid(test::random({shape[0], shape[1], 1, shape[3]}, 2, false, 1.0, DType::kF32));
    const Tensor a_w = ops::sigmoid(test::random({shape[0], 1, shape[2], shape[3]}, 5, false, 1.0, DType::kF32));
    const Tensor w = ops::softmax(test::random({8}, 3, false, 1.0, DType::kF32));
    const Tensor dy = test::random(shape, 4, false, 1.0, DType::kF32);
    Tensors results[2];
    for (int gpu = 0; gpu < 2; ++gpu) {
      const Device d = gpu ? Device::cuda() : Device::cpu();
      Tensor xi = x.to(d).set_requires_grad(true), hi = a_h.to(d).set_requires_grad(true);
      Tensor wi_ = a_w.to(d).set_requires_grad(true), wi = w.to(d).set_requires_grad(true);
      const Tensor y = ops::meta_pool_mix(xi, hi, wi_, wi);
      y.backward(dy.to(d));
      results[gpu] = {y.to(Device::cpu()), xi.grad().to(Device::cpu()), hi.grad().to(Device::cpu()),
                      wi_.grad().to(Device::cpu()), wi.grad().to(Device::cpu())};
    }
    test::expect_close(results[1][0], results[0][0], 0, 0, "y");
    test::expect_close(results[1][1], results[0][1], 0, 0, "dx");
    test::expect_close(results[1][2], results[0][2], 1e-6, 1e-6, "da_h");
    test::expect_close(results[1][3], results[0][3], 1e-6, 1e-6, "da_w");
    test::expect_close(results[1][4], results[0][4], 1e-6, 1e-6, "dw");
  }
}

// Depthwise convolution on the GPU against the CPU op: every kernel size and stride used, odd
// sizes, C not a multiple of anything (one channel per thread) and multiples of 4 (4-channel
// groups), a batch large enough for more than 64 weight-gradient chunks. The GPU runs the CPU
// op's per-element arithmetic in its order, chunks included, without FMA contraction: bit for
// bit.
TEST(Cuda, DepthwiseMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  for (int k : {3, 5, 7}) {
    for (int stride : {1, 2}) {
      for (const Shape& shape : std::vector<Shape>{{2, 9, 7, 13}, {4, 28, 28, 96}, {1, 1, 1, 5}, {80, 28, 28, 8}}) {
        SCOPED_TRACE(testing::Message() << "k " << k << " stride " << stride << " " << shape.str());
        const Tensor x = test::random(shape, 1, false, 1.0, DType::kF32);
        const Tensor w = test::random({shape[3], k, k}, 2, false, 1.0, DType::kF32);
        Tensors results[2];
        for (int gpu = 0; gpu < 2; ++gpu) {
          const Device d = gpu ? Device::cuda() : Device::cpu();
          Tensor xi = x.to(d).set_requires_grad(true), wi = w.to(d).set_requires_grad(true);
          const Tensor y = ops::depthwise_conv2d(xi, wi, stride, k / 2);
          y.backward(test::random(y.shape(), 3, false, 1.0, DType::kF32).to(d));
          results[gpu] = {y.to(Device::cpu()), xi.grad().to(Device::cpu()), wi.grad().to(Device::cpu())};
        }
        test::expect_close(results[1][0], results[0][0], 0, 0, "y");
        test::expect_close(results[1][1], results[0][1], 0, 0, "dx");
        test::expect_close(results[1][2], results[0][2], 0, 0, "dw");
      }
    }
  }
}

TEST(Cuda, PinnedFallsBackToHostMemoryWithoutAGpu) {
  if (cuda::device_count() > 0) GTEST_SKIP() << "a GPU is present";
  Tensor t = Tensor::empty_pinned(Shape{8}, DType::kF32);
  t.fill_(2.0);
  EXPECT_EQ(t.to_vector<float>(), std::vector<float>(8, 2.0f));
}

TEST(Cuda, NoGpuMeansAClearError) {
  if (cuda::device_count() > 0) GTEST_SKIP() << "a GPU is present";
  EXPECT_THROW(Tensor::empty(Shape{4}, DType::kF32, Device::cuda()), Error);
}

}  // namespace
}  // namespace pmpl
