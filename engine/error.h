// PMPL_CHECK (user errors, pmpl::Error, exit 2) and PMPL_ASSERT (bugs, pmpl::InternalError,
// exit 1), with fmt-style messages. The types live in core/error_core.h.
#pragma once

#include <fmt/format.h>

#include "core/error_core.h"

#define PMPL_CHECK(cond, ...)                                           \
  do {                                                                  \
    if (!(cond)) ::pmpl::throw_error(::fmt::format(__VA_ARGS__));       \
  } while (0)

#define PMPL_ASSERT(cond, ...)                                                       \
  do {                                                                               \
    if (!(cond))                                                                     \
      ::pmpl::throw_internal(__FILE__, __LINE__,                                     \
                             "assertion `" #cond "` failed: " + ::fmt::format(__VA_ARGS__)); \
  } while (0)
