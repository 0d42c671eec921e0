// The error family: PMPL_CHECK is the user's error, PMPL_ASSERT and the library status checks
// are pmpl's, and each names what failed and where.
#include <gtest/gtest.h>

#include "engine/error.h"
#include "engine/profile.h"

#ifdef PMPL_CUDA
#include "core/cuda_check.h"
#endif
#ifdef PMPL_MPI
#include "engine/mpi_check.h"
#endif

namespace pmpl {
namespace {

template <class Fn>
std::string message_of(Fn fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(Errors, CheckIsAUserErrorWithTheMessage) {
  EXPECT_THROW(PMPL_CHECK(1 + 1 == 3, "arithmetic {} is off", "here"), Error);
  EXPECT_EQ(message_of([] { PMPL_CHECK(false, "bad value {}", 7); }), "bad value 7");
}

TEST(Errors, AssertIsAnInternalErrorWithFileAndLine) {
  EXPECT_THROW(PMPL_ASSERT(false, "broken"), InternalError);
  const std::string m = message_of([] { PMPL_ASSERT(2 < 1, "invariant {}", 1); });
  EXPECT_NE(m.find("test_errors.cpp:"), std::string::npos) << m;
  EXPECT_NE(m.find("2 < 1"), std::string::npos) << m;
}

#ifdef PMPL_CUDA
TEST(Errors, CudaAndCublasChecksNameTheCall) {
  // Status values are passed directly: describing a code needs no GPU.
  const std::string cuda = message_of([] { CUDA_CHECK(cudaErrorInvalidValue); });
  EXPECT_NE(cuda.find("cudaErrorInvalidValue"), std::string::npos) << cuda;
  EXPECT_NE(cuda.find("(CUDA)"), std::string::npos) << cuda;
  EXPECT_THROW(CUBLAS_CHECK(CUBLAS_STATUS_NOT_INITIALIZED), InternalError);
  EXPECT_NO_THROW(CUDA_CHECK(cudaSuccess));
}
#endif

#ifdef PMPL_MPI
TEST(Errors, MpiCheckDescribesTheCode) {
  // Outside MPI_Init the code is reported by number (MPI cannot describe it then).
  const std::string m = message_of([] { MPI_CHECK(MPI_ERR_COMM); });
  EXPECT_NE(m.find("MPI error code " + std::to_string(MPI_ERR_COMM)), std::string::npos) << m;
  EXPECT_NE(m.find("(MPI)"), std::string::npos) << m;
  EXPECT_NO_THROW(MPI_CHECK(MPI_SUCCESS));
}
#endif

TEST(Errors, ProfileStepsAreAToBAndNeedCuda) {
  const Device gpu = Device::cuda(0);
  EXPECT_FALSE(ProfileSteps::parse("", gpu).any());
  EXPECT_FALSE(ProfileSteps::parse("", Device::cpu()).any());
  for (const char* bad : {"5:3", "0:2", "3", "a:b", "3:", ":4", "1:2:3", "-1:2"}) {
    EXPECT_NE(message_of([&] { ProfileSteps::parse(bad, gpu); }).find("--profile-steps"), std::string::npos) << bad;
  }
#if PMPL_CUDA
  const ProfileSteps s = ProfileSteps::parse("20:30", gpu);
  EXPECT_TRUE(s.any());
  EXPECT_EQ(s.first, 20);
  EXPECT_EQ(s.last, 30);
  // A CPU run has no GPU work to capture (and must not touch the CUDA profiler).
  EXPECT_NE(message_of([] { ProfileSteps::parse("20:30", Device::cpu()); }).find("--device cuda"), std::string::npos);
#else
  EXPECT_NE(message_of([&] { ProfileSteps::parse("20:30", gpu); }).find("CUDA"), std::string::npos);
#endif
}

}  // namespace
}  // namespace pmpl
