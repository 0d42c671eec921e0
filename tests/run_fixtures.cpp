#include "tests/run_fixtures.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "data/jpeg_encode.h"
#include "engine/io/safetensors.h"

namespace pmpl::test {

namespace fs = std::filesystem;

std::string make_dataset() {
  static const std::string root = [] {
    const fs::path dir = fs::temp_directory_path() / ("pmpl_trainer_data_" + std::to_string(::getpid()));
    fs::remove_all(dir);
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
