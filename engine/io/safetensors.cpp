#include "engine/io/safetensors.h"

#include <cstdio>
#include <cstring>
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

void write_u64_le(std::ostream& out, uint64_t v) {
  unsigned char bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<unsigned char>(v >> (8 * i));
  out.write(reinterpret_cast<const char*>(bytes), 8);
}

}  // namespace

Tensor TensorFile::find(const std::string& name) const {
  for (const auto& [n, t] : tensors) {
    if (n == name) return t;
  }
  return Tensor();
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    PMPL_ASSERT(seen.insert(name).second, "tensor name {} appears twice", name);
    header[name] = {{"dtype", safetensors_dtype(t.dtype())},
                    {"shape", t.shape().vec()},
                    {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the spec's recommended 8-byte alignment

  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    PMPL_CHECK(out.good(), "cannot write {}: check the directory exists and is writable", tmp);
    write_u64_le(out, text.size());
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& [name, t] : tensors) {
      const Tensor host = t.to(Device::cpu());
      out.write(static_cast<const char*>(host.raw_data()), static_cast<std::streamsize>(host.nbytes()));
    }
    out.flush();
    PMPL_CHECK(out.good(), "writing {} failed (disk full?)", tmp);
  }
  PMPL_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "cannot rename {} to {}", tmp, path);
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
    in.seekg(static_cast<std::streamoff>(data_start + begin));
    in.read(static_cast<char*>(t.raw_data()), static_cast<std::streamsize>(expected));
    PMPL_CHECK(in.good(), "{}: read error in tensor {}", path, name);
    file.tensors.emplace_back(name, t);
  }
  return file;
}

}  // namespace pmpl
