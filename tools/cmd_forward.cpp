// `pmpl forward`: runs a network in evaluation mode on a .npy batch and writes the logits.
#include "engine/autograd.h"
#include "engine/io/npy.h"
#include "engine/ops.h"
#include "layers/weights.h"
#include "tools/commands.h"
#include "tools/model_flags.h"

namespace pmpl::cli {
namespace {

struct ForwardOptions {
  ModelFlags model;
  std::string weights, input, output, layout = "nchw";
};

void run_forward(const ForwardOptions& opt) {
  auto model = build_model_from_flags(opt.model);
  load_weights(*model, opt.weights);
  model->eval();
  Tensor x = load_npy(opt.input);
  PMPL_CHECK(x.dtype() == DType::kF32 || x.dtype() == DType::kF64,
             "{}: images must be float32 or float64, got {}", opt.input, dtype_name(x.dtype()));
  x = x.to(DType::kF32);
  const bool nchw = opt.layout == "nchw";
  PMPL_CHECK(x.rank() == 4 && x.dim(nchw ? 1 : 3) == 3,
             "{}: expected images as [N, {}] with 3 channels, got shape {}", opt.input,
             nchw ? "3, H, W" : "H, W, 3", x.shape().str());
  NoGradGuard no_grad;
  if (nchw) x = ops::permute(x, {0, 2, 3, 1});
  save_npy(opt.output, model->forward(x));
}

}  // namespace

void add_forward_command(CLI::App& app, Runner& run) {
  auto opt = std::make_shared<ForwardOptions>();
  CLI::App* cmd = app.add_subcommand(
      "forward", "Run a network in evaluation mode on a .npy batch and write the logits (.npy)");
  add_model_flags(cmd, opt->model);
  cmd->add_option("--weights", opt->weights, "Weights (.safetensors)")->required();
  cmd->add_option("--input", opt->input, "Images (.npy, float32)")->required();
  cmd->add_option("--output", opt->output, "Logits (.npy, float32 [N, classes])")->required();
  cmd->add_option("--layout", opt->layout, "Layout of the input: nchw (PyTorch's) or nhwc")
      ->check(CLI::IsMember({"nchw", "nhwc"}))
      ->capture_default_str();
  cmd->callback([&run, opt] { run = [opt] { run_forward(*opt); }; });
}

}  // namespace pmpl::cli
