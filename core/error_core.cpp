#include "core/error_core.h"

namespace pmpl {

void throw_error(std::string message) { throw Error(std::move(message)); }

void throw_internal(const char* file, int line, std::string message) {
  throw InternalError(std::string(file) + ":" + std::to_string(line) + ": " + message);
}

}  // namespace pmpl
