// `pmpl data fashion-mnist OUT` and `pmpl data check ROOT`.
#include <fmt/format.h>

#include "engine/error.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>

#include "data/fashion_mnist.h"
#include "data/image_decode.h"
#include "data/image_folder.h"
#include "tools/commands.h"

namespace pmpl::cli {
namespace {

struct DataOptions {
  std::string out, root, source = data::kFashionMnistDir;
  int64_t limit = 0;
  data::DevSplit dev;
  data::Clutter clutter;
};

void run_fashion_mnist(const DataOptions& opt) {
  data::Clutter clutter = opt.clutter;
  clutter.seed = opt.dev.seed;
  const data::FashionMnistCounts n = data::convert_fashion_mnist(opt.out, opt.source, opt.limit, opt.dev, clutter);
  fmt::print("wrote {} training and {} validation images to {}/{{train,val}}/<class>/{}{}\n", n.train, n.val, opt.out,
             opt.dev.holdout_per_class > 0
                 ? fmt::format(" (a development split: val/ is held out from the training file, seed {})", opt.dev.seed)
                 : "",
             clutter.canvas > 0 ? fmt::format(", {0}x{0} with {1} pieces of clutter {2}x{2} (seed {3})", clutter.canvas,
                                              clutter.pieces, clutter.piece_size, clutter.seed)
                                : "");
}

// Decodes every file fully, in parallel; prints counts per split and class, then each failure.
void run_check(const DataOptions& opt) {
  PMPL_CHECK(std::filesystem::is_directory(opt.root + "/train") || std::filesystem::is_directory(opt.root + "/val"),
             "{} has neither train/ nor val/: expected the ImageNet layout ROOT/{{train,val}}/<class>/<images>",
             opt.root);
  int64_t total = 0, bad_total = 0;
  for (const char* split : {"train", "val"}) {
    if (!std::filesystem::is_directory(opt.root + "/" + split)) {
      fmt::print("{}/{}: missing\n", opt.root, split);
      continue;
    }
    const data::ImageFolder folder(opt.root, split);
    std::vector<std::string> errors(static_cast<size_t>(folder.size()));
#pragma omp parallel
    {
      std::vector<uint8_t> bytes;
      data::DecodedRegion region;
#pragma omp for schedule(dynamic, 64)
      for (int64_t i = 0; i < folder.size(); ++i) {
        std::string error;
        std::ifstream in(folder.path(i), std::ios::binary);
        bytes.assign(std::istreambuf_iterator<char>(in), {});
        data::ImageHeader header;
        bool ok = in.good() || in.eof();
        if (!ok) error = "cannot read the file";
        ok = ok && data::read_image_header(bytes.data(), bytes.size(), header, error);
        const data::Box all{0, 0, static_cast<double>(header.width), static_cast<double>(header.height)};
        ok = ok && data::decode_region(bytes.data(), bytes.size(), header, all, header.width, header.height, region, error);
        if (!ok) errors[static_cast<size_t>(i)] = error.empty() ? "unknown error" : error;
      }
    }
    std::vector<int64_t> files(static_cast<size_t>(folder.num_classes())), bad(files.size());
    for (int64_t i = 0; i < folder.size(); ++i) {
      ++files[static_cast<size_t>(folder.label(i))];
      bad[static_cast<size_t>(folder.label(i))] += !errors[static_cast<size_t>(i)].empty();
    }
    fmt::print("{}/{}: {} classes, {} files\n", opt.root, split, folder.num_classes(), folder.size());
    for (int c = 0; c < folder.num_classes(); ++c) {
      fmt::print("  {:<24} {:>8} files{}\n", folder.classes()[static_cast<size_t>(c)], files[static_cast<size_t>(c)],
                 bad[static_cast<size_t>(c)] ? fmt::format(", {} undecodable", bad[static_cast<size_t>(c)]) : "");
    }
    for (int64_t i = 0; i < folder.size(); ++i) {
      if (!errors[static_cast<size_t>(i)].empty()) {
        fmt::print("  cannot decode {}: {}\n", folder.path(i), errors[static_cast<size_t>(i)]);
        ++bad_total;
      }
    }
    total += folder.size();
  }
  fmt::print("{} files checked, {} cannot be decoded (training skips them)\n", total, bad_total);
}

}  // namespace

void add_data_command(CLI::App& app, Runner& run) {
  CLI::App* data_cmd = app.add_subcommand("data", "Prepare and check image datasets");
  data_cmd->require_subcommand(1);
  auto opt = std::make_shared<DataOptions>();
  CLI::App* fm = data_cmd->add_subcommand(
      "fashion-mnist", "Write Debian's Fashion-MNIST as OUT/{train,val}/<class>/*.jpg");
  fm->add_option("out", opt->out, "Output folder (must not exist)")->required();
  fm->add_option("--source", opt->source, "Folder of the gzip IDX files")->capture_default_str();
  fm->add_option("--limit", opt->limit, "Only the first N images of each split (0: all)");
  fm->add_option("--dev-holdout", opt->dev.holdout_per_class,
                 "A development split: val/ is N images per class held out of the training file, train/ the "
                 "rest; the test set is not written (tune on this, report on the official split)")
      ->check(CLI::NonNegativeNumber);
  fm->add_option("--canvas", opt->clutter.canvas,
                 "Translated Fashion-MNIST: each object at a random place on an NxN black image, inside a margin "
                 "of N/16 that torchvision's centre crop keeps (0: 28x28 as they are)")
      ->check(CLI::NonNegativeNumber);
  fm->add_option("--clutter", opt->clutter.pieces,
                 "Cluttered: that many pieces cut from other images of the same split pasted under the object "
                 "(needs --canvas)")
      ->check(CLI::NonNegativeNumber);
  fm->add_option("--clutter-size", opt->clutter.piece_size, "Side of a piece of clutter")->capture_default_str();
  fm->add_option("--seed", opt->dev.seed, "Which images --dev-holdout holds out, and where objects and clutter go")
      ->capture_default_str();
  fm->callback([&run, opt] { run = [opt] { run_fashion_mnist(*opt); }; });
  CLI::App* check = data_cmd->add_subcommand(
      "check", "Count images per split and class and list every file that cannot be decoded");
  check->add_option("root", opt->root, "Dataset folder (ROOT/train, ROOT/val)")->required();
  check->callback([&run, opt] { run = [opt] { run_check(*opt); }; });
}

}  // namespace pmpl::cli
