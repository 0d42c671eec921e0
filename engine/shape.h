// A tensor shape: up to 5 dimensions, stored inline (shapes are copied on every op).
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace pmpl {

class Shape {
 public:
  static constexpr int kMaxRank = 5;

  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  explicit Shape(const std::vector<int64_t>& dims);

  int rank() const { return rank_; }
  int64_t operator[](int axis) const { return dims_[static_cast<size_t>(axis)]; }
  int64_t& operator[](int axis) { return dims_[static_cast<size_t>(axis)]; }
  // Dimension from the end: back(0) is the last (channel) dimension.
  int64_t back(int from_end = 0) const { return dims_[static_cast<size_t>(rank_ - 1 - from_end)]; }
  int64_t numel() const;
  std::vector<int64_t> vec() const { return {dims_.begin(), dims_.begin() + rank_}; }
  // Accepts negative axes (Python style); throws pmpl::Error when out of range.
  int normalize_axis(int axis) const;
  bool operator==(const Shape& other) const;
  std::string str() const;  // "[2, 3, 4]"

 private:
  std::array<int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};

}  // namespace pmpl
