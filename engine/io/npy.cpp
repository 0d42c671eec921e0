#include "engine/io/npy.h"

#include <cstdio>
#include <fstream>
#include <regex>

#include "engine/error.h"

namespace pmpl {
namespace {

bool npy_dtype(const std::string& descr, DType& out) {
  if (descr == "<f4") out = DType::kF32;
  else if (descr == "<f8") out = DType::kF64;
  else if (descr == "<i4") out = DType::kI32;
  else if (descr == "<i8") out = DType::kI64;
  else if (descr == "|u1" || descr == "<u1") out = DType::kU8;
  else return false;
  return true;
}

const char* npy_descr(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "<f4";
    case DType::kF64: return "<f8";
    case DType::kI32: return "<i4";
    case DType::kI64: return "<i8";
    case DType::kU8: return "|u1";
    default: return nullptr;
  }
}

}  // namespace

Tensor load_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  PMPL_CHECK(in.good(), "cannot open {}: check the path", path);
  const auto file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  char magic[8] = {};
  in.read(magic, 8);
  PMPL_CHECK(in.good() && std::string(magic, 6) == "\x93NUMPY",
             "{} is not a .npy file (save it with numpy.save)", path);
  const int major = static_cast<unsigned char>(magic[6]);
  uint64_t header_len = 0;
  if (major == 1) {
    unsigned char b[2];
    in.read(reinterpret_cast<char*>(b), 2);
    header_len = b[0] | (static_cast<uint64_t>(b[1]) << 8);
  } else {
    unsigned char b[4];
    in.read(reinterpret_cast<char*>(b), 4);
    header_len = b[0] | (static_cast<uint64_t>(b[1]) << 8) | (static_cast<uint64_t>(b[2]) << 16) |
                 (static_cast<uint64_t>(b[3]) << 24);
  }
  PMPL_CHECK(in.good() && (major >= 1 && major <= 3) && header_len < (1u << 20) &&
                 static_cast<uint64_t>(in.tellg()) + header_len <= file_size,
             "{}: unsupported or truncated .npy header", path);
  std::string header(header_len, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_len));

  std::smatch m;
  PMPL_CHECK(std::regex_search(header, m, std::regex("'descr':\\s*'([^']*)'")),
             "{}: .npy header has no dtype", path);
  DType dtype;
  PMPL_CHECK(npy_dtype(m[1].str(), dtype),
             "{}: dtype {} is not supported (use float32, float64, int32, int64 or uint8)", path,
             m[1].str());
  PMPL_CHECK(std::regex_search(header, std::regex("'fortran_order':\\s*False")),
             "{}: Fortran-ordered arrays are not supported (use numpy.ascontiguousarray)", path);
  PMPL_CHECK(std::regex_search(header, m, std::regex("'shape':\\s*\\(([^)]*)\\)")),
             "{}: .npy header has no shape", path);
  std::vector<int64_t> dims;
  const std::string shape_text = m[1].str();
  const std::regex number("\\d+");
  for (auto it = std::sregex_iterator(shape_text.begin(), shape_text.end(), number);
       it != std::sregex_iterator(); ++it) {
    dims.push_back(std::stoll(it->str()));
  }
  PMPL_CHECK(dims.size() <= static_cast<size_t>(Shape::kMaxRank),
             "{}: {} dimensions (pmpl supports up to {})", path, dims.size(), Shape::kMaxRank);
  Tensor t = Tensor::empty(Shape(dims), dtype);
  PMPL_CHECK(static_cast<uint64_t>(in.tellg()) + t.nbytes() <= file_size,
             "{}: truncated: shape {} needs {} data bytes", path, t.shape().str(), t.nbytes());
  in.read(static_cast<char*>(t.raw_data()), static_cast<std::streamsize>(t.nbytes()));
  PMPL_CHECK(in.good(), "{}: read error", path);
  return t;
}

void save_npy(const std::string& path, const Tensor& t) {
  const char* descr = npy_descr(t.dtype());
  PMPL_CHECK(descr != nullptr, "cannot save a {} tensor as .npy", dtype_name(t.dtype()));
  std::string shape;
  for (int64_t d : t.shape().vec()) shape += std::to_string(d) + ", ";
  if (t.rank() > 1) shape.resize(shape.size() - 2);
  if (t.rank() == 1) shape.resize(shape.size() - 1);
  std::string header =
      "{'descr': '" + std::string(descr) + "', 'fortran_order': False, 'shape': (" + shape + "), }";
  // Pad with spaces and a newline so data starts on a 64-byte boundary (format 1.0).
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    PMPL_CHECK(out.good(), "cannot write {}: check the directory exists and is writable", tmp);
    out.write("\x93NUMPY\x01\x00", 8);
    const char len[2] = {static_cast<char>(header.size() & 0xff), static_cast<char>(header.size() >> 8)};
    out.write(len, 2);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    const Tensor host = t.to(Device::cpu());
    out.write(static_cast<const char*>(host.raw_data()), static_cast<std::streamsize>(host.nbytes()));
    PMPL_CHECK(out.good(), "writing {} failed (disk full?)", tmp);
  }
  PMPL_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "cannot rename {} to {}", tmp, path);
}

}  // namespace pmpl
