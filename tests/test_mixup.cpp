// Mixup and CutMix (data/mixup.h, train/mixed_loss.h): the Beta draws, timm's batch rules, the
// uint8 blending of its fast collate, the loader's mixing and the soft-target loss.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include "data/image_folder.h"
#include "data/jpeg_encode.h"
#include "data/loader.h"
#include "data/mixup.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "tests/test_util.h"
#include "train/mixed_loss.h"

namespace pmpl::data {
namespace {

namespace fs = std::filesystem;

// Beta(a, a) has mean 1/2 and variance 1 / (4 (2a + 1)); 20,000 draws put the sample mean within
// 0.01 (over 4 standard errors for every a here) and the sample variance within 5%. Beta(1, 1) is
// uniform: its empirical CDF stays within 0.02 of the diagonal (Kolmogorov's 0.1% bound is 0.014).
TEST(Mixup, BetaSamplesHaveBetasMoments) {
  constexpr int kDraws = 20000;
  for (double a : {0.2, 0.8, 1.0, 2.0}) {
    std::vector<double> x;
    for (int i = 0; i < kDraws; ++i) {
      uint32_t draw = 0;
      x.push_back(beta_sample(a, SampleRandom(7, 3, int64_t{i} * 64), draw));
      ASSERT_TRUE(x.back() >= 0.0 && x.back() <= 1.0) << x.back();
    }
    double mean = 0.0, var = 0.0;
    for (double v : x) mean += v / kDraws;
    for (double v : x) var += (v - mean) * (v - mean) / (kDraws - 1);
    EXPECT_NEAR(mean, 0.5, 0.01) << "a = " << a;
    EXPECT_NEAR(var * 4 * (2 * a + 1), 1.0, 0.05) << "a = " << a;
    if (a == 1.0) {
      std::sort(x.begin(), x.end());
      double worst = 0.0;
      for (size_t i = 0; i < x.size(); ++i) {
        worst = std::max({worst, std::abs(x[i] - static_cast<double>(i) / kDraws),
                          std::abs(x[i] - static_cast<double>(i + 1) / kDraws)});
      }
      EXPECT_LT(worst, 0.02);
    }
  }
}

// timm's _params_per_batch: mixed with chance prob; with both on, cutmix with chance switch_prob;
// cutmix's lambda is 1 - the clipped box's share of the image.
TEST(Mixup, BatchParametersFollowTimmsRules) {
  constexpr int kBatches = 10000, kH = 20, kW = 30;
  const auto count = [&](const MixupOptions& o, int& mixed, int& cutmix) {
    mixed = cutmix = 0;
    for (int i = 0; i < kBatches; ++i) {
      const MixParams p = mix_params(o, SampleRandom(11, 0, int64_t{i} * 64), kH, kW);
      if (p.lambda == 1.0 && !p.cutmix) continue;
      ++mixed;
      if (!p.cutmix) {
        EXPECT_GT(p.lambda, 0.0);
        EXPECT_LT(p.lambda, 1.0);
        continue;
      }
      ++cutmix;
      EXPECT_TRUE(0 <= p.y0 && p.y0 <= p.y1 && p.y1 <= kH && 0 <= p.x0 && p.x0 <= p.x1 && p.x1 <= kW)
          << p.y0 << " " << p.y1 << " " << p.x0 << " " << p.x1;
      EXPECT_DOUBLE_EQ(p.lambda, 1.0 - static_cast<double>((p.y1 - p.y0) * (p.x1 - p.x0)) / (kH * kW));
    }
  };
  int mixed = 0, cutmix = 0;
  count({0.0, 0.0, 1.0, 0.5}, mixed, cutmix);
  EXPECT_EQ(mixed, 0) << "neither on: nothing mixed";
  count({0.2, 0.0, 0.3, 0.5}, mixed, cutmix);
  EXPECT_NEAR(mixed, 0.3 * kBatches, 200);  // 4.4 standard deviations
  EXPECT_EQ(cutmix, 0);
  count({0.2, 1.0, 1.0, 0.25}, mixed, cutmix);
  // Beta(0.2, 0.2) puts about 3e-4 of its mass within 1e-16 of 1, where lambda rounds to 1 and the
  // batch is left as it is (timm's `if lam == 1.` does the same): a few of the mixup batches.
  EXPECT_LE(mixed, kBatches);
  EXPECT_GE(mixed, kBatches - 10);
  EXPECT_NEAR(cutmix, 0.25 * kBatches, 200);
  count({0.0, 1.0, 1.0, 0.25}, mixed, cutmix);
  EXPECT_EQ(cutmix, kBatches) << "cutmix alone: always cutmix";
}

// FastCollateMixup's arithmetic: rint(float32(a) * float32(lambda) + float32(b) * float32(1 - lambda)),
// halves to even; image i with image rows-1-i, both from the originals; the middle one of an odd
// batch with itself.
TEST(Mixup, BatchesBlendAndPasteAsTimmsFastCollate) {
  constexpr int kRows = 5, kH = 4, kW = 6;
  constexpr size_t kImage = kH * kW * 3;
  std::vector<uint8_t> original(kRows * kImage);
  for (size_t i = 0; i < original.size(); ++i) original[i] = static_cast<uint8_t>((i * 37 + 11) % 256);
  const std::vector<int64_t> labels = {3, 1, 4, 1, 5};
  std::vector<int64_t> partner(kRows);

  {  // two 1 x 1 images, values chosen to land on halves
    std::vector<uint8_t> pair = {10, 11, 0, 20, 21, 0};
    const int64_t l[2] = {0, 1};
    int64_t pl[2];
    mix_batch({0.25}, pair.data(), 2, 1, 1, l, pl);
    // 10 * .25 + 20 * .75 = 17.5 -> 18; 11 * .25 + 21 * .75 = 18.5 -> 18 (half to even);
    // 20 * .25 + 10 * .75 = 12.5 -> 12; 21 * .25 + 11 * .75 = 13.5 -> 14.
    EXPECT_EQ(pair, (std::vector<uint8_t>{18, 18, 0, 12, 14, 0}));
    EXPECT_EQ(pl[0], 1);
    EXPECT_EQ(pl[1], 0);
  }

  std::vector<uint8_t> mixed = original;
  const double lambda = 0.3;
  mix_batch({lambda}, mixed.data(), kRows, kH, kW, labels.data(), partner.data());
  EXPECT_EQ(partner, (std::vector<int64_t>{5, 1, 4, 1, 3}));
  for (size_t i = 0; i < kRows; ++i) {
    const size_t j = kRows - 1 - i;
    for (size_t k = 0; k < kImage; ++k) {
      const float v = static_cast<float>(original[i * kImage + k]) * static_cast<float>(lambda) +
                      static_cast<float>(original[j * kImage + k]) * static_cast<float>(1.0 - lambda);
      ASSERT_EQ(mixed[i * kImage + k], static_cast<uint8_t>(std::nearbyint(v))) << "image " << i << " byte " << k;
    }
  }

  MixParams cut;
  cut.lambda = 0.75;
  cut.cutmix = true;
  cut.y0 = 1, cut.y1 = 3, cut.x0 = 2, cut.x1 = 5;
  mixed = original;
  mix_batch(cut, mixed.data(), kRows, kH, kW, labels.data(), partner.data());
  for (size_t i = 0; i < kRows; ++i) {
    const size_t j = kRows - 1 - i;
    for (int y = 0; y < kH; ++y) {
      for (int x = 0; x < kW; ++x) {
        const bool inside = y >= cut.y0 && y < cut.y1 && x >= cut.x0 && x < cut.x1;
        for (int c = 0; c < 3; ++c) {
          const size_t at = static_cast<size_t>((y * kW + x) * 3 + c);
          ASSERT_EQ(mixed[i * kImage + at], original[(inside ? j : i) * kImage + at]) << i << " " << y << " " << x;
        }
      }
    }
  }
}

// The training loader mixes each batch as mix_batch does with that batch's lambda (mixup alone, so
// lambda says everything), the same whatever the number of workers; an evaluation loader does not.
TEST(Mixup, TheTrainingLoaderMixesItsBatches) {
  test::TempDir dir("pmpl_mixup");
  for (int i = 0; i < 24; ++i) {
    std::vector<uint8_t> rgb(20 * 20 * 3);
    for (size_t k = 0; k < rgb.size(); ++k) rgb[k] = static_cast<uint8_t>((k * (i + 3) + i * 50) % 256);
    const fs::path path = dir.path / "train" / ("c" + std::to_string(i % 3)) / (std::to_string(i) + ".jpg");
    fs::create_directories(path.parent_path());
    const std::vector<uint8_t> bytes = encode_jpeg(rgb.data(), 20, 20, JpegColor::kRgb);
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                static_cast<std::streamsize>(bytes.size()));
  }
  const ImageFolder folder(dir.path.string(), "train");
  struct Seen {
    std::vector<std::vector<uint8_t>> images;
    std::vector<std::vector<int64_t>> labels, partners;
    std::vector<double> lambdas;
    std::vector<std::vector<float>> row_lambdas;
  };
  const auto load = [&](bool mix, bool train, int workers, MixMode mode = MixMode::kBatch) {
    LoaderOptions o;
    o.batch_size = 5;
    o.image_size = 12;
    o.workers = workers;
    o.train = train;
    o.seed = 9;
    if (mix) o.mixup = {0.4, 0.0, 1.0, 0.5, mode};
    Loader loader(folder, o);
    loader.start_epoch(2);
    Seen s;
    while (auto b = loader.next()) {
      s.images.push_back(b->images.to_vector<uint8_t>());
      s.labels.push_back(b->labels.to_vector<int64_t>());
      s.partners.push_back(b->partner_labels.defined() ? b->partner_labels.to_vector<int64_t>() : std::vector<int64_t>{});
      s.lambdas.push_back(b->lambda);
      s.row_lambdas.push_back(b->row_lambdas.defined() ? b->row_lambdas.to_vector<float>() : std::vector<float>{});
    }
    return s;
  };
  const Seen plain = load(false, true, 2), mixed = load(true, true, 1), mixed3 = load(true, true, 3);
  ASSERT_EQ(mixed.images.size(), 4u);
  EXPECT_EQ(mixed.images, mixed3.images);
  EXPECT_EQ(mixed.lambdas, mixed3.lambdas);
  EXPECT_EQ(mixed.labels, plain.labels);
  for (size_t b = 0; b < mixed.images.size(); ++b) {
    EXPECT_GT(mixed.lambdas[b], 0.0);
    EXPECT_LT(mixed.lambdas[b], 1.0);
    std::vector<uint8_t> expect = plain.images[b];
    std::vector<int64_t> partner(5);
    mix_batch({mixed.lambdas[b]}, expect.data(), 5, 12, 12, plain.labels[b].data(), partner.data());
    EXPECT_EQ(mixed.images[b], expect) << "batch " << b;
    EXPECT_EQ(mixed.partners[b], partner) << "batch " << b;
    EXPECT_TRUE(plain.partners[b].empty());
  }
  EXPECT_NE(mixed.lambdas[0], mixed.lambdas[1]) << "each batch draws its own lambda";
  // Per image and per pair: the same whatever the workers, each image its own lambda (a pair's two
  // alike), the batch mode's none.
  for (MixMode mode : {MixMode::kElem, MixMode::kPair}) {
    const Seen rows1 = load(true, true, 1, mode), rows3 = load(true, true, 3, mode);
    EXPECT_EQ(rows1.images, rows3.images);
    EXPECT_EQ(rows1.row_lambdas, rows3.row_lambdas);
    ASSERT_EQ(rows1.row_lambdas.size(), 4u);
    std::set<float> distinct;
    for (size_t b = 0; b < rows1.row_lambdas.size(); ++b) {
      const std::vector<float>& l = rows1.row_lambdas[b];
      ASSERT_EQ(l.size(), 5u);
      EXPECT_NE(rows1.images[b], plain.images[b]);
      EXPECT_EQ(rows1.partners[b], mixed.partners[b]);
      for (float v : l) EXPECT_TRUE(v > 0.0f && v <= 1.0f) << v;
      if (mode == MixMode::kPair) EXPECT_TRUE(l[0] == l[4] && l[1] == l[3] && l[2] == 1.0f) << "the middle of 5 stays";
      distinct.insert(l.begin(), l.end());
    }
    EXPECT_GT(distinct.size(), mode == MixMode::kElem ? 10u : 5u);
  }
  for (const auto& l : mixed.row_lambdas) EXPECT_TRUE(l.empty());
  const Seen eval_plain = load(false, false, 1), eval_mixed = load(true, false, 1);
  EXPECT_EQ(eval_mixed.images, eval_plain.images);
  for (size_t b = 0; b < eval_mixed.images.size(); ++b) {
    EXPECT_EQ(eval_mixed.lambdas[b], 1.0);
    EXPECT_TRUE(eval_mixed.partners[b].empty());
  }
}

// timm's elem mode: image i blended with image B-1-i (both as they were) by its own float32
// lambda, or given its box; pair mode: images i and B-1-i mixed with each other by one lambda, the
// box swapped. Each row's lambda comes back as float32.
TEST(Mixup, PairAndElemModesMixEachImageOrPair) {
  constexpr int kRows = 4, kH = 3, kW = 5;
  constexpr size_t kImage = kH * kW * 3;
  std::vector<uint8_t> original(kRows * kImage);
  for (size_t i = 0; i < original.size(); ++i) original[i] = static_cast<uint8_t>((i * 59 + 3) % 256);
  const std::vector<int64_t> labels = {0, 1, 2, 3};
  MixParams blend;
  blend.lambda = static_cast<float>(0.3);
  MixParams cut;  // as mix_params gives it: lambda already 1 - the box's share (4 of 15 pixels)
  cut.lambda = 1.0 - 4.0 / 15.0;
  cut.cutmix = true;
  cut.y0 = 1, cut.y1 = 3, cut.x0 = 0, cut.x1 = 2;
  const MixParams none;
  const auto blended = [&](size_t i, size_t j, size_t k, float lam) {
    const float v = static_cast<float>(original[i * kImage + k]) * lam +
                    static_cast<float>(original[j * kImage + k]) * static_cast<float>(1.0 - static_cast<double>(lam));
    return static_cast<uint8_t>(std::nearbyint(v));
  };
  const auto in_box = [&](size_t k) {
    const size_t pixel = k / 3, y = pixel / kW, x = pixel % kW;
    return y >= 1 && y < 3 && x < 2;
  };
  {
    std::vector<uint8_t> mixed = original;
    std::vector<int64_t> partner(kRows);
    std::vector<float> lambdas(kRows);
    const MixParams params[kRows] = {blend, cut, none, blend};
    mix_rows(MixMode::kElem, params, mixed.data(), original.data(), kRows, kH, kW, labels.data(), partner.data(),
             lambdas.data());
    EXPECT_EQ(partner, (std::vector<int64_t>{3, 2, 1, 0}));
    EXPECT_EQ(lambdas, (std::vector<float>{0.3f, static_cast<float>(1.0 - 4.0 / 15.0), 1.0f, 0.3f}));
    for (size_t k = 0; k < kImage; ++k) {
      ASSERT_EQ(mixed[k], blended(0, 3, k, 0.3f)) << k;
      ASSERT_EQ(mixed[3 * kImage + k], blended(3, 0, k, 0.3f)) << k;
      ASSERT_EQ(mixed[kImage + k], original[(in_box(k) ? 2 : 1) * kImage + k]) << k;
      ASSERT_EQ(mixed[2 * kImage + k], original[2 * kImage + k]) << "lambda 1 leaves the image";
    }
  }
  {
    std::vector<uint8_t> mixed = original;
    std::vector<int64_t> partner(kRows);
    std::vector<float> lambdas(kRows);
    const MixParams params[kRows / 2] = {cut, blend};
    mix_rows(MixMode::kPair, params, mixed.data(), original.data(), kRows, kH, kW, labels.data(), partner.data(),
             lambdas.data());
    const float cut_lambda = static_cast<float>(1.0 - 4.0 / 15.0);
    EXPECT_EQ(lambdas, (std::vector<float>{cut_lambda, 0.3f, 0.3f, cut_lambda}));
    for (size_t k = 0; k < kImage; ++k) {
      ASSERT_EQ(mixed[k], original[(in_box(k) ? 3 : 0) * kImage + k]) << k;
      ASSERT_EQ(mixed[3 * kImage + k], original[(in_box(k) ? 0 : 3) * kImage + k]) << k;
      ASSERT_EQ(mixed[kImage + k], blended(1, 2, k, 0.3f)) << k;
      ASSERT_EQ(mixed[2 * kImage + k], blended(2, 1, k, 0.3f)) << k;
    }
  }
  EXPECT_THROW(parse_mix_mode("row"), Error);
}

// -sum_c t(r, c) log_softmax(x)_rc averaged over the rows, in f64: SoftTargetCrossEntropy's
// reference for a target t.
double soft_target_reference(const std::vector<double>& x, int64_t rows, int64_t classes,
                             const std::function<double(int64_t, int64_t)>& t) {
  double loss = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    double top = -INFINITY, sum = 0.0;
    for (int64_t c = 0; c < classes; ++c) top = std::max(top, x[r * classes + c]);
    for (int64_t c = 0; c < classes; ++c) sum += std::exp(x[r * classes + c] - top);
    for (int64_t c = 0; c < classes; ++c) loss -= t(r, c) * (x[r * classes + c] - top - std::log(sum)) / rows;
  }
  return loss;
}

// The per-row loss: timm's float32 mixup_target, then -sum(target * log_softmax) averaged; with
// every row at one lambda it is the batch mode's loss.
TEST(Mixup, TheRowLossIsSoftTargetCrossEntropyPerRow) {
  constexpr int64_t kRows = 5, kClasses = 4;
  const Tensor logits = test::random(Shape{kRows, kClasses}, 31, true, 2.0);
  const std::vector<int64_t> y = {0, 3, 1, 1, 2}, partner = {2, 1, 1, 3, 0};
  const std::vector<float> lambdas = {0.25f, 1.0f, 0.6f, 0.05f, 0.9f};
  const double smoothing = 0.1;
  const float off = static_cast<float>(smoothing / kClasses), on = static_cast<float>(1.0 - smoothing + smoothing / kClasses);
  const double expect =
      soft_target_reference(logits.to_vector<double>(), kRows, kClasses, [&](int64_t r, int64_t c) {
        const float lam = lambdas[static_cast<size_t>(r)];
        return static_cast<double>((c == y[r] ? on : off) * lam + (c == partner[r] ? on : off) * (1.0f - lam));
      });
  const Tensor labels = Tensor::from_vector(y, Shape{kRows}), partners = Tensor::from_vector(partner, Shape{kRows});
  const Tensor rows = Tensor::from_vector(lambdas, Shape{kRows});
  EXPECT_NEAR(mixed_cross_entropy_rows(logits, labels, partners, rows, smoothing).item(), expect, 1e-12);
  test::expect_gradients_match(
      [&](const Tensors& in) { return mixed_cross_entropy_rows(in[0], labels, partners, rows, smoothing); }, {logits});
  const Tensor same = Tensor::from_vector(std::vector<float>(kRows, 0.375f), Shape{kRows});
  EXPECT_NEAR(mixed_cross_entropy_rows(logits, labels, partners, same, smoothing).item(),
              mixed_cross_entropy(logits, labels, partners, 0.375, smoothing).item(), 1e-6);
}

// mixed_cross_entropy is timm's SoftTargetCrossEntropy on mixup_target(labels, C, lambda,
// smoothing): the mean over rows of -sum_c t_c log_softmax(x)_c, the target written out in f64.
TEST(Mixup, TheLossIsSoftTargetCrossEntropy) {
  constexpr int64_t kRows = 6, kClasses = 5;
  const Tensor logits = test::random(Shape{kRows, kClasses}, 21, true, 2.0);
  const std::vector<int64_t> y = {0, 4, 2, 2, 1, 3}, partner = {3, 1, 2, 2, 4, 0};
  const double lambda = 0.37, smoothing = 0.1;
  const double off = smoothing / kClasses, on = 1.0 - smoothing + off;
  const double expect = soft_target_reference(logits.to_vector<double>(), kRows, kClasses, [&](int64_t r, int64_t c) {
    return lambda * (c == y[r] ? on : off) + (1 - lambda) * (c == partner[r] ? on : off);
  });
  const Tensor labels = Tensor::from_vector(y, Shape{kRows}), partners = Tensor::from_vector(partner, Shape{kRows});
  EXPECT_NEAR(mixed_cross_entropy(logits, labels, partners, lambda, smoothing).item(), expect, 1e-13);
  test::expect_gradients_match(
      [&](const Tensors& in) { return mixed_cross_entropy(in[0], labels, partners, lambda, smoothing); }, {logits});
}

}  // namespace
}  // namespace pmpl::data
