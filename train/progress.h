// Progress while training: on a terminal, one line redrawn in place (epoch, step, loss, img/s,
// ETA); into a pipe or file, a plain line every log interval.
#pragma once

#include <cstdint>
#include <string>

namespace pmpl {

class Progress {
 public:
  explicit Progress(bool quiet);
  // A step's state; drawn on a terminal, ignored otherwise.
  void update(int64_t epoch, int64_t epochs, int64_t step, int64_t steps, double loss, double img_s,
              double eta_s);
  // A line that stays (epoch summaries; periodic lines when not on a terminal).
  void line(const std::string& text);
  bool tty() const { return tty_; }

 private:
  bool quiet_;
  bool tty_;
  bool dirty_ = false;  // a progress line is on screen
};

std::string format_duration(double seconds);  // "1:02:03" / "2:03"

}  // namespace pmpl
