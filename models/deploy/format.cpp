#include "models/deploy/format.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <set>
#include <string_view>

#include <nlohmann/json.hpp>

namespace pmpl::deploy {
namespace {

// Header: magic[8], u32 version, u32 flags, u64 config size, u64 tensor count.
constexpr size_t kHeaderBytes = 32;
constexpr uint64_t kMaxConfigBytes = 1 << 24;
constexpr uint64_t kMaxTensors = 1 << 16;
constexpr uint32_t kMaxRank = 8;

void put(std::vector<uint8_t>& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// A bounds-checked little-endian cursor over the file.
struct Cursor {
  const uint8_t* data;
  uint64_t size;
  uint64_t at = 0;
  bool ok = true;
  uint64_t get(int bytes) {
    if (!ok || size - at < static_cast<uint64_t>(bytes) || at > size) {
      ok = false;
      return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(data[at + static_cast<uint64_t>(i)]) << (8 * i);
    at += static_cast<uint64_t>(bytes);
    return v;
  }
  std::string text(uint64_t n) {
    if (!ok || n > size - at) {
      ok = false;
      return {};
    }
    std::string s(reinterpret_cast<const char*>(data + at), static_cast<size_t>(n));
    at += n;
    return s;
  }
};

uint64_t element_size(DeployDType d) { return d == DeployDType::kF32 ? 4 : d == DeployDType::kF16 ? 2 : 1; }

uint32_t crc32_of(const uint8_t* data, uint64_t n) {
  uLong crc = crc32(0L, Z_NULL, 0);
  while (n > 0) {
    const auto chunk = static_cast<uInt>(std::min<uint64_t>(n, 1u << 30));
    crc = crc32(crc, data, chunk);
    data += chunk;
    n -= chunk;
  }
  return static_cast<uint32_t>(crc);
}

}  // namespace

uint64_t DeployTensor::numel() const {
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;
  return n;
}

std::vector<uint8_t> encode_deploy_file(const std::string& config_json, const std::vector<DeployTensor>& tensors,
                                        const std::vector<std::vector<uint8_t>>& data) {
  std::vector<uint8_t> out(kMagic, kMagic + 8);
  const bool int8 = std::any_of(tensors.begin(), tensors.end(), [](const DeployTensor& t) {
    return t.dtype == DeployDType::kI8;
  });
  put(out, int8 ? kFormatVersion : 1, 4);
  put(out, 0, 4);
  put(out, config_json.size(), 8);
  put(out, tensors.size(), 8);
  out.insert(out.end(), config_json.begin(), config_json.end());
  // The table's size is known up front, so offsets can be written in one pass.
  uint64_t table = 0;
  for (const DeployTensor& t : tensors) table += 2 + t.name.size() + 1 + 1 + 8 * t.shape.size() + 16;
  uint64_t offset = (out.size() + table + kAlignment - 1) / kAlignment * kAlignment;
  std::vector<uint64_t> offsets;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const DeployTensor& t = tensors[i];
    put(out, t.name.size(), 2);
    out.insert(out.end(), t.name.begin(), t.name.end());
    put(out, static_cast<uint8_t>(t.dtype), 1);
    put(out, t.shape.size(), 1);
    for (uint64_t d : t.shape) put(out, d, 8);
    put(out, offset, 8);
    put(out, data[i].size(), 8);
    offsets.push_back(offset);
    offset = (offset + data[i].size() + kAlignment - 1) / kAlignment * kAlignment;
  }
  for (size_t i = 0; i < tensors.size(); ++i) {
    out.resize(static_cast<size_t>(offsets[i]), 0);
    out.insert(out.end(), data[i].begin(), data[i].end());
  }
  put(out, crc32_of(out.data(), out.size()), 4);
  return out;
}

bool decode_deploy_file(std::vector<uint8_t> bytes, DeployFile& out, std::string& error) {
  const uint64_t n = bytes.size();
  if (n < kHeaderBytes + 4 || std::memcmp(bytes.data(), kMagic, 8) != 0) {
    error = "not a pmpl model file (no PMPLMDL header); export one with `pmpl export`";
    return false;
  }
  Cursor c{bytes.data(), n - 4, 8};
  const uint64_t version = c.get(4);
  if (version < 1 || version > kFormatVersion) {
    error = "model file format version " + std::to_string(version) + " is not supported (this pmpl reads versions 1 to " +
            std::to_string(kFormatVersion) + "); re-export it with this pmpl";
    return false;
  }
  uint32_t stored_crc = 0;
  for (int i = 0; i < 4; ++i) stored_crc |= static_cast<uint32_t>(bytes[n - 4 + static_cast<uint64_t>(i)]) << (8 * i);
  if (crc32_of(bytes.data(), n - 4) != stored_crc) {
    error = "the model file is corrupt or truncated (CRC32 mismatch)";
    return false;
  }
  c.get(4);  // flags
  const uint64_t config_size = c.get(8), count = c.get(8);
  if (!c.ok || config_size > kMaxConfigBytes || count > kMaxTensors) {
    error = "the model file's header is implausible (corrupt file?)";
    return false;
  }
  out.config_json = c.text(config_size);
  if (!c.ok || !nlohmann::json::accept(out.config_json)) {
    error = "the model file's description is not valid JSON (corrupt file?)";
    return false;
  }
  out.tensors.clear();
  for (uint64_t i = 0; i < count && c.ok; ++i) {
    DeployTensor t;
    t.name = c.text(c.get(2));
    const uint64_t dtype = c.get(1), rank = c.get(1);
    if (!c.ok || dtype > (version >= 2 ? 2 : 1) || rank > kMaxRank) {
      error = "tensor table entry " + std::to_string(i) + " is malformed";
      return false;
    }
    t.dtype = static_cast<DeployDType>(dtype);
    uint64_t numel = 1;
    for (uint64_t r = 0; r < rank; ++r) {
      const uint64_t d = c.get(8);
      if (d != 0 && numel > std::numeric_limits<uint64_t>::max() / 4 / d) {
        error = "tensor " + t.name + " has an implausible shape";
        return false;
      }
      numel *= d;
      t.shape.push_back(d);
    }
    t.offset = c.get(8);
    t.size = c.get(8);
    if (!c.ok || t.size != numel * element_size(t.dtype) || t.offset % kAlignment != 0 || t.offset > n - 4 ||
        t.size > n - 4 - t.offset) {
      error = "tensor " + t.name + " lies outside the file or does not match its shape (corrupt file?)";
      return false;
    }
    out.tensors.push_back(std::move(t));
  }
  if (!c.ok) {
    error = "the tensor table runs past the end of the file (truncated?)";
    return false;
  }
  for (const DeployTensor& t : out.tensors) {
    if (t.offset < c.at) {
      error = "tensor " + t.name + " overlaps the header (corrupt file?)";
      return false;
    }
  }
  // No two tensors share bytes or a name: a writer never does that, so a file that does is damaged.
  std::vector<const DeployTensor*> by_offset;
  for (const DeployTensor& t : out.tensors) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const DeployTensor* a, const DeployTensor* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i - 1]->offset + by_offset[i - 1]->size > by_offset[i]->offset) {
      error = "tensors " + by_offset[i - 1]->name + " and " + by_offset[i]->name + " overlap (corrupt file?)";
      return false;
    }
  }
  std::set<std::string_view> names;
  for (const DeployTensor& t : out.tensors) {
    if (!names.insert(t.name).second) {
      error = "tensor " + t.name + " appears twice (corrupt file?)";
      return false;
    }
  }
  out.bytes = std::move(bytes);
  return true;
}

bool read_deploy_file(const std::string& path, DeployFile& out, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in.good()) {
    error = path + ": cannot open the file; check the path";
    return false;
  }
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!decode_deploy_file(std::move(bytes), out, error)) {
    error = path + ": " + error;
    return false;
  }
  return true;
}

}  // namespace pmpl::deploy
