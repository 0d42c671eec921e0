// Random erasing (data/random_erasing.h, ops::erase_boxes_): timm's box rules, the fill values on
// CPU and GPU, and the loader's boxes per sample.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/kernels/erase.h"
#include "data/image_folder.h"
#include "data/jpeg_encode.h"
#include "data/loader.h"
#include "data/random_erasing.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "tests/test_util.h"

namespace pmpl::data {
namespace {

// timm's _erase: erased with chance prob; count uniform in 1..max_count; each box's area within
// [min_area, max_area] x image / count and aspect within [0.3, 1/0.3] up to the rounding of its
// sides, inside the image, its corner uniform over the places it fits.
TEST(RandomErasing, BoxesFollowTimmsRules) {
  constexpr int kSamples = 20000, kH = 40, kW = 50;
  RandomErasingOptions o;
  o.prob = 0.4;
  int erased = 0;
  std::map<int, int> tops;
  double area_sum = 0;
  for (int s = 0; s < kSamples; ++s) {
    EraseBox box;
    const int n = place_erase_boxes(o, SampleRandom(1, 2, s), kH, kW, &box);
    ASSERT_LE(n, 1);
    if (n == 0) {
      EXPECT_EQ(box.height, 0);
      continue;
    }
    ++erased;
    ASSERT_TRUE(box.height < kH && box.width < kW && box.top >= 0 && box.left >= 0 && box.top + box.height <= kH &&
                box.left + box.width <= kW)
        << box.top << " " << box.left << " " << box.height << " " << box.width;
    const double h = box.height, w = box.width;
    // sqrt(area * aspect) and sqrt(area / aspect) each rounded by at most 0.5.
    EXPECT_GE((h + 0.5) * (w + 0.5), 0.02 * kH * kW);
    EXPECT_LE((h - 0.5) * (w - 0.5), kH * kW / 3.0);
    EXPECT_GE((h + 0.5) / (w - 0.5), 0.3);
    EXPECT_LE((h - 0.5) / (w + 0.5), 1 / 0.3);
    area_sum += h * w / (kH * kW);
    if (box.height == 10) ++tops[box.top];
  }
  EXPECT_NEAR(erased, 0.4 * kSamples, 6 * std::sqrt(0.24 * kSamples));
  // A box that fits at once has area uniform in [0.02, 1/3]; the tall or wide ones that need a
  // retry are the larger ones, so the mean lies a little under the uniform's 0.177.
  EXPECT_NEAR(area_sum / erased, 0.17, 0.02);
  ASSERT_EQ(tops.size(), 31u) << "a 10-row box sits at rows 0 to 30";
  for (const auto& [top, n] : tops) EXPECT_GT(n, 0) << top;

  o.prob = 1.0;
  o.max_count = 3;
  std::map<int, int> counts;
  for (int s = 0; s < 3000; ++s) {
    EraseBox boxes[3];
    const int n = place_erase_boxes(o, SampleRandom(1, 2, s), kH, kW, boxes);
    ++counts[n];
    for (int k = n; k < 3; ++k) EXPECT_EQ(boxes[k].height, 0);
  }
  for (int n = 1; n <= 3; ++n) EXPECT_NEAR(counts[n], 1000, 150) << n;
  EraseBox none;
  EXPECT_EQ(place_erase_boxes(RandomErasingOptions{}, SampleRandom(1, 2, 0), kH, kW, &none), 0) << "prob 0: off";
  EXPECT_THROW(parse_erase_fill("noise"), Error);
}

Tensor boxes_tensor(const std::vector<EraseBox>& boxes, int64_t n, int64_t k) {
  std::vector<int32_t> v;
  for (const EraseBox& b : boxes) v.insert(v.end(), {b.top, b.left, b.height, b.width});
  return Tensor::from_vector(v, Shape{n, k, 4});
}

// Inside each box the values are erase_value's (N(0, 1) per value, one colour per box, or 0),
// later boxes over earlier ones; outside nothing changes.
TEST(RandomErasing, TheOpFillsTheBoxesAndNothingElse) {
  constexpr int64_t kN = 2, kH = 30, kW = 20;
  const Tensor keys = Tensor::from_vector(std::vector<int64_t>{11, -5}, Shape{kN});
  // Image 0: two overlapping boxes; image 1: one box and an unused slot.
  const Tensor boxes = boxes_tensor({{2, 3, 20, 10}, {10, 5, 15, 12}, {0, 0, 30, 1}, {}}, kN, 2);
  const Tensor original = test::random(Shape{kN, kH, kW, 3}, 4, false, 1.0, DType::kF32);
  const auto inside = [](const EraseBox& b, int64_t y, int64_t x) {
    return y >= b.top && y < b.top + b.height && x >= b.left && x < b.left + b.width;
  };
  const EraseBox image_boxes[2][2] = {{{2, 3, 20, 10}, {10, 5, 15, 12}}, {{0, 0, 30, 1}, {}}};
  for (int fill : {kernels::kErasePixel, kernels::kEraseRand, kernels::kEraseConst}) {
    Tensor x = original.clone();
    ops::erase_boxes_(x, boxes, keys, fill);
    const auto got = x.to_vector<float>(), before = original.to_vector<float>();
    double sum = 0, sum2 = 0;
    int64_t erased = 0;
    for (int64_t i = 0; i < kN; ++i) {
      for (int64_t y = 0; y < kH; ++y) {
        for (int64_t xx = 0; xx < kW; ++xx) {
          int box = -1;
          for (int b = 0; b < 2; ++b) box = inside(image_boxes[i][b], y, xx) ? b : box;
          for (int c = 0; c < 3; ++c) {
            const size_t at = static_cast<size_t>(((i * kH + y) * kW + xx) * 3 + c);
            if (box < 0) {
              ASSERT_EQ(got[at], before[at]) << "outside the boxes " << i << " " << y << " " << xx;
              continue;
            }
            const uint64_t key = i == 0 ? 11 : static_cast<uint64_t>(int64_t{-5});
            ASSERT_EQ(got[at], kernels::erase_value(fill, key, box, y * kW + xx, c)) << i << " " << y << " " << xx;
            sum += got[at];
            sum2 += got[at] * got[at];
            ++erased;
          }
        }
      }
    }
    if (fill == kernels::kErasePixel) {
      EXPECT_NEAR(sum / erased, 0.0, 0.1) << "N(0, 1) values";
      EXPECT_NEAR(std::sqrt(sum2 / erased), 1.0, 0.1);
    }
    if (fill == kernels::kEraseConst) EXPECT_EQ(sum2, 0.0);
  }
  // One colour per box: the same value at two pixels of a box, another in the other box.
  EXPECT_EQ(kernels::erase_value(kernels::kEraseRand, 11, 0, 5, 1), kernels::erase_value(kernels::kEraseRand, 11, 0, 90, 1));
  EXPECT_NE(kernels::erase_value(kernels::kEraseRand, 11, 0, 5, 1), kernels::erase_value(kernels::kEraseRand, 11, 1, 5, 1));
  Tensor wrong = original.clone();
  EXPECT_THROW(ops::erase_boxes_(wrong, boxes_tensor({{}, {}}, 1, 2), keys, kernels::kErasePixel), Error);
}

// The GPU writes the CPU's numbers (logf / cosf may differ in the last bit: 1e-6 relative), in
// every storage type the model's input can have.
TEST(RandomErasing, GpuFillsAsTheCpuDoes) {
  SKIP_WITHOUT_GPU();
  constexpr int64_t kN = 3, kH = 17, kW = 23;
  const Tensor keys = Tensor::from_vector(std::vector<int64_t>{1, 2, 3}, Shape{kN});
  const Tensor boxes = boxes_tensor({{1, 2, 9, 7}, {5, 5, 10, 15}, {0, 0, 17, 23}, {}, {}, {}}, kN, 2);
  const Tensor original = test::random(Shape{kN, kH, kW, 3}, 8, false, 1.0, DType::kF32);
  for (int fill : {kernels::kErasePixel, kernels::kEraseRand, kernels::kEraseConst}) {
    Tensor cpu = original.clone();
    ops::erase_boxes_(cpu, boxes, keys, fill);
    Tensor gpu = original.to(Device::cuda());
    ops::erase_boxes_(gpu, boxes.to(Device::cuda()), keys.to(Device::cuda()), fill);
    test::expect_close(gpu.to(Device::cpu()), cpu, 1e-6, 1e-6, "erase_boxes_ f32");
    for (DType dtype : {DType::kBF16, DType::kF16}) {
      Tensor half = ops::cast(original.to(Device::cuda()), dtype);
      ops::erase_boxes_(half, boxes.to(Device::cuda()), keys.to(Device::cuda()), fill);
      const double tol = dtype == DType::kBF16 ? 8e-3 : 1e-3;
      test::expect_close(ops::cast(half, DType::kF32).to(Device::cpu()), cpu, tol, tol, "erase_boxes_ half");
    }
  }
}

// The training loader places each image's boxes from its sample's stream (each image its own
// class here, so label = sample), the same whatever the number of workers; evaluation has none.
TEST(RandomErasing, TheTrainingLoaderPlacesBoxesPerSample) {
  test::TempDir dir("pmpl_erasing");
  constexpr int kImages = 10;
  for (int i = 0; i < kImages; ++i) {
    std::vector<uint8_t> rgb(16 * 16 * 3, static_cast<uint8_t>(20 * i));
    const std::filesystem::path path = dir.path / "train" / fmt::format("c{:02}", i) / "0.jpg";
    std::filesystem::create_directories(path.parent_path());
    const std::vector<uint8_t> bytes = encode_jpeg(rgb.data(), 16, 16, JpegColor::kRgb);
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                static_cast<std::streamsize>(bytes.size()));
  }
  const ImageFolder folder(dir.path.string(), "train");
  RandomErasingOptions erasing;
  erasing.prob = 0.7;
  erasing.max_count = 2;
  erasing.fill = EraseFill::kRand;
  const auto load = [&](bool train, int workers) {
    LoaderOptions o;
    o.batch_size = 5;
    o.image_size = 12;
    o.workers = workers;
    o.train = train;
    o.seed = 7;
    o.erasing = erasing;
    Loader loader(folder, o);
    loader.start_epoch(3);
    std::vector<std::vector<int32_t>> boxes;
    std::vector<std::vector<int64_t>> labels, keys;
    while (auto b = loader.next()) {
      if (!train) {
        EXPECT_FALSE(b->erase_boxes.defined());
        continue;
      }
      EXPECT_EQ(b->erase_fill, EraseFill::kRand);
      boxes.push_back(b->erase_boxes.to_vector<int32_t>());
      keys.push_back(b->erase_keys.to_vector<int64_t>());
      labels.push_back(b->labels.to_vector<int64_t>());
    }
    return std::make_tuple(boxes, keys, labels);
  };
  const auto [boxes, keys, labels] = load(true, 1);
  EXPECT_EQ(load(true, 3), load(true, 1));
  load(false, 1);
  ASSERT_EQ(boxes.size(), 2u);
  int erased = 0;
  for (size_t b = 0; b < boxes.size(); ++b) {
    for (size_t r = 0; r < 5; ++r) {
      EraseBox expect[2];
      erased += place_erase_boxes(erasing, SampleRandom(7 ^ kEraseStream, 3, labels[b][r]), 12, 12, expect) > 0;
      for (int k = 0; k < 2; ++k) {
        const int32_t* got = boxes[b].data() + (r * 2 + k) * 4;
        EXPECT_EQ(got[0], expect[k].top);
        EXPECT_EQ(got[1], expect[k].left);
        EXPECT_EQ(got[2], expect[k].height);
        EXPECT_EQ(got[3], expect[k].width);
      }
      EXPECT_EQ(keys[b][r], static_cast<int64_t>(erase_key(7, 3, labels[b][r])));
    }
  }
  EXPECT_GT(erased, 3);
  EXPECT_LT(erased, 10);
}

}  // namespace
}  // namespace pmpl::data
