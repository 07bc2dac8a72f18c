// The epoch progress bar (see progress.h).
#include "train/progress.h"

#include <algorithm>
#include <iomanip>
#include <sstream>
#include <string>

namespace dsc {

ProgressBar::ProgressBar(std::ostream& out, bool enabled, int epoch, int epochs, int64_t total)
    : out_(out),
      enabled_(enabled),
      epoch_(epoch),
      epochs_(epochs),
      total_(total),
      last_(std::chrono::steady_clock::now() - std::chrono::seconds(1)) {}

bool ProgressBar::due(int64_t done) const {
  return enabled_ &&
         (done == total_ || std::chrono::steady_clock::now() - last_ >= std::chrono::milliseconds(200));
}

void ProgressBar::update(int64_t done, double loss, double images_per_sec) {
  if (!due(done)) return;
  last_ = std::chrono::steady_clock::now();
  const int width = 30;
  const int filled = int(width * done / std::max<int64_t>(1, total_));
  std::ostringstream os;
  os << "\repoch " << epoch_ << "/" << epochs_ << " [" << std::string(filled, '=')
     << (filled < width ? ">" : "") << std::string(std::max(0, width - filled - 1), ' ') << "] "
     << done << "/" << total_ << "  loss " << std::fixed << std::setprecision(4) << loss << "  "
     << std::setprecision(0) << images_per_sec << " img/s   ";
  out_ << os.str() << std::flush;
}

void ProgressBar::finish() {
  if (enabled_) out_ << "\r" << std::string(100, ' ') << "\r" << std::flush;
}

}  // namespace dsc
