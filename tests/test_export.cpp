// Export and the deployment runtime: the folded network computes what the training graph
// computes in eval mode; a damaged or foreign file is refused with one clear error.
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "data/image_folder.h"
#include "data/jpeg_encode.h"
#include "data/loader.h"
#include "engine/io/safetensors.h"
#include "train/evaluate.h"
#include "models/deploy/export.h"
#include "models/deploy/format.h"
#include "models/deploy/pmpl_c.h"
#include "models/deploy/runtime.h"
#include "models/registry.h"
#include "tests/test_util.h"

namespace pmpl {
namespace {

namespace fs = std::filesystem;

std::string temp(const std::string& name) {
  return (fs::temp_directory_path() / ("pmpl_export_" + std::to_string(::getpid()) + "_" + name)).string();
}

using test::mp_options;
using test::trained_fixed_network;

std::vector<int64_t> argmax_rows(const Tensor& logits) {
  const std::vector<double> v = test::as_doubles(logits);
  const int64_t k = logits.dim(1);
  std::vector<int64_t> out;
  for (int64_t r = 0; r < logits.dim(0); ++r) {
    out.push_back(std::max_element(v.begin() + r * k, v.begin() + (r + 1) * k) - (v.begin() + r * k));
  }
  return out;
}

using test::relative_error;

TEST(Export, FoldedNetworkMatchesTheTrainingGraph) {
  auto model = trained_fixed_network();
  const std::string path = temp("mp.pmpl"), half = temp("mp16.pmpl");
  deploy::ExportOptions options = mp_options();
  deploy::export_model(*model, options, path);
  options.f16 = true;
  deploy::export_model(*model, options, half);
  const Tensor x = test::random({3, 20, 20, 3}, 99, false, 1.0, DType::kF32);
  NoGradGuard no_grad;
  const Tensor expected = model->forward(x);
  const deploy::Runtime runtime(path);
  EXPECT_EQ(runtime.num_classes(), 7);
  EXPECT_EQ(runtime.input_size(), 20);
  // f32: folding reorders the arithmetic, nothing more (measured ~1e-6).
  EXPECT_LE(relative_error(runtime.run(x), expected), 1e-4);
  // f16 weights round each value by up to 2^-11 = 4.9e-4 relative; through ~50 layers the logits
  // moved by 2.5e-4 here. 2e-3 leaves room for other seeds and still catches a wrong tensor.
  const double err16 = relative_error(deploy::Runtime(half).run(x), expected);
  EXPECT_LE(err16, 2e-3);
  RecordProperty("f16_relative_error", std::to_string(err16));
  EXPECT_LT(fs::file_size(half), fs::file_size(path) * 6 / 10);
  fs::remove(path);
  fs::remove(half);
}

TEST(Export, PlainMobileNetV2MatchesToo) {
  ModelConfig config;
  config.width = 0.5;
  config.num_classes = 11;
  auto model = build_model("mobilenetv2", config);
  model->train();
  model->forward(test::random({4, 64, 64, 3}, 3, false, 1.0, DType::kF32));
  model->eval();
  const std::string path = temp("plain.pmpl");
  deploy::ExportOptions options;
  options.architecture = "mobilenetv2";
  options.input_size = 64;
  deploy::export_model(*model, options, path);
  const Tensor x = test::random({2, 64, 64, 3}, 4, false, 1.0, DType::kF32);
  NoGradGuard no_grad;
  EXPECT_LE(relative_error(deploy::Runtime(path).run(x), model->forward(x)), 1e-4);
  fs::remove(path);
}

// `pmpl infer`'s path (runtime on the file's own preprocessing) and `pmpl eval`'s (the training
// graph on the loader's batches) give the same top-1 for every image of a folder.
TEST(Export, RuntimeAndEvalAgreeOnEveryImage) {
  const fs::path root = temp("agree");
  for (int c = 0; c < 7; ++c) {
    fs::create_directories(root / "val" / ("c" + std::to_string(c)));
    for (int i = 0; i < 3; ++i) {
      std::vector<uint8_t> px(31 * 23 * 3);
      for (size_t p = 0; p < px.size(); ++p) px[p] = static_cast<uint8_t>((p * (c + 3) + i * 17) % 256);
      const std::vector<uint8_t> jpeg = data::encode_jpeg(px.data(), 31, 23, data::JpegColor::kRgb);
      std::ofstream((root / "val" / ("c" + std::to_string(c)) / (std::to_string(i) + ".jpg")).string(), std::ios::binary)
          .write(reinterpret_cast<const char*>(jpeg.data()), static_cast<std::streamsize>(jpeg.size()));
    }
  }
  auto model = trained_fixed_network();
  const std::string path = temp("agree.pmpl");
  deploy::export_model(*model, mp_options(), path);
  const deploy::Runtime runtime(path);
  const data::ImageFolder folder(root.string(), "val");
  data::LoaderOptions lo;
  lo.batch_size = 5;
  lo.image_size = 20;
  lo.train = false;
  lo.shuffle = false;
  lo.drop_last = false;
  lo.workers = 1;
  data::Loader loader(folder, lo);
  loader.start_epoch(0);
  NoGradGuard no_grad;
  int64_t images = 0;
  while (auto batch = loader.next()) {
    const Tensor from_graph = model->forward(ops::normalize_images(batch->images, kImageMean, kImageStd));
    const Tensor from_file = runtime.run_u8(batch->images);
    EXPECT_EQ(argmax_rows(from_file), argmax_rows(from_graph));
    EXPECT_LT(relative_error(from_file, from_graph), 1e-4);
    images += batch->images.dim(0);
  }
  EXPECT_EQ(images, 21);
  fs::remove_all(root);
  fs::remove(path);
}

TEST(Export, OpenEnhancersAreRefused) {
  auto searching = build_model("mobilenetv2_mp", test::tiny_config(3));
  try {
    deploy::export_model(*searching, mp_options(), temp("never.pmpl"));
    ADD_FAILURE() << "a searching network cannot be exported";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--fix-remaining"), std::string::npos) << e.what();
  }
}

TEST(Export, DamagedAndForeignFilesAreRefused) {
  auto model = trained_fixed_network();
  const std::string path = temp("good.pmpl");
  deploy::export_model(*model, mp_options(), path);
  std::vector<uint8_t> good;
  {
    std::ifstream in(path, std::ios::binary);
    good.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto refused = [&](std::vector<uint8_t> bytes, const std::string& expect) {
    deploy::DeployFile file;
    std::string error;
    EXPECT_FALSE(deploy::decode_deploy_file(std::move(bytes), file, error));
    EXPECT_NE(error.find(expect), std::string::npos) << error;
  };
  refused({}, "not a pmpl model file");
  refused(std::vector<uint8_t>(good.begin(), good.begin() + good.size() / 2), "CRC32");
  std::vector<uint8_t> flipped = good;
  flipped[good.size() / 3] ^= 0x10;
  refused(flipped, "CRC32");
  std::vector<uint8_t> version = good;
  version[8] = 3;
  refused(version, "version 3");
  // Version 1 had no int8 dtype: a version-1 table entry with dtype 2 is malformed (checksum
  // recomputed, so the table check is what refuses it).
  {
    const std::vector<deploy::DeployTensor> one = {{"w", deploy::DeployDType::kI8, {4}, 0, 0}};
    std::vector<uint8_t> bytes = deploy::encode_deploy_file("{}", one, {std::vector<uint8_t>(4, 1)});
    ASSERT_EQ(bytes[8], 2);
    deploy::DeployFile file;
    std::string error;
    EXPECT_TRUE(deploy::decode_deploy_file(bytes, file, error)) << error;
    bytes[8] = 1;
    const uLong crc = crc32(crc32(0L, Z_NULL, 0), bytes.data(), static_cast<uInt>(bytes.size() - 4));
    for (int i = 0; i < 4; ++i) bytes[bytes.size() - 4 + i] = static_cast<uint8_t>(crc >> (8 * i));
    refused(bytes, "malformed");
  }
  std::vector<uint8_t> foreign = good;
  foreign[0] = 'X';
  refused(foreign, "not a pmpl model file");
  // Well-formed and checksummed, but two tensors share bytes, or a name: refused all the same.
  {
    const std::vector<deploy::DeployTensor> two = {{"a", deploy::DeployDType::kF32, {4}, 0, 0},
                                           {"b", deploy::DeployDType::kF32, {4}, 0, 0}};
    const std::vector<std::vector<uint8_t>> data(2, std::vector<uint8_t>(16, 1));
    std::vector<uint8_t> file = deploy::encode_deploy_file("{}", two, data);
    deploy::DeployFile parsed;
    std::string error;
    ASSERT_TRUE(deploy::decode_deploy_file(file, parsed, error)) << error;
    auto recrc = [](std::vector<uint8_t>& f) {
      const auto crc = static_cast<uint32_t>(crc32(0L, f.data(), static_cast<uInt>(f.size() - 4)));
      for (int i = 0; i < 4; ++i) f[f.size() - 4 + static_cast<size_t>(i)] = static_cast<uint8_t>(crc >> (8 * i));
    };
    std::vector<uint8_t> overlapping = file;
    // Entry "b" ends with its offset (8 bytes) and size (8 bytes): point it at "a"'s data.
    const size_t b_offset = 32 + 2 + (2 + 1 + 1 + 1 + 8 + 16) + (2 + 1 + 1 + 1 + 8);
    std::memcpy(&overlapping[b_offset], &parsed.tensors[0].offset, 8);
    recrc(overlapping);
    refused(overlapping, "overlap");
    std::vector<uint8_t> renamed = file;
    renamed[32 + 2 + (2 + 1 + 1 + 1 + 8 + 16) + 2] = 'a';
    recrc(renamed);
    refused(renamed, "appears twice");
  }
  // A sound file whose tensors are not the ones its architecture needs.
  {
    deploy::DeployFile parsed;
    std::string error;
    ASSERT_TRUE(deploy::decode_deploy_file(good, parsed, error)) << error;
    const std::vector<uint8_t> empty = deploy::encode_deploy_file(parsed.config_json, {}, {});
    const std::string hollow = temp("hollow.pmpl");
    std::ofstream(hollow, std::ios::binary)
        .write(reinterpret_cast<const char*>(empty.data()), static_cast<std::streamsize>(empty.size()));
    try {
      deploy::Runtime runtime(hollow);
      ADD_FAILURE() << "a file without tensors loaded";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("do not fit its architecture"), std::string::npos) << e.what();
    }
    fs::remove(hollow);
  }
  // A safetensors file is not a model file either, and the runtime says so in one line.
  const std::string st = temp("foreign.safetensors");
  save_safetensors(st, {{"w", Tensor::ones(Shape{2})}});
  EXPECT_THROW(deploy::Runtime{st}, Error);
  EXPECT_THROW(deploy::Runtime{"/nonexistent.pmpl"}, Error);
  fs::remove(st);
  fs::remove(path);
}

// The C API (libpmpl_runtime, only pmpl_* exported) computes what the C++ runtime computes, bit
// for bit, in both input layouts, and reports mistakes through pmpl_last_error.
TEST(Export, CApiMatchesTheRuntime) {
  auto model = trained_fixed_network();
  const std::string path = temp("c_api.pmpl");
  deploy::ExportOptions options = mp_options();
  options.classes = {"a", "b", "c", "d", "e", "f", "g"};
  deploy::export_model(*model, options, path);
  const deploy::Runtime runtime(path);

  pmpl_model* m = pmpl_model_load(path.c_str());
  ASSERT_NE(m, nullptr) << pmpl_last_error();
  int h = 0, w = 0, c = 0;
  EXPECT_EQ(pmpl_model_input_shape(m, &h, &w, &c), 0);
  EXPECT_EQ(h, 20);
  EXPECT_EQ(w, 20);
  EXPECT_EQ(c, 3);
  EXPECT_EQ(pmpl_model_num_classes(m), 7);
  EXPECT_STREQ(pmpl_model_class_name(m, 6), "g");
  EXPECT_EQ(pmpl_model_class_name(m, 7), nullptr);

  const Tensor u8 = test::random({2, 20, 20, 3}, 4, false, 1.0, DType::kF32);
  Tensor images = Tensor::empty(Shape{2, 20, 20, 3}, DType::kU8);
  const std::vector<float> noise = u8.to_vector<float>();
  for (int64_t i = 0; i < images.numel(); ++i) {
    images.data<uint8_t>()[i] = static_cast<uint8_t>(128 + 100 * std::tanh(noise[static_cast<size_t>(i)]));
  }
  std::vector<float> logits(14);
  ASSERT_EQ(pmpl_model_run(m, images.data<uint8_t>(), 2, PMPL_INPUT_U8_NHWC, logits.data()), 0) << pmpl_last_error();
  EXPECT_EQ(logits, runtime.run_u8(images).to_vector<float>());

  // NCHW floats, normalised the PyTorch way, are the same images.
  const Tensor normalised = ops::normalize_images(images, kImageMean, kImageStd);
  const std::vector<float> nchw = ops::permute(normalised, {0, 3, 1, 2}).to_vector<float>();
  std::vector<float> from_floats(14);
  ASSERT_EQ(pmpl_model_run(m, nchw.data(), 2, PMPL_INPUT_F32_NCHW, from_floats.data()), 0) << pmpl_last_error();
  EXPECT_LT(relative_error(Tensor::from_vector(from_floats, Shape{2, 7}), Tensor::from_vector(logits, Shape{2, 7})),
            1e-6);

  EXPECT_EQ(pmpl_model_run(m, nchw.data(), 2, 7, from_floats.data()), -1);
  EXPECT_NE(std::string(pmpl_last_error()).find("layout"), std::string::npos) << pmpl_last_error();
  EXPECT_EQ(pmpl_model_run(m, nchw.data(), 0, PMPL_INPUT_F32_NCHW, from_floats.data()), -1);
  pmpl_model_free(m);
  EXPECT_EQ(pmpl_model_load("/nonexistent.pmpl"), nullptr);
  EXPECT_NE(std::string(pmpl_last_error()).find("/nonexistent.pmpl"), std::string::npos) << pmpl_last_error();
  fs::remove(path);
}

}  // namespace
}  // namespace pmpl
