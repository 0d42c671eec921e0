// The ImageNet folder layout: ROOT/<split>/<class>/<file>, classes sorted by name (their index is
// the label), files sorted within a class. Only .jpg, .jpeg and .png names count (any case), as
// torchvision's ImageFolder; what a file really holds is the decoder's business. Scanning uses
// readdir directly and keeps all paths in one buffer: 1.28M files index in seconds.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pmpl::data {

class ImageFolder {
 public:
  // Throws pmpl::Error naming the folder when ROOT/<split> is missing, has no class folders, or
  // a class folder holds no images.
  ImageFolder(const std::string& root, const std::string& split);

  int64_t size() const { return static_cast<int64_t>(labels_.size()); }
  int num_classes() const { return static_cast<int>(classes_.size()); }
  const std::vector<std::string>& classes() const { return classes_; }
  int label(int64_t index) const { return labels_[static_cast<size_t>(index)]; }
  // Path of sample `index` (ROOT/split/class/file).
  std::string path(int64_t index) const;
  // The same into a caller's buffer (no allocation once it has grown).
  void path_into(int64_t index, std::string& out) const;
  const std::string& directory() const { return directory_; }

 private:
  std::string directory_;
  std::vector<std::string> classes_;
  std::string names_;              // "class/file\0" for every sample, back to back
  std::vector<uint64_t> offsets_;  // start of each sample's name in names_
  std::vector<int32_t> labels_;
};

}  // namespace pmpl::data
