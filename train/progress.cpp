#include "train/progress.h"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

namespace pmpl {

Progress::Progress(bool quiet) : quiet_(quiet), tty_(::isatty(::fileno(stderr)) != 0) {}

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(seconds < 0 ? 0 : seconds + 0.5);
  return s >= 3600 ? fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
                   : fmt::format("{}:{:02}", s / 60, s % 60);
}

void Progress::update(int64_t epoch, int64_t epochs, int64_t step, int64_t steps, double loss,
                      double img_s, double eta_s) {
  if (quiet_ || !tty_) return;
  const int width = 24;
  const int filled = steps > 0 ? static_cast<int>(width * step / steps) : 0;
  std::fprintf(stderr, "\r epoch %lld/%lld [%s%s] %lld/%lld  loss %.4f  %.0f img/s  ETA %s \033[K",
               static_cast<long long>(epoch + 1), static_cast<long long>(epochs), std::string(filled, '=').c_str(),
               std::string(width - filled, ' ').c_str(), static_cast<long long>(step), static_cast<long long>(steps),
               loss, img_s, format_duration(eta_s).c_str());
  std::fflush(stderr);
  dirty_ = true;
}

void Progress::line(const std::string& text) {
  if (quiet_) return;
  if (dirty_) {
    std::fprintf(stderr, "\r\033[K");
    dirty_ = false;
  }
  std::fprintf(stderr, "%s\n", text.c_str());
}

}  // namespace pmpl
