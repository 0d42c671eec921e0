#include "train/data_parallel.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "layers/layers.h"

namespace pmpl {

GradientReducer::GradientReducer(ParameterGroup& group, Communicator& comm, int64_t bucket_bytes)
    : group_(group), comm_(comm) {
  PMPL_CHECK(bucket_bytes > 0, "the gradient bucket size must be positive, got {} bytes", bucket_bytes);
  if (group.empty()) return;
  const auto element = static_cast<int64_t>(dtype_size(group.grads().dtype()));
  for (size_t i = 0; i < group.params().size(); ++i) {
    const int64_t begin = group.offset(i), end = begin + group.params()[i].tensor.numel();
    if (buckets_.empty() || (buckets_.back().end - buckets_.back().begin) * element >= bucket_bytes) {
      buckets_.push_back(Bucket{begin, begin, 0, 0, nullptr});
    }
    buckets_.back().end = end;
    ++buckets_.back().params;
    bucket_of_[group.params()[i].tensor.impl()] = buckets_.size() - 1;
  }
}

void GradientReducer::launch(Bucket& b) {
  b.work = comm_.all_reduce_sum_async(group_.grads().view_slice(b.begin, Shape{b.end - b.begin}));
}

void GradientReducer::backward(const Tensor& loss) {
  if (comm_.world() == 1) {
    loss.backward();
    last_wait_s_ = 0.0;
    return;
  }
  for (Bucket& b : buckets_) {
    b.pending = b.params;
    b.work = nullptr;
  }
  {
    const LeafGradientHook hook([this](const TensorImpl* leaf) {
      auto it = bucket_of_.find(leaf);
      if (it == bucket_of_.end()) return;  // a leaf of another group (the alphas)
      Bucket& b = buckets_[it->second];
      if (--b.pending == 0) launch(b);
    });
    loss.backward();
  }
  const auto start = std::chrono::steady_clock::now();
  for (Bucket& b : buckets_) {
    if (!b.work) launch(b);
  }
  for (Bucket& b : buckets_) b.work->wait();
  ops::scale_(group_.grads(), 1.0 / comm_.world());
  last_wait_s_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void broadcast_state(Module& model, Communicator& comm) {
  if (comm.world() == 1) return;
  for (const NamedTensor& t : model.state()) comm.broadcast(t.tensor, 0);
}

void sync_batchnorm(Module& model, Communicator& comm) {
  if (comm.world() == 1) return;
  auto reducer = std::make_shared<const ops::SumReducer>([&comm](const Tensor& sums) { comm.all_reduce_sum(sums); });
  std::vector<Module*> stack{&model};
  while (!stack.empty()) {
    Module* m = stack.back();
    stack.pop_back();
    if (auto* bn = dynamic_cast<BatchNorm*>(m)) bn->set_sync(reducer);
    for (const auto& [name, child] : m->children()) stack.push_back(child.get());
  }
}

std::vector<double> sum_over_processes(std::vector<double> values, Communicator& comm) {
  if (comm.world() == 1 || values.empty()) return values;
  Tensor t = Tensor::empty(Shape{static_cast<int64_t>(values.size())}, DType::kF64);
  std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(double));
  comm.all_reduce_sum(t);
  std::memcpy(values.data(), t.raw_data(), values.size() * sizeof(double));
  return values;
}

void check_same_config(const nlohmann::json& config, Communicator& comm) {
  if (comm.world() == 1) return;
  const std::string mine = config.dump();
  Tensor size = Tensor::from_vector<int64_t>({static_cast<int64_t>(mine.size())}, Shape{1});
  comm.broadcast(size, 0);
  Tensor text = Tensor::empty(Shape{size.data<int64_t>()[0]}, DType::kU8);
  if (comm.rank() == 0) std::memcpy(text.raw_data(), mine.data(), mine.size());
  comm.broadcast(text, 0);
  const std::string theirs(static_cast<const char*>(text.raw_data()), text.nbytes());
  std::string difference;
  if (theirs != mine) {
    const nlohmann::json root = nlohmann::json::parse(theirs, nullptr, false);
    difference = "the configuration";
    if (root.is_object()) {
      for (const auto& [key, value] : config.items()) {
        if (!root.contains(key) || root[key] != value) {
          std::string flag = key;  // the configuration's keys are the flags with underscores
          std::replace(flag.begin(), flag.end(), '_', '-');
          difference = fmt::format("--{} ({} here, {} on rank 0)", flag, value.dump(),
                                   root.contains(key) ? root[key].dump() : "absent");
          break;
        }
      }
    }
  }
  const double mismatched = sum_over_processes({difference.empty() ? 0.0 : 1.0}, comm)[0];
  PMPL_CHECK(mismatched == 0, "rank {}: {} of the {} processes run another configuration than rank 0{}; start every "
             "rank with the same flags", comm.rank(), static_cast<int>(mismatched), comm.world(),
             difference.empty() ? "" : fmt::format(" (this one differs in {})", difference));
}

}  // namespace pmpl
