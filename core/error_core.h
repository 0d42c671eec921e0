// The error types and the library-status check, without fmt, so CUDA translation units can use
// them (nvcc cannot compile fmt's compile-time format checks). engine/error.h adds PMPL_CHECK.
//  - pmpl::Error: the user's input is wrong (bad flag, bad shape, bad file). One clear line,
//    exit code 2.
//  - pmpl::InternalError: pmpl itself is wrong (a broken invariant, a failing library call).
//    Details with file and line, exit code 1.
#pragma once

#include <stdexcept>
#include <string>

namespace pmpl {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class InternalError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void throw_error(std::string message);
[[noreturn]] void throw_internal(const char* file, int line, std::string message);

// Library status codes (CUDA, cuBLAS, cuDNN, NCCL, MPI) all go through one template: a
// StatusTraits specialisation says what success is, the library's name and how to describe a code.
template <class Status>
struct StatusTraits;

template <class Status>
inline void check_status(Status status, const char* call, const char* file, int line) {
  using Traits = StatusTraits<Status>;
  if (status == Traits::kSuccess) return;
  throw_internal(file, line,
                 std::string(call) + " failed: " + std::string(Traits::describe(status)) + " (" +
                     Traits::kLibrary + ")");
}

}  // namespace pmpl

#define PMPL_STATUS_CHECK(call) ::pmpl::check_status((call), #call, __FILE__, __LINE__)
