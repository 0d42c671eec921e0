// libFuzzer target: the deployment file reader on arbitrary bytes. Built with clang and
// AddressSanitizer + UndefinedBehaviorSanitizer (tests/CMakeLists.txt); any crash, overflow or
// out-of-bounds read is a finding. Seeds: a valid file written by the encoder, so mutations
// reach deep into the table.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <zlib.h>

#include "models/deploy/format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  // Half of the inputs get a valid checksum, so that mutations get past the CRC into the header
  // and table parsing; the other half test the checksum itself.
  if (size % 2 == 0 && size >= 4) {
    const uint32_t crc = static_cast<uint32_t>(crc32(crc32(0L, Z_NULL, 0), bytes.data(), static_cast<uInt>(size - 4)));
    for (int i = 0; i < 4; ++i) bytes[size - 4 + static_cast<size_t>(i)] = static_cast<uint8_t>(crc >> (8 * i));
  }
  pmpl::deploy::DeployFile file;
  std::string error;
  if (pmpl::deploy::decode_deploy_file(std::move(bytes), file, error)) {
    // Touch every tensor's bytes: a bad bound would read outside the buffer here.
    uint64_t sum = 0;
    for (const auto& t : file.tensors) {
      for (uint64_t i = 0; i < t.size; ++i) sum += file.bytes[t.offset + i];
    }
    volatile uint64_t sink = sum;
    (void)sink;
  }
  return 0;
}
