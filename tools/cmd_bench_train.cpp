// `pmpl bench train`: training-step throughput (forward, label-smoothed cross-entropy, backward,
// SGD step) on synthetic data, on the CPU or a GPU. With --baseline (JSON from
// tools/bench_torch_cpu.py or tools/bench_torch_gpu.py, same machine) PyTorch's img/s and the
// ratio are printed beside it.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <optional>

#include <nlohmann/json.hpp>

#include "engine/allocator.h"
#include "engine/autograd.h"
#include "engine/cuda_runtime.h"
#include "engine/ops.h"
#include "engine/profile.h"
#include "core/rng.h"
#include "tools/bench_baseline.h"
#include "tools/commands.h"
#include "tools/model_flags.h"
#include "train/amp.h"
#include "train/loss_scale.h"
#include "train/parameters.h"
#include "train/sgd.h"

namespace pmpl::cli {
namespace {

struct BenchTrainOptions {
  ModelFlags model;
  int64_t batch = 32;
  int64_t input_size = 224;
  int steps = 10;
  int warmup = 2;
  int threads = 0;
  std::string device = "cpu";
  std::string amp = "auto";
  std::string profile_steps;
  std::string baseline;
  std::string json_out;
};

std::string bench_key(const BenchTrainOptions& o) {
  return fmt::format("{}_w{}{}_b{}_s{}_k{}", o.model.name, o.model.width, o.model.small_input ? "_small" : "",
                     o.batch, o.input_size, o.model.num_classes);
}

void run_bench_train(const BenchTrainOptions& opt) {
  PMPL_CHECK(opt.batch > 0 && opt.input_size >= 16 && opt.steps > 0 && opt.warmup >= 0,
             "bench train: --batch-size and --steps must be positive, --input-size at least 16");
  if (opt.threads > 0) omp_set_num_threads(opt.threads);
  const Device device = parse_device(opt.device);
  const ProfileSteps profile = ProfileSteps::parse(opt.profile_steps, device);
  if (device.is_cuda()) cuda::set_device(device.index);
  CachingAllocator& allocator = device.is_cuda() ? cuda_allocator(device.index) : cpu_allocator();
  auto model = build_model_from_flags(opt.model);
  model->to(device);
  const DType compute = amp_dtype(opt.amp, device);
  model->set_compute_dtype(compute);
  LossScaler scaler(compute == DType::kF16);
  model->train();
  ParameterGroup params(model->parameters());
  Sgd sgd(params, {});
  Generator gen(7);
  const Tensor x = Tensor::randn(Shape{opt.batch, opt.input_size, opt.input_size, 3}, gen).to(device);
  std::vector<int64_t> label_values(static_cast<size_t>(opt.batch));
  for (size_t i = 0; i < label_values.size(); ++i) {
    label_values[i] = static_cast<int64_t>(i * 7919) % opt.model.num_classes;
  }
  const Tensor labels = Tensor::from_vector(label_values, Shape{opt.batch}, device);

  std::vector<double> step_ms;
  double last_loss = 0.0;
  size_t system_allocs_before = 0;
  for (int it = 0; it < opt.warmup + opt.steps; ++it) {
    if (it == opt.warmup) system_allocs_before = allocator.stats().system_allocs;
    profile.before(it + 1);
    std::optional<ProfileRange> range(std::in_place, "train step");  // closed before the capture stops
    const auto t0 = std::chrono::steady_clock::now();
    params.zero_grad();
    const Tensor loss = ops::cross_entropy(model->forward(x), labels, 0.1);
    scaler.scale(loss).backward();
    if (scaler.unscale(params)) sgd.step(0.01);
    if (device.is_cuda()) cuda::synchronize();  // the step's kernels, not just their launches
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    last_loss = loss.item();
    range.reset();
    profile.after(it + 1);
    if (it >= opt.warmup) step_ms.push_back(ms);
  }
  PMPL_CHECK(std::isfinite(last_loss), "bench train: the loss became {} (a bug; please report)", last_loss);
  std::sort(step_ms.begin(), step_ms.end());
  const double median = step_ms[step_ms.size() / 2];
  const double img_s = static_cast<double>(opt.batch) * 1000.0 / median;
  const std::string key = bench_key(opt);

  const Baseline base = read_baseline(opt.baseline, "bench train", "tools/bench_torch_cpu.py");
  const double baseline = opt.baseline.empty() ? 0.0 : base.value(key, "img_per_s");
  const std::string& baseline_label = base.label;
  const std::string where =
      device.is_cuda() ? fmt::format("{} ({}), {}", cuda::device_name(), device.str(),
                                     compute == DType::kF32 ? std::string("f32")
                                                            : fmt::format("{} mixed precision", dtype_name(compute)))
                       : fmt::format("CPU, {} threads", omp_get_max_threads());
  fmt::print("pmpl bench train: {}, {}, {} steps after {} warm-up\n", key, where, opt.steps, opt.warmup);
  fmt::print("{:>12} {:>12} {:>12}", "step ms", "img/s", "loss");
  if (baseline > 0.0) fmt::print(" {:>16} {:>8}", baseline_label + " img/s", "ratio");
  fmt::print("\n{:>12.1f} {:>12.1f} {:>12.4f}", median, img_s, last_loss);
  if (baseline > 0.0) fmt::print(" {:>16.1f} {:>7.2f}x", baseline, img_s / baseline);
  const AllocatorStats stats = allocator.stats();
  fmt::print("\n{} memory: peak {:.1f} MiB in use, {:.1f} MiB reserved, {} system allocations "
             "during the timed steps\n",
             device.is_cuda() ? "device" : "host", static_cast<double>(stats.peak_allocated) / (1 << 20),
             static_cast<double>(stats.reserved) / (1 << 20), stats.system_allocs - system_allocs_before);
  if (!opt.json_out.empty()) {
    std::ofstream out(opt.json_out);
    PMPL_CHECK(out.good(), "bench train: cannot write {}", opt.json_out);
    out << nlohmann::json{{"label", "pmpl"}, {"threads", omp_get_max_threads()}, {"device", where},
                          {"results", {{{"key", key}, {"img_per_s", img_s}, {"step_ms", median}}}}}
               .dump(2)
        << "\n";
  }
}

}  // namespace

void add_bench_train_command(CLI::App* bench, Runner& run) {
  auto opt = std::make_shared<BenchTrainOptions>();
  CLI::App* cmd = bench->add_subcommand(
      "train", "Training-step img/s (forward, loss, backward, SGD) on synthetic data");
  add_model_flags(cmd, opt->model);
  cmd->add_option("--batch-size", opt->batch, "Images per step")->capture_default_str();
  cmd->add_option("--input-size", opt->input_size, "Image side in pixels")->capture_default_str();
  cmd->add_option("--steps", opt->steps, "Timed steps (the median is reported)")->capture_default_str();
  cmd->add_option("--warmup", opt->warmup, "Untimed steps first")->capture_default_str();
  cmd->add_option("--threads", opt->threads, "OpenMP threads (default: all cores)");
  cmd->add_option("--device", opt->device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--amp", opt->amp, "Mixed precision on a GPU: auto (bf16 where the GPU has it), bf16, fp16, off")
      ->capture_default_str();
  cmd->add_option("--profile-steps", opt->profile_steps,
                  "A:B: capture steps A..B (warm-up included, from 1) for Nsight Systems; see docs/PROFILING.md");
  cmd->add_option("--baseline", opt->baseline,
                  "JSON from tools/bench_torch_cpu.py (CPU) or tools/bench_torch_gpu.py (GPU): adds its img/s");
  cmd->add_option("--json", opt->json_out, "Also write the result to this JSON file");
  cmd->callback([&run, opt] { run = [opt] { run_bench_train(*opt); }; });
}

}  // namespace pmpl::cli
