// `pmpl bench comm`: all-reduce time and bandwidth of the process communicator at the sizes a
// training step sends (under mpirun; rank 0 prints). Bus bandwidth as nccl-tests defines it,
// algorithm bandwidth x 2 (n - 1) / n, so numbers compare across process counts and with NCCL's.
#include <algorithm>
#include <chrono>

#include "engine/comm.h"
#include "engine/error.h"
#include "tools/commands.h"

namespace pmpl::cli {
namespace {

struct BenchCommOptions {
  std::vector<double> sizes_mb = {0.25, 1, 4, 14, 64};
  int repeat = 20;
  int warmup = 3;
};

void run_bench_comm(const BenchCommOptions& opt) {
  PMPL_CHECK(opt.repeat > 0 && opt.warmup >= 0, "bench comm: --repeat must be positive, --warmup non-negative");
  Communicator& comm = process_comm();
  PMPL_CHECK(comm.world() > 1, "bench comm measures communication between processes: start it with mpirun -np N "
                               "(N >= 2)");
  const bool speak = comm.rank() == 0;
  if (speak) {
    fmt::print("pmpl bench comm: {} all-reduce (f32 sum), {} processes ({} on this node), median of {} after {} warm-up\n",
               comm.backend(), comm.world(), comm.local_world(), opt.repeat, opt.warmup);
    fmt::print("{:>10} {:>12} {:>14} {:>14}\n", "MiB", "ms", "algbw GB/s", "busbw GB/s");
  }
  for (double mb : opt.sizes_mb) {
    PMPL_CHECK(mb > 0, "bench comm: sizes must be positive, got {}", mb);
    const auto n = std::max<int64_t>(1, static_cast<int64_t>(mb * (1 << 20) / 4));
    const Tensor buffer = Tensor::full(Shape{n}, 1.0, DType::kF32);
    std::vector<double> ms;
    for (int i = 0; i < opt.warmup + opt.repeat; ++i) {
      comm.barrier();
      const auto t0 = std::chrono::steady_clock::now();
      comm.all_reduce_sum(buffer);
      const double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (i >= opt.warmup) ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    const double median = ms[ms.size() / 2];
    const double algbw = static_cast<double>(n) * 4 / (median * 1e-3) / 1e9;
    const double busbw = algbw * 2.0 * (comm.world() - 1) / comm.world();
    if (speak) fmt::print("{:>10.2f} {:>12.3f} {:>14.2f} {:>14.2f}\n", static_cast<double>(n) * 4 / (1 << 20), median, algbw, busbw);
  }
}

}  // namespace

void add_bench_comm_command(CLI::App* bench, Runner& run) {
  auto opt = std::make_shared<BenchCommOptions>();
  CLI::App* cmd = bench->add_subcommand("comm", "All-reduce time and bandwidth between the processes (run under mpirun)");
  cmd->add_option("--sizes-mb", opt->sizes_mb, "Buffer sizes in MiB")->delimiter(',')->capture_default_str();
  cmd->add_option("--repeat", opt->repeat, "Timed all-reduces per size (the median is reported)")->capture_default_str();
  cmd->add_option("--warmup", opt->warmup, "Untimed all-reduces first")->capture_default_str();
  cmd->callback([&run, opt] { run = [opt] { run_bench_comm(*opt); }; });
}

}  // namespace pmpl::cli
