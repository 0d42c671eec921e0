#include "data/jpeg_encode.h"

#include <cstdio>
#include <cstdlib>
#include <jpeglib.h>

#include "engine/error.h"

namespace pmpl::data {

std::vector<uint8_t> encode_jpeg(const uint8_t* pixels, int width, int height, JpegColor color,
                                 const JpegOptions& options) {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr err;
  cinfo.err = jpeg_std_error(&err);  // encoding our own well-formed buffers cannot fail
  jpeg_create_compress(&cinfo);
  unsigned char* out = nullptr;
  unsigned long out_size = 0;
  jpeg_mem_dest(&cinfo, &out, &out_size);
  cinfo.image_width = static_cast<JDIMENSION>(width);
  cinfo.image_height = static_cast<JDIMENSION>(height);
  const int channels = color == JpegColor::kGray ? 1 : color == JpegColor::kRgb ? 3 : 4;
  cinfo.input_components = channels;
  cinfo.in_color_space = color == JpegColor::kGray ? JCS_GRAYSCALE : color == JpegColor::kRgb ? JCS_RGB : JCS_CMYK;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, options.quality, TRUE);
  if (color == JpegColor::kCmyk) cinfo.write_Adobe_marker = options.adobe_cmyk ? TRUE : FALSE;
  if (options.progressive) jpeg_simple_progression(&cinfo);
  jpeg_start_compress(&cinfo, TRUE);
  std::vector<uint8_t> row(static_cast<size_t>(width) * channels);
  while (cinfo.next_scanline < cinfo.image_height) {
    const uint8_t* src = pixels + static_cast<size_t>(cinfo.next_scanline) * width * channels;
    // Adobe's CMYK convention stores ink inverted.
    for (size_t i = 0; i < row.size(); ++i) {
      row[i] = color == JpegColor::kCmyk && options.adobe_cmyk ? static_cast<uint8_t>(255 - src[i]) : src[i];
    }
    JSAMPROW line = row.data();
    jpeg_write_scanlines(&cinfo, &line, 1);
  }
  jpeg_finish_compress(&cinfo);
  std::vector<uint8_t> bytes(out, out + out_size);
  jpeg_destroy_compress(&cinfo);
  std::free(out);
  return bytes;
}

}  // namespace pmpl::data
