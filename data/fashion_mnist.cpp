#include "data/fashion_mnist.h"

#include <sys/stat.h>
#include <zlib.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <unistd.h>
#include <vector>

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

int64_t write_split(const std::string& source, const std::string& prefix, const std::string& dir, int64_t limit) {
  const std::string images_path = source + "/" + prefix + "-images-idx3-ubyte.gz";
  const std::string labels_path = source + "/" + prefix + "-labels-idx1-ubyte.gz";
  const std::vector<uint8_t> images = read_gz(images_path), labels = read_gz(labels_path);
  PMPL_CHECK(images.size() >= 16 && be32(images, 0) == 0x803 && labels.size() >= 8 && be32(labels, 0) == 0x801,
             "{} or {} is not an IDX file of images/labels", images_path, labels_path);
  const int64_t count = be32(images, 4), rows = be32(images, 8), cols = be32(images, 12);
  PMPL_CHECK(be32(labels, 4) == count && images.size() == 16 + static_cast<size_t>(count * rows * cols) &&
                 labels.size() == 8 + static_cast<size_t>(count),
             "{}: sizes do not match its header (truncated?)", images_path);
  for (const char* name : kClasses) std::filesystem::create_directories(dir + "/" + name);
  const int64_t n = limit > 0 ? std::min(limit, count) : count;
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t label = labels[8 + static_cast<size_t>(i)];
    PMPL_CHECK(label < kClasses.size(), "{}: label {} at {} is not a Fashion-MNIST class", labels_path, label, i);
    const std::vector<uint8_t> jpeg = encode_jpeg(images.data() + 16 + static_cast<size_t>(i * rows * cols),
                                                  static_cast<int>(cols), static_cast<int>(rows), JpegColor::kGray);
    char name[32];
    std::snprintf(name, sizeof name, "%05lld.jpg", static_cast<long long>(i));
    const std::string path = dir + "/" + kClasses[label] + "/" + name;
    std::FILE* f = std::fopen(path.c_str(), "wb");
    PMPL_CHECK(f != nullptr, "cannot write {}: check the output folder", path);
    const bool ok = std::fwrite(jpeg.data(), 1, jpeg.size(), f) == jpeg.size();
    PMPL_CHECK(std::fclose(f) == 0 && ok, "writing {} failed (disk full?)", path);
  }
  return n;
}

}  // namespace

FashionMnistCounts convert_fashion_mnist(const std::string& out, const std::string& source, int64_t limit) {
  namespace fs = std::filesystem;
  PMPL_CHECK(!fs::exists(out) || (fs::is_directory(out) && fs::is_empty(out)),
             "{} already exists: remove it or choose another output folder", out);
  PMPL_CHECK(fs::is_directory(source),
             "{} is missing: install Debian's dataset-fashion-mnist (apt-get install "
             "dataset-fashion-mnist, or run tools/install_deps.sh)", source);
  const std::string tmp = out + ".partial-" + std::to_string(::getpid());
  fs::remove_all(tmp);
  FashionMnistCounts counts;
  counts.train = write_split(source, "train", tmp + "/train", limit);
  counts.val = write_split(source, "t10k", tmp + "/val", limit);
  if (fs::exists(out)) fs::remove(out);  // the empty folder checked above
  fs::rename(tmp, out);
  return counts;
}

}  // namespace pmpl::data
