#include "engine/io/safetensors_format.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include <nlohmann/json.hpp>

#include "engine/error.h"

namespace pmpl::safetensors {
namespace {

// The checksum's entry as it appears in the header text, followed by its 8 hex digits.
constexpr const char* kChecksumEntry = "\"pmpl.crc32\":\"";
constexpr size_t kChecksumDigits = 8;

// Where the checksum's digits start in the header text, or npos when it has none.
size_t checksum_digits_at(const std::string& text) {
  const size_t at = text.find(kChecksumEntry);
  return at == std::string::npos ? at : at + std::strlen(kChecksumEntry);
}

bool parse_dtype(const std::string& name, DType& out) {
  for (DType d : {DType::kF32, DType::kF64, DType::kBF16, DType::kF16, DType::kI32, DType::kI64, DType::kU8}) {
    if (name == file_dtype_name(d)) {
      out = d;
      return true;
    }
  }
  return false;
}

std::string dims_text(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

}  // namespace

const char* file_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "F32";
    case DType::kF64: return "F64";
    case DType::kBF16: return "BF16";
    case DType::kF16: return "F16";
    case DType::kI32: return "I32";
    case DType::kI64: return "I64";
    case DType::kU8: return "U8";
  }
  return "?";
}

uint32_t crc32_of(uint32_t crc, const void* data, uint64_t size) {
  const auto* p = static_cast<const Bytef*>(data);
  while (size > 0) {  // zlib takes 32-bit lengths
    const auto chunk = static_cast<uInt>(std::min<uint64_t>(size, 1u << 30));
    crc = static_cast<uint32_t>(crc32(crc, p, chunk));
    p += chunk;
    size -= chunk;
  }
  return crc;
}

void put_checksum(std::string& header_text, uint32_t crc) {
  const size_t digits = checksum_digits_at(header_text);
  PMPL_ASSERT(digits != std::string::npos && digits + kChecksumDigits <= header_text.size(),
              "the checksum entry is missing from the header");
  char hex[kChecksumDigits + 1];
  std::snprintf(hex, sizeof hex, "%08x", crc);
  header_text.replace(digits, kChecksumDigits, hex);
}

Layout parse(const uint8_t* bytes, size_t size, const std::string& path) {
  const auto file_size = static_cast<uint64_t>(size);
  PMPL_CHECK(file_size >= 8, "{} is not a safetensors file: {} bytes is shorter than its header", path, file_size);
  uint64_t header_size = 0;
  for (int i = 0; i < 8; ++i) header_size |= static_cast<uint64_t>(bytes[i]) << (8 * i);
  PMPL_CHECK(header_size <= kMaxHeaderBytes && header_size <= file_size - 8,
             "{} is not a safetensors file or is truncated (header of {} bytes in a {}-byte file)", path,
             header_size, file_size);
  std::string text(reinterpret_cast<const char*>(bytes) + 8, header_size);
  nlohmann::ordered_json header;
  try {
    header = nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::exception&) {
    PMPL_CHECK(false, "{} is not a safetensors file (its header is not JSON)", path);
  }
  PMPL_CHECK(header.is_object(), "{}: the safetensors header is not a JSON object", path);
  Layout layout;
  layout.data_start = 8 + header_size;
  const uint64_t data_size = file_size - layout.data_start;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const auto& entry = it.value();
    if (name == "__metadata__") {
      PMPL_CHECK(entry.is_object(), "{}: __metadata__ must be an object", path);
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        PMPL_CHECK(m.value().is_string(), "{}: metadata {} is not a string", path, m.key());
        layout.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    Entry e;
    e.name = name;
    const bool well_formed =
        entry.is_object() && entry.contains("dtype") && entry["dtype"].is_string() && entry.contains("shape") &&
        entry["shape"].is_array() && entry.contains("data_offsets") && entry["data_offsets"].is_array() &&
        entry["data_offsets"].size() == 2 && entry["data_offsets"][0].is_number_unsigned() &&
        entry["data_offsets"][1].is_number_unsigned();
    PMPL_CHECK(well_formed, "{}: tensor {} has a malformed header entry", path, name);
    PMPL_CHECK(parse_dtype(entry["dtype"].get<std::string>(), e.dtype),
               "{}: tensor {} has dtype {}, which pmpl does not read", path, name, entry["dtype"].get<std::string>());
    PMPL_CHECK(entry["shape"].size() <= static_cast<size_t>(kMaxRank),
               "{}: tensor {} has {} dimensions (pmpl supports up to {})", path, name, entry["shape"].size(), kMaxRank);
    // The element count, refused before it could overflow: it must fit the file's data anyway.
    uint64_t numel = 1;
    bool fits = true;
    for (const auto& d : entry["shape"]) {
      PMPL_CHECK(d.is_number_unsigned() && d.get<uint64_t>() < (1ull << 40), "{}: tensor {} has a bad dimension",
                 path, name);
      const uint64_t v = d.get<uint64_t>();
      e.dims.push_back(static_cast<int64_t>(v));
      if (fits && v != 0 && numel > data_size / v) fits = false;
      if (fits) numel *= v;
    }
    e.begin = entry["data_offsets"][0].get<uint64_t>();
    e.end = entry["data_offsets"][1].get<uint64_t>();
    const bool inside = fits && e.begin <= e.end && e.end <= data_size &&
                        (numel == 0 || dtype_size(e.dtype) <= data_size / numel) &&
                        e.end - e.begin == numel * dtype_size(e.dtype);
    PMPL_CHECK(inside,
               "{}: tensor {} ({} bytes) lies outside the file's {} data bytes, or its size does not match its "
               "shape {}: the file is truncated or corrupt",
               path, name, e.end >= e.begin ? e.end - e.begin : 0, data_size, dims_text(e.dims));
    layout.entries.push_back(std::move(e));
  }
  if (layout.metadata.count(kChecksumKey)) {
    // Files pmpl wrote carry a checksum, checked once the layout is known to fit the file; others
    // (older files, other writers') are read unchecked.
    const size_t digits = checksum_digits_at(text);
    PMPL_CHECK(digits != std::string::npos && digits + kChecksumDigits <= text.size(),
               "{} is damaged: its checksum entry is malformed; use another copy of the file", path);
    const std::string stored = text.substr(digits, kChecksumDigits);
    text.replace(digits, kChecksumDigits, kChecksumZeros);
    const uint32_t crc = crc32_of(crc32_of(0, text.data(), text.size()), bytes + layout.data_start, data_size);
    char hex[kChecksumDigits + 1];
    std::snprintf(hex, sizeof hex, "%08x", crc);
    PMPL_CHECK(stored == hex,
               "{} is damaged: its contents do not match the checksum it was written with (crc32 {} stored, {} "
               "read): a flipped bit or a partial copy; use another copy of the file",
               path, stored, hex);
  }
  return layout;
}

}  // namespace pmpl::safetensors
