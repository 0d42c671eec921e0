#include "engine/comm.h"

#include <cstdlib>

#include "engine/error.h"

namespace pmpl {

#if PMPL_MPI
// engine/comm_mpi.cpp
std::unique_ptr<Communicator> make_mpi_comm();
bool mpi_is_running();
void mpi_abort(int code);
#endif

namespace {

double g_timeout_s = 300.0;

class DoneWork final : public CommWork {
 public:
  void wait() override {}
};

class SingleProcessComm final : public Communicator {
 public:
  const char* backend() const override { return "single"; }
  int rank() const override { return 0; }
  int world() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_world() const override { return 1; }
  std::shared_ptr<CommWork> all_reduce_sum_async(const Tensor&) override { return std::make_shared<DoneWork>(); }
  void broadcast(const Tensor&, int root) override {
    PMPL_ASSERT(root == 0, "broadcast from rank {} in a single process", root);
  }
  void barrier() override {}
};

}  // namespace

std::unique_ptr<Communicator> make_single_process_comm() { return std::make_unique<SingleProcessComm>(); }

bool launched_by_mpi() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"}) {
    if (std::getenv(var) != nullptr) return true;
  }
  return false;
}

int launcher_rank() {
  for (const char* var : {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"}) {
    if (const char* value = std::getenv(var)) return std::atoi(value);
  }
  return -1;
}

bool mpi_running() {
#if PMPL_MPI
  return mpi_is_running();
#else
  return false;
#endif
}

Communicator& process_comm() {
  static const std::unique_ptr<Communicator> comm = []() -> std::unique_ptr<Communicator> {
    if (!launched_by_mpi()) return make_single_process_comm();
#if PMPL_MPI
    return make_mpi_comm();
#else
    PMPL_CHECK(false, "started by mpirun, but this pmpl was built without MPI (PMPL_MPI=OFF); rebuild with "
                      "libopenmpi-dev installed, or run a single process");
#endif
  }();
  return *comm;
}

void set_comm_timeout(double seconds) {
  PMPL_CHECK(seconds > 0, "--comm-timeout must be positive, got {}", seconds);
  g_timeout_s = seconds;
}

double comm_timeout() { return g_timeout_s; }

void abort_job(int code) {
#if PMPL_MPI
  if (mpi_is_running()) mpi_abort(code);
#endif
  std::exit(code);
}

}  // namespace pmpl
