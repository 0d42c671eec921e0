#include "models/deploy/runtime.h"

#include <cstring>

#include "core/half.h"
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "layers/meta_pooling.h"
#include "models/deploy/export.h"
#include "models/deploy/format.h"
#include "models/deploy/runtime_int8.h"
#include "models/mobilenetv2.h"

namespace pmpl::deploy {

Runtime::Runtime(const std::string& path) {
  DeployFile file;
  std::string error;
  PMPL_CHECK(read_deploy_file(path, file, error), "{}", error);
  try {
    config_ = nlohmann::json::parse(file.config_json);
  } catch (const nlohmann::json::exception& e) {
    PMPL_CHECK(false, "{}: the model description is not JSON ({})", path, e.what());
  }
  for (const DeployTensor& t : file.tensors) {
    std::vector<int64_t> shape(t.shape.begin(), t.shape.end());
    PMPL_CHECK(shape.size() <= static_cast<size_t>(Shape::kMaxRank), "{}: tensor {} has rank {}", path, t.name, shape.size());
    Tensor out = Tensor::empty(Shape(shape), DType::kF32);
    float* dst = out.data<float>();
    const uint8_t* src = file.bytes.data() + t.offset;
    for (uint64_t i = 0; i < t.numel(); ++i) {
      if (t.dtype == DeployDType::kF32) {
        std::memcpy(dst + i, src + 4 * i, 4);
      } else if (t.dtype == DeployDType::kF16) {
        f16 h;
        std::memcpy(&h.bits, src + 2 * i, 2);
        dst[i] = static_cast<float>(h);
      } else {
        dst[i] = static_cast<int8_t>(src[i]);  // int8 weights, held exactly; runtime_int8 packs them
      }
    }
    tensors_[t.name] = out;
  }
  load(path);
}

Runtime::Runtime(const DeployModel& model) {
  config_ = model.config;
  for (const auto& [name, t] : model.tensors) {
    Tensor out = Tensor::empty(Shape(t.shape), DType::kF32);
    float* dst = out.data<float>();
    for (size_t i = 0; i < t.data.size(); ++i) dst[i] = static_cast<float>(t.data[i]);
    tensors_[name] = out;
  }
  load("the exported model");
}

Runtime::~Runtime() = default;

void Runtime::load(const std::string& where) {
  try {
    PMPL_CHECK(config_.value("format", "") == "pmpl-model", "{}: not a pmpl model description", where);
    const std::string arch = config_.at("architecture");
    PMPL_CHECK(arch == "mobilenetv2" || arch == "mobilenetv2_mp", "{}: unknown architecture {}", where, arch);
    meta_pooling_ = arch == "mobilenetv2_mp";
    width_ = config_.at("width");
    small_input_ = config_.at("small_input");
    classes_ = config_.at("classes").get<std::vector<std::string>>();
    input_size_ = config_.at("input").at("size");
    for (int c = 0; c < 3; ++c) {
      mean_[c] = config_.at("input").at("mean").at(c);
      std_[c] = config_.at("input").at("std").at(c);
    }
    if (meta_pooling_) genotype_ = Genotype::from_json(config_.at("genotype"), where);
  } catch (const nlohmann::json::exception& e) {
    PMPL_CHECK(false, "{}: the model description is incomplete ({})", where, e.what());
  }
  PMPL_CHECK(!classes_.empty() && input_size_ >= 8, "{}: no classes or an implausible input size", where);
  // Every tensor the architecture reads must be there with the right rank; a dry run at a small
  // size checks it all now rather than at the first real image.
  NoGradGuard no_grad;
  try {
    if (config_.contains("quantization")) {
      quantized_ = std::make_unique<QuantizedLayers>(config_.at("quantization"), tensors_,
                                                     mobilenetv2_spec(width_, small_input_), genotype_);
    }
    run(Tensor::zeros(Shape{1, input_size_, input_size_, 3}));
  } catch (const Error& e) {
    PMPL_CHECK(false, "{}: its tensors do not fit its architecture ({}); re-export it", where, e.what());
  } catch (const nlohmann::json::exception& e) {
    PMPL_CHECK(false, "{}: its quantisation parameters are incomplete ({}); re-export it", where, e.what());
  }
}

const Tensor& Runtime::weight(const std::string& name) const {
  auto it = tensors_.find(name);
  PMPL_CHECK(it != tensors_.end(), "tensor {} is missing", name);
  return it->second;
}

// A 1x1 conv with its folded bias: one GEMM over all pixels. With an activation, the bias and
// the activation are one pass after it (ops::channel_affine); without, the bias is the GEMM's
// initial value.
Tensor Runtime::conv1x1(const Tensor& x, const std::string& conv, ops::ChannelActivation act) const {
  const Tensor& w = weight(conv + ".weight");
  const Tensor w2 = w.reshape(Shape{w.dim(0), w.dim(-1)});
  if (act == ops::ChannelActivation::kNone) return ops::linear(x, w2, weight(conv + ".bias"));
  return ops::channel_affine(ops::linear(x, w2, Tensor()), Tensor(), weight(conv + ".bias"), act);
}

Tensor Runtime::enhancer(const Tensor& y, const Genotype::Entry& entry) const {
  const std::string& e = entry.name;
  Tensor mixed;
  for (PoolOp op : entry.ops) {
    Tensor branch;
    if (op == PoolOp::kStrip) {
      const int64_t n = y.dim(0), h = y.dim(1), w = y.dim(2), c = y.dim(3);
      const Tensor mixed_strip = ops::hardswish(conv1x1(ops::strip_pool(y), e + ".strip.conv1"));
      const Tensors parts = ops::split(mixed_strip, {h, w}, 1);
      const Tensor a_h = ops::sigmoid(conv1x1(parts[0], e + ".strip.conv_h")).reshape(Shape{n, h, 1, c});
      const Tensor a_w = ops::sigmoid(conv1x1(parts[1], e + ".strip.conv_w")).reshape(Shape{n, 1, w, c});
      branch = ops::mul(ops::mul(y, a_w), a_h);
    } else {
      branch = run_pool_op(op, y, nullptr);
    }
    mixed = mixed.defined() ? ops::add(mixed, branch) : branch;
  }
  return ops::channel_affine(mixed, weight(e + ".scale"), weight(e + ".shift"), ops::ChannelActivation::kHardswish);
}

Tensor Runtime::run(const Tensor& images) const {
  PMPL_CHECK(images.rank() == 4 && images.dim(3) == 3 && images.dtype() == DType::kF32,
             "expected f32 images [N, H, W, 3], got {} {}", dtype_name(images.dtype()), images.shape().str());
  return quantized_ ? run_int8(images) : run_f32(images, nullptr);
}

Tensor Runtime::run_observed(const Tensor& images, const Observer& observe) const {
  PMPL_CHECK(!quantized_, "an int8 model cannot be calibrated again: calibrate its f32 export");
  PMPL_CHECK(images.rank() == 4 && images.dim(3) == 3 && images.dtype() == DType::kF32,
             "expected f32 images [N, H, W, 3], got {} {}", dtype_name(images.dtype()), images.shape().str());
  return run_f32(images, &observe);
}

Tensor Runtime::run_f32(const Tensor& images, const Observer* observe) const {
  constexpr ops::ChannelActivation kReLU6 = ops::ChannelActivation::kReLU6;
  NoGradGuard no_grad;
  auto seen = [&](const std::string& point, const Tensor& t) {
    if (observe) (*observe)(point, t);
    return t;
  };
  // What each int8 conv reads, for calibration's bias correction ("input:" + the conv's name).
  auto input = [&](const std::string& conv, const Tensor& t) -> const Tensor& {
    if (observe) (*observe)("input:" + conv, t);
    return t;
  };
  const ArchitectureSpec spec = mobilenetv2_spec(width_, small_input_);
  Tensor x = seen("features.0", ops::channel_affine(ops::conv2d(images, weight("features.0.0.weight"),
                                                                spec.stem_stride, 1),
                                                    Tensor(), weight("features.0.0.bias"), kReLU6));
  size_t enhancer_index = 0;
  for (const BlockSpec& b : spec.blocks) {
    const std::string p = "features." + std::to_string(b.index) + ".conv.";
    Tensor y = x;
    int child = 0;
    if (b.expand != 1) {
      const std::string expand = p + std::to_string(child++) + ".0";
      y = seen(expand, conv1x1(input(expand, y), expand, kReLU6));
    }
    const std::string dw = p + std::to_string(child++) + ".0";
    y = seen(dw, ops::channel_affine(ops::depthwise_conv2d(input(dw, y), weight(dw + ".weight"), b.stride, 1), Tensor(),
                                     weight(dw + ".bias"), kReLU6));
    if (meta_pooling_ && b.expand != 1) {
      const Genotype::Entry& entry = genotype_.enhancers.at(enhancer_index++);
      y = seen(entry.name, enhancer(y, entry));
    }
    const std::string project = p + std::to_string(child);
    y = seen(project, conv1x1(input(project, y), project));
    x = b.residual() ? seen("features." + std::to_string(b.index), ops::add(x, y)) : y;
  }
  x = seen("features.18.0", conv1x1(input("features.18.0", x), "features.18.0", kReLU6));
  const Tensor pooled = seen("pool", ops::global_avg_pool(x));
  return ops::linear(input("classifier.1", pooled), weight("classifier.1.weight"), weight("classifier.1.bias"));
}

Tensor Runtime::run_u8(const Tensor& images) const {
  return run(ops::normalize_images(images, mean_, std_));
}

}  // namespace pmpl::deploy
