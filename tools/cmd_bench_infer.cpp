// `pmpl bench infer`: what deployment costs. A network (from the model flags, exported to a temporary
// file, or an existing --file) is loaded by the runtime and run forward at each batch size; the
// table shows the file's size, its load time, the runtime's latency and img/s, the training
// graph's eval-mode latency on the same weights (what folding saves), and with --baseline (JSON
// from tools/bench_infer_torch.py, same machine) PyTorch eager's latency and the ratio.
#include <omp.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include "engine/autograd.h"
#include "core/rng.h"
#include "models/deploy/export.h"
#include "models/deploy/int8_kernels.h"
#include "models/deploy/runtime.h"
#include "tools/bench_baseline.h"
#include "tools/commands.h"
#include "tools/model_flags.h"

namespace pmpl::cli {
namespace {

namespace fs = std::filesystem;

struct BenchInferOptions {
  ModelFlags model;
  std::string file;
  std::string dtype = "f32";
  int input_size = 224;
  std::vector<int64_t> batches = {1, 8};
  int repeat = 20;
  int warmup = 3;
  int threads = 0;
  std::string baseline;
};

// The genotype part of a benchmark key: CRC32 of "op+op,op,..." (tools/bench_infer_torch.py
// computes the same), so a baseline is only matched with the same architecture.
std::string genotype_tag(const nlohmann::json& genotype) {
  if (genotype.is_null()) return "";
  std::string ops;
  for (const auto& e : genotype.at("enhancers")) {
    if (!ops.empty()) ops += ",";
    std::string joined;
    for (const auto& op : e.at("ops")) {
      if (!joined.empty()) joined += '+';
      joined += op.get<std::string>();
    }
    ops += joined;
  }
  const auto crc = static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(ops.data()),
                                               static_cast<uInt>(ops.size())));
  return fmt::format("_g{:08x}", crc);
}

double median_ms(int warmup, int repeat, const std::function<void()>& fn) {
  std::vector<double> ms;
  for (int i = 0; i < warmup + repeat; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    const double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (i >= warmup) ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

void run_bench_infer(const BenchInferOptions& opt) {
  PMPL_CHECK(opt.repeat > 0 && opt.warmup >= 0 && opt.input_size >= 16,
             "bench infer: --repeat must be positive, --warmup non-negative, --input-size at least 16");
  for (int64_t b : opt.batches) PMPL_CHECK(b > 0, "bench infer: --batch-sizes must be positive ({})", b);
  if (opt.threads > 0) omp_set_num_threads(opt.threads);

  std::shared_ptr<Network> graph;  // only when built here from the model flags
  std::string path = opt.file;
  if (path.empty()) {
    graph = build_model_from_flags(opt.model);
    graph->eval();
    path = (fs::temp_directory_path() / fmt::format("pmpl_bench_infer_{}.pmpl", ::getpid())).string();
    deploy::ExportOptions options;
    options.architecture = opt.model.name;
    options.f16 = opt.dtype == "f16";
    options.input_size = opt.input_size;
    deploy::export_model(*graph, options, path);
  }
  PMPL_CHECK(fs::is_regular_file(path), "bench infer: --file {} is not a file; pass a .pmpl that pmpl export wrote",
             path);
  const uint64_t file_bytes = fs::file_size(path);
  std::unique_ptr<deploy::Runtime> runtime;
  const double load_ms = median_ms(1, 5, [&] { runtime = std::make_unique<deploy::Runtime>(path); });
  if (opt.file.empty()) fs::remove(path);
  const nlohmann::json& config = runtime->config();
  const int size = runtime->input_size();
  const std::string arch = fmt::format("{}_w{}{}", config.at("architecture").get<std::string>(),
                                       config.at("width").get<double>(),
                                       config.at("small_input").get<bool>() ? "_small" : "");
  const std::string tag = genotype_tag(config.at("genotype"));
  const Baseline base = read_baseline(opt.baseline, "bench infer", "tools/bench_infer_torch.py or tools/bench_infer_onnx.py");

  const std::string dtype = config.at("dtype").get<std::string>();
  // An int8 file's speed depends on which kernels this CPU runs (int8_kernels.h).
  const std::string kernels =
      dtype == "int8" ? fmt::format(" ({} int8 kernels)", deploy::int8_isa_name(deploy::best_int8_isa())) : "";
  fmt::print("pmpl bench infer: {}{} ({}, {} classes, {}x{} input), CPU{}, {} threads, median of {} after {} warm-up\n",
             arch, tag, dtype, runtime->num_classes(), size, size, kernels, omp_get_max_threads(), opt.repeat,
             opt.warmup);
  fmt::print("file {:.2f} MiB, loaded in {:.1f} ms\n", static_cast<double>(file_bytes) / (1 << 20), load_ms);
  fmt::print("{:>6} {:>12} {:>10}", "batch", "runtime ms", "img/s");
  if (graph) fmt::print(" {:>10} {:>8}", "graph ms", "fold");
  if (!opt.baseline.empty()) fmt::print(" {:>16} {:>8}", base.label + " ms", "ratio");
  fmt::print("\n");
  Generator gen(3);
  NoGradGuard no_grad;
  for (int64_t b : opt.batches) {
    const Tensor x = Tensor::randn(Shape{b, size, size, 3}, gen);
    const double ms = median_ms(opt.warmup, opt.repeat, [&] { runtime->run(x); });
    fmt::print("{:>6} {:>12.2f} {:>10.1f}", b, ms, static_cast<double>(b) * 1000.0 / ms);
    if (graph) {
      const double g = median_ms(opt.warmup, opt.repeat, [&] { graph->forward(x); });
      fmt::print(" {:>10.2f} {:>7.2f}x", g, g / ms);
    }
    if (!opt.baseline.empty()) {
      const std::string key = fmt::format("{}{}_b{}_s{}_k{}", arch, tag, b, size, runtime->num_classes());
      const double torch_ms = base.value(key, "ms");
      fmt::print(" {:>16.2f} {:>7.2f}x", torch_ms, torch_ms / ms);
    }
    fmt::print("\n");
  }
}

}  // namespace

void add_bench_infer_command(CLI::App* bench, Runner& run) {
  auto opt = std::make_shared<BenchInferOptions>();
  CLI::App* cmd = bench->add_subcommand(
      "infer", "Deployment runtime latency and img/s, file size and load time (vs the training graph, PyTorch)");
  add_model_flags(cmd, opt->model);
  cmd->add_option("--file", opt->file, "An exported .pmpl to measure (default: export the model flags' network)");
  cmd->add_option("--dtype", opt->dtype, "Weights of the exported network: f32 or f16")
      ->check(CLI::IsMember({"f32", "f16"}))
      ->capture_default_str();
  cmd->add_option("--input-size", opt->input_size, "Image side of the exported network")->capture_default_str();
  cmd->add_option("--batch-sizes", opt->batches, "Batch sizes to time")->delimiter(',')->capture_default_str();
  cmd->add_option("--repeat", opt->repeat, "Timed runs per batch size (the median is reported)")
      ->capture_default_str();
  cmd->add_option("--warmup", opt->warmup, "Untimed runs first")->capture_default_str();
  cmd->add_option("--threads", opt->threads, "OpenMP threads (default: all cores)");
  cmd->add_option("--baseline", opt->baseline, "JSON from tools/bench_infer_torch.py (PyTorch) or tools/bench_infer_onnx.py (onnxruntime): adds its latency");
  cmd->callback([&run, opt] { run = [opt] { run_bench_infer(*opt); }; });
}

}  // namespace pmpl::cli
