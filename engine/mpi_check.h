// MPI_CHECK: MPI returns plain ints, so they are wrapped in a type of their own before going
// through the shared status template (core/error_core.h). Include only from code built with PMPL_MPI.
#pragma once

#include <mpi.h>

#include "core/error_core.h"

namespace pmpl {

struct MpiStatus {
  int code;
  bool operator==(const MpiStatus& other) const { return code == other.code; }
};

template <>
struct StatusTraits<MpiStatus> {
  static constexpr MpiStatus kSuccess{MPI_SUCCESS};
  static constexpr const char* kLibrary = "MPI";
  static std::string describe(MpiStatus s) {
    // MPI_Error_string is only valid between MPI_Init and MPI_Finalize; MPI_Initialized is not.
    int initialized = 0;
    MPI_Initialized(&initialized);
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    if (!initialized || MPI_Error_string(s.code, text, &length) != MPI_SUCCESS) {
      return "MPI error code " + std::to_string(s.code);
    }
    return std::string(text, static_cast<size_t>(length));
  }
};

}  // namespace pmpl

#define MPI_CHECK(call) PMPL_STATUS_CHECK(::pmpl::MpiStatus{(call)})
