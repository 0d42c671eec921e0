// The image loader: decoding (awkward files included), Pillow-exact resampling, torchvision's
// crop geometry, determinism, sharding, and the Fashion-MNIST conversion.
#include <gtest/gtest.h>
#include <png.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "data/eval_image.h"
#include "data/clutter.h"
#include "data/fashion_mnist.h"
#include "data/image_decode.h"
#include "data/image_folder.h"
#include "data/jpeg_encode.h"
#include "data/loader.h"
#include "data/resample.h"
#include "data/transform.h"
#include "engine/error.h"
#include "core/rng.h"
#include "tests/test_util.h"

namespace pmpl::data {
namespace {

namespace fs = std::filesystem;

const nlohmann::json& pil_fixture() {
  static const nlohmann::json j = [] {
    std::ifstream in(std::string(PMPL_SOURCE_DIR) + "/tests/fixtures/data_pil.json");
    return nlohmann::json::parse(in);
  }();
  return j;
}

// A smooth colourful test picture, so JPEG keeps it recognisable.
std::vector<uint8_t> picture(int w, int h, int seed) {
  std::vector<uint8_t> p(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        p[(static_cast<size_t>(y) * w + x) * 3 + c] = static_cast<uint8_t>((x * (c + 1) * 3 + y * 2 + seed * 40) % 256);
  return p;
}

void write_bytes(const fs::path& path, const std::vector<uint8_t>& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<uint8_t> png_bytes(const std::vector<uint8_t>& rgb, int w, int h) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(w);
  image.height = static_cast<png_uint_32>(h);
  image.format = PNG_FORMAT_RGB;
  png_alloc_size_t size = 0;
  png_image_write_to_memory(&image, nullptr, &size, 0, rgb.data(), 0, nullptr);
  std::vector<uint8_t> out(size);
  png_image_write_to_memory(&image, out.data(), &size, 0, rgb.data(), 0, nullptr);
  out.resize(size);
  return out;
}

TEST(DataPil, ResizeMatchesPillowByteForByte) {
  const nlohmann::json& f = pil_fixture();
  const std::vector<uint8_t> src = test::base64(f["source"]["pixels"]);
  const int w = f["source"]["width"], h = f["source"]["height"];
  ResampleScratch scratch;
  for (const auto& c : f["resize"]) {
    const Box box{c["box"][0], c["box"][1], c["box"][2], c["box"][3]};
    const int ow = c["size"][0], oh = c["size"][1];
    std::vector<uint8_t> out(static_cast<size_t>(ow) * oh * 3);
    resample_rgb(src.data(), w, h, box, ow, oh, false, out.data(), scratch);
    EXPECT_EQ(out, test::base64(c["pixels"])) << "box " << c["box"] << " to " << ow << "x" << oh;
  }
}

// Resize(S / 0.875) + CenterCrop(S) on a JPEG, Pillow against pmpl decoding at full size (as
// Pillow does): the same libjpeg decode, the same box arithmetic, the same filter: the same bytes.
TEST(DataPil, EvalTransformMatchesTorchvision) {
  const nlohmann::json& f = pil_fixture();
  const std::vector<uint8_t> jpeg = test::base64(f["jpeg"]);
  ImageHeader header;
  std::string error;
  ASSERT_TRUE(read_image_header(jpeg.data(), jpeg.size(), header, error)) << error;
  DecodedRegion region;
  ResampleScratch scratch;
  for (const auto& c : f["eval"]) {
    const int s = c["size"];
    const CropParams crop = eval_crop(header.width, header.height, s);
    ASSERT_TRUE(decode_region(jpeg.data(), jpeg.size(), header, crop.box, s, s, region, error, false)) << error;
    ASSERT_EQ(region.scale_eighths, 8);
    std::vector<uint8_t> out(static_cast<size_t>(s) * s * 3);
    resample_rgb(region.pixels.data(), region.width, region.height, region.box, s, s, false, out.data(), scratch);
    EXPECT_EQ(out, test::base64(c["pixels"])) << "S = " << s;
  }
}

// A smooth colourful test picture with gentle texture, for comparisons that JPEG's high
// frequencies would swamp.
std::vector<uint8_t> smooth_picture(int w, int h) {
  std::vector<uint8_t> p(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        p[(static_cast<size_t>(y) * w + x) * 3 + c] = static_cast<uint8_t>(
            128 + 60 * std::sin(x * 0.05 * (c + 1) + y * 0.03) + 30 * std::cos(y * 0.11 - x * 0.02 * c));
  return p;
}

// Decoding only the crop's rows and columns gives, where the resampler reads, exactly what a full
// decode gives; DCT-scaled decoding of a big crop lands on nearly the same picture.
TEST(Data, CropDecodeMatchesFullDecode) {
  const std::vector<uint8_t> rgb = picture(203, 157, 1);
  const std::vector<uint8_t> jpeg = encode_jpeg(rgb.data(), 203, 157, JpegColor::kRgb);
  ImageHeader header;
  std::string error;
  ASSERT_TRUE(read_image_header(jpeg.data(), jpeg.size(), header, error)) << error;
  DecodedRegion full, part;
  const Box all{0, 0, 203, 157};
  ASSERT_TRUE(decode_region(jpeg.data(), jpeg.size(), header, all, 203, 157, full, error)) << error;
  ResampleScratch scratch;
  std::vector<uint8_t> a(64 * 64 * 3), b(64 * 64 * 3);
  for (const Box& box : {Box{61.0, 40.0, 96.0, 70.0}, Box{0.5, 1.0, 40.0, 30.0}, Box{150.0, 120.0, 53.0, 37.0}}) {
    ASSERT_TRUE(decode_region(jpeg.data(), jpeg.size(), header, box, 64, 64, part, error)) << error;
    EXPECT_EQ(part.scale_eighths, 8);
    resample_rgb(full.pixels.data(), full.width, full.height, box, 64, 64, false, a.data(), scratch);
    resample_rgb(part.pixels.data(), part.width, part.height, part.box, 64, 64, false, b.data(), scratch);
    EXPECT_EQ(a, b) << "box at " << box.x0 << "," << box.y0;
  }
  EXPECT_LT(part.width * part.height, full.width * full.height / 2) << "only the crop is decoded";

  const std::vector<uint8_t> smooth = smooth_picture(203, 157);
  const std::vector<uint8_t> smooth_jpeg = encode_jpeg(smooth.data(), 203, 157, JpegColor::kRgb);
  ASSERT_TRUE(read_image_header(smooth_jpeg.data(), smooth_jpeg.size(), header, error));
  ASSERT_TRUE(decode_region(smooth_jpeg.data(), smooth_jpeg.size(), header, all, 203, 157, full, error));
  ASSERT_TRUE(decode_region(smooth_jpeg.data(), smooth_jpeg.size(), header, all, 48, 48, part, error));
  EXPECT_EQ(part.scale_eighths, 4);  // 157 x 1/2 = 78 covers 48; 157 x 1/4 = 39 would not
  std::vector<uint8_t> c(48 * 48 * 3), d(48 * 48 * 3);
  resample_rgb(full.pixels.data(), full.width, full.height, all, 48, 48, false, c.data(), scratch);
  resample_rgb(part.pixels.data(), part.width, part.height, part.box, 48, 48, false, d.data(), scratch);
  double diff = 0;
  for (size_t i = 0; i < c.size(); ++i) diff += std::abs(int(c[i]) - int(d[i]));
  // DCT scaling low-passes a little differently from Pillow's wide triangle filter: measured
  // 1.3-1.9 levels on photo-like content, 2.6 here; a misplaced box would be tens of levels.
  EXPECT_LT(diff / c.size(), 3.0) << "mean absolute difference in levels, DCT-scaled vs Pillow's way";
}

TEST(Data, ColourModelsDecodeToRgb) {
  std::string error;
  ImageHeader header;
  DecodedRegion region;
  // Pure cyan in CMYK (Adobe's inverted convention) is RGB (0, 255, 255).
  std::vector<uint8_t> cmyk(16 * 16 * 4, 0);
  for (size_t i = 0; i < cmyk.size(); i += 4) cmyk[i] = 255;
  for (bool adobe : {true, false}) {
    JpegOptions options;
    options.adobe_cmyk = adobe;
    const std::vector<uint8_t> jpeg = encode_jpeg(cmyk.data(), 16, 16, JpegColor::kCmyk, options);
    ASSERT_TRUE(read_image_header(jpeg.data(), jpeg.size(), header, error)) << error;
    ASSERT_TRUE(decode_region(jpeg.data(), jpeg.size(), header, {0, 0, 16, 16}, 16, 16, region, error)) << error;
    EXPECT_NEAR(region.pixels[0], 0, 3) << "adobe " << adobe;
    EXPECT_NEAR(region.pixels[1], 255, 3);
    EXPECT_NEAR(region.pixels[2], 255, 3);
  }
  std::vector<uint8_t> gray(16 * 16, 77);
  const std::vector<uint8_t> jpeg = encode_jpeg(gray.data(), 16, 16, JpegColor::kGray);
  ASSERT_TRUE(read_image_header(jpeg.data(), jpeg.size(), header, error));
  ASSERT_TRUE(decode_region(jpeg.data(), jpeg.size(), header, {0, 0, 16, 16}, 16, 16, region, error));
  EXPECT_EQ(region.pixels[0], region.pixels[1]);
  EXPECT_EQ(region.pixels[1], region.pixels[2]);
  EXPECT_NEAR(region.pixels[0], 77, 2);
}

// A dataset of every awkward kind: the loader yields exactly the good files, names the bad ones
// once, keeps its batches full, and never crashes.
TEST(Data, AwkwardFilesAreSkippedAndReported) {
  test::TempDir dir("pmpl_data");
  const fs::path a = dir.path / "train" / "a", b = dir.path / "train" / "b";
  const std::vector<uint8_t> rgb = picture(60, 45, 2);
  const std::vector<uint8_t> good = encode_jpeg(rgb.data(), 60, 45, JpegColor::kRgb);
  std::vector<uint8_t> gray(60 * 45, 100), cmyk(60 * 45 * 4, 50);
  JpegOptions progressive;
  progressive.progressive = true;
  write_bytes(a / "good.jpg", good);
  write_bytes(a / "gray.JPEG", encode_jpeg(gray.data(), 60, 45, JpegColor::kGray));
  write_bytes(a / "cmyk.jpg", encode_jpeg(cmyk.data(), 60, 45, JpegColor::kCmyk));
  write_bytes(a / "progressive.jpeg", encode_jpeg(rgb.data(), 60, 45, JpegColor::kRgb, progressive));
  write_bytes(a / "png_in_disguise.JPEG", png_bytes(rgb, 60, 45));
  write_bytes(b / "truncated.jpg", std::vector<uint8_t>(good.begin(), good.begin() + good.size() / 2));
  write_bytes(b / "empty.jpg", {});
  std::vector<uint8_t> noise(3000);
  Generator gen(9);
  for (auto& v : noise) v = static_cast<uint8_t>(gen.uniform() * 256);
  write_bytes(b / "random.jpg", noise);
  std::vector<uint8_t> bad_header = good;
  bad_header[20] ^= 0xFF;  // inside the header segments
  write_bytes(b / "garbled.jpg", bad_header);
  write_bytes(b / "fine.png", png_bytes(rgb, 60, 45));
  write_bytes(b / "notes.txt", {'h', 'i'});  // not an image name: not indexed at all

  const ImageFolder folder(dir.path.string(), "train");
  ASSERT_EQ(folder.size(), 10);
  std::vector<std::string> warnings;
  LoaderOptions options;
  options.batch_size = 4;
  options.image_size = 24;
  options.train = false;
  options.drop_last = false;
  options.workers = 2;
  Loader loader(folder, options, [&](const std::string& line) { warnings.push_back(line); });
  for (int epoch = 0; epoch < 2; ++epoch) {
    loader.start_epoch(epoch);
    int64_t rows = 0;
    while (auto batch = loader.next()) {
      rows += batch->images.dim(0);
      EXPECT_EQ(batch->images.dim(1), 24);
      for (int64_t label : batch->labels.to_vector<int64_t>()) EXPECT_TRUE(label == 0 || label == 1);
    }
    EXPECT_EQ(rows, 10) << "bad files are replaced, batches keep their size";
  }
  std::set<std::string> named;
  for (const std::string& w : warnings) named.insert(fs::path(w.substr(9, w.find(':') - 9)).filename().string());
  EXPECT_EQ(named, (std::set<std::string>{"truncated.jpg", "empty.jpg", "random.jpg", "garbled.jpg"}));
  EXPECT_EQ(warnings.size(), 4u) << "each bad file is named once, not once per epoch";
  EXPECT_EQ(loader.stats().failures, 4);
}

// A file deleted or truncated after the folder was indexed (a dataset being synced, a bad disk) is
// skipped like an undecodable one: named once, counted, replaced; under data parallelism by the
// rank whose shard holds it, so the ranks together count each file once.
TEST(Data, FilesThatChangeUnderTheRunAreSkipped) {
  test::TempDir dir("pmpl_data");
  const fs::path a = dir.path / "train" / "a";
  const std::vector<uint8_t> rgb = picture(40, 30, 3);
  const std::vector<uint8_t> good = encode_jpeg(rgb.data(), 40, 30, JpegColor::kRgb);
  for (int i = 0; i < 8; ++i) write_bytes(a / (std::to_string(i) + ".jpg"), good);
  const ImageFolder folder(dir.path.string(), "train");
  ASSERT_EQ(folder.size(), 8);
  fs::remove(a / "3.jpg");
  write_bytes(a / "5.jpg", std::vector<uint8_t>(good.begin(), good.begin() + good.size() / 3));
  int64_t failures = 0;
  std::set<std::string> named;
  for (int rank = 0; rank < 2; ++rank) {
    LoaderOptions options;
    options.batch_size = 2;
    options.image_size = 16;
    options.train = false;
    options.drop_last = false;
    options.workers = 2;
    options.rank = rank;
    options.world = 2;
    std::vector<std::string> warnings;
    Loader loader(folder, options, [&](const std::string& line) { warnings.push_back(line); });
    loader.start_epoch(0);
    int64_t rows = 0;
    while (auto batch = loader.next()) rows += batch->images.dim(0);
    EXPECT_EQ(rows, 4) << "rank " << rank << ": the lost files are replaced, batches keep their size";
    failures += loader.stats().failures;
    for (const std::string& w : warnings) named.insert(fs::path(w.substr(9, w.find(':') - 9)).filename().string());
  }
  EXPECT_EQ(failures, 2);
  EXPECT_EQ(named, (std::set<std::string>{"3.jpg", "5.jpg"}));
}

TEST(Data, NothingDecodableIsAClearError) {
  test::TempDir dir("pmpl_data");
  write_bytes(dir.path / "train" / "a" / "x.jpg", {1, 2, 3});
  const ImageFolder folder(dir.path.string(), "train");
  LoaderOptions options;
  options.batch_size = 1;
  options.image_size = 16;
  options.workers = 1;
  Loader loader(folder, options, [](const std::string&) {});
  loader.start_epoch(0);
  EXPECT_THROW(loader.next(), Error);
  EXPECT_THROW(ImageFolder("/nonexistent", "train"), Error);
  fs::create_directories(dir.path / "val" / "empty_class");
  EXPECT_THROW(ImageFolder(dir.path.string(), "val"), Error);
}

TEST(Data, RandomResizedCropFollowsTorchvisionsRules) {
  int fallbacks = 0;
  for (int64_t i = 0; i < 2000; ++i) {
    const CropParams p = random_resized_crop(500, 375, SampleRandom(7, 3, i));
    const Box& b = p.box;
    ASSERT_GE(b.x0, 0);
    ASSERT_GE(b.y0, 0);
    ASSERT_LE(b.x0 + b.width, 500);
    ASSERT_LE(b.y0 + b.height, 375);
    const double area = b.width * b.height / (500.0 * 375.0), ratio = b.width / b.height;
    // Rounding w and h to integers moves area and ratio slightly past the sampled range.
    EXPECT_GE(area, 0.08 * 0.95);
    EXPECT_LE(ratio, 4.0 / 3.0 * 1.05);
    EXPECT_GE(ratio, 3.0 / 4.0 / 1.05);
    fallbacks += b.width == 500 && b.height == 375;
  }
  EXPECT_LT(fallbacks, 20);
  // Deterministic in (seed, epoch, index); another epoch draws another crop.
  const Box a = random_resized_crop(500, 375, SampleRandom(7, 3, 11)).box;
  const Box again = random_resized_crop(500, 375, SampleRandom(7, 3, 11)).box;
  const Box other = random_resized_crop(500, 375, SampleRandom(7, 4, 11)).box;
  EXPECT_EQ(a.x0, again.x0);
  EXPECT_EQ(a.width, again.width);
  EXPECT_TRUE(a.x0 != other.x0 || a.width != other.width);
  // A panorama no crop of the allowed ratios fits ten times: torchvision's central fallback.
  const Box strip = random_resized_crop(1000, 10, SampleRandom(1, 0, 0)).box;
  EXPECT_EQ(strip.height, 10);
  EXPECT_EQ(strip.width, 13);  // round(10 * 4/3)
  EXPECT_EQ(strip.x0, (1000 - 13) / 2);
}

TEST(Data, EvalCropIsResizeThenCenterCrop) {
  // 500x375 at 224: shorter side to 256 -> 341x256, crop offsets (58, 16).
  const Box b = eval_crop(500, 375, 224).box;
  EXPECT_DOUBLE_EQ(b.x0, 58 * 500.0 / 341);
  EXPECT_DOUBLE_EQ(b.y0, 16 * 375.0 / 256);
  EXPECT_DOUBLE_EQ(b.width, 224 * 500.0 / 341);
  EXPECT_DOUBLE_EQ(b.height, 224 * 375.0 / 256);
  const Box tall = eval_crop(375, 500, 224).box;
  EXPECT_DOUBLE_EQ(tall.x0, 16 * 375.0 / 256);
}

// Batches depend on (seed, epoch, rank) only: not on the number of workers or their timing; the
// ranks of a data-parallel job see each sample exactly once between them.
TEST(Data, LoaderIsDeterministicAndShardsExactly) {
  test::TempDir dir("pmpl_data");
  for (int i = 0; i < 23; ++i) {
    const std::vector<uint8_t> rgb = picture(40 + i, 30 + i % 5, i);
    write_bytes(dir.path / "train" / ("c" + std::to_string(i % 3)) / (std::to_string(i) + ".jpg"),
                encode_jpeg(rgb.data(), 40 + i, 30 + i % 5, JpegColor::kRgb));
  }
  const ImageFolder folder(dir.path.string(), "train");
  auto run = [&](int workers, int64_t epoch, int rank, int world, bool train) {
    LoaderOptions o;
    o.batch_size = 4;
    o.image_size = 16;
    o.workers = workers;
    o.train = train;
    o.rank = rank;
    o.world = world;
    o.drop_last = false;
    o.seed = 42;
    Loader loader(folder, o);
    loader.start_epoch(epoch);
    std::vector<std::vector<uint8_t>> images;
    while (auto batch = loader.next()) {
      const std::vector<uint8_t> bytes = batch->images.to_vector<uint8_t>();
      const size_t per = bytes.size() / static_cast<size_t>(batch->images.dim(0));
      for (size_t r = 0; r < bytes.size() / per; ++r) images.emplace_back(bytes.begin() + r * per, bytes.begin() + (r + 1) * per);
    }
    return images;
  };
  const auto one = run(1, 5, 0, 1, true), three = run(3, 5, 0, 1, true);
  EXPECT_EQ(one, three);
  EXPECT_NE(one, run(2, 6, 0, 1, true)) << "another epoch, another order and crops";
  EXPECT_EQ(one.size(), 23u);
  // Eval transform: the union of two ranks is the whole set, once.
  auto all = run(2, 1, 0, 1, false), r0 = run(2, 1, 0, 2, false), r1 = run(1, 1, 1, 2, false);
  EXPECT_EQ(r0.size() + r1.size(), 23u);
  r0.insert(r0.end(), r1.begin(), r1.end());
  std::sort(r0.begin(), r0.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(r0, all);
}

// What `pmpl infer` feeds the runtime is what the eval loader feeds the network, byte for byte:
// JPEGs big enough for DCT-scaled decoding, small ones, grayscale, and a PNG.
TEST(Data, EvalImageReaderMatchesTheEvalLoader) {
  test::TempDir dir("pmpl_data");
  const std::vector<std::pair<int, int>> sizes = {{500, 375}, {41, 33}, {64, 64}, {300, 700}, {90, 20}};
  std::vector<std::string> paths;
  for (size_t i = 0; i < sizes.size() + 2; ++i) {
    const auto [w, h] = sizes[i % sizes.size()];
    const std::vector<uint8_t> rgb = picture(w, h, static_cast<int>(i));
    const fs::path path = dir.path / "val" / ("c" + std::to_string(i)) /
                          (i == sizes.size() ? "x.png" : "x.jpg");
    std::vector<uint8_t> bytes;
    if (i == sizes.size()) {
      bytes = png_bytes(rgb, w, h);
    } else if (i == sizes.size() + 1) {
      std::vector<uint8_t> gray(static_cast<size_t>(w) * h);
      for (size_t p = 0; p < gray.size(); ++p) gray[p] = rgb[3 * p];
      bytes = encode_jpeg(gray.data(), w, h, JpegColor::kGray);
    } else {
      bytes = encode_jpeg(rgb.data(), w, h, JpegColor::kRgb);
    }
    write_bytes(path, bytes);
    paths.push_back(path.string());
  }
  for (bool exact : {false, true}) {
    SCOPED_TRACE(exact ? "pillow_exact" : "DCT scaling");
    const ImageFolder folder(dir.path.string(), "val");
    LoaderOptions o;
    o.batch_size = 3;
    o.image_size = 48;
    o.workers = 2;
    o.train = false;
    o.shuffle = false;
    o.drop_last = false;
    o.pillow_exact = exact;
    Loader loader(folder, o);
    loader.start_epoch(0);
    std::vector<uint8_t> from_loader;
    while (auto batch = loader.next()) {
      const std::vector<uint8_t> bytes = batch->images.to_vector<uint8_t>();
      from_loader.insert(from_loader.end(), bytes.begin(), bytes.end());
    }
    EvalImageReader reader(48, exact);
    std::vector<uint8_t> from_reader;
    for (const std::string& path : paths) {  // class folders c0.. sort as the loader reads them
      const std::vector<uint8_t> bytes = reader.read(path).to_vector<uint8_t>();
      from_reader.insert(from_reader.end(), bytes.begin(), bytes.end());
    }
    EXPECT_EQ(from_reader, from_loader);
  }
  EvalImageReader reader(48);
  EXPECT_THROW(reader.read((dir.path / "missing.jpg").string()), Error);
}

TEST(Data, FashionMnistConverts) {
  if (!fs::is_directory(kFashionMnistDir)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  test::TempDir dir("pmpl_data");
  const std::string out = (dir.path / "fm").string();
  const FashionMnistCounts n = convert_fashion_mnist(out, kFashionMnistDir, 30);
  EXPECT_EQ(n.train, 30);
  EXPECT_EQ(n.val, 30);
  const ImageFolder train(out, "train"), val(out, "val");
  EXPECT_EQ(train.size(), 30);
  EXPECT_EQ(train.num_classes(), 10);  // 30 images cover every class
  EXPECT_EQ(train.classes().front(), "ankle_boot");
  EXPECT_THROW(convert_fashion_mnist(out, kFashionMnistDir, 5), Error) << "never over an existing folder";
  EXPECT_THROW(convert_fashion_mnist((dir.path / "other").string(), "/nonexistent"), Error);
  EXPECT_FALSE(fs::exists(dir.path / "other"));
}

// --dev-holdout: val/ is drawn from the training file, per class, the same for the same seed;
// no image is in both splits.
TEST(Data, FashionMnistDevSplitHoldsOutTrainingImages) {
  if (!fs::is_directory(kFashionMnistDir)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  test::TempDir dir("pmpl_data");
  const auto names = [](const std::string& root, const char* split) {
    std::set<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(root + "/" + split)) {
      if (e.is_regular_file()) out.insert(e.path().filename().string());
    }
    return out;
  };
  const std::string a = (dir.path / "a").string(), b = (dir.path / "b").string(), c = (dir.path / "c").string();
  const FashionMnistCounts n = convert_fashion_mnist(a, kFashionMnistDir, 200, DevSplit{3, 0});
  EXPECT_EQ(n.val, 30);
  EXPECT_EQ(n.train, 200);
  const ImageFolder val(a, "val");
  ASSERT_EQ(val.num_classes(), 10);
  std::vector<int> per_class(10, 0);
  for (int64_t i = 0; i < val.size(); ++i) ++per_class[static_cast<size_t>(val.label(i))];
  EXPECT_EQ(per_class, std::vector<int>(10, 3));
  const std::set<std::string> train_a = names(a, "train"), val_a = names(a, "val");
  for (const std::string& name : val_a) EXPECT_FALSE(train_a.count(name)) << name << " is in both splits";
  convert_fashion_mnist(b, kFashionMnistDir, 200, DevSplit{3, 0});
  EXPECT_EQ(names(b, "val"), val_a) << "the same seed holds out the same images";
  convert_fashion_mnist(c, kFashionMnistDir, 200, DevSplit{3, 1});
  EXPECT_NE(names(c, "val"), val_a) << "another seed, other images";
  EXPECT_THROW(convert_fashion_mnist((dir.path / "d").string(), kFashionMnistDir, 0, DevSplit{6000, 0}), Error)
      << "a class of 6,000 cannot give 6,000";
}

// The cluttered canvas holds the whole object once, inside the margins, with at most `pieces`
// pieces of clutter around it, and is a fixed function of (seed, index).
TEST(Data, ClutterPlacesTheObjectInsideItsMarginsAmongThePieces) {
  constexpr int kRows = 28, kCols = 28, kSide = 64, kPiece = 9;
  std::vector<uint8_t> images(3 * kRows * kCols);
  std::fill(images.begin(), images.begin() + kRows * kCols, uint8_t{200});  // image 0: the object
  for (size_t i = kRows * kCols; i < images.size(); ++i) images[i] = static_cast<uint8_t>(1 + i % 90);
  const std::vector<int64_t> pool = {1, 2};
  const int margin = clutter_margin(kSide);
  EXPECT_EQ(margin, 4);
  std::set<std::pair<int, int>> places;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    const Clutter clutter{kSide, 5, kPiece, seed};
    const std::vector<uint8_t> canvas = clutter_image(images.data(), kRows, kCols, pool, 0, clutter);
    ASSERT_EQ(canvas.size(), static_cast<size_t>(kSide * kSide));
    int y0 = kSide, x0 = kSide, y1 = -1, x1 = -1, object = 0, clutter_pixels = 0;
    for (int y = 0; y < kSide; ++y) {
      for (int x = 0; x < kSide; ++x) {
        const uint8_t v = canvas[static_cast<size_t>(y * kSide + x)];
        if (v == 200) {
          ++object;
          y0 = std::min(y0, y), x0 = std::min(x0, x), y1 = std::max(y1, y), x1 = std::max(x1, x);
        } else if (v != 0) {
          ++clutter_pixels;
        }
      }
    }
    EXPECT_EQ(object, kRows * kCols) << "the object is whole and above the clutter (seed " << seed << ")";
    EXPECT_EQ(y1 - y0 + 1, kRows);
    EXPECT_EQ(x1 - x0 + 1, kCols);
    EXPECT_GE(std::min(y0, x0), margin);
    EXPECT_LT(std::max(y1, x1), kSide - margin);
    EXPECT_GT(clutter_pixels, 0);
    EXPECT_LE(clutter_pixels, 5 * kPiece * kPiece);
    places.insert({y0, x0});
    EXPECT_EQ(clutter_image(images.data(), kRows, kCols, pool, 0, clutter), canvas) << "the same draw twice";
  }
  EXPECT_GT(places.size(), 30u) << "the object moves with the seed";
  const Clutter clutter{kSide, 5, kPiece, 0};
  EXPECT_NE(clutter_image(images.data(), kRows, kCols, pool, 1, clutter),
            clutter_image(images.data(), kRows, kCols, pool, 2, clutter))
      << "each image its own draw";
  EXPECT_THROW(check_clutter({29, 0, 9, 0}, kRows, kCols), Error) << "28 and two margins of 1 do not fit in 29";
  EXPECT_NO_THROW(check_clutter({30, 0, 9, 0}, kRows, kCols));
  EXPECT_THROW(check_clutter({0, 3, 9, 0}, kRows, kCols), Error) << "clutter needs a canvas";
  EXPECT_THROW(check_clutter({64, 3, 29, 0}, kRows, kCols), Error) << "a piece larger than the images";
}

TEST(Data, FashionMnistConvertsToAClutteredCanvas) {
  if (!fs::is_directory(kFashionMnistDir)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  test::TempDir dir("pmpl_data");
  const std::string out = (dir.path / "fm").string();
  const FashionMnistCounts n = convert_fashion_mnist(out, kFashionMnistDir, 20, {}, Clutter{48, 4, 9, 3});
  EXPECT_EQ(n.train, 20);
  const ImageFolder val(out, "val");
  ASSERT_EQ(val.size(), 20);
  std::vector<uint8_t> bytes;
  std::string error;
  ImageHeader header;
  ASSERT_TRUE(read_file(val.path(0), bytes, error)) << error;
  ASSERT_TRUE(read_image_header(bytes.data(), bytes.size(), header, error)) << error;
  EXPECT_EQ(header.width, 48);
  EXPECT_EQ(header.height, 48);
  EXPECT_THROW(convert_fashion_mnist((dir.path / "small").string(), kFashionMnistDir, 5, {}, Clutter{29, 0, 9, 0}),
               Error);
  EXPECT_FALSE(fs::exists(dir.path / "small"));
}

}  // namespace
}  // namespace pmpl::data
