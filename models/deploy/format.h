// The deployment file (docs/FORMAT.md): a fixed little-endian header, the model description as
// JSON, a table of tensors, the tensors 64-byte aligned, and a CRC32 of everything before it.
// Reading validates every size, offset and the checksum before touching a tensor, so a corrupt,
// truncated or foreign file is one clear error, never a crash or a read past the end. This
// module depends on nothing but the standard library, zlib and nlohmann-json (it is what the
// fuzzer exercises).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pmpl::deploy {

inline constexpr char kMagic[8] = {'P', 'M', 'P', 'L', 'M', 'D', 'L', '\0'};
// Version 2 added int8 tensors (dtype 2); a file without them is still written as version 1, so
// older readers load it. Readers take both.
inline constexpr uint32_t kFormatVersion = 2;
inline constexpr uint64_t kAlignment = 64;

enum class DeployDType : uint8_t { kF32 = 0, kF16 = 1, kI8 = 2 };

struct DeployTensor {
  std::string name;
  DeployDType dtype = DeployDType::kF32;
  std::vector<uint64_t> shape;
  uint64_t offset = 0;  // from the start of the file
  uint64_t size = 0;    // bytes
  uint64_t numel() const;
};

struct DeployFile {
  std::string config_json;
  std::vector<DeployTensor> tensors;
  std::vector<uint8_t> bytes;  // the whole file; tensors point into it
};

// Serialises `config_json` and the tensors (raw little-endian data given per tensor).
std::vector<uint8_t> encode_deploy_file(const std::string& config_json, const std::vector<DeployTensor>& tensors,
                                        const std::vector<std::vector<uint8_t>>& data);

// Parses and validates a whole file held in memory; false with a one-line reason otherwise.
bool decode_deploy_file(std::vector<uint8_t> bytes, DeployFile& out, std::string& error);

// Reads `path` and decodes it; false with "<path>: <reason>" otherwise.
bool read_deploy_file(const std::string& path, DeployFile& out, std::string& error);

}  // namespace pmpl::deploy
