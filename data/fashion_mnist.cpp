#include "data/fashion_mnist.h"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <unistd.h>
#include <vector>

#include "core/rng.h"
#include "data/clutter.h"
#include "data/jpeg_encode.h"
#include "engine/error.h"

namespace pmpl::data {
namespace {

// In label order (0..9); ImageFolder then sorts them by name.
constexpr std::array<const char*, 10> kClasses = {"t-shirt_top", "trouser", "pullover", "dress", "coat",
                                                  "sandal",      "shirt",   "sneaker",  "bag",   "ankle_boot"};

std::vector<uint8_t> read_gz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  PMPL_CHECK(f != nullptr,
             "cannot read {}: install Debian's dataset-fashion-mnist (apt-get install "
             "dataset-fashion-mnist, or run tools/install_deps.sh)", path);
  std::vector<uint8_t> bytes;
  std::array<uint8_t, 1 << 16> chunk;
  int n;
  while ((n = gzread(f, chunk.data(), chunk.size())) > 0) bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + n);
  const bool ok = n == 0;
  gzclose(f);
  PMPL_CHECK(ok, "{} is not a readable gzip file: reinstall dataset-fashion-mnist", path);
  return bytes;
}

uint32_t be32(const std::vector<uint8_t>& b, size_t at) {
  return (static_cast<uint32_t>(b[at]) << 24) | (static_cast<uint32_t>(b[at + 1]) << 16) |
         (static_cast<uint32_t>(b[at + 2]) << 8) | b[at + 3];
}

struct Idx {
  std::vector<uint8_t> images, labels;
  int64_t count = 0, rows = 0, cols = 0;
  std::string labels_path;
};

Idx read_idx(const std::string& source, const std::string& prefix) {
  Idx idx;
  const std::string images_path = source + "/" + prefix + "-images-idx3-ubyte.gz";
  idx.labels_path = source + "/" + prefix + "-labels-idx1-ubyte.gz";
  idx.images = read_gz(images_path);
  idx.labels = read_gz(idx.labels_path);
  PMPL_CHECK(idx.images.size() >= 16 && be32(idx.images, 0) == 0x803 && idx.labels.size() >= 8 &&
                 be32(idx.labels, 0) == 0x801,
             "{} or {} is not an IDX file of images/labels", images_path, idx.labels_path);
  idx.count = be32(idx.images, 4);
  idx.rows = be32(idx.images, 8);
  idx.cols = be32(idx.images, 12);
  PMPL_CHECK(be32(idx.labels, 4) == idx.count &&
                 idx.images.size() == 16 + static_cast<size_t>(idx.count * idx.rows * idx.cols) &&
                 idx.labels.size() == 8 + static_cast<size_t>(idx.count),
             "{}: sizes do not match its header (truncated?)", images_path);
  for (int64_t i = 0; i < idx.count; ++i) {
    PMPL_CHECK(idx.labels[8 + static_cast<size_t>(i)] < kClasses.size(), "{}: label {} at {} is not a Fashion-MNIST class",
               idx.labels_path, idx.labels[8 + static_cast<size_t>(i)], i);
  }
  return idx;
}

uint8_t label_of(const Idx& idx, int64_t i) { return idx.labels[8 + static_cast<size_t>(i)]; }

// Writes images `which` of `idx` as DIR/<class>/<index in the IDX file>.jpg; on a clutter canvas,
// the clutter is cut from `which` too, so no split borrows another's images.
void write_images(const Idx& idx, const std::vector<int64_t>& which, const std::string& dir, const Clutter& clutter) {
  for (const char* name : kClasses) std::filesystem::create_directories(dir + "/" + name);
  const uint8_t* images = idx.images.data() + 16;
  const int rows = static_cast<int>(idx.rows), cols = static_cast<int>(idx.cols);
  for (int64_t i : which) {
    const std::vector<uint8_t> jpeg =
        clutter.canvas > 0
            ? encode_jpeg(clutter_image(images, rows, cols, which, i, clutter).data(), clutter.canvas, clutter.canvas,
                          JpegColor::kGray)
            : encode_jpeg(images + static_cast<size_t>(i * idx.rows * idx.cols), cols, rows, JpegColor::kGray);
    char name[32];
    std::snprintf(name, sizeof name, "%05lld.jpg", static_cast<long long>(i));
    const std::string path = dir + "/" + kClasses[label_of(idx, i)] + "/" + name;
    std::FILE* f = std::fopen(path.c_str(), "wb");
    PMPL_CHECK(f != nullptr, "cannot write {}: check the output folder", path);
    const bool ok = std::fwrite(jpeg.data(), 1, jpeg.size(), f) == jpeg.size();
    PMPL_CHECK(std::fclose(f) == 0 && ok, "writing {} failed (disk full?)", path);
  }
}

std::vector<int64_t> first(int64_t count, int64_t limit) {
  std::vector<int64_t> out(static_cast<size_t>(limit > 0 ? std::min(limit, count) : count));
  std::iota(out.begin(), out.end(), int64_t{0});
  return out;
}

// Of each class's training images, the `per_class` first in a seeded order are held out.
std::vector<bool> held_out(const Idx& idx, int64_t per_class, uint64_t seed) {
  std::array<std::vector<int64_t>, kClasses.size()> by_class;
  for (int64_t i = 0; i < idx.count; ++i) by_class[label_of(idx, i)].push_back(i);
  std::vector<bool> out(static_cast<size_t>(idx.count), false);
  for (std::vector<int64_t>& members : by_class) {
    PMPL_CHECK(per_class < static_cast<int64_t>(members.size()),
               "--dev-holdout {} leaves no training image in a class of {}: hold out fewer", per_class, members.size());
    std::sort(members.begin(), members.end(), [&](int64_t a, int64_t b) {
      const uint64_t ka = splitmix64(seed ^ splitmix64(static_cast<uint64_t>(a)));
      const uint64_t kb = splitmix64(seed ^ splitmix64(static_cast<uint64_t>(b)));
      return ka != kb ? ka < kb : a < b;
    });
    for (int64_t k = 0; k < per_class; ++k) out[static_cast<size_t>(members[static_cast<size_t>(k)])] = true;
  }
  return out;
}

}  // namespace

FashionMnistCounts convert_fashion_mnist(const std::string& out, const std::string& source, int64_t limit,
                                         const DevSplit& dev, const Clutter& clutter) {
  namespace fs = std::filesystem;
  PMPL_CHECK(!fs::exists(out) || (fs::is_directory(out) && fs::is_empty(out)),
             "{} already exists: remove it or choose another output folder", out);
  PMPL_CHECK(fs::is_directory(source),
             "{} is missing: install Debian's dataset-fashion-mnist (apt-get install "
             "dataset-fashion-mnist, or run tools/install_deps.sh)", source);
  const std::string tmp = out + ".partial-" + std::to_string(::getpid());
  fs::remove_all(tmp);
  FashionMnistCounts counts;
  const Idx train = read_idx(source, "train");
  check_clutter(clutter, static_cast<int>(train.rows), static_cast<int>(train.cols));
  std::vector<int64_t> train_images, val_images;
  if (dev.holdout_per_class > 0) {
    const std::vector<bool> held = held_out(train, dev.holdout_per_class, dev.seed);
    for (int64_t i = 0; i < train.count; ++i) (held[static_cast<size_t>(i)] ? val_images : train_images).push_back(i);
    if (limit > 0) {
      train_images.resize(std::min<size_t>(train_images.size(), static_cast<size_t>(limit)));
      val_images.resize(std::min<size_t>(val_images.size(), static_cast<size_t>(limit)));
    }
    write_images(train, val_images, tmp + "/val", clutter);
  } else {
    train_images = first(train.count, limit);
    const Idx test = read_idx(source, "t10k");
    val_images = first(test.count, limit);
    write_images(test, val_images, tmp + "/val", clutter);
  }
  write_images(train, train_images, tmp + "/train", clutter);
  counts.train = static_cast<int64_t>(train_images.size());
  counts.val = static_cast<int64_t>(val_images.size());
  if (fs::exists(out)) fs::remove(out);  // the empty folder checked above
  fs::rename(tmp, out);
  return counts;
}

}  // namespace pmpl::data
