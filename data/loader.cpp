#include "data/loader.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>

#include "data/image_decode.h"
#include "data/resample.h"
#include "data/transform.h"
#include "engine/error.h"
#include "engine/profile.h"
#include "core/rng.h"

namespace pmpl::data {
namespace {

using Clock = std::chrono::steady_clock;

int64_t elapsed_ns(Clock::time_point since) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - since).count();
}

// The reusable buffers of one worker: after the first images nothing is allocated per image.
struct WorkerBuffers {
  std::string path;
  std::vector<uint8_t> file;
  DecodedRegion region;
  ResampleScratch scratch;
  std::vector<uint8_t> augment_scratch;
  std::vector<uint8_t> originals;  // the batch before pair / elem mixing
  std::string error;
};

}  // namespace

Loader::Loader(const ImageFolder& dataset, LoaderOptions options,
               std::function<void(const std::string&)> warn)
    : dataset_(dataset), options_(std::move(options)), warn_(std::move(warn)) {
  PMPL_CHECK(options_.batch_size > 0, "--batch-size must be positive, got {}", options_.batch_size);
  PMPL_CHECK(options_.image_size >= 8 && options_.image_size <= 4096,
             "--input-size {} is outside [8, 4096]", options_.image_size);
  PMPL_CHECK(options_.workers >= 1 && options_.workers <= 256, "--workers {} is outside [1, 256]",
             options_.workers);
  PMPL_CHECK(options_.world >= 1 && options_.rank >= 0 && options_.rank < options_.world,
             "rank {} of {} processes is out of range", options_.rank, options_.world);
  if (!warn_) warn_ = [](const std::string& line) { std::fprintf(stderr, "pmpl: warning: %s\n", line.c_str()); };
  if (options_.subset.empty()) {
    pool_.resize(static_cast<size_t>(dataset.size()));
    for (size_t i = 0; i < pool_.size(); ++i) pool_[i] = static_cast<int64_t>(i);
  } else {
    pool_ = options_.subset;
    for (int64_t i : pool_) PMPL_ASSERT(i >= 0 && i < dataset.size(), "subset index {} out of range", i);
  }
  const int64_t slots = static_cast<int64_t>(options_.workers) * std::max(1, options_.prefetch);
  const int64_t s = options_.image_size;
  for (int64_t i = 0; i < slots; ++i) {
    Slot slot;
    // Page-locked where a GPU is present: batches copy to it at full PCIe speed (synchronously;
    // an asynchronous prefetch would also need the slot held until the copy is done).
    slot.images = Tensor::empty_pinned(Shape{options_.batch_size, s, s, 3}, DType::kU8);
    slot.labels = Tensor::empty_pinned(Shape{options_.batch_size}, DType::kI64);
    if (mixing()) slot.partner_labels = Tensor::empty_pinned(Shape{options_.batch_size}, DType::kI64);
    if (mixing() && options_.mixup.mode != MixMode::kBatch) {
      slot.row_lambdas = Tensor::empty_pinned(Shape{options_.batch_size}, DType::kF32);
    }
    if (erasing()) {
      slot.erase_boxes = Tensor::empty_pinned(Shape{options_.batch_size, options_.erasing.max_count, 4}, DType::kI32);
      slot.erase_keys = Tensor::empty_pinned(Shape{options_.batch_size}, DType::kI64);
    }
    slots_.push_back(std::move(slot));
  }
  for (int w = 0; w < options_.workers; ++w) worker_stats_.push_back(std::make_unique<WorkerStats>());
  for (int w = 0; w < options_.workers; ++w) threads_.emplace_back([this, w] { work(w); });
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  for (std::thread& t : threads_) t.join();
}

bool Loader::mixing() const { return options_.train && options_.mixup.enabled(); }

bool Loader::erasing() const { return options_.train && options_.erasing.enabled(); }

int64_t Loader::samples_per_epoch() const { return static_cast<int64_t>(order_.size()); }

void Loader::start_epoch(int64_t epoch, int64_t first_batch) {
  std::unique_lock<std::mutex> lock(mutex_);
  ++generation_;
  epoch_ready_ = false;
  changed_.notify_all();
  changed_.wait(lock, [&] { return busy_workers_ == 0; });

  // The same permutation on every rank (keyed by seed and epoch), then every world-th of it.
  const auto n = static_cast<int64_t>(pool_.size());
  std::vector<int64_t> perm(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) perm[static_cast<size_t>(i)] = i;
  if (options_.shuffle) {
    const uint64_t key = options_.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(epoch) + 1;
    for (int64_t i = n - 1; i > 0; --i) {
      const Philox4 r = philox4x32(key, static_cast<uint64_t>(i));
      const uint64_t bits = (static_cast<uint64_t>(r.v[0]) << 32) | r.v[1];
      std::swap(perm[static_cast<size_t>(i)], perm[static_cast<size_t>(bits % static_cast<uint64_t>(i + 1))]);
    }
  }
  order_.clear();
  for (int64_t p = options_.rank; p < n; p += options_.world) order_.push_back(perm[static_cast<size_t>(p)]);
  if (options_.drop_last) {
    // Every rank takes the same number of full batches.
    batches_ = n / options_.world / options_.batch_size;
    order_.resize(static_cast<size_t>(batches_ * options_.batch_size));
  } else {
    batches_ = (static_cast<int64_t>(order_.size()) + options_.batch_size - 1) / options_.batch_size;
  }
  epoch_ = epoch;
  for (Slot& slot : slots_) slot.ready = -1;
  first_batch_ = std::clamp<int64_t>(first_batch, 0, batches_);
  consumed_ = first_batch_;
  next_batch_ = first_batch_;
  error_ = nullptr;
  epoch_ready_ = true;
  changed_.notify_all();
}

std::optional<Batch> Loader::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  PMPL_ASSERT(epoch_ready_, "Loader::next() before start_epoch()");
  consumed_ = next_batch_;  // the batch handed out last time is released
  changed_.notify_all();
  if (error_) std::rethrow_exception(error_);
  if (next_batch_ >= batches_) return std::nullopt;
  Slot& slot = slots_[static_cast<size_t>(next_batch_ % static_cast<int64_t>(slots_.size()))];
  changed_.wait(lock, [&] { return slot.ready == next_batch_ || error_ != nullptr; });
  if (error_) std::rethrow_exception(error_);
  const int64_t s = options_.image_size;
  Batch batch;
  batch.images = slot.images.view_slice(0, Shape{slot.rows, s, s, 3});
  batch.labels = slot.labels.view_slice(0, Shape{slot.rows});
  if (mixing()) {
    batch.partner_labels = slot.partner_labels.view_slice(0, Shape{slot.rows});
    batch.lambda = slot.lambda;
    if (slot.row_lambdas.defined()) batch.row_lambdas = slot.row_lambdas.view_slice(0, Shape{slot.rows});
  }
  if (erasing()) {
    batch.erase_boxes = slot.erase_boxes.view_slice(0, Shape{slot.rows, options_.erasing.max_count, 4});
    batch.erase_keys = slot.erase_keys.view_slice(0, Shape{slot.rows});
    batch.erase_fill = options_.erasing.fill;
  }
  batch.index = next_batch_++;
  return batch;
}

void Loader::work(int worker) {
  int64_t my_generation = 0;
  for (;;) {
    int64_t batches;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] { return stop_ || (epoch_ready_ && generation_ != my_generation); });
      if (stop_) return;
      my_generation = generation_;
      batches = batches_;
      ++busy_workers_;
    }
    const int64_t ring = static_cast<int64_t>(slots_.size());
    int64_t first;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      first = first_batch_;
    }
    for (int64_t b = first + worker; b < batches; b += options_.workers) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return stop_ || generation_ != my_generation || b < consumed_ + ring; });
        if (stop_ || generation_ != my_generation) break;
      }
      try {
        produce(worker, b, my_generation);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (generation_ == my_generation && !error_) error_ = std::current_exception();
        changed_.notify_all();
        break;
      }
      std::lock_guard<std::mutex> lock(mutex_);
      if (generation_ != my_generation) break;
      slots_[static_cast<size_t>(b % ring)].ready = b;
      changed_.notify_all();
    }
    std::lock_guard<std::mutex> lock(mutex_);
    --busy_workers_;
    changed_.notify_all();
  }
}

void Loader::produce(int worker, int64_t batch, int64_t generation) {
  thread_local WorkerBuffers buf;
  WorkerStats& stats = *worker_stats_[static_cast<size_t>(worker)];
  Slot& slot = slots_[static_cast<size_t>(batch % static_cast<int64_t>(slots_.size()))];
  const int64_t n = static_cast<int64_t>(order_.size());
  const int64_t first = batch * options_.batch_size;
  const int64_t rows = std::min(options_.batch_size, n - first);
  const int s = options_.image_size;
  const size_t image_bytes = static_cast<size_t>(s) * s * 3;
  uint8_t* images = slot.images.data<uint8_t>();
  int64_t* labels = slot.labels.data<int64_t>();
  const ProfileRange batch_range("loader batch");
  for (int64_t row = 0; row < rows; ++row) {
    // A sample that fails is replaced by the next one in the rank's order that decodes.
    bool done = false;
    for (int64_t attempt = 0; attempt < n && !done; ++attempt) {
      const int64_t sample = pool_[static_cast<size_t>(order_[static_cast<size_t>((first + row + attempt) % n)])];
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (generation_ != generation) return;
        if (bad_.count(sample)) continue;
      }
      dataset_.path_into(sample, buf.path);
      const std::string& path = buf.path;
      auto t = Clock::now();
      std::optional<ProfileRange> stage(std::in_place, "read");
      bool ok = read_file(path, buf.file, buf.error);
      stats.read_ns += elapsed_ns(t);
      ImageHeader header;
      if (ok) {
        t = Clock::now();
        ok = read_image_header(buf.file.data(), buf.file.size(), header, buf.error);
        stats.header_ns += elapsed_ns(t);
      }
      CropParams crop;
      if (ok) {
        crop = options_.train ? random_resized_crop(header.width, header.height, SampleRandom(options_.seed, epoch_, sample),
                                                    options_.min_crop_scale)
                              : eval_crop(header.width, header.height, s);
        t = Clock::now();
        stage.emplace("decode");
        ok = decode_region(buf.file.data(), buf.file.size(), header, crop.box, s, s, buf.region, buf.error,
                           !options_.pillow_exact);
        stats.decode_ns += elapsed_ns(t);
      }
      if (!ok) {
        std::string line;
        {
          std::lock_guard<std::mutex> lock(mutex_);
          if (bad_.insert(sample).second) {
            line = "skipping " + path + ": " + buf.error;
            failure_lines_.push_back(line);
          }
        }
        if (!line.empty()) warn_(line);
        continue;
      }
      t = Clock::now();
      stage.emplace("resize");
      resample_rgb(buf.region.pixels.data(), buf.region.width, buf.region.height, buf.region.box, s, s,
                   crop.flip, images + static_cast<size_t>(row) * image_bytes, buf.scratch);
      stats.resize_ns += elapsed_ns(t);
      if (options_.train && options_.auto_augment.enabled()) {
        // Keyed by the sample, as its crop is, on a stream of its own.
        t = Clock::now();
        stage.emplace("augment");
        auto_augment(options_.auto_augment, SampleRandom(options_.seed ^ kAutoAugmentStream, epoch_, sample),
                     images + static_cast<size_t>(row) * image_bytes, s, s, buf.augment_scratch);
        stats.augment_ns += elapsed_ns(t);
      }
      if (options_.train && options_.color_jitter.enabled()) {
        t = Clock::now();
        stage.emplace("color jitter");
        color_jitter(options_.color_jitter, SampleRandom(options_.seed ^ kColorJitterStream, epoch_, sample),
                     images + static_cast<size_t>(row) * image_bytes, s, s, buf.augment_scratch);
        stats.augment_ns += elapsed_ns(t);
      }
      labels[row] = dataset_.label(sample);
      if (erasing()) {
        place_erase_boxes(options_.erasing, SampleRandom(options_.seed ^ kEraseStream, epoch_, sample), s, s,
                          reinterpret_cast<EraseBox*>(slot.erase_boxes.data<int32_t>()) + row * options_.erasing.max_count);
        slot.erase_keys.data<int64_t>()[row] = static_cast<int64_t>(erase_key(options_.seed, epoch_, sample));
      }
      ++stats.images;
      done = true;
    }
    PMPL_CHECK(done, "none of the {} images of {} could be decoded (see the warnings above)", n,
               dataset_.directory());
  }
  if (mixing()) {
    // Each batch of each process draws from its own stretch of a stream apart from the crops'.
    constexpr uint64_t kMixStream = 0x6d69787570ull;  // "mixup"
    const SampleRandom rng(options_.seed ^ kMixStream, epoch_, (batch * options_.world + options_.rank) * 64);
    if (options_.mixup.mode == MixMode::kBatch) {
      const MixParams mix = mix_params(options_.mixup, rng, s, s);
      mix_batch(mix, images, rows, s, s, labels, slot.partner_labels.data<int64_t>());
      slot.lambda = mix.lambda;
    } else {
      // One draw per image (elem) or pair, each from its own stretch of another stream.
      constexpr uint64_t kRowStream = 0x6d6978726f77ull;  // "mixrow"
      const int64_t count = options_.mixup.mode == MixMode::kElem ? rows : rows / 2;
      std::vector<MixParams> params;
      for (int64_t i = 0; i < count; ++i) {
        const SampleRandom row_rng(options_.seed ^ kRowStream, epoch_,
                                   ((batch * options_.world + options_.rank) * options_.batch_size + i) * 64);
        params.push_back(mix_params(options_.mixup, row_rng, s, s, true));
      }
      buf.originals.assign(images, images + static_cast<size_t>(rows) * image_bytes);
      mix_rows(options_.mixup.mode, params.data(), images, buf.originals.data(), rows, s, s, labels,
               slot.partner_labels.data<int64_t>(), slot.row_lambdas.data<float>());
    }
  }
  slot.rows = rows;
}

LoaderStats Loader::stats() const {
  LoaderStats out;
  for (const auto& w : worker_stats_) {
    out.images += w->images;
    out.read_s += static_cast<double>(w->read_ns) * 1e-9;
    out.header_s += static_cast<double>(w->header_ns) * 1e-9;
    out.decode_s += static_cast<double>(w->decode_ns) * 1e-9;
    out.resize_s += static_cast<double>(w->resize_ns) * 1e-9;
    out.augment_s += static_cast<double>(w->augment_ns) * 1e-9;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  out.failures = static_cast<int64_t>(bad_.size());
  return out;
}

std::vector<std::string> Loader::failures() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return failure_lines_;
}

}  // namespace pmpl::data
