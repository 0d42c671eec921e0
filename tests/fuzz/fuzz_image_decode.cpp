// libFuzzer target for the loader's decode path on untrusted files: header sniffing, then the
// crop decode (JPEG at a DCT scale with skipped rows and cropped columns, or PNG) and the Pillow
// resample, exactly as a loader worker runs them. The input's last 8 bytes (when it has them)
// choose the crop box, the output size, the flip and the DCT scaling; the rest is the file.
// Built with ASan and UBSan (tests/CMakeLists.txt): any crash, leak, overflow or undefined
// behaviour is a finding; a refusal with a reason is the right answer for a bad file.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "data/image_decode.h"
#include "data/resample.h"

namespace {

// Skips images whose decode would need more pixels than this: the fuzzer looks for bugs, and
// a 4-megapixel decode exercises every code path a bigger one does, at a hundredth of the time.
constexpr double kMaxPixels = 4.0 * 1024 * 1024;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pmpl::data;
  uint8_t knobs[8] = {128, 128, 200, 200, 24, 24, 0, 1};
  size_t file_size = size;
  if (size >= 16) {
    file_size = size - 8;
    for (int i = 0; i < 8; ++i) knobs[i] = data[file_size + i];
  }
  ImageHeader header;
  std::string error;
  if (!read_image_header(data, file_size, header, error)) return 0;
  if (header.width <= 0 || header.height <= 0) __builtin_trap();  // a header must be usable
  Box box;
  box.x0 = header.width * (knobs[0] / 512.0);
  box.y0 = header.height * (knobs[1] / 512.0);
  box.width = std::max(1.0, (header.width - box.x0) * (knobs[2] + 1) / 256.0);
  box.height = std::max(1.0, (header.height - box.y0) * (knobs[3] + 1) / 256.0);
  const int out_w = 1 + knobs[4] % 64, out_h = 1 + knobs[5] % 64;
  const bool flip = knobs[6] & 1, dct_scaling = knobs[7] & 1;
  const int scale = dct_scaling ? choose_scale_eighths(box, out_w, out_h) : 8;
  if (header.format == ImageFormat::kPng || !dct_scaling) {
    if (static_cast<double>(header.width) * header.height > kMaxPixels) return 0;
  } else if (box.width * scale / 8.0 * header.height * scale / 8.0 > kMaxPixels) {
    return 0;
  }
  static DecodedRegion region;
  static ResampleScratch scratch;
  if (!decode_region(data, file_size, header, box, out_w, out_h, region, error, dct_scaling)) return 0;
  if (region.width <= 0 || region.height <= 0 ||
      region.pixels.size() < static_cast<size_t>(region.width) * region.height * 3) {
    __builtin_trap();  // a successful decode hands over the pixels it promises
  }
  std::vector<uint8_t> out(static_cast<size_t>(out_w) * out_h * 3);
  resample_rgb(region.pixels.data(), region.width, region.height, region.box, out_w, out_h, flip, out.data(), scratch);
  return 0;
}
