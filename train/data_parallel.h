// Data-parallel training over a Communicator (DESIGN §6): each process runs the same network on
// its own shard of every batch; gradients are summed over the processes and divided by their
// number, which is the gradient of the mean loss over the union of the batches.
//
// GradientReducer cuts the flat gradient buffer into buckets at parameter boundaries. During
// backward, a bucket is handed to the communicator the moment its last parameter's gradient is
// complete (LeafGradientHook), so communication overlaps the rest of backward; finish() sends
// the buckets backward never completed (parameters outside this step's graph), waits, divides.
// The order in which buckets are sent is backward's order, the same on every rank.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/comm.h"
#include "layers/module.h"
#include "train/parameters.h"

namespace pmpl {

class GradientReducer {
 public:
  GradientReducer(ParameterGroup& group, Communicator& comm, int64_t bucket_bytes);

  // loss.backward(), with the buckets all-reduced as they complete and averaged at the end.
  void backward(const Tensor& loss);
  int64_t buckets() const { return static_cast<int64_t>(buckets_.size()); }
  // Seconds the last backward() waited for communication after its own compute was done.
  double last_wait_seconds() const { return last_wait_s_; }

 private:
  struct Bucket {
    int64_t begin = 0, end = 0;  // element range of the flat buffer
    int params = 0;              // how many parameters it holds
    int pending = 0;             // of those, still without a complete gradient
    std::shared_ptr<CommWork> work;
  };
  void launch(Bucket& b);

  ParameterGroup& group_;
  Communicator& comm_;
  std::vector<Bucket> buckets_;
  std::unordered_map<const TensorImpl*, size_t> bucket_of_;
  double last_wait_s_ = 0.0;
};

// Rank 0's parameters and buffers (batchnorm statistics) into every other process.
void broadcast_state(Module& model, Communicator& comm);

// Switches every BatchNorm in `model` to statistics over all processes (--sync-bn).
void sync_batchnorm(Module& model, Communicator& comm);

// Every process must run the same configuration: compares this process's `config` with rank 0's
// and, on any difference, raises the same one-line error on every rank naming the first key.
void check_same_config(const nlohmann::json& config, Communicator& comm);

// A sum of doubles over every process (counts, loss sums for logging).
std::vector<double> sum_over_processes(std::vector<double> values, Communicator& comm);

}  // namespace pmpl
