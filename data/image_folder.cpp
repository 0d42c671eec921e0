#include "data/image_folder.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "engine/error.h"

namespace pmpl::data {
namespace {

bool is_image_name(const char* name) {
  const char* dot = std::strrchr(name, '.');
  if (dot == nullptr) return false;
  std::string ext(dot + 1);
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == "jpg" || ext == "jpeg" || ext == "png";
}

// Entries of `dir` (not "." or hidden), as names; `want_dirs` picks folders or files.
std::vector<std::string> list(const std::string& dir, bool want_dirs) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  PMPL_CHECK(d != nullptr, "cannot read the folder {}: check the path and permissions", dir);
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    bool is_dir = e->d_type == DT_DIR;
    if (e->d_type == DT_UNKNOWN || e->d_type == DT_LNK) {  // some filesystems do not say
      struct stat st;
      is_dir = stat((dir + "/" + e->d_name).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
    }
    if (is_dir == want_dirs && (want_dirs || is_image_name(e->d_name))) out.emplace_back(e->d_name);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

ImageFolder::ImageFolder(const std::string& root, const std::string& split)
    : directory_(root + "/" + split) {
  struct stat st;
  PMPL_CHECK(stat(directory_.c_str(), &st) == 0 && S_ISDIR(st.st_mode),
             "{} does not exist: the data folder needs {}/{}/<class>/<images> (ImageNet layout)",
             directory_, root, split);
  classes_ = list(directory_, true);
  PMPL_CHECK(!classes_.empty(), "{} has no class folders: expected {}/<class>/<images>", directory_,
             directory_);
  for (size_t c = 0; c < classes_.size(); ++c) {
    const std::vector<std::string> files = list(directory_ + "/" + classes_[c], false);
    PMPL_CHECK(!files.empty(), "class folder {}/{} holds no .jpg, .jpeg or .png files", directory_,
               classes_[c]);
    for (const std::string& f : files) {
      offsets_.push_back(names_.size());
      names_ += classes_[c];
      names_ += '/';
      names_ += f;
      names_ += '\0';
      labels_.push_back(static_cast<int32_t>(c));
    }
  }
}

std::string ImageFolder::path(int64_t index) const {
  std::string out;
  path_into(index, out);
  return out;
}

void ImageFolder::path_into(int64_t index, std::string& out) const {
  out.assign(directory_);
  out += '/';
  out += names_.c_str() + offsets_[static_cast<size_t>(index)];
}

}  // namespace pmpl::data
