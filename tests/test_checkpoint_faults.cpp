// What a damaged disk or a full one does to checkpoints: every damage is one clear error naming
// the file (the CRC-32 pmpl writes catches flipped bits the format's own checks cannot), a run
// folder's damaged last checkpoint falls back to the one before it and the run still ends bit for
// bit as if nothing happened, and a write that fails leaves the last good checkpoint in place.
#include <gtest/gtest.h>

#include <functional>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "engine/io/safetensors.h"
#include "tests/run_fixtures.h"
#include "tests/test_util.h"

namespace pmpl {
namespace {

namespace fs = std::filesystem;
using test::checkpoint_bytes;
using test::read_log;
using test::TempRun;
using test::tiny_search;

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The error load_safetensors gives, or "" when the file loads.
std::string load_error(const std::string& path) {
  try {
    load_safetensors(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// The error a training run stops with; "" (and a test failure) when it completes.
std::string run_error(const TrainConfig& config) {
  try {
    run_training(config);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "the run went through";
  return "";
}

// The offset of the first byte of the tensor data (after the 8-byte size and the header).
size_t data_start(const std::vector<char>& bytes) {
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  return 8 + n;
}

TEST(Checkpoint, EveryDamageIsOneClearError) {
  TempRun run("damage");
  fs::create_directories(run.dir);
  const std::string good = run.dir + "/good.safetensors", bad = run.dir + "/bad.safetensors";
  save_safetensors(good, {{"w", test::random({3, 5, 7}, 1, false).to(DType::kF32)}, {"n", Tensor::zeros(Shape{}, DType::kI64)}},
                   {{"pmpl.trainer", "{\"epoch\": 12}"}});
  ASSERT_EQ(load_error(good), "");
  const std::vector<char> bytes = read_bytes(good);
  const size_t start = data_start(bytes);
  const std::string header(bytes.begin() + 8, bytes.begin() + static_cast<std::ptrdiff_t>(start));
  ASSERT_NE(header.find("12"), std::string::npos);
  const size_t epoch_digit = header.find("12") + 8;

  struct Damage {
    const char* what;
    std::vector<char> bytes;
    const char* says;
  };
  std::vector<Damage> damages;
  damages.push_back({"empty", {}, "is not a safetensors file"});
  damages.push_back({"truncated in the header", std::vector<char>(bytes.begin(), bytes.begin() + 20), "truncated"});
  damages.push_back({"truncated in the data", std::vector<char>(bytes.begin(), bytes.end() - 5), "truncated or corrupt"});
  for (size_t at : {start, start + 17, bytes.size() - 1}) {  // flipped bits the offsets cannot see
    std::vector<char> flipped = bytes;
    flipped[at] = static_cast<char>(flipped[at] ^ 0x10);
    damages.push_back({"a bit flipped in the data", flipped, "is damaged"});
  }
  std::vector<char> metadata = bytes;  // epoch 12 -> 13: still valid JSON, a different run state
  metadata[epoch_digit] = '3';
  damages.push_back({"a digit changed in the metadata", metadata, "is damaged"});
  for (const Damage& d : damages) {
    SCOPED_TRACE(d.what);
    write_bytes(bad, d.bytes);
    const std::string error = load_error(bad);
    EXPECT_NE(error.find(bad), std::string::npos) << error;
    EXPECT_NE(error.find(d.says), std::string::npos) << error;
    EXPECT_EQ(error.find('\n'), std::string::npos) << "one line: " << error;
  }
}

// A file without the checksum (older pmpl, the safetensors package, tools/torch_convert.py) loads.
TEST(Checkpoint, FilesWithoutAChecksumStillLoad) {
  TempRun run("nochecksum");
  fs::create_directories(run.dir);
  const std::string path = run.dir + "/plain.safetensors";
  const std::string header = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::vector<char> bytes(8);
  for (int i = 0; i < 8; ++i) bytes[static_cast<size_t>(i)] = static_cast<char>(header.size() >> (8 * i));
  bytes.insert(bytes.end(), header.begin(), header.end());
  const float values[2] = {1.5f, -2.0f};
  bytes.insert(bytes.end(), reinterpret_cast<const char*>(values), reinterpret_cast<const char*>(values) + 8);
  write_bytes(path, bytes);
  const TensorFile file = load_safetensors(path);
  ASSERT_EQ(file.tensors.size(), 1u);
  EXPECT_EQ(file.find("x").data<float>()[1], -2.0f);
}

// A shape whose element count wraps around 64 bits (2^32 x 2^32 = 0 mod 2^64) is refused, not
// taken for an empty tensor.
TEST(Checkpoint, OverflowingShapesAreRefused) {
  TempRun run("overflow");
  fs::create_directories(run.dir);
  const std::string path = run.dir + "/wrap.safetensors";
  for (const char* header : {R"({"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})",
                             R"({"x":{"dtype":"F64","shape":[1099511627775,1099511627775,16],"data_offsets":[0,0]}})"}) {
    SCOPED_TRACE(header);
    std::vector<char> bytes(8);
    const std::string text = header;
    for (int i = 0; i < 8; ++i) bytes[static_cast<size_t>(i)] = static_cast<char>(text.size() >> (8 * i));
    bytes.insert(bytes.end(), text.begin(), text.end());
    write_bytes(path, bytes);
    EXPECT_NE(load_error(path).find("truncated or corrupt"), std::string::npos) << load_error(path);
  }
}

// Killed after step 6 (checkpoints at steps 2 and 4), the last one then damaged on disk: resuming
// the folder takes the step-2 checkpoint, says so in the log, keeps the damaged file aside, and
// ends byte for byte as the run never stopped.
TEST(Checkpoint, DamagedLastFallsBackToThePreviousOneBitIdentically) {
  TempRun full("fallback_full"), broken("fallback_broken");
  TrainConfig c = tiny_search(full.dir);
  ASSERT_TRUE(run_training(c).completed);
  const auto expected = checkpoint_bytes(full.dir + "/checkpoint-last.safetensors");
  c.output = broken.dir;
  c.max_steps = 6;
  EXPECT_FALSE(run_training(c).completed);
  const std::string last = broken.dir + "/checkpoint-last.safetensors";
  ASSERT_TRUE(fs::exists(broken.dir + "/checkpoint-prev.safetensors"));
  std::vector<char> bytes = read_bytes(last);
  bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 1);
  write_bytes(last, bytes);

  TrainConfig again = tiny_search("");
  again.resume = broken.dir;
  ASSERT_TRUE(run_training(again).completed);
  EXPECT_TRUE(fs::exists(last + ".damaged"));
  int fallbacks = 0;
  for (const nlohmann::json& line : read_log(broken.dir)) {
    if (line.value("event", "") != "resume_fallback") continue;
    ++fallbacks;
    EXPECT_NE(line["error"].get<std::string>().find("is damaged"), std::string::npos) << line.dump();
  }
  EXPECT_EQ(fallbacks, 1);
  const auto resumed = checkpoint_bytes(last);
  ASSERT_EQ(resumed.size(), expected.size());
  for (const auto& [tensor, want] : expected) {
    ASSERT_TRUE(resumed.count(tensor)) << tensor;
    EXPECT_TRUE(resumed.at(tensor) == want) << tensor << " differs";
  }
}

// A checkpoint named on --resume is used as named: its damage, or a checkpoint of another network,
// is an error, with no fallback.
TEST(Checkpoint, ANamedDamagedOrForeignCheckpointIsAnError) {
  TempRun run("named");
  TrainConfig c = tiny_search(run.dir);
  c.max_steps = 3;  // the checkpoint of step 2 stays behind
  run_training(c);
  const std::string last = run.dir + "/checkpoint-last.safetensors";
  TrainConfig other = tiny_search("");
  other.model = "mobilenetv2";
  other.output = run.dir;
  other.resume = last;
  const std::string foreign = run_error(other);
  EXPECT_NE(foreign.find("was trained with another network"), std::string::npos) << foreign;
  std::vector<char> bytes = read_bytes(last);
  bytes.resize(bytes.size() - 100);
  write_bytes(last, bytes);
  TrainConfig again = tiny_search("");
  again.output = run.dir;
  again.resume = last;
  const std::string truncated = run_error(again);
  EXPECT_NE(truncated.find("truncated"), std::string::npos) << truncated;
  EXPECT_FALSE(fs::exists(last + ".damaged")) << "a named file is left as it is";
}

// A checkpoint whose bytes are intact (its checksum matches) but whose metadata has missing fields,
// wrong types or values out of range, as no pmpl writes it: one clear error, not a JSON library
// exception.
TEST(Checkpoint, MalformedMetadataIsOneClearError) {
  TempRun run("metadata");
  TrainConfig c = tiny_search(run.dir);
  c.model = "mobilenetv2";
  c.max_steps = 3;  // the checkpoint of step 2 stays behind
  run_training(c);
  const std::string last = run.dir + "/checkpoint-last.safetensors";
  const TensorFile good = load_safetensors(last);
  TrainConfig again = tiny_search("");
  again.model = "mobilenetv2";
  again.output = run.dir;
  again.resume = last;
  // Each damage names the metadata key and the field; a float too large for an integer is refused
  // before any conversion (Fuzz.CheckpointMetadata holds the readers to this).
  using Json = nlohmann::json;
  struct Damage {
    const char* key;
    std::function<void(Json&)> change;
    const char* expected;
  };
  const std::vector<Damage> damages = {
      {"pmpl.trainer", [](Json& j) { j["epoch"] = "one"; }, "'epoch' must be an integer"},
      {"pmpl.trainer", [](Json& j) { j["global_step"] = 1e300; }, "'global_step' must be an integer"},
      {"pmpl.trainer", [](Json& j) { j.erase("epoch"); }, "has no 'epoch'"},
      {"pmpl.trainer", [](Json& j) { j = Json::array({1, 2}); }, "has no 'epoch'"},
      {"pmpl.model", [](Json& j) { j["num_classes"] = -3; }, "'num_classes' must be an integer from 1"},
      {"pmpl.model", [](Json& j) { j["width"] = "wide"; }, "'width' must be a number"},
  };
  for (const Damage& d : damages) {
    TensorFile file = good;
    Json j = Json::parse(good.metadata.at(d.key));
    d.change(j);
    file.metadata[d.key] = j.dump();
    file.metadata.erase("pmpl.crc32");
    save_safetensors(last, file.tensors, file.metadata);
    const std::string message = run_error(again);
    EXPECT_NE(message.find(d.expected), std::string::npos) << d.key << ": " << message;
    EXPECT_NE(message.find(d.key), std::string::npos) << message;
  }
}

// Checkpoint writes into /dev/full (the temporary file planted as a link to it) fail with ENOSPC,
// as on a full disk: the run stops with one clear line and the step-2 checkpoint intact, or with
// --on-save-error warn goes on and its later checkpoints are written.
TEST(Checkpoint, AFullDiskKeepsTheLastGoodCheckpoint) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full here";
  TempRun run("full");
  TrainConfig c = tiny_search(run.dir);
  c.model = "mobilenetv2";
  c.max_steps = 3;  // the checkpoint of step 2 stays behind
  run_training(c);
  const std::string last = run.dir + "/checkpoint-last.safetensors";
  const auto before = checkpoint_bytes(last);
  fs::create_symlink("/dev/full", last + ".tmp");
  TrainConfig again = tiny_search("");
  again.model = "mobilenetv2";
  again.resume = run.dir;
  const std::string full = run_error(again);
  EXPECT_NE(full.find("No space left on device"), std::string::npos) << full;
  EXPECT_NE(full.find("--on-save-error warn"), std::string::npos) << full;
  EXPECT_EQ(full.find('\n'), std::string::npos) << full;
  EXPECT_FALSE(fs::exists(fs::symlink_status(last + ".tmp"))) << "the temporary file is removed";
  EXPECT_TRUE(checkpoint_bytes(last) == before) << "the last good checkpoint is untouched";

  fs::create_symlink("/dev/full", last + ".tmp");
  again.on_save_error = "warn";
  ASSERT_TRUE(run_training(again).completed);
  int failed = 0;
  for (const nlohmann::json& line : read_log(run.dir)) failed += line.value("event", "") == "save_failed";
  EXPECT_EQ(failed, 1);
  EXPECT_EQ(load_error(last), "");
  EXPECT_FALSE(checkpoint_bytes(last) == before) << "the later checkpoints were written";
}

}  // namespace
}  // namespace pmpl
