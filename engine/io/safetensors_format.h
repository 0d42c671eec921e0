// The safetensors layout on its own, without tensors or files: the header's parse and every check
// a reader needs before it trusts an offset (what load_safetensors runs, and what
// tests/fuzz/fuzz_safetensors.cpp fuzzes), and the CRC-32 pmpl adds to the metadata.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace pmpl::safetensors {

// The file's header holds no more JSON than this; anything larger is not a sane weights file.
inline constexpr uint64_t kMaxHeaderBytes = 100ull << 20;
inline constexpr int kMaxRank = 5;  // Shape::kMaxRank

struct Entry {
  std::string name;
  DType dtype;
  std::vector<int64_t> dims;
  uint64_t begin = 0, end = 0;  // within the data, which starts at Layout::data_start
};

struct Layout {
  std::vector<Entry> entries;  // in header order
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;
};

// Parses `bytes` (the whole file), checking the header, that every tensor's bytes lie inside the
// file and match its shape, and, when the metadata carries pmpl.crc32, the checksum. Anything
// wrong is a pmpl::Error naming `where` and what is wrong.
Layout parse(const uint8_t* bytes, size_t size, const std::string& where);

// The dtype's name in the format ("F32", ...).
const char* file_dtype_name(DType dtype);

// The header entry pmpl writes: "pmpl.crc32" with 8 zero digits while the CRC-32 is computed; the
// writer then puts the digits in place with put_checksum.
inline constexpr const char* kChecksumKey = "pmpl.crc32";
inline constexpr const char* kChecksumZeros = "00000000";
// CRC-32 (zlib's) of the header text, then of each data block in turn (crc starts at 0).
uint32_t crc32_of(uint32_t crc, const void* data, uint64_t size);
// Writes `crc` as 8 hex digits over the zeros in `header_text`.
void put_checksum(std::string& header_text, uint32_t crc);

}  // namespace pmpl::safetensors
