// `pmpl bench ops`: CPU forward and backward times of the ops MobileNetV2 and the Meta-Pooling
// enhancer spend their time in, at MobileNetV2 shapes. With --baseline (a JSON written by
// tools/bench_ops_torch.py on the same machine) the table gains PyTorch's times and the ratio.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "engine/allocator.h"
#include "engine/autograd.h"
#include "engine/ops.h"
#include "core/rng.h"
#include "tools/bench_baseline.h"
#include "tools/commands.h"

namespace pmpl::cli {
namespace {

using OpFn = std::function<Tensor(const Tensor&)>;

struct BenchCase {
  std::string name;  // the key shared with tools/bench_ops_torch.py
  Shape input;
  // Creates the op's parameters (requiring grad, appended to `params`) and returns the op.
  std::function<OpFn(Generator& gen, Tensors& params)> make;
  // The stem convolution reads the image, which needs no gradient: its backward is dW only.
  bool input_grad = true;
};

struct BenchOptions {
  int batch = 32;
  int repeat = 10;
  int warmup = 2;
  int threads = 0;
  std::string baseline;
  std::string json_out;
  std::string filter;
};

Tensor parameter(const Shape& shape, Generator& gen, Tensors& params) {
  params.push_back(Tensor::randn(shape, gen).set_requires_grad(true));
  return params.back();
}

std::vector<BenchCase> bench_cases(int64_t n) {
  std::vector<BenchCase> cases;
  const Shape act{n, 56, 56, 144};
  for (auto [k, s] : {std::pair{3, 1}, {3, 2}, {5, 1}, {7, 1}}) {
    cases.push_back({fmt::format("dwconv_k{}_s{}", k, s), act, [k, s](Generator& gen, Tensors& p) {
                       Tensor w = parameter(Shape{144, k, k}, gen, p);
                       return OpFn([w, k, s](const Tensor& x) {
                         return ops::depthwise_conv2d(x, w, s, k / 2);
                       });
                     }});
  }
  for (int k : {3, 5, 7}) {
    cases.push_back({fmt::format("maxpool_k{}", k), act, [k](Generator&, Tensors&) {
                       return OpFn([k](const Tensor& x) { return ops::max_pool2d(x, k, 1, k / 2); });
                     }});
    cases.push_back({fmt::format("avgpool_k{}", k), act, [k](Generator&, Tensors&) {
                       return OpFn([k](const Tensor& x) { return ops::avg_pool2d(x, k, 1, k / 2); });
                     }});
  }
  for (auto [cin, cout] : {std::pair{144, 24}, {24, 144}}) {
    cases.push_back({fmt::format("pointwise_{}to{}", cin, cout), Shape{n, 56, 56, cin},
                     [cin, cout](Generator& gen, Tensors& p) {
                       Tensor w = parameter(Shape{cout, 1, 1, cin}, gen, p);
                       return OpFn([w](const Tensor& x) { return ops::pointwise_conv(x, w); });
                     }});
  }
  cases.push_back({"stem_conv3x3_s2", Shape{n, 224, 224, 3},
                   [](Generator& gen, Tensors& p) {
                     Tensor w = parameter(Shape{32, 3, 3, 3}, gen, p);
                     return OpFn([w](const Tensor& x) { return ops::conv2d(x, w, 2, 1); });
                   },
                   false});
  cases.push_back({"batchnorm", act, [](Generator& gen, Tensors& p) {
                     Tensor gamma = parameter(Shape{144}, gen, p), beta = parameter(Shape{144}, gen, p);
                     Tensor mean = Tensor::zeros(Shape{144}), var = Tensor::ones(Shape{144});
                     return OpFn([=](const Tensor& x) {
                       return ops::batch_norm(x, gamma, beta, mean, var, true);
                     });
                   }});
  cases.push_back({"strip_pool", act, [](Generator&, Tensors&) {
                     return OpFn([](const Tensor& x) { return ops::strip_pool(x); });
                   }});
  // The Meta-Pooling search mixture of x, the strip branch (x * a_w) * a_h (its attention a
  // parameter here) and the six pools: fused, and composed from the separate ops as the CPU
  // search ran it before the fused op won.
  for (bool fused : {true, false}) {
    cases.push_back({fused ? "pool_mix" : "pool_mix_separate", act, [act, fused](Generator& gen, Tensors& p) {
                       Tensor a_h = parameter(Shape{act[0], act[1], 1, act[3]}, gen, p);
                       Tensor a_w = parameter(Shape{act[0], 1, act[2], act[3]}, gen, p);
                       Tensor alpha = parameter(Shape{8}, gen, p);
                       return OpFn([a_h, a_w, alpha, fused](const Tensor& x) {
                         const Tensor w = ops::softmax(alpha);
                         if (fused) return ops::meta_pool_mix(x, a_h, a_w, w);
                         Tensors branches{x, ops::mul(ops::mul(x, a_w), a_h)};
                         for (int k : {3, 5, 7}) branches.push_back(ops::max_pool2d(x, k, 1, k / 2));
                         for (int k : {3, 5, 7}) branches.push_back(ops::avg_pool2d(x, k, 1, k / 2));
                         return ops::weighted_sum(branches, w);
                       });
                     }});
  }
  return cases;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void run_bench_ops(const BenchOptions& opt) {
  PMPL_CHECK(opt.batch > 0 && opt.repeat > 0 && opt.warmup >= 0,
             "bench ops: --batch-size and --repeat must be positive, --warmup non-negative");
  if (opt.threads > 0) omp_set_num_threads(opt.threads);
  const Baseline base = read_baseline(opt.baseline, "bench ops", "tools/bench_ops_torch.py", "name");
  std::map<std::string, double> baseline;
  for (const auto& [name, r] : base.results) baseline[name] = base.value(name, "total_ms");
  const std::string& baseline_label = base.label;

  Generator gen(1234);
  auto cases = bench_cases(opt.batch);
  fmt::print("pmpl bench ops: CPU, f32, {} threads, batch {}, median of {} runs after {} warm-up\n",
             omp_get_max_threads(), opt.batch, opt.repeat, opt.warmup);
  fmt::print("{:<20} {:<20} {:>10} {:>10} {:>10}", "op", "input (NHWC)", "fwd ms", "bwd ms",
             "total ms");
  if (!baseline.empty()) fmt::print(" {:>12} {:>8}", baseline_label + " ms", "speedup");
  fmt::print("\n");
  nlohmann::json results = nlohmann::json::array();
  for (auto& c : cases) {
    if (!opt.filter.empty() && c.name.find(opt.filter) == std::string::npos) continue;
    Tensor x = Tensor::randn(c.input, gen).set_requires_grad(c.input_grad);
    Tensors params;
    const OpFn op = c.make(gen, params);
    std::vector<double> fwd, bwd;
    Tensor gy;
    for (int it = 0; it < opt.warmup + opt.repeat; ++it) {
      auto t0 = std::chrono::steady_clock::now();
      Tensor y = op(x);
      const double f = ms_since(t0);
      if (!gy.defined()) gy = Tensor::randn(y.shape(), gen);
      t0 = std::chrono::steady_clock::now();
      y.backward(gy);
      const double b = ms_since(t0);
      x.zero_grad(false);
      for (Tensor& p : params) p.zero_grad(false);
      if (it >= opt.warmup) {
        fwd.push_back(f);
        bwd.push_back(b);
      }
    }
    const double f = median(fwd), b = median(bwd), total = median([&] {
      std::vector<double> t;
      for (size_t i = 0; i < fwd.size(); ++i) t.push_back(fwd[i] + bwd[i]);
      return t;
    }());
    fmt::print("{:<20} {:<20} {:>10.2f} {:>10.2f} {:>10.2f}", c.name, c.input.str(), f, b, total);
    auto it = baseline.find(c.name);
    if (it != baseline.end()) fmt::print(" {:>12.2f} {:>7.2f}x", it->second, it->second / total);
    fmt::print("\n");
    results.push_back({{"name", c.name}, {"input", c.input.vec()}, {"fwd_ms", f}, {"bwd_ms", b},
                       {"total_ms", total}});
  }
  const AllocatorStats stats = cpu_allocator().stats();
  fmt::print("host memory: peak {:.1f} MiB in use, {:.1f} MiB reserved, {} system allocations, "
             "{} cache hits\n",
             static_cast<double>(stats.peak_allocated) / (1 << 20),
             static_cast<double>(stats.reserved) / (1 << 20), stats.system_allocs, stats.cache_hits);
  if (!opt.json_out.empty()) {
    std::ofstream out(opt.json_out);
    PMPL_CHECK(out.good(), "bench ops: cannot write {}", opt.json_out);
    out << nlohmann::json{{"label", "pmpl"}, {"threads", omp_get_max_threads()},
                          {"batch", opt.batch}, {"results", results}}
               .dump(2)
        << "\n";
  }
}

}  // namespace

void add_bench_command(CLI::App& app, Runner& run) {
  CLI::App* bench = app.add_subcommand("bench", "Measure speed (prints tables; never a test)");
  bench->require_subcommand(1);
  auto opt = std::make_shared<BenchOptions>();
  CLI::App* ops_cmd = bench->add_subcommand(
      "ops", "CPU forward+backward time of depthwise conv, pooling, pointwise conv, batchnorm "
             "and strip pooling at MobileNetV2 shapes");
  ops_cmd->add_option("--batch-size", opt->batch, "Batch size N of the [N, 56, 56, 144] inputs")
      ->capture_default_str();
  ops_cmd->add_option("--repeat", opt->repeat, "Timed runs per op (the median is shown)")
      ->capture_default_str();
  ops_cmd->add_option("--warmup", opt->warmup, "Untimed runs first")->capture_default_str();
  ops_cmd->add_option("--threads", opt->threads, "OpenMP threads (default: all cores)");
  ops_cmd->add_option("--filter", opt->filter, "Only ops whose name contains this text");
  ops_cmd->add_option("--baseline", opt->baseline,
                      "JSON from tools/bench_ops_torch.py: adds its times and the speedup");
  ops_cmd->add_option("--json", opt->json_out, "Also write the results to this JSON file");
  ops_cmd->callback([&run, opt] { run = [opt] { run_bench_ops(*opt); }; });
  add_bench_train_command(bench, run);
  add_bench_loader_command(bench, run);
  add_bench_infer_command(bench, run);
  add_bench_comm_command(bench, run);
  add_bench_kernels_command(bench, run);
}

}  // namespace pmpl::cli
