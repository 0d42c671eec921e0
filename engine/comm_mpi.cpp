// The MPI backend of engine/comm.h. Built only with PMPL_MPI.
#if PMPL_MPI
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "engine/comm.h"
#include "engine/error.h"
#include "engine/mpi_check.h"

namespace pmpl {
namespace {

// One submitted collective: run on the MPI thread, waited for by its submitter.
class MpiWork final : public CommWork {
 public:
  MpiWork(std::string what, int rank, std::function<void()> run)
      : what_(std::move(what)), rank_(rank), run_(std::move(run)) {}

  void execute() {
    std::exception_ptr error;
    try {
      run_();
    } catch (...) {
      error = std::current_exception();
    }
    run_ = nullptr;  // releases the tensor it captured
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
      error_ = error;
    }
    cv_.notify_all();
  }

  void wait() override {
    std::unique_lock<std::mutex> lock(mutex_);
    const auto deadline = std::chrono::duration<double>(comm_timeout());
    if (!cv_.wait_for(lock, deadline, [&] { return done_; })) {
      std::fprintf(stderr,
                   "pmpl: rank %d: %s did not finish within %.0f s: another process has stopped or is stuck; "
                   "ending the job (raise --comm-timeout if a step legitimately takes longer)\n",
                   rank_, what_.c_str(), comm_timeout());
      std::fflush(stderr);
      abort_job(1);
    }
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::string what_;
  int rank_;
  std::function<void()> run_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::exception_ptr error_;
};

MPI_Datatype mpi_type(DType dtype) {
  switch (dtype) {
    case DType::kF32: return MPI_FLOAT;
    case DType::kF64: return MPI_DOUBLE;
    case DType::kI64: return MPI_INT64_T;
    default: break;
  }
  PMPL_ASSERT(false, "all-reduce of {} tensors is not supported (f32, f64, i64)", dtype_name(dtype));
  return MPI_DATATYPE_NULL;
}

class MpiComm final : public Communicator {
 public:
  MpiComm() {
    int provided = 0;
    MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided));
    PMPL_CHECK(provided >= MPI_THREAD_SERIALIZED,
               "this MPI library gives thread level {} but pmpl needs MPI_THREAD_SERIALIZED (its collectives run on "
               "a thread of their own)", provided);
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world_));
    MPI_Comm node;
    MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
    MPI_CHECK(MPI_Comm_rank(node, &local_rank_));
    MPI_CHECK(MPI_Comm_size(node, &local_world_));
    MPI_CHECK(MPI_Comm_free(&node));
    thread_ = std::thread([this] { loop(); });
  }

  ~MpiComm() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }

  const char* backend() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int world() const override { return world_; }
  int local_rank() const override { return local_rank_; }
  int local_world() const override { return local_world_; }

  std::shared_ptr<CommWork> all_reduce_sum_async(const Tensor& t) override {
    PMPL_ASSERT(t.device().is_cpu(), "the MPI communicator reduces host tensors; got one on {}", t.device().str());
    const MPI_Datatype type = mpi_type(t.dtype());
    return submit(fmt::format("an all-reduce of {} {} values", t.numel(), dtype_name(t.dtype())), [t, type] {
      auto* p = static_cast<char*>(t.raw_data());
      const size_t element = dtype_size(t.dtype());
      for (int64_t done = 0; done < t.numel();) {  // MPI counts are ints
        const int count = static_cast<int>(std::min<int64_t>(t.numel() - done, INT_MAX));
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, p + static_cast<size_t>(done) * element, count, type, MPI_SUM,
                                MPI_COMM_WORLD));
        done += count;
      }
    });
  }

  void broadcast(const Tensor& t, int root) override {
    PMPL_ASSERT(t.device().is_cpu(), "the MPI communicator broadcasts host tensors");
    submit(fmt::format("a broadcast of {} bytes", t.nbytes()), [t, root] {
      auto* p = static_cast<char*>(t.raw_data());
      for (size_t done = 0; done < t.nbytes();) {
        const int count = static_cast<int>(std::min<size_t>(t.nbytes() - done, INT_MAX));
        MPI_CHECK(MPI_Bcast(p + done, count, MPI_BYTE, root, MPI_COMM_WORLD));
        done += static_cast<size_t>(count);
      }
    })->wait();
  }

  void barrier() override {
    submit("a barrier", [] { MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD)); })->wait();
  }

 private:
  std::shared_ptr<MpiWork> submit(std::string what, std::function<void()> run) {
    auto work = std::make_shared<MpiWork>(std::move(what), rank_, std::move(run));
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(work);
    }
    cv_.notify_all();
    return work;
  }

  void loop() {
    for (;;) {
      std::shared_ptr<MpiWork> work;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        work = std::move(queue_.front());
        queue_.pop_front();
      }
      work->execute();
    }
  }

  int rank_ = 0, world_ = 1, local_rank_ = 0, local_world_ = 1;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<MpiWork>> queue_;
  bool stop_ = false;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_comm() { return std::make_unique<MpiComm>(); }

bool mpi_is_running() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
}

void mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

}  // namespace pmpl
#endif
