#include "engine/io/safetensors.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "engine/error.h"

namespace pmpl {
namespace {

// The header is JSON of at most this size; anything larger is not a sane weights file.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

const char* safetensors_dtype(DType dtype) {
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

bool parse_safetensors_dtype(const std::string& name, DType& out) {
  for (DType d : {DType::kF32, DType::kF64, DType::kBF16, DType::kF16, DType::kI32, DType::kI64,
                  DType::kU8}) {
    if (name == safetensors_dtype(d)) {
      out = d;
      return true;
    }
  }
  return false;
}

// The checksum's entry as it appears in the header text; its 8 hex digits are zeros while the
// checksum is computed (and again when it is checked).
constexpr const char* kChecksumEntry = "\"pmpl.crc32\":\"";
constexpr const char* kChecksumZeros = "00000000";
constexpr size_t kChecksumDigits = 8;

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

// Where the checksum's digits start in the header text, or npos when it has none.
size_t checksum_digits_at(const std::string& text) {
  const size_t at = text.find(kChecksumEntry);
  return at == std::string::npos ? at : at + std::strlen(kChecksumEntry);
}

// Writes all of [data, data + size) to fd, or says why not (errno's text).
bool write_all(int fd, const char* data, uint64_t size, std::string& why) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, std::min<uint64_t>(size, 1u << 30));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      why = n < 0 ? std::strerror(errno) : "nothing written";
      return false;
    }
    data += n;
    size -= static_cast<uint64_t>(n);
  }
  return true;
}

// The new file's bytes reach the disk before it is renamed into place, and the rename reaches it
// after: a crash or power loss leaves the old file or the new one, never a torn one.
void sync_directory(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  const int fd = ::open(parent.empty() ? "." : parent.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

Tensor TensorFile::find(const std::string& name) const {
  for (const auto& [n, t] : tensors) {
    if (n == name) return t;
  }
  return Tensor();
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata, const std::string& keep_previous_as) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  std::map<std::string, std::string> meta = metadata;
  meta["pmpl.crc32"] = kChecksumZeros;
  header["__metadata__"] = meta;
  std::set<std::string> seen;
  uint64_t offset = 0;
  std::vector<Tensor> host;
  for (const auto& [name, t] : tensors) {
    PMPL_ASSERT(seen.insert(name).second, "tensor name {} appears twice", name);
    header[name] = {{"dtype", safetensors_dtype(t.dtype())},
                    {"shape", t.shape().vec()},
                    {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
    host.push_back(t.to(Device::cpu()));
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the spec's recommended 8-byte alignment
  unsigned char size_bytes[8];
  for (int i = 0; i < 8; ++i) size_bytes[i] = static_cast<unsigned char>(static_cast<uint64_t>(text.size()) >> (8 * i));

  // CRC-32 (zlib's) of everything after the size: the header with zeros for its digits, then the data.
  const size_t digits = checksum_digits_at(text);
  PMPL_ASSERT(digits != std::string::npos, "the checksum entry is missing from {}'s header", path);
  uint32_t crc = crc32_of(0, text.data(), text.size());
  for (const Tensor& t : host) crc = crc32_of(crc, t.raw_data(), t.nbytes());
  char hex[kChecksumDigits + 1];
  std::snprintf(hex, sizeof hex, "%08x", crc);
  text.replace(digits, kChecksumDigits, hex);

  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  PMPL_CHECK(fd >= 0, "cannot write {}: {}; check the folder exists and is writable", tmp, std::strerror(errno));
  std::string why;
  bool ok = write_all(fd, reinterpret_cast<const char*>(size_bytes), 8, why) &&
            write_all(fd, text.data(), text.size(), why);
  for (size_t k = 0; ok && k < host.size(); ++k) {
    ok = write_all(fd, static_cast<const char*>(host[k].raw_data()), host[k].nbytes(), why);
  }
  if (ok && ::fsync(fd) != 0 && errno != EINVAL) {  // EINVAL: a file that cannot be synced (a device)
    ok = false;
    why = std::strerror(errno);
  }
  if (::close(fd) != 0 && ok) {
    ok = false;
    why = std::strerror(errno);
  }
  if (!ok) {
    ::unlink(tmp.c_str());
    PMPL_CHECK(false, "writing {} failed: {}; {} was left as it was", tmp, why, path);
  }
  if (!keep_previous_as.empty() && std::filesystem::exists(path)) {
    PMPL_CHECK(std::rename(path.c_str(), keep_previous_as.c_str()) == 0, "cannot rename {} to {}: {}", path,
               keep_previous_as, std::strerror(errno));
  }
  PMPL_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "cannot rename {} to {}: {}", tmp, path, std::strerror(errno));
  sync_directory(path);
}

TensorFile load_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  PMPL_CHECK(in.good(), "cannot open {}: check the path", path);
  const auto file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  PMPL_CHECK(file_size >= 8, "{} is not a safetensors file: {} bytes is shorter than its header",
             path, file_size);
  unsigned char size_bytes[8];
  in.read(reinterpret_cast<char*>(size_bytes), 8);
  uint64_t header_size = 0;
  for (int i = 0; i < 8; ++i) header_size |= static_cast<uint64_t>(size_bytes[i]) << (8 * i);
  PMPL_CHECK(header_size <= kMaxHeaderBytes && header_size <= file_size - 8,
             "{} is not a safetensors file or is truncated (header of {} bytes in a {}-byte file)",
             path, header_size, file_size);
  std::string text(header_size, '\0');
  in.read(text.data(), static_cast<std::streamsize>(header_size));
  PMPL_CHECK(in.good(), "{}: read error in the header", path);

  nlohmann::ordered_json header;
  try {
    header = nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::exception&) {
    PMPL_CHECK(false, "{} is not a safetensors file (its header is not JSON)", path);
  }
  PMPL_CHECK(header.is_object(), "{}: the safetensors header is not a JSON object", path);
  const uint64_t data_start = 8 + header_size, data_size = file_size - data_start;
  std::vector<char> data(data_size);
  in.read(data.data(), static_cast<std::streamsize>(data_size));
  PMPL_CHECK(in.good() || data_size == 0, "{}: read error in the tensor data", path);

  TensorFile file;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const auto& entry = it.value();
    if (name == "__metadata__") {
      PMPL_CHECK(entry.is_object(), "{}: __metadata__ must be an object", path);
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        PMPL_CHECK(m.value().is_string(), "{}: metadata {} is not a string", path, m.key());
        file.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    DType dtype;
    const bool well_formed =
        entry.is_object() && entry.contains("dtype") && entry["dtype"].is_string() &&
        entry.contains("shape") && entry["shape"].is_array() && entry.contains("data_offsets") &&
        entry["data_offsets"].is_array() && entry["data_offsets"].size() == 2 &&
        entry["data_offsets"][0].is_number_unsigned() && entry["data_offsets"][1].is_number_unsigned();
    PMPL_CHECK(well_formed, "{}: tensor {} has a malformed header entry", path, name);
    PMPL_CHECK(parse_safetensors_dtype(entry["dtype"].get<std::string>(), dtype),
               "{}: tensor {} has dtype {}, which pmpl does not read", path, name,
               entry["dtype"].get<std::string>());
    std::vector<int64_t> dims;
    for (const auto& d : entry["shape"]) {
      PMPL_CHECK(d.is_number_unsigned() && d.get<uint64_t>() < (1ull << 40),
                 "{}: tensor {} has a bad dimension", path, name);
      dims.push_back(d.get<int64_t>());
    }
    PMPL_CHECK(dims.size() <= static_cast<size_t>(Shape::kMaxRank),
               "{}: tensor {} has {} dimensions (pmpl supports up to {})", path, name, dims.size(),
               Shape::kMaxRank);
    const uint64_t begin = entry["data_offsets"][0].get<uint64_t>();
    const uint64_t end = entry["data_offsets"][1].get<uint64_t>();
    const Shape shape(dims);
    const uint64_t expected = static_cast<uint64_t>(shape.numel()) * dtype_size(dtype);
    PMPL_CHECK(begin <= end && end <= data_size && end - begin == expected,
               "{}: tensor {} ({} bytes) lies outside the file's {} data bytes, or its size does "
               "not match its shape {}: the file is truncated or corrupt",
               path, name, end - begin, data_size, shape.str());
    Tensor t = Tensor::empty(shape, dtype);
    if (expected > 0) std::memcpy(t.raw_data(), data.data() + begin, expected);
    file.tensors.emplace_back(name, t);
  }
  const auto& meta = header.find("__metadata__");
  if (meta != header.end() && meta->is_object() && meta->contains("pmpl.crc32")) {
    // Files pmpl wrote carry a checksum, checked once the layout is known to fit the file; others (older files, other writers') are read unchecked.
    const size_t digits = checksum_digits_at(text);
    PMPL_CHECK(digits != std::string::npos && digits + kChecksumDigits <= text.size(),
               "{} is damaged: its checksum entry is malformed; use another copy of the file", path);
    const std::string stored = text.substr(digits, kChecksumDigits);
    text.replace(digits, kChecksumDigits, kChecksumZeros);
    const uint32_t crc = crc32_of(crc32_of(0, text.data(), text.size()), data.data(), data_size);
    char hex[kChecksumDigits + 1];
    std::snprintf(hex, sizeof hex, "%08x", crc);
    PMPL_CHECK(stored == hex,
               "{} is damaged: its contents do not match the checksum it was written with (crc32 {} stored, {} "
               "read): a flipped bit or a partial copy; use another copy of the file",
               path, stored, hex);
  }
  return file;
}

}  // namespace pmpl
