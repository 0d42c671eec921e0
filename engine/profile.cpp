#include "engine/profile.h"

#include "engine/error.h"

#if PMPL_CUDA
#include <cuda_profiler_api.h>
#include <nvtx3/nvToolsExt.h>

#include "core/cuda_check.h"
#endif

namespace pmpl {

#if PMPL_CUDA
ProfileRange::ProfileRange(const char* name) { nvtxRangePushA(name); }
ProfileRange::~ProfileRange() { nvtxRangePop(); }
#else
ProfileRange::ProfileRange(const char*) {}
ProfileRange::~ProfileRange() = default;
#endif

ProfileSteps ProfileSteps::parse(const std::string& text, const Device& device) {
  ProfileSteps s;
  if (text.empty()) return s;
  const size_t colon = text.find(':');
  bool ok = colon != std::string::npos && colon > 0 && colon + 1 < text.size() &&
            text.find_first_not_of("0123456789:") == std::string::npos && text.find(':', colon + 1) == std::string::npos;
  if (ok) {
    s.first = std::stoll(text.substr(0, colon));
    s.last = std::stoll(text.substr(colon + 1));
    ok = s.first >= 1 && s.first <= s.last;
  }
  PMPL_CHECK(ok, "--profile-steps '{}': expected A:B with 1 <= A <= B (steps counted from 1), e.g. 20:30", text);
#if !PMPL_CUDA
  PMPL_CHECK(false, "--profile-steps needs a CUDA build (Nsight Systems' capture range); this pmpl has no CUDA");
#endif
  PMPL_CHECK(device.is_cuda(), "--profile-steps captures GPU work for Nsight Systems, but the run is on {}: add "
                               "--device cuda, or drop --profile-steps",
             device.str());
  return s;
}

void ProfileSteps::before(int64_t step) const {
#if PMPL_CUDA
  if (any() && step == first) CUDA_CHECK(cudaProfilerStart());
#endif
}

void ProfileSteps::after(int64_t step) const {
#if PMPL_CUDA
  if (any() && step == last) CUDA_CHECK(cudaProfilerStop());
#endif
}

}  // namespace pmpl
