// `pmpl forward`: runs a network in evaluation mode (or a deployment file through the runtime) on
// a .npy batch and writes the logits.
#include "engine/autograd.h"
#include "engine/io/npy.h"
#include "engine/ops.h"
#include "layers/weights.h"
#include "models/deploy/runtime.h"
#include "tools/commands.h"
#include "tools/model_flags.h"

namespace pmpl::cli {
namespace {

struct ForwardOptions {
  ModelFlags model;
  std::string weights, deploy, input, output, layout = "nchw";
};

void run_forward(const ForwardOptions& opt) {
  PMPL_CHECK(opt.weights.empty() != opt.deploy.empty(), "pass either --weights (with the model flags) or --deploy");
  // The network first: a mismatch between weights and model flags is the likelier mistake.
  std::shared_ptr<Network> model;
  std::unique_ptr<deploy::Runtime> runtime;
  if (opt.deploy.empty()) {
    model = build_model_from_flags(opt.model);
    load_weights(*model, opt.weights);
    model->eval();
  } else {
    runtime = std::make_unique<deploy::Runtime>(opt.deploy);
  }
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
  save_npy(opt.output, runtime ? runtime->run(x) : model->forward(x));
}

}  // namespace

void add_forward_command(CLI::App& app, Runner& run) {
  auto opt = std::make_shared<ForwardOptions>();
  CLI::App* cmd = app.add_subcommand(
      "forward", "Run a network in evaluation mode on a .npy batch and write the logits (.npy)");
  add_model_flags(cmd, opt->model);
  cmd->add_option("--weights", opt->weights, "Weights (.safetensors)");
  cmd->add_option("--deploy", opt->deploy, "A deployment file (.pmpl), run by the deployment runtime instead");
  cmd->add_option("--input", opt->input, "Images (.npy, float32)")->required();
  cmd->add_option("--output", opt->output, "Logits (.npy, float32 [N, classes])")->required();
  cmd->add_option("--layout", opt->layout, "Layout of the input: nchw (PyTorch's) or nhwc")
      ->check(CLI::IsMember({"nchw", "nhwc"}))
      ->capture_default_str();
  cmd->callback([&run, opt] { run = [opt] { run_forward(*opt); }; });
}

}  // namespace pmpl::cli
