// The NCCL backend of engine/comm.h: collectives on device memory, one GPU per process. Built
// with PMPL_NCCL (CUDA and NCCL found). The unique id that joins the processes goes out over
// `bootstrap` (MPI under mpirun; a single process needs none). Collectives run on a stream of
// their own after the work already queued on the legacy default stream (the engine's compute
// stream), so backward can go on while a bucket is reduced; wait() blocks the host until the result is in place, with the same deadline as
// MPI, and NCCL's asynchronous errors end the job with NCCL's message.
//
// Written without a GPU: compiled and linked here, not yet run on one.
#pragma once

#include <memory>

#include "engine/comm.h"

namespace pmpl {

bool built_with_nccl();
// Joins every process of `bootstrap` into one NCCL communicator on GPU `device`.
std::unique_ptr<Communicator> make_nccl_comm(Communicator& bootstrap, int device);

}  // namespace pmpl
