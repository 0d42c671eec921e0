// `pmpl export` (trained network -> deployment file) and `pmpl infer` (deployment file -> top-5).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "data/eval_image.h"
#include "data/image_folder.h"
#include "data/loader.h"
#include "engine/ops.h"
#include "layers/weights.h"
#include "models/deploy/export.h"
#include "models/deploy/onnx_export.h"
#include "models/deploy/quantize.h"
#include "models/deploy/runtime.h"
#include "tools/commands.h"
#include "tools/model_flags.h"
#include "train/checkpoint.h"
#include "train/pmpl.h"

namespace pmpl::cli {
namespace {

struct ExportCommand {
  std::string checkpoint, weights, from, out, dtype = "f32", classes_file, format;
  std::string calibrate, calib_split = "train", calib_method = "minmax";
  int64_t calib_images = 512;
  double calib_percentile = 99.99;
  ModelFlags model;
  int input_size = 0;
  bool fix_remaining = false;
  bool ema = false;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// --format, or what --out's extension says (.onnx: onnx; anything else: pmpl).
std::string output_format(const ExportCommand& c) {
  if (!c.format.empty()) return c.format;
  return ends_with(c.out, ".onnx") ? "onnx" : "pmpl";
}

// The f32 network run on --calib-images images of --calibrate's split (the eval transform,
// spread evenly over its class-sorted files) while a Calibrator watches, then quantised.
deploy::DeployModel calibrate_and_quantize(const deploy::DeployModel& folded, const ExportCommand& c) {
  const deploy::Runtime f32(folded);
  deploy::Calibrator calibrator({c.calib_method, c.calib_percentile});
  const data::ImageFolder split(c.calibrate, c.calib_split);
  PMPL_CHECK(c.calib_images > 0, "--calib-images {}: give at least 1", c.calib_images);
  data::LoaderOptions lo;
  lo.batch_size = 32;
  lo.image_size = f32.input_size();
  lo.train = false;
  lo.shuffle = false;
  lo.drop_last = false;
  const int64_t n = std::min<int64_t>(c.calib_images, split.size());
  for (int64_t i = 0; i < n; ++i) lo.subset.push_back(i * split.size() / n);
  data::Loader loader(split, lo);
  loader.start_epoch(0);
  int64_t seen = 0;
  while (auto batch = loader.next()) {
    f32.run_observed(ops::normalize_images(batch->images, f32.mean(), f32.stddev()),
                     [&](const std::string& point, const Tensor& t) { calibrator.observe(point, t); });
    seen += batch->images.dim(0);
    if (isatty(2)) fmt::print(stderr, "\rcalibrating on {}: {}/{} images", split.directory(), seen, n);
  }
  fmt::print(stderr, "{}calibrated on {} images of {}\n", isatty(2) ? "\r" : "", seen, split.directory());
  return deploy::quantize_model(folded, calibrator, seen);
}

void write_export(const deploy::DeployModel& folded, const std::string& format, const ExportCommand& c) {
  PMPL_CHECK((c.dtype == "int8") == !c.calibrate.empty(), "{}", c.dtype == "int8"
             ? "--dtype int8 needs --calibrate ROOT: images (ROOT/train/<class>/...) to measure the activations on"
             : "--calibrate goes with --dtype int8");
  if (format == "onnx") {
    PMPL_CHECK(c.dtype == "f32", "--dtype {}: ONNX export writes f32 weights; drop --dtype (onnxruntime and the "
               "converters of other runtimes make their own f16 or int8 copies)", c.dtype);
    deploy::export_onnx(folded, c.out);
  } else if (c.dtype == "int8") {
    deploy::write_deploy_file(calibrate_and_quantize(folded, c), false, c.out);
  } else {
    deploy::write_deploy_file(folded, c.dtype == "f16", c.out);
  }
}

// --from: a deployment file rewritten in another format (or dtype).
void run_convert(const ExportCommand& c, const std::string& format) {
  PMPL_CHECK(c.checkpoint.empty() && c.weights.empty() && !c.ema && !c.fix_remaining && c.classes_file.empty() &&
                 c.input_size <= 0,
             "--from {} takes a finished deployment file: drop --checkpoint, --weights, --ema, --fix-remaining, "
             "--classes and --input-size", c.from);
  const deploy::DeployModel folded = deploy::read_deploy_model(c.from);
  write_export(folded, format, c);
  fmt::print("wrote {} ({} from {})\n", c.out, format, c.from);
}

void run_export(const ExportCommand& c) {
  const std::string format = output_format(c);
  if (!c.from.empty()) return run_convert(c, format);
  PMPL_CHECK(c.checkpoint.empty() != c.weights.empty(), "pass either --checkpoint or --weights (or --from a .pmpl file)");
  std::shared_ptr<Network> model;
  deploy::ExportOptions options;
  options.input_size = 224;
  const std::string source = c.checkpoint.empty() ? c.weights : c.checkpoint;
  const TensorFile file = load_safetensors(source);
  if (describes_model(file)) {
    model = load_model_from_file(source, c.ema);
    options.architecture = nlohmann::json::parse(file.metadata.at("pmpl.model")).at("name");
    if (file.metadata.count("pmpl.classes")) {
      options.classes = nlohmann::json::parse(file.metadata.at("pmpl.classes")).get<std::vector<std::string>>();
    }
    if (file.metadata.count("pmpl.input_size")) {
      options.input_size = std::stoi(file.metadata.at("pmpl.input_size"));
    } else if (c.input_size <= 0) {
      fmt::print(stderr, "pmpl: warning: {} does not record its input size (an older checkpoint); assuming 224, "
                 "pass --input-size if it was trained at another\n", source);
    }
  } else {
    PMPL_CHECK(c.checkpoint.empty(), "{} is not a pmpl checkpoint; pass it as --weights with the model flags", source);
    model = build_model_from_flags(c.model);
    load_weights(*model, c.ema ? ema_weights(file, source) : file, source);
    options.architecture = c.model.name;
  }
  if (c.input_size > 0) options.input_size = c.input_size;
  if (!c.classes_file.empty()) {
    std::ifstream in(c.classes_file);
    PMPL_CHECK(in.good(), "cannot read {}", c.classes_file);
    options.classes.clear();
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) options.classes.push_back(line);
    }
    PMPL_CHECK(static_cast<int64_t>(options.classes.size()) == model->config().num_classes,
               "--classes {} has {} names for a network with {} classes: give one name per line",
               c.classes_file, options.classes.size(), model->config().num_classes);
  }
  if (c.fix_remaining) {
    for (const std::string& line : fix_remaining(model->enhancers()).lines) fmt::print(stderr, "pmpl: warning: {}\n", line);
  }
  model->eval();
  write_export(deploy::fold_model(*model, options), format, c);
  fmt::print("wrote {} ({}: {} {}, {} classes, input {}x{}, {})\n", c.out, format, options.architecture,
             model->config().width, model->config().num_classes, options.input_size, options.input_size, c.dtype);
}

struct InferCommand {
  std::string model;
  std::vector<std::string> images;
  bool json = false;
  int top = 5;
  std::string device = "cpu";
};

void run_infer(const InferCommand& c) {
  PMPL_CHECK(c.device == "cpu", "--device {}: the deployment runtime runs on the CPU; use cpu (or pmpl eval "
             "--device cuda with the checkpoint)", c.device);
  PMPL_CHECK(c.top >= 1, "--top must be at least 1");
  const deploy::Runtime runtime(c.model);
  data::EvalImageReader reader(runtime.input_size());
  nlohmann::json all = nlohmann::json::array();
  for (const std::string& path : c.images) {
    const Tensor logits = runtime.run_u8(reader.read(path));
    const std::vector<float> v = logits.to_vector<float>();
    const float peak = *std::max_element(v.begin(), v.end());
    double total = 0.0;
    for (float x : v) total += std::exp(static_cast<double>(x - peak));
    std::vector<int> order(v.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
    const int k = std::min<int>(c.top, static_cast<int>(v.size()));
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int a, int b) { return v[a] > v[b]; });
    nlohmann::json top = nlohmann::json::array();
    if (!c.json) fmt::print("{}\n", path);
    for (int r = 0; r < k; ++r) {
      const int i = order[static_cast<size_t>(r)];
      const double p = std::exp(static_cast<double>(v[i] - peak)) / total;
      top.push_back({{"class", runtime.classes()[i]}, {"index", i}, {"probability", p}});
      if (!c.json) fmt::print("  {}. {:<24} {:6.2f}%\n", r + 1, runtime.classes()[i], 100 * p);
    }
    all.push_back({{"image", path}, {"top", top}});
  }
  if (c.json) fmt::print("{}\n", all.dump(2));
}

}  // namespace

void add_export_command(CLI::App& app, Runner& run) {
  auto e = std::make_shared<ExportCommand>();
  CLI::App* ex = app.add_subcommand(
      "export", "Write a trained network as a deployment file or ONNX graph (BN folded, enhancers fixed)");
  ex->add_option("--checkpoint", e->checkpoint, "A pmpl checkpoint (it records its network)");
  ex->add_option("--weights", e->weights, "Plain weights (.safetensors); give the model flags");
  ex->add_option("--from", e->from, "A deployment file (.pmpl) to rewrite, e.g. as ONNX");
  add_model_flags(ex, e->model);
  ex->add_option("--out", e->out, "The file to write (.pmpl, or .onnx for ONNX)")->required();
  ex->add_option("--format", e->format, "pmpl (the flat binary pmpl infer and the C API run) or onnx "
                 "(opset 17, NCHW input); default: onnx when --out ends in .onnx, else pmpl")
      ->check(CLI::IsMember({"pmpl", "onnx"}));
  ex->add_option("--dtype", e->dtype, "f32, f16, or int8 (pmpl format; int8 needs --calibrate)")
      ->check(CLI::IsMember({"f32", "f16", "int8"}))
      ->capture_default_str();
  ex->add_option("--calibrate", e->calibrate, "int8: a dataset folder (ROOT/<split>/<class>/...) whose images set "
                 "the activations' ranges");
  ex->add_option("--calib-split", e->calib_split, "int8: the split of --calibrate to use")->capture_default_str();
  ex->add_option("--calib-images", e->calib_images, "int8: how many images, spread over the classes")
      ->capture_default_str();
  ex->add_option("--calib-method", e->calib_method,
                 "int8: minmax (every value observed), percentile (--calib-percentile) or entropy (the clip that "
                 "loses least information, TensorRT's)")
      ->check(CLI::IsMember({"minmax", "percentile", "entropy"}))
      ->capture_default_str();
  ex->add_option("--calib-percentile", e->calib_percentile, "int8 with percentile: the share of values kept in range")
      ->capture_default_str();
  ex->add_option("--input-size", e->input_size, "Image side (default: the training run's, else 224)");
  ex->add_option("--classes", e->classes_file, "Class names, one per line (default: the checkpoint's)");
  ex->add_flag("--ema", e->ema, "Export the average of the weights a --model-ema run saved in the checkpoint");
  ex->add_flag("--fix-remaining", e->fix_remaining, "Fix enhancers still searching to their most probable op");
  ex->callback([&run, e] { run = [e] { run_export(*e); }; });

  auto i = std::make_shared<InferCommand>();
  CLI::App* in = app.add_subcommand("infer", "Top-5 classes of images with a deployment file");
  in->add_option("model", i->model, "The .pmpl file")->required();
  in->add_option("images", i->images, "JPEG or PNG images")->required();
  in->add_flag("--json", i->json, "Machine-readable output");
  in->add_option("--top", i->top, "How many classes per image")->capture_default_str();
  in->add_option("--device", i->device, "cpu (cuda with the CUDA backend)")->capture_default_str();
  in->callback([&run, i] { run = [i] { run_infer(*i); }; });
}

}  // namespace pmpl::cli
