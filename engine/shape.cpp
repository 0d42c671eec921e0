#include "engine/shape.h"

#include <fmt/format.h>

#include "engine/error.h"

namespace pmpl {

Shape::Shape(std::initializer_list<int64_t> dims) : Shape(std::vector<int64_t>(dims)) {}

Shape::Shape(const std::vector<int64_t>& dims) {
  PMPL_CHECK(dims.size() <= kMaxRank, "tensor rank {} is above the supported maximum of {}",
             dims.size(), kMaxRank);
  for (int64_t d : dims) PMPL_CHECK(d >= 0, "negative dimension {} in shape", d);
  rank_ = static_cast<int>(dims.size());
  for (int i = 0; i < rank_; ++i) dims_[static_cast<size_t>(i)] = dims[static_cast<size_t>(i)];
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < rank_; ++i) n *= dims_[static_cast<size_t>(i)];
  return n;
}

int Shape::normalize_axis(int axis) const {
  const int a = axis < 0 ? axis + rank_ : axis;
  PMPL_CHECK(a >= 0 && a < rank_, "axis {} is out of range for a tensor of shape {}", axis, str());
  return a;
}

bool Shape::operator==(const Shape& other) const {
  if (rank_ != other.rank_) return false;
  for (int i = 0; i < rank_; ++i) {
    if (dims_[static_cast<size_t>(i)] != other.dims_[static_cast<size_t>(i)]) return false;
  }
  return true;
}

std::string Shape::str() const { return fmt::format("[{}]", fmt::join(vec(), ", ")); }

}  // namespace pmpl
