#include "engine/io/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/io/safetensors_format.h"

namespace pmpl {
namespace {

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
  meta[safetensors::kChecksumKey] = safetensors::kChecksumZeros;
  header["__metadata__"] = meta;
  std::set<std::string> seen;
  uint64_t offset = 0;
  std::vector<Tensor> host;
  for (const auto& [name, t] : tensors) {
    PMPL_ASSERT(seen.insert(name).second, "tensor name {} appears twice", name);
    header[name] = {{"dtype", safetensors::file_dtype_name(t.dtype())},
                    {"shape", t.shape().vec()},
                    {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
    host.push_back(t.to(Device::cpu()));
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the spec's recommended 8-byte alignment
  unsigned char size_bytes[8];
  for (int i = 0; i < 8; ++i) size_bytes[i] = static_cast<unsigned char>(static_cast<uint64_t>(text.size()) >> (8 * i));

  // CRC-32 of everything after the size: the header with zeros for its digits, then the data.
  uint32_t crc = safetensors::crc32_of(0, text.data(), text.size());
  for (const Tensor& t : host) crc = safetensors::crc32_of(crc, t.raw_data(), t.nbytes());
  safetensors::put_checksum(text, crc);

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
  const auto file_size = static_cast<size_t>(in.tellg());
  in.seekg(0);
  std::vector<uint8_t> bytes(file_size);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(file_size));
  PMPL_CHECK(in.good() || file_size == 0, "{}: read error", path);
  const safetensors::Layout layout = safetensors::parse(bytes.data(), bytes.size(), path);
  TensorFile file;
  file.metadata = layout.metadata;
  for (const safetensors::Entry& e : layout.entries) {
    Tensor t = Tensor::empty(Shape(e.dims), e.dtype);
    if (e.end > e.begin) std::memcpy(t.raw_data(), bytes.data() + layout.data_start + e.begin, e.end - e.begin);
    file.tensors.emplace_back(e.name, t);
  }
  return file;
}

}  // namespace pmpl
