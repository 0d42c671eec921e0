#include "tests/run_fixtures.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "data/jpeg_encode.h"
#include "engine/io/safetensors.h"

namespace pmpl::test {

namespace fs = std::filesystem;

void remove_at_exit(const std::string& dir) {
  // ctest runs every test in its own process, so a folder made once per process and kept for its
  // whole life is left behind by each test unless its exit removes it. Only the process that made
  // it does: a forked child that exits must not take it from its parent.
  struct Folders {
    pid_t owner = ::getpid();
    std::vector<std::string> paths;
    ~Folders() {
      if (::getpid() != owner) return;
      for (const std::string& path : paths) {
        std::error_code ignored;
        fs::remove_all(path, ignored);
      }
    }
  };
  static Folders folders;
  folders.paths.push_back(dir);
}

std::string make_dataset() {
  static const std::string root = [] {
    const fs::path dir = fs::temp_directory_path() / ("pmpl_trainer_data_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    remove_at_exit(dir.string());
    for (const char* split : {"train", "val"}) {
      for (int c = 0; c < 3; ++c) {
        fs::create_directories(dir / split / ("class" + std::to_string(c)));
        for (int i = 0; i < (split[0] == 't' ? 16 : 4); ++i) {
          std::vector<uint8_t> px(20 * 20 * 3);
          for (size_t p = 0; p < px.size(); ++p) {
            px[p] = static_cast<uint8_t>((p % 3 == static_cast<size_t>(c) ? 200 : 40) + (p * 7 + i * 13) % 30);
          }
          const std::vector<uint8_t> jpeg = data::encode_jpeg(px.data(), 20, 20, data::JpegColor::kRgb);
          std::ofstream((dir / split / ("class" + std::to_string(c)) / (std::to_string(i) + ".jpg")).string(),
                        std::ios::binary)
              .write(reinterpret_cast<const char*>(jpeg.data()), static_cast<std::streamsize>(jpeg.size()));
        }
      }
    }
    return dir.string();
  }();
  return root;
}

std::string make_uniform_dataset(int per_class) {
  const fs::path dir =
      fs::temp_directory_path() / ("pmpl_uniform_data_" + std::to_string(::getpid()) + "_" + std::to_string(per_class));
  if (fs::exists(dir / "val")) return dir.string();
  remove_at_exit(dir.string());
  std::vector<uint8_t> rgb(12 * 12 * 3);
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<uint8_t>(60 + 50 * (i % 3));
  const std::vector<uint8_t> jpeg = data::encode_jpeg(rgb.data(), 12, 12, data::JpegColor::kRgb);
  for (const char* split : {"train", "val"}) {
    for (int c = 0; c < 2; ++c) {
      for (int i = 0; i < (split[0] == 't' ? per_class : 2); ++i) {
        const fs::path path = dir / split / ("c" + std::to_string(c)) / (std::to_string(i) + ".jpg");
        fs::create_directories(path.parent_path());
        std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(jpeg.data()),
                                                    static_cast<std::streamsize>(jpeg.size()));
      }
    }
  }
  return dir.string();
}

double step_distance(const std::string& init_path, const std::string& a_path, const std::string& b_path) {
  const TensorFile init = load_safetensors(init_path), a = load_safetensors(a_path), b = load_safetensors(b_path);
  double diff = 0.0, norm = 0.0;
  for (const auto& [name, tensor] : init.tensors) {
    if (name.find("running_") != std::string::npos || tensor.dtype() != DType::kF32) continue;
    const std::vector<float> x0 = tensor.to_vector<float>(), xa = a.find(name).to_vector<float>(),
                             xb = b.find(name).to_vector<float>();
    for (size_t i = 0; i < x0.size(); ++i) {
      const double da = static_cast<double>(xa[i]) - x0[i], db = static_cast<double>(xb[i]) - x0[i];
      diff += (da - db) * (da - db);
      norm += db * db;
    }
  }
  return std::sqrt(diff / norm);
}

TrainConfig tiny_search(const std::string& output) {
  TrainConfig c;
  c.data = make_dataset();
  c.output = output;
  c.model = "mobilenetv2_mp";
  c.width = 0.25;
  c.small_input = true;
  c.input_size = 16;
  c.epochs = 2;
  c.batch_size = 8;
  c.lr = 0.05;
  c.arch_split = 0.25;  // 12 of 48 images for the alphas: 4 steps per epoch on the other 36
  c.workers = 2;
  c.log_interval = 1;
  c.save_interval = 2;
  c.quiet = true;
  return c;
}

std::vector<nlohmann::json> read_log(const std::string& dir) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(dir + "/log.jsonl");
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

std::map<std::string, std::vector<uint8_t>> checkpoint_bytes(const std::string& path) {
  std::map<std::string, std::vector<uint8_t>> out;
  for (const auto& [name, t] : load_safetensors(path).tensors) {
    const auto* p = static_cast<const uint8_t*>(t.raw_data());
    out[name] = std::vector<uint8_t>(p, p + t.nbytes());
  }
  return out;
}

}  // namespace pmpl::test
