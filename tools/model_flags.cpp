#include "tools/model_flags.h"

namespace pmpl::cli {

void add_model_flags(CLI::App* cmd, ModelFlags& flags) {
  cmd->add_option("--model", flags.name, "mobilenetv2, mobilenetv3_large, mobilenetv3_small, efficientnet_b0, shufflenetv2_x0_5, shufflenetv2_x1_0; each with _mp for Meta-Pooling")
      ->capture_default_str();
  cmd->add_option("--width", flags.width, "Width multiplier (torchvision's width_mult)")
      ->capture_default_str();
  cmd->add_option("--num-classes", flags.num_classes, "Classifier outputs")->capture_default_str();
  cmd->add_flag("--small-input", flags.small_input,
                "28-64 px images: stem stride 1 and the first stride-2 stage at stride 1");
  cmd->add_option("--genotype", flags.genotype,
                  "genotype.json: build the _mp model with every enhancer fixed as listed");
  cmd->add_option("--seed", flags.seed, "Initialisation seed")->capture_default_str();
}

std::shared_ptr<Network> build_model_from_flags(const ModelFlags& flags) {
  ModelConfig config;
  config.width = flags.width;
  config.num_classes = flags.num_classes;
  config.small_input = flags.small_input;
  config.seed = flags.seed;
  if (!flags.genotype.empty()) config.genotype = Genotype::load(flags.genotype);
  return build_model(flags.name, config);
}

}  // namespace pmpl::cli
