#include "engine/error.h"

namespace pmpl {

void throw_error(std::string message) { throw Error(std::move(message)); }

void throw_internal(const char* file, int line, std::string message) {
  throw InternalError(fmt::format("{}:{}: {}", file, line, message));
}

}  // namespace pmpl
