#include "engine/comm_nccl.h"

#include "engine/error.h"

#if PMPL_NCCL
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include <cuda_runtime.h>
#include <nccl.h>

#include "core/cuda_check.h"
#endif

namespace pmpl {

#if PMPL_NCCL
namespace {

ncclDataType_t nccl_type(DType dtype) {
  switch (dtype) {
    case DType::kF32: return ncclFloat32;
    case DType::kF64: return ncclFloat64;
    case DType::kI64: return ncclInt64;
    case DType::kF16: return ncclFloat16;
    case DType::kBF16: return ncclBfloat16;
    default: break;
  }
  PMPL_ASSERT(false, "NCCL all-reduce of {} tensors is not supported", dtype_name(dtype));
  return ncclFloat32;
}

class NcclWork final : public CommWork {
 public:
  NcclWork(ncclComm_t comm, cudaEvent_t done, Tensor keep, int rank)
      : comm_(comm), done_(done), keep_(std::move(keep)), rank_(rank) {}
  ~NcclWork() override { cudaEventDestroy(done_); }

  void wait() override {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(comm_timeout());
    for (;;) {
      const cudaError_t state = cudaEventQuery(done_);
      if (state == cudaSuccess) break;
      if (state != cudaErrorNotReady) CUDA_CHECK(state);
      ncclResult_t async = ncclSuccess;
      NCCL_CHECK(ncclCommGetAsyncError(comm_, &async));
      if (async != ncclSuccess && async != ncclInProgress) {
        std::fprintf(stderr, "pmpl: rank %d: NCCL failed during an all-reduce: %s; ending the job\n", rank_,
                     ncclGetErrorString(async));
        ncclCommAbort(comm_);
        abort_job(1);
      }
      if (std::chrono::steady_clock::now() > deadline) {
        std::fprintf(stderr,
                     "pmpl: rank %d: an NCCL all-reduce did not finish within %.0f s: another process has stopped "
                     "or is stuck; ending the job (raise --comm-timeout if a step legitimately takes longer)\n",
                     rank_, comm_timeout());
        ncclCommAbort(comm_);
        abort_job(1);
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    keep_ = Tensor();
  }

 private:
  ncclComm_t comm_;
  cudaEvent_t done_;
  Tensor keep_;
  int rank_;
};

class NcclComm final : public Communicator {
 public:
  NcclComm(Communicator& bootstrap, int device)
      : rank_(bootstrap.rank()), world_(bootstrap.world()), local_rank_(bootstrap.local_rank()),
        local_world_(bootstrap.local_world()), device_(device) {
    CUDA_CHECK(cudaSetDevice(device));
    ncclUniqueId id;
    if (rank_ == 0) NCCL_CHECK(ncclGetUniqueId(&id));
    Tensor bytes = Tensor::empty(Shape{static_cast<int64_t>(sizeof id)}, DType::kU8);
    std::memcpy(bytes.raw_data(), &id, sizeof id);
    bootstrap.broadcast(bytes, 0);
    std::memcpy(&id, bytes.raw_data(), sizeof id);
    NCCL_CHECK(ncclCommInitRank(&comm_, world_, id, rank_));
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  ~NcclComm() override {
    cudaStreamSynchronize(stream_);
    cudaStreamDestroy(stream_);
    ncclCommDestroy(comm_);
  }

  const char* backend() const override { return "nccl"; }
  int rank() const override { return rank_; }
  int world() const override { return world_; }
  int local_rank() const override { return local_rank_; }
  int local_world() const override { return local_world_; }

  std::shared_ptr<CommWork> all_reduce_sum_async(const Tensor& t) override {
    PMPL_ASSERT(t.is_cuda() && t.device().index == device_, "the NCCL communicator reduces tensors on GPU {}, got {}",
                device_, t.device().str());
    after_compute();
    NCCL_CHECK(ncclAllReduce(t.raw_data(), t.raw_data(), static_cast<size_t>(t.numel()), nccl_type(t.dtype()), ncclSum,
                             comm_, stream_));
    return finished(t);
  }

  void broadcast(const Tensor& t, int root) override {
    PMPL_ASSERT(t.is_cuda() && t.device().index == device_, "the NCCL communicator broadcasts tensors on GPU {}",
                device_);
    after_compute();
    NCCL_CHECK(ncclBroadcast(t.raw_data(), t.raw_data(), t.nbytes(), ncclUint8, root, comm_, stream_));
    finished(t)->wait();
  }

  void barrier() override {
    // NCCL has no barrier: a one-element all-reduce is one.
    const Tensor one = Tensor::zeros(Shape{1}, DType::kF32, Device::cuda(device_));
    all_reduce_sum_async(one)->wait();
  }

 private:
  // The collective starts after everything already queued on the compute stream.
  void after_compute() {
    cudaEvent_t ready;
    CUDA_CHECK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventRecord(ready, cudaStreamLegacy));
    CUDA_CHECK(cudaStreamWaitEvent(stream_, ready, 0));
    CUDA_CHECK(cudaEventDestroy(ready));
  }

  std::shared_ptr<CommWork> finished(const Tensor& t) {
    cudaEvent_t done;
    CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventRecord(done, stream_));
    return std::make_shared<NcclWork>(comm_, done, t, rank_);
  }

  int rank_, world_, local_rank_, local_world_, device_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
};

}  // namespace

bool built_with_nccl() { return true; }

std::unique_ptr<Communicator> make_nccl_comm(Communicator& bootstrap, int device) {
  return std::make_unique<NcclComm>(bootstrap, device);
}

#else

bool built_with_nccl() { return false; }

std::unique_ptr<Communicator> make_nccl_comm(Communicator&, int) {
  PMPL_CHECK(false, "this pmpl was built without NCCL (PMPL_NCCL=OFF: needs CUDA and NCCL at build time)");
  return nullptr;
}

#endif

}  // namespace pmpl
