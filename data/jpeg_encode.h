// JPEG encoding through libjpeg-turbo: for `pmpl data fashion-mnist` and for the tests' awkward
// files (grayscale, CMYK, progressive).
#pragma once

#include <cstdint>
#include <vector>

namespace pmpl::data {

enum class JpegColor : uint8_t { kGray, kRgb, kCmyk };

struct JpegOptions {
  int quality = 95;
  bool progressive = false;
  bool adobe_cmyk = true;  // write CMYK as Adobe does (inverted, with the APP14 marker)
};

// `pixels`: width x height x (1, 3 or 4) bytes per `color`.
std::vector<uint8_t> encode_jpeg(const uint8_t* pixels, int width, int height, JpegColor color,
                                 const JpegOptions& options = {});

}  // namespace pmpl::data
