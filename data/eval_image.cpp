#include "data/eval_image.h"

#include "data/transform.h"
#include "engine/error.h"

namespace pmpl::data {

EvalImageReader::EvalImageReader(int size, bool pillow_exact) : size_(size), pillow_exact_(pillow_exact) {
  PMPL_CHECK(size >= 1, "image size must be positive, got {}", size);
}

Tensor EvalImageReader::read(const std::string& path) {
  std::string error;
  PMPL_CHECK(read_file(path, file_, error), "cannot read the image {}: {}", path, error);
  ImageHeader header;
  PMPL_CHECK(read_image_header(file_.data(), file_.size(), header, error), "{}: {}", path, error);
  const CropParams crop = eval_crop(header.width, header.height, size_);
  PMPL_CHECK(decode_region(file_.data(), file_.size(), header, crop.box, size_, size_, region_, error, !pillow_exact_),
             "{}: {}", path, error);
  Tensor out = Tensor::empty(Shape{1, size_, size_, 3}, DType::kU8);
  resample_rgb(region_.pixels.data(), region_.width, region_.height, region_.box, size_, size_, false,
               out.data<uint8_t>(), scratch_);
  return out;
}

}  // namespace pmpl::data
