#include "data/image_decode.h"

#include <png.h>
// jpeglib.h needs FILE and size_t declared first.
#include <cstdio>
#include <jerror.h>
#include <jpeglib.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstring>

namespace pmpl::data {
namespace {

bool is_jpeg(const uint8_t* d, size_t n) { return n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF; }
bool is_png(const uint8_t* d, size_t n) {
  static const uint8_t magic[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  return n >= 8 && std::memcmp(d, magic, 8) == 0;
}

// A JPEG ends with the EOI marker FF D9, possibly followed by padding or junk. Without one in the
// last 4 KiB the file was cut short: reject it even when the crop would not reach the damage,
// so whether a file counts as good does not depend on the random crop.
bool has_end_marker(const uint8_t* d, size_t n) {
  const size_t start = n > 4096 ? n - 4096 : 0;
  for (size_t i = n; i-- > start + 1;) {
    if (d[i - 1] == 0xFF && d[i] == 0xD9) return true;
  }
  return false;
}

// libjpeg error handling without exit(): errors longjmp back, and a premature end of the data
// (a truncated file, which libjpeg would otherwise pad with gray) is treated as an error too.
struct JpegError {
  jpeg_error_mgr manager;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void on_jpeg_error(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

void on_jpeg_message(j_common_ptr cinfo, int level) {
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) on_jpeg_error(cinfo);
}

// Adobe CMYK JPEGs store inverted ink (PIL's "CMYK;I"): with the marker, r = c * k / 255; without
// it, r = (255 - c) * (255 - k) / 255. Rounded as PIL's MULDIV255.
inline uint8_t muldiv255(int a, int b) {
  const int t = a * b + 128;
  return static_cast<uint8_t>((t + (t >> 8)) >> 8);
}

void cmyk_to_rgb(const uint8_t* in, uint8_t* out, int width, bool inverted) {
  for (int x = 0; x < width; ++x) {
    const int c = inverted ? in[4 * x] : 255 - in[4 * x];
    const int m = inverted ? in[4 * x + 1] : 255 - in[4 * x + 1];
    const int y = inverted ? in[4 * x + 2] : 255 - in[4 * x + 2];
    const int k = inverted ? in[4 * x + 3] : 255 - in[4 * x + 3];
    out[3 * x] = muldiv255(c, k);
    out[3 * x + 1] = muldiv255(m, k);
    out[3 * x + 2] = muldiv255(y, k);
  }
}

struct JpegDecoder {
  jpeg_decompress_struct cinfo;
  JpegError err;
  JpegDecoder() {
    cinfo.err = jpeg_std_error(&err.manager);
    err.manager.error_exit = on_jpeg_error;
    err.manager.emit_message = on_jpeg_message;
    jpeg_create_decompress(&cinfo);
  }
  ~JpegDecoder() { jpeg_destroy_decompress(&cinfo); }
};

bool jpeg_header(const uint8_t* data, size_t size, ImageHeader& header, std::string& error) {
  JpegDecoder dec;
  if (setjmp(dec.err.jump)) {
    error = std::string("JPEG header: ") + dec.err.message;
    return false;
  }
  jpeg_mem_src(&dec.cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&dec.cinfo, TRUE);
  header = {ImageFormat::kJpeg, static_cast<int>(dec.cinfo.image_width),
            static_cast<int>(dec.cinfo.image_height)};
  return true;
}

bool jpeg_region(const uint8_t* data, size_t size, const Box& box, int out_w, int out_h,
                 bool dct_scaling, DecodedRegion& region, std::string& error) {
  if (!has_end_marker(data, size)) {
    error = "truncated JPEG (no end-of-image marker)";
    return false;
  }
  // Everything with a destructor exists before setjmp: a longjmp must not skip one.
  JpegDecoder dec;
  jpeg_decompress_struct& cinfo = dec.cinfo;
  std::vector<uint8_t>& pixels = region.pixels;
  std::vector<uint8_t>& cmyk_row = region.scratch;
  if (setjmp(dec.err.jump)) {
    error = std::string("JPEG: ") + dec.err.message;
    return false;
  }
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  const bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
  const int eighths = dct_scaling ? choose_scale_eighths(box, out_w, out_h) : 8;
  cinfo.scale_num = static_cast<unsigned>(eighths);
  cinfo.scale_denom = 8;
  jpeg_start_decompress(&cinfo);
  const double s = static_cast<double>(cinfo.output_width) / cinfo.image_width;
  const double sy = static_cast<double>(cinfo.output_height) / cinfo.image_height;
  // Rows and columns the resampler will touch: the scaled box widened by the filter's reach
  // (Pillow's support: max(1, downscale factor) pixels) and two more, because the outermost decoded
  // pixel of a crop lacks its chroma neighbour (fancy upsampling) and differs from a full decode.
  const auto out_cols = static_cast<int>(cinfo.output_width), out_rows = static_cast<int>(cinfo.output_height);
  const int reach_x = static_cast<int>(std::ceil(std::max(1.0, box.width * s / out_w))) + 2;
  const int reach_y = static_cast<int>(std::ceil(std::max(1.0, box.height * sy / out_h))) + 2;
  const int x0 = std::clamp(static_cast<int>(std::floor(box.x0 * s)) - reach_x, 0, out_cols - 1);
  const int x1 = std::clamp(static_cast<int>(std::ceil((box.x0 + box.width) * s)) + reach_x, x0 + 1, out_cols);
  const int y0 = std::clamp(static_cast<int>(std::floor(box.y0 * sy)) - reach_y, 0, out_rows - 1);
  const int y1 = std::clamp(static_cast<int>(std::ceil((box.y0 + box.height) * sy)) + reach_y, y0 + 1, out_rows);
  JDIMENSION xoff = static_cast<JDIMENSION>(x0), cw = static_cast<JDIMENSION>(x1 - x0);
  if (cw < cinfo.output_width) jpeg_crop_scanline(&cinfo, &xoff, &cw);  // widens to iMCU edges
  const int width = static_cast<int>(cw), height = y1 - y0;
  pixels.resize(static_cast<size_t>(width) * height * 3);
  if (cmyk) cmyk_row.resize(static_cast<size_t>(width) * 4);
  if (y0 > 0) jpeg_skip_scanlines(&cinfo, static_cast<JDIMENSION>(y0));
  for (int row = 0; row < height; ++row) {
    uint8_t* dst = pixels.data() + static_cast<size_t>(row) * width * 3;
    JSAMPROW line = cmyk ? cmyk_row.data() : dst;
    if (jpeg_read_scanlines(&cinfo, &line, 1) != 1) {
      error = "JPEG: no more scanlines where the header promised them";
      return false;
    }
    if (cmyk) cmyk_to_rgb(cmyk_row.data(), dst, width, cinfo.saw_Adobe_marker);
  }
  jpeg_abort_decompress(&cinfo);  // the rows below the crop are never decoded
  region.width = width;
  region.height = height;
  region.scale_eighths = eighths;
  region.box = {box.x0 * s - static_cast<double>(xoff), box.y0 * sy - y0, box.width * s, box.height * sy};
  return true;
}

bool png_header(const uint8_t* data, size_t size, ImageHeader& header, std::string& error) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, data, size)) {
    error = std::string("PNG header: ") + image.message;
    return false;
  }
  header = {ImageFormat::kPng, static_cast<int>(image.width), static_cast<int>(image.height)};
  png_image_free(&image);
  return true;
}

bool png_region(const uint8_t* data, size_t size, const Box& box, DecodedRegion& region,
                std::string& error) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, data, size)) {
    error = std::string("PNG: ") + image.message;
    return false;
  }
  image.format = PNG_FORMAT_RGB;
  region.pixels.resize(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, region.pixels.data(), 0, nullptr)) {
    error = std::string("PNG: ") + image.message;
    png_image_free(&image);
    return false;
  }
  region.width = static_cast<int>(image.width);
  region.height = static_cast<int>(image.height);
  region.scale_eighths = 8;
  region.box = box;
  return true;
}

}  // namespace

// Only 1/8, 1/4, 1/2 and 1: libjpeg-turbo has SIMD inverse DCTs for those; the other M/8
// scales run plain C and decode slower than full size.
int choose_scale_eighths(const Box& box, int out_width, int out_height) {
  for (int eighths : {1, 2, 4}) {
    if (box.width * eighths / 8.0 >= out_width && box.height * eighths / 8.0 >= out_height) return eighths;
  }
  return 8;
}

bool read_image_header(const uint8_t* data, size_t size, ImageHeader& header, std::string& error) {
  if (size == 0) {
    error = "empty file";
    return false;
  }
  bool ok = false;
  if (is_jpeg(data, size)) ok = jpeg_header(data, size, header, error);
  else if (is_png(data, size)) ok = png_header(data, size, header, error);
  else error = "not a JPEG or PNG image";
  if (ok && (header.width <= 0 || header.height <= 0 || header.width > 65500 || header.height > 65500)) {
    error = "implausible image size " + std::to_string(header.width) + "x" + std::to_string(header.height);
    ok = false;
  }
  return ok;
}

bool decode_region(const uint8_t* data, size_t size, const ImageHeader& header, const Box& box,
                   int out_width, int out_height, DecodedRegion& region, std::string& error,
                   bool dct_scaling) {
  return header.format == ImageFormat::kJpeg
             ? jpeg_region(data, size, box, out_width, out_height, dct_scaling, region, error)
             : png_region(data, size, box, region, error);
}

bool read_file(const std::string& path, std::vector<uint8_t>& bytes, std::string& error) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    error = "cannot open the file";
    return false;
  }
  bool ok = std::fseek(f, 0, SEEK_END) == 0;
  const long size = ok ? std::ftell(f) : -1;
  ok = ok && size >= 0 && std::fseek(f, 0, SEEK_SET) == 0;
  if (ok) {
    bytes.resize(static_cast<size_t>(size));
    ok = std::fread(bytes.data(), 1, bytes.size(), f) == bytes.size();
  }
  std::fclose(f);
  if (!ok) error = "read error";
  return ok;
}

}  // namespace pmpl::data
