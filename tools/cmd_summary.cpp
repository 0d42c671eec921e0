// `pmpl summary`: the network layer by layer (output shape, parameters, multiply-accumulates
// per image), ending with the totals as `params: N` and `macs: N`.
#include <fmt/format.h>

#include "engine/autograd.h"
#include "tools/commands.h"
#include "tools/model_flags.h"

namespace pmpl::cli {
namespace {

struct SummaryOptions {
  ModelFlags model;
  int64_t input_size = 224;
};

std::string group_thousands(int64_t v) {
  std::string digits = std::to_string(v), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

void run_summary(const SummaryOptions& opt) {
  PMPL_CHECK(opt.input_size >= 8 && opt.input_size <= 4096, "--input-size {} is outside [8, 4096]",
             opt.input_size);
  auto model = build_model_from_flags(opt.model);
  model->eval();
  std::map<const Module*, std::string> names;
  for (const auto& [name, m] : model->modules()) names[m] = name;

  LayerRecorder recorder;
  {
    NoGradGuard no_grad;
    model->forward(Tensor::zeros(Shape{1, opt.input_size, opt.input_size, 3}));
  }
  fmt::print("{:<34} {:<22} {:<16} {:>10} {:>14}\n", "layer", "type", "output", "params", "MACs");
  int64_t total_macs = 0;
  for (const LayerRecord& r : recorder.records()) {
    int64_t params = 0;
    for (const NamedParameter& p : r.module->parameters()) params += p.tensor.numel();
    const int64_t macs = r.module->macs(r.input, r.output);
    total_macs += macs;
    std::vector<int64_t> out = r.output.vec();
    out.erase(out.begin());  // per image
    fmt::print("{:<34} {:<22} {:<16} {:>10} {:>14}\n", names[r.module], r.module->type_name(),
               Shape(out).str(), group_thousands(params), group_thousands(macs));
  }
  int64_t total_params = 0;
  for (const NamedParameter& p : model->parameters()) total_params += p.tensor.numel();
  fmt::print("params: {}\nmacs: {}\n", total_params, total_macs);
}

}  // namespace

void add_summary_command(CLI::App& app, Runner& run) {
  auto opt = std::make_shared<SummaryOptions>();
  CLI::App* cmd = app.add_subcommand(
      "summary", "Print a network layer by layer with its parameter and MAC counts");
  add_model_flags(cmd, opt->model);
  cmd->add_option("--input-size", opt->input_size, "Image side in pixels")->capture_default_str();
  cmd->callback([&run, opt] { run = [opt] { run_summary(*opt); }; });
}

}  // namespace pmpl::cli
