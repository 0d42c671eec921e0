// The batch loader: worker threads decode and transform images straight into a ring of batch
// buffers (uint8 NHWC images and int64 labels), a bounded number of batches ahead of the
// consumer. Normalisation is the model's first step, not the loader's.
//
// Determinism: the epoch's order is a shuffle keyed by (seed, epoch); rank r of R takes every
// R-th sample of it; each image's crop, flip, augmentation and jitter are keyed by (seed, epoch, sample
// index). So the batches are the same whatever the number of workers or the timing.
//
// A file that cannot be decoded is skipped: named once in a warning, counted, and replaced in its
// batch by the next good sample of the rank's list (deterministically), so batches keep their
// shape. If nothing decodes, next() throws.
#pragma once

#include <atomic>
#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "data/image_folder.h"
#include "data/mixup.h"
#include "data/auto_augment.h"
#include "data/color_jitter.h"
#include "data/random_erasing.h"
#include "engine/tensor.h"

namespace pmpl::data {

struct LoaderOptions {
  int64_t batch_size = 64;
  int image_size = 224;
  bool train = true;      // RandomResizedCrop + flip; false: resize + center crop
  double min_crop_scale = 0.08;  // RandomResizedCrop's smallest area fraction
  int workers = 4;
  int prefetch = 2;       // batches in flight per worker
  uint64_t seed = 0;
  int rank = 0;
  int world = 1;
  bool shuffle = true;
  bool drop_last = true;  // only full batches; false: a last, smaller batch
  // Decode JPEGs at full size as Pillow does (torchvision's bytes exactly) instead of at the
  // smallest DCT scale covering the crop (faster for big crops; ~1.5 levels mean difference).
  bool pillow_exact = false;
  std::vector<int64_t> subset;  // dataset indices to draw from; empty: all
  AutoAugmentOptions auto_augment;  // each training image after its crop (data/auto_augment.h)
  ColorJitterOptions color_jitter;  // then this (data/color_jitter.h), as timm orders them
  MixupOptions mixup;  // training batches only (data/mixup.h)
  RandomErasingOptions erasing;  // boxes placed for training images (data/random_erasing.h)
};

struct Batch {
  Tensor images;  // u8 [B, S, S, 3]
  Tensor labels;  // i64 [B]
  int64_t index = 0;
  // With mixup or cutmix on: image i is mixed with image B-1-i, whose label partner_labels[i] is,
  // and the loss weighs labels by lambda and partner_labels by 1 - lambda. Undefined otherwise.
  Tensor partner_labels;
  double lambda = 1.0;
  // timm's pair and elem modes: each image's own lambda (f32 [B]); then `lambda` is unused.
  Tensor row_lambdas;
  // With random erasing on: each image's boxes (i32 [B, max_count, 4]: top, left, height, width;
  // height 0 for none) and its fill key (i64 [B]), for ops::erase_boxes_ after normalisation.
  // Undefined otherwise.
  Tensor erase_boxes, erase_keys;
  EraseFill erase_fill = EraseFill::kPixel;
};

// Time per stage, summed over workers, and what was skipped.
struct LoaderStats {
  int64_t images = 0;
  double read_s = 0, header_s = 0, decode_s = 0, resize_s = 0, augment_s = 0;
  int64_t failures = 0;
};

class Loader {
 public:
  // `warn` receives one line per undecodable file, the first time it is met (default: stderr).
  Loader(const ImageFolder& dataset, LoaderOptions options,
         std::function<void(const std::string&)> warn = nullptr);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Starts producing `epoch`'s batches from `first_batch` on (abandoning what is left of the
  // previous epoch); a resumed run starts mid-epoch without decoding the batches it already had.
  void start_epoch(int64_t epoch, int64_t first_batch = 0);
  int64_t batches_per_epoch() const { return batches_; }
  int64_t samples_per_epoch() const;
  // The epoch's next batch, valid until the next call; nullopt once the epoch is done.
  std::optional<Batch> next();
  LoaderStats stats() const;
  // Paths of the files skipped so far, with why.
  std::vector<std::string> failures() const;

 private:
  struct Slot {
    Tensor images, labels, partner_labels, row_lambdas, erase_boxes, erase_keys;
    double lambda = 1.0;
    int64_t ready = -1;  // the batch index the slot holds, once complete
    int64_t rows = 0;
  };
  struct WorkerStats {
    std::atomic<int64_t> images{0}, read_ns{0}, header_ns{0}, decode_ns{0}, resize_ns{0}, augment_ns{0};
  };

  void work(int worker);
  void produce(int worker, int64_t batch, int64_t generation);
  int64_t rank_sample(int64_t position) const;
  bool mixing() const;
  bool erasing() const;

  const ImageFolder& dataset_;
  LoaderOptions options_;
  std::function<void(const std::string&)> warn_;
  std::vector<int64_t> pool_;     // the samples this loader draws from (subset or all)
  std::vector<int64_t> order_;    // this epoch, this rank: positions into pool_
  int64_t batches_ = 0;
  int64_t epoch_ = 0;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Slot> slots_;
  int64_t generation_ = 0;
  int64_t first_batch_ = 0;  // where this epoch starts (non-zero when resuming)
  int64_t consumed_ = 0;   // batches the consumer is done with
  int64_t next_batch_ = 0; // the batch next() returns next
  int busy_workers_ = 0;
  bool epoch_ready_ = false;  // false while start_epoch() rebuilds the epoch
  bool stop_ = false;
  std::exception_ptr error_;
  std::set<int64_t> bad_;  // dataset indices that failed
  std::vector<std::string> failure_lines_;
  std::vector<std::unique_ptr<WorkerStats>> worker_stats_;
  std::vector<std::thread> threads_;
};

}  // namespace pmpl::data
