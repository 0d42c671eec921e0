// `pmpl bench kernels`: the custom CUDA kernels at MobileNetV2 shapes, forward and forward +
// backward, with the effective bandwidth (the bytes an op must move at least, over its time)
// against this card's measured device-to-device copy bandwidth. With --baseline (JSON from
// tools/bench_kernels_torch.py on the same card: the same ops composed in PyTorch, depthwise
// through cuDNN) the ratio is printed beside.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include "engine/autograd.h"
#include "engine/cuda_runtime.h"
#include "engine/ops.h"
#include "core/rng.h"
#include "tools/bench_baseline.h"
#include "tools/commands.h"

namespace pmpl::cli {
namespace {

struct BenchKernelsOptions {
  int64_t batch = 64;
  int repeat = 20;
  int warmup = 3;
  std::string dtype = "f32";
  std::string baseline;
  std::string json_out;
};

double median_ms(int warmup, int repeat, const std::function<void()>& fn) {
  std::vector<double> ms;
  for (int i = 0; i < warmup + repeat; ++i) {
    cuda::synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    cuda::synchronize();
    if (i >= warmup) ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// GB/s of a device-to-device copy counting bytes read and written, the card's practical ceiling.
double copy_bandwidth(const BenchKernelsOptions& opt) {
  const int64_t n = int64_t{1} << 28;  // 1 GiB of float32
  const Tensor a = Tensor::zeros(Shape{n}, DType::kF32, Device::cuda());
  const Tensor b = Tensor::empty(Shape{n}, DType::kF32, Device::cuda());
  const double ms = median_ms(opt.warmup, opt.repeat, [&] { cuda::copy_device_to_device(b.raw_data(), a.raw_data(), a.nbytes()); });
  return 2.0 * static_cast<double>(a.nbytes()) / (ms * 1e-3) / 1e9;
}

struct Case {
  std::string key;     // also tools/bench_kernels_torch.py's
  Shape shape;         // NHWC input
  int k = 3, stride = 1;
  bool pool_mix = false;
};

void run_bench_kernels(const BenchKernelsOptions& opt) {
  PMPL_CHECK(cuda::device_count() > 0, "bench kernels needs a CUDA GPU ({})",
             cuda::built_with_cuda() ? "none is visible" : "this pmpl was built without CUDA");
  PMPL_CHECK(opt.batch > 0 && opt.repeat > 0 && opt.warmup >= 0, "bench kernels: --batch-size and --repeat must be positive");
  cuda::set_device(0);  // checks that this build's kernels run on it
  const DType dtype = parse_dtype(opt.dtype);
  PMPL_CHECK(dtype == DType::kF32 || dtype == DType::kBF16 || dtype == DType::kF16,
             "bench kernels: --dtype f32, bf16 or f16, got {}", opt.dtype);
  const std::string suffix = dtype == DType::kF32 ? "" : "_" + opt.dtype;
  const Baseline base = read_baseline(opt.baseline, "bench kernels", "tools/bench_kernels_torch.py");
  const double copy_gbs = copy_bandwidth(opt);
  const int64_t n = opt.batch;
  // The enhancers' inputs in MobileNetV2 at 224 px (after each expanding block's depthwise conv),
  // and its depthwise convs at the stride-1 and stride-2 shapes.
  std::vector<Case> cases;
  for (const Shape& s : std::vector<Shape>{{n, 56, 56, 96}, {n, 28, 28, 144}, {n, 14, 14, 384}, {n, 7, 7, 960}}) {
    cases.push_back({fmt::format("pool_mix_{}x{}x{}x{}{}", s[0], s[1], s[2], s[3], suffix), s, 7, 1, true});
  }
  for (const auto& [s, stride] : std::vector<std::pair<Shape, int>>{{{n, 112, 112, 96}, 2}, {{n, 56, 56, 144}, 1},
                                                                  {{n, 28, 28, 192}, 1}, {{n, 14, 14, 576}, 1},
                                                                  {{n, 14, 14, 576}, 2}, {{n, 7, 7, 960}, 1}}) {
    cases.push_back(
        {fmt::format("depthwise_k3_s{}_{}x{}x{}x{}{}", stride, s[0], s[1], s[2], s[3], suffix), s, 3, stride, false});
  }
  fmt::print("pmpl bench kernels: {}, {}, median of {} after {} warm-up; copy bandwidth {:.0f} GB/s\n",
             cuda::device_name(), dtype_name(dtype), opt.repeat, opt.warmup, copy_gbs);
  fmt::print("{:<34} {:>9} {:>11} {:>9} {:>8}", "kernel", "fwd ms", "fwd+bwd ms", "GB/s", "of copy");
  if (!opt.baseline.empty()) fmt::print(" {:>18} {:>7}", base.label + " fwd+bwd", "ratio");
  fmt::print("\n");
  nlohmann::json results = nlohmann::json::array();
  Generator gen(1);
  for (const Case& c : cases) {
    Tensor x = Tensor::randn(c.shape, gen).to(Device::cuda()).to(dtype).set_requires_grad(true);
    double bytes = 0.0;
    std::function<Tensor()> forward;
    Tensor a_h, a_w, w, weight;
    if (c.pool_mix) {
      auto attention = [&](const Shape& shape) {
        return ops::sigmoid(Tensor::randn(shape, gen)).to(Device::cuda()).to(dtype).set_requires_grad(true);
      };
      a_h = attention(Shape{c.shape[0], c.shape[1], 1, c.shape[3]});
      a_w = attention(Shape{c.shape[0], 1, c.shape[2], c.shape[3]});
      w = ops::softmax(Tensor::randn(Shape{8}, gen)).to(Device::cuda()).set_requires_grad(true);
      forward = [&] { return ops::meta_pool_mix(x, a_h, a_w, w); };
      bytes = 5.0 * static_cast<double>(x.nbytes());  // fwd: x, y; bwd: x, dy, dx (the attention is small)
    } else {
      weight = Tensor::randn(Shape{c.shape[3], c.k, c.k}, gen).to(Device::cuda()).to(dtype).set_requires_grad(true);
      forward = [&] { return ops::depthwise_conv2d(x, weight, c.stride, c.k / 2); };
      const double out = static_cast<double>(x.nbytes()) / (c.stride * c.stride);
      bytes = 2.0 * static_cast<double>(x.nbytes()) + 3.0 * out;  // fwd: x, y; bwd: dy, x, dx (and dy again)
    }
    Tensor dy;
    {
      NoGradGuard no_grad;
      dy = Tensor::randn(forward().shape(), gen).to(Device::cuda()).to(dtype);
    }
    const double fwd = median_ms(opt.warmup, opt.repeat, [&] {
      NoGradGuard no_grad;
      forward();
    });
    const double both = median_ms(opt.warmup, opt.repeat, [&] {
      for (Tensor* t : std::initializer_list<Tensor*>{&x, &a_h, &a_w, &w, &weight}) {
        if (t->defined()) t->zero_grad(false);  // each backward starts the leaves' gradients afresh
      }
      forward().backward(dy);
    });
    const double gbs = bytes / (both * 1e-3) / 1e9;
    fmt::print("{:<34} {:>9.3f} {:>11.3f} {:>9.0f} {:>7.0f}%", c.key, fwd, both, gbs, 100.0 * gbs / copy_gbs);
    nlohmann::json row = {{"key", c.key}, {"fwd_ms", fwd}, {"fwd_bwd_ms", both}, {"gb_per_s", gbs}};
    if (!opt.baseline.empty()) {
      const double theirs = base.value(c.key, "fwd_bwd_ms");
      fmt::print(" {:>18.3f} {:>6.2f}x", theirs, theirs / both);
      row["baseline_fwd_bwd_ms"] = theirs;
    }
    fmt::print("\n");
    results.push_back(row);
  }
  if (!opt.json_out.empty()) {
    std::ofstream out(opt.json_out);
    PMPL_CHECK(out.good(), "bench kernels: cannot write {}", opt.json_out);
    out << nlohmann::json{{"label", "pmpl"}, {"device", cuda::device_name()}, {"copy_gb_per_s", copy_gbs},
                          {"results", results}}
               .dump(2)
        << "\n";
  }
}

}  // namespace

void add_bench_kernels_command(CLI::App* bench, Runner& run) {
  auto opt = std::make_shared<BenchKernelsOptions>();
  CLI::App* cmd = bench->add_subcommand("kernels", "The custom CUDA kernels: time and bandwidth (needs a GPU)");
  cmd->add_option("--batch-size", opt->batch, "Images per batch")->capture_default_str();
  cmd->add_option("--repeat", opt->repeat, "Timed runs (the median is reported)")->capture_default_str();
  cmd->add_option("--warmup", opt->warmup, "Untimed runs first")->capture_default_str();
  cmd->add_option("--dtype", opt->dtype, "f32, bf16 or f16 activations (bf16/f16 rows' keys end in _bf16/_f16)")
      ->capture_default_str();
  cmd->add_option("--baseline", opt->baseline, "JSON from tools/bench_kernels_torch.py: adds PyTorch's time");
  cmd->add_option("--json", opt->json_out, "Also write the results to this JSON file");
  cmd->callback([&run, opt] { run = [opt] { run_bench_kernels(*opt); }; });
}

}  // namespace pmpl::cli
