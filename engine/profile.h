// Nsight Systems annotations: NVTX ranges (a layer's forward, a backward op, a loader stage, an
// optimiser step, a training step) and the profiler's capture window (--profile-steps A:B brackets
// those steps with cudaProfilerStart/Stop, for `nsys profile --capture-range=cudaProfilerApi`).
// Without CUDA they compile to nothing; with CUDA and no profiler attached a range costs a
// function-pointer check (NVTX's own no-op path).
#pragma once

#include <cstdint>
#include <string>

#include "engine/device.h"

namespace pmpl {

class ProfileRange {
 public:
  explicit ProfileRange(const char* name);
  explicit ProfileRange(const std::string& name) : ProfileRange(name.c_str()) {}
  ~ProfileRange();
  ProfileRange(const ProfileRange&) = delete;
  ProfileRange& operator=(const ProfileRange&) = delete;
};

// The [first, last] steps (counted from 1, as the progress line shows them) to capture, parsed
// from "A:B"; an empty text means none. A clear error for anything else, and for a run whose
// `device` is not a GPU (the capture is of CUDA work).
struct ProfileSteps {
  int64_t first = 0, last = -1;
  static ProfileSteps parse(const std::string& text, const Device& device);
  bool any() const { return first <= last; }
  // Call before step `step` starts and after it ends: starts and stops the capture.
  void before(int64_t step) const;
  void after(int64_t step) const;
};

}  // namespace pmpl
