#include "engine/allocator.h"

#include <atomic>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "engine/cuda_runtime.h"
#include "engine/error.h"

namespace pmpl {
namespace {

std::atomic<bool> g_poison{false};

void* cpu_raw_alloc(size_t nbytes, int) {
  void* p = std::aligned_alloc(64, nbytes);  // bin sizes are multiples of 64
  PMPL_CHECK(p != nullptr, "out of host memory allocating {} bytes", nbytes);
  return p;
}

void cpu_raw_free(void* p, int) { std::free(p); }

}  // namespace

CachingAllocator::CachingAllocator(Device device, RawAlloc raw_alloc, RawFree raw_free)
    : device_(device), raw_alloc_(raw_alloc), raw_free_(raw_free) {}

CachingAllocator::~CachingAllocator() { empty_cache(); }

size_t CachingAllocator::bin_size(size_t nbytes) {
  if (nbytes <= 4096) return nbytes <= 64 ? 64 : (nbytes + 63) / 64 * 64;
  const size_t step = std::bit_floor(nbytes) / 4;
  return (nbytes + step - 1) / step * step;
}

void* CachingAllocator::allocate(size_t nbytes) {
  const size_t size = bin_size(nbytes);
  void* ptr = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_blocks_.find(size);
    if (it != free_blocks_.end() && !it->second.empty()) {
      ptr = it->second.back();
      it->second.pop_back();
      ++stats_.cache_hits;
    }
  }
  if (ptr == nullptr) {
    ptr = raw_alloc_(size, device_.index);
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.reserved += size;
    ++stats_.system_allocs;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.allocated += size;
    if (stats_.allocated > stats_.peak_allocated) stats_.peak_allocated = stats_.allocated;
  }
  if (g_poison.load(std::memory_order_relaxed)) {
    if (device_.is_cpu()) {  // pinned memory is host memory too
      std::memset(ptr, 0xFF, size);
    } else {
      cuda::memset(ptr, 0xFF, size);
    }
  }
  return ptr;
}

void CachingAllocator::deallocate(void* ptr, size_t nbytes) {
  const size_t size = bin_size(nbytes);
  std::lock_guard<std::mutex> lock(mutex_);
  free_blocks_[size].push_back(ptr);
  stats_.allocated -= size;
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& [size, blocks] : free_blocks_) {
    for (void* p : blocks) raw_free_(p, device_.index);
    stats_.reserved -= size * blocks.size();
  }
  free_blocks_.clear();
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.peak_allocated = stats_.allocated;
}

CachingAllocator& cpu_allocator() {
  // Never destroyed: tensors held by static objects may be freed after main returns.
  static auto* allocator = new CachingAllocator(Device::cpu(), cpu_raw_alloc, cpu_raw_free);
  return *allocator;
}

CachingAllocator& cuda_allocator(int device) {
  static std::mutex mutex;
  static std::vector<std::unique_ptr<CachingAllocator>>* allocators =
      new std::vector<std::unique_ptr<CachingAllocator>>();
  cuda::require_device(device);
  std::lock_guard<std::mutex> lock(mutex);
  const auto index = static_cast<size_t>(device);
  if (allocators->size() <= index) allocators->resize(index + 1);
  auto& slot = (*allocators)[index];
  if (!slot) {
    slot = std::make_unique<CachingAllocator>(Device::cuda(device), cuda::raw_malloc, cuda::raw_free);
  }
  return *slot;
}

CachingAllocator& pinned_allocator() {
  static auto* allocator = new CachingAllocator(Device::cpu(), cuda::host_malloc_pinned, cuda::host_free_pinned);
  return *allocator;
}

CachingAllocator& allocator_for(Device device) {
  return device.is_cpu() ? cpu_allocator() : cuda_allocator(device.index);
}

void set_poison_allocations(bool on) { g_poison.store(on); }
bool poison_allocations() { return g_poison.load(); }

}  // namespace pmpl
