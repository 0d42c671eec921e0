#include "engine/device.h"

#include <fmt/format.h>

#include "engine/error.h"

namespace pmpl {

std::string Device::str() const { return is_cpu() ? "cpu" : fmt::format("cuda:{}", index); }

Device parse_device(const std::string& text) {
  if (text == "cpu") return Device::cpu();
  if (text == "cuda") return Device::cuda(0);
  if (text.rfind("cuda:", 0) == 0) {
    const std::string digits = text.substr(5);
    const bool numeric = !digits.empty() && digits.size() < 4 &&
                         digits.find_first_not_of("0123456789") == std::string::npos;
    if (numeric) return Device::cuda(std::stoi(digits));
  }
  PMPL_CHECK(false, "unknown device '{}': use cpu, cuda or cuda:N", text);
  return Device::cpu();
}

}  // namespace pmpl
