#include <cstring>
#include <exception>
#include <memory>
#include <string>

#include "engine/ops.h"
#include "models/deploy/pmpl_c.h"
#include "models/deploy/runtime.h"

struct pmpl_model {
  std::unique_ptr<pmpl::deploy::Runtime> runtime;
};

namespace {

thread_local std::string g_error;

int fail(const std::string& message) {
  g_error = message;
  return -1;
}

}  // namespace

extern "C" {

pmpl_model* pmpl_model_load(const char* path) {
  try {
    if (path == nullptr) {
      fail("pmpl_model_load: path is NULL");
      return nullptr;
    }
    auto model = std::make_unique<pmpl_model>();
    model->runtime = std::make_unique<pmpl::deploy::Runtime>(path);
    return model.release();
  } catch (const std::exception& e) {
    fail(e.what());
    return nullptr;
  }
}

int pmpl_model_input_shape(const pmpl_model* model, int* height, int* width, int* channels) {
  if (model == nullptr || height == nullptr || width == nullptr || channels == nullptr) {
    return fail("pmpl_model_input_shape: NULL argument");
  }
  *height = *width = model->runtime->input_size();
  *channels = 3;
  return 0;
}

int pmpl_model_num_classes(const pmpl_model* model) {
  if (model == nullptr) return fail("pmpl_model_num_classes: model is NULL");
  return static_cast<int>(model->runtime->num_classes());
}

const char* pmpl_model_class_name(const pmpl_model* model, int index) {
  if (model == nullptr || index < 0 || index >= model->runtime->num_classes()) {
    fail("pmpl_model_class_name: no such class");
    return nullptr;
  }
  return model->runtime->classes()[static_cast<size_t>(index)].c_str();
}

int pmpl_model_run(pmpl_model* model, const void* input, int batch, int input_layout, float* logits) {
  if (model == nullptr || input == nullptr || logits == nullptr || batch <= 0) {
    return fail("pmpl_model_run: NULL argument or batch <= 0");
  }
  try {
    const int64_t s = model->runtime->input_size();
    pmpl::Tensor out;
    if (input_layout == PMPL_INPUT_U8_NHWC) {
      pmpl::Tensor x = pmpl::Tensor::empty(pmpl::Shape{batch, s, s, 3}, pmpl::DType::kU8);
      std::memcpy(x.raw_data(), input, x.nbytes());
      out = model->runtime->run_u8(x);
    } else if (input_layout == PMPL_INPUT_F32_NCHW) {
      pmpl::Tensor x = pmpl::Tensor::empty(pmpl::Shape{batch, 3, s, s}, pmpl::DType::kF32);
      std::memcpy(x.raw_data(), input, x.nbytes());
      out = model->runtime->run(pmpl::ops::permute(x, {0, 2, 3, 1}));
    } else {
      return fail("pmpl_model_run: unknown input layout " + std::to_string(input_layout));
    }
    std::memcpy(logits, out.raw_data(), out.nbytes());
    return 0;
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}

void pmpl_model_free(pmpl_model* model) { delete model; }

const char* pmpl_last_error(void) { return g_error.c_str(); }

}  // extern "C"
