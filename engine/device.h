// Where a tensor's memory lives. The CUDA device exists in every build; a build without CUDA
// refuses to allocate on it with a clear message.
#pragma once

#include <string>

namespace pmpl {

enum class DeviceType : uint8_t { kCPU, kCUDA };

struct Device {
  DeviceType type = DeviceType::kCPU;
  int index = 0;

  static Device cpu() { return {DeviceType::kCPU, 0}; }
  static Device cuda(int index = 0) { return {DeviceType::kCUDA, index}; }
  bool is_cpu() const { return type == DeviceType::kCPU; }
  bool is_cuda() const { return type == DeviceType::kCUDA; }
  bool operator==(const Device&) const = default;
  std::string str() const;
};

// "cpu", "cuda", "cuda:1"; throws pmpl::Error on anything else.
Device parse_device(const std::string& text);

}  // namespace pmpl
