// Collectives between the processes of a data-parallel job (DESIGN §6). One interface, three
// backends: a single process (every collective is a no-op), MPI on host memory (CPU training,
// and the tests), and NCCL on device memory (engine/comm_nccl.h, GPU training).
//
// The MPI backend runs every MPI call on one thread of its own, in the order collectives were
// submitted: backward can hand a gradient bucket over and go on computing (the overlap), and
// the order of collectives, which MPI matches across ranks, is the submission order, the same
// on every rank. Waiting has a deadline: a collective that does not finish in time (a rank
// died or hangs) ends the whole job with a message instead of hanging it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/tensor.h"

namespace pmpl {

// A collective in flight. wait() returns once its result is in place.
class CommWork {
 public:
  virtual ~CommWork() = default;
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual const char* backend() const = 0;  // "single", "mpi", "nccl"
  virtual int rank() const = 0;
  virtual int world() const = 0;
  virtual int local_rank() const = 0;   // rank among the processes of this node
  virtual int local_world() const = 0;  // processes on this node

  // In-place sum over every process of a contiguous f32, f64 or i64 tensor (host memory for MPI,
  // device memory for NCCL). The tensor's storage is kept alive until the work is done.
  virtual std::shared_ptr<CommWork> all_reduce_sum_async(const Tensor& t) = 0;
  void all_reduce_sum(const Tensor& t) { all_reduce_sum_async(t)->wait(); }
  // Root's bytes of `t` into every other process's `t` (same shape and dtype everywhere).
  virtual void broadcast(const Tensor& t, int root) = 0;
  virtual void barrier() = 0;
};

// The process's communicator: MPI's world when this process was started by mpirun (MPI is
// initialised on the first call and finalised at exit), a single process otherwise.
Communicator& process_comm();
// Whether the environment says an MPI launcher started this process (OpenMPI, MPICH, PMIx,
// Slurm's PMI), without initialising MPI.
bool launched_by_mpi();
// The rank the launcher gave this process (from the environment, MPI not needed), or -1.
int launcher_rank();
// Whether MPI is initialised and not yet finalised (a collective job is running).
bool mpi_running();
// Seconds a collective may take before the job is ended (default 300; --comm-timeout).
void set_comm_timeout(double seconds);
double comm_timeout();
// Ends every process of the job now with `code`: MPI_Abort under mpirun, exit otherwise.
[[noreturn]] void abort_job(int code);

// The single-process backend, for code that wants an explicit one.
std::unique_ptr<Communicator> make_single_process_comm();

}  // namespace pmpl
