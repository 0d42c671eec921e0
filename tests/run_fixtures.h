// What the tests that train share: a tiny generated dataset, a scratch run folder, a tiny
// search's configuration, a run's log and a checkpoint's tensors as bytes.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "train/trainer.h"

namespace pmpl::test {

// Removes the folder (recursively) when this process exits; for data made once per test process.
void remove_at_exit(const std::string& dir);

// 3 classes told apart by colour, 16 training and 4 validation images each (20 x 20 JPEGs), made
// once per test binary; the folder's path.
std::string make_dataset();

// 2 classes of `per_class` identical training images (and 2 validation images each), all one solid
// colour, 12 x 12 JPEGs, made once per test binary: batchnorm's batch statistics over any of its
// batches are the same, so a step does not depend on how its batch is split.
std::string make_uniform_dataset(int per_class = 8);

// The relative L2 distance between two runs' first steps from the same start: || (a - init) -
// (b - init) || / || b - init || over the f32 parameters (running statistics left out).
double step_distance(const std::string& init, const std::string& a, const std::string& b);

// A run folder under the temporary directory, removed before and after.
struct TempRun {
  std::string dir;
  explicit TempRun(const std::string& name)
      : dir((std::filesystem::temp_directory_path() / ("pmpl_run_" + std::to_string(::getpid()) + "_" + name))
                .string()) {
    std::filesystem::remove_all(dir);
  }
  ~TempRun() { std::filesystem::remove_all(dir); }
};

// A 2-epoch search of mobilenetv2_mp at width 0.25 on make_dataset(), quiet, checkpointing every
// 2 steps, into `output`.
TrainConfig tiny_search(const std::string& output);

// log.jsonl's lines.
std::vector<nlohmann::json> read_log(const std::string& dir);

// Each tensor's bytes, by name.
std::map<std::string, std::vector<uint8_t>> checkpoint_bytes(const std::string& path);

}  // namespace pmpl::test
