// `pmpl bench loader`: images per second of the batch loader and the time per stage.
#include <chrono>
#include <fstream>

#include <nlohmann/json.hpp>

#include "data/loader.h"
#include "tools/bench_baseline.h"
#include "tools/commands.h"

namespace pmpl::cli {
namespace {

struct BenchLoaderOptions {
  std::string data;
  std::string split = "train";
  int64_t batch = 64;
  int workers = 2;
  int size = 224;
  int batches = 40;
  bool eval = false;
  std::string auto_augment;
  std::string baseline;
};

// PyTorch's img/s for this configuration from a tools/bench_loader_torch.py JSON, or 0.
double baseline_img_s(const BenchLoaderOptions& opt, std::string& label) {
  const Baseline base = read_baseline(opt.baseline, "bench loader", "tools/bench_loader_torch.py");
  label = base.label;
  if (opt.baseline.empty()) return 0.0;
  return base.value(fmt::format("{}_s{}_b{}_w{}{}", opt.eval ? "eval" : "train", opt.size, opt.batch, opt.workers,
                                opt.auto_augment.empty() ? "" : "_" + opt.auto_augment),
                    "img_per_s");
}

void run_bench_loader(const BenchLoaderOptions& opt) {
  PMPL_CHECK(opt.batches > 1, "--batches must be at least 2 (the first is not timed)");
  const data::ImageFolder folder(opt.data, opt.split);
  data::LoaderOptions lo;
  lo.batch_size = opt.batch;
  lo.image_size = opt.size;
  lo.workers = opt.workers;
  lo.train = !opt.eval;
  lo.drop_last = false;
  lo.auto_augment = data::parse_auto_augment(opt.auto_augment);
  PMPL_CHECK(!opt.eval || opt.auto_augment.empty(), "--auto-augment applies to training images: drop --eval");
  data::Loader loader(folder, lo);
  int64_t images = 0, epoch = 0;
  loader.start_epoch(epoch);
  loader.next();  // warm-up: threads started, buffers grown
  const data::LoaderStats before = loader.stats();
  const auto t0 = std::chrono::steady_clock::now();
  for (int b = 1; b < opt.batches; ++b) {
    auto batch = loader.next();
    if (!batch) {
      loader.start_epoch(++epoch);
      batch = loader.next();
    }
    images += batch->images.dim(0);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const data::LoaderStats after = loader.stats();
  const double n = static_cast<double>(after.images - before.images);
  auto per_image_ms = [&](double total_s, double before_s) { return (total_s - before_s) / n * 1e3; };
  const double read = per_image_ms(after.read_s, before.read_s), header = per_image_ms(after.header_s, before.header_s);
  const double decode = per_image_ms(after.decode_s, before.decode_s), resize = per_image_ms(after.resize_s, before.resize_s);
  const double augment = per_image_ms(after.augment_s, before.augment_s);
  const double img_s = static_cast<double>(images) / seconds;
  fmt::print("pmpl bench loader: {} ({} images), {} transform{} at {}, batch {}, {} workers\n", folder.directory(),
             folder.size(), opt.eval ? "eval" : "train", opt.auto_augment.empty() ? "" : " + " + opt.auto_augment,
             opt.size, opt.batch, opt.workers);
  std::string label;
  const double baseline = baseline_img_s(opt, label);
  fmt::print("{:>10} {:>14} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}", "img/s", "img/s/worker", "read ms",
             "header ms", "decode ms", "resize ms", "augment ms", "skipped");
  if (baseline > 0) fmt::print(" {:>26} {:>8}", label + " img/s", "ratio");
  fmt::print("\n{:>10.1f} {:>14.1f} {:>10.3f} {:>10.3f} {:>10.3f} {:>10.3f} {:>10.3f} {:>10}", img_s,
             img_s / opt.workers, read, header, decode, resize, augment, after.failures);
  if (baseline > 0) fmt::print(" {:>26.1f} {:>7.2f}x", baseline, img_s / baseline);
  fmt::print("\n(stage times are per image per worker; resize includes the write into the batch)\n");
}

}  // namespace

void add_bench_loader_command(CLI::App* bench, Runner& run) {
  auto opt = std::make_shared<BenchLoaderOptions>();
  CLI::App* cmd = bench->add_subcommand("loader", "Batch loader img/s and time per stage (read, header, decode, resize, augment)");
  cmd->add_option("--data", opt->data, "Dataset folder (ImageNet layout)")->required();
  cmd->add_option("--split", opt->split, "train or val")->capture_default_str();
  cmd->add_option("--batch-size", opt->batch, "Images per batch")->capture_default_str();
  cmd->add_option("--workers", opt->workers, "Loader threads")->capture_default_str();
  cmd->add_option("--input-size", opt->size, "Output side in pixels")->capture_default_str();
  cmd->add_option("--batches", opt->batches, "Batches to time (after one warm-up batch)")->capture_default_str();
  cmd->add_flag("--eval", opt->eval, "Resize + center crop instead of RandomResizedCrop + flip");
  cmd->add_option("--auto-augment,--aa", opt->auto_augment, "Augmentation after the crop: rand-m9-mstd0.5 (timm's RandAugment), ta_wide or imagenet (torchvision's)");
  cmd->add_option("--baseline", opt->baseline, "JSON from tools/bench_loader_torch.py: adds its img/s");
  cmd->callback([&run, opt] { run = [opt] { run_bench_loader(*opt); }; });
}

}  // namespace pmpl::cli
