// Caching allocators. Freed blocks go to per-size free lists instead of back to the system:
// on these machines memory returned to the OS costs ~10x more to touch again than to reuse, and
// a training step allocates the same sizes every step. Sizes are rounded to bins (64-byte steps
// up to 4 KiB, then quarter powers of two: at most 25% slack) so that near sizes share blocks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <vector>

#include "engine/device.h"

namespace pmpl {

struct AllocatorStats {
  size_t allocated = 0;       // bytes in blocks handed out now (binned sizes)
  size_t peak_allocated = 0;  // high-water mark of `allocated`
  size_t reserved = 0;        // bytes held from the system: handed out plus cached
  size_t system_allocs = 0;   // calls that had to go to the system
  size_t cache_hits = 0;      // calls served from the cache
};

class CachingAllocator {
 public:
  using RawAlloc = void* (*)(size_t nbytes, int device);
  using RawFree = void (*)(void* ptr, int device);

  CachingAllocator(Device device, RawAlloc raw_alloc, RawFree raw_free);
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  void* allocate(size_t nbytes);
  void deallocate(void* ptr, size_t nbytes);
  // Returns every cached block to the system.
  void empty_cache();
  AllocatorStats stats() const;
  void reset_peak();
  Device device() const { return device_; }

  static size_t bin_size(size_t nbytes);

 private:
  Device device_;
  RawAlloc raw_alloc_;
  RawFree raw_free_;
  mutable std::mutex mutex_;
  std::map<size_t, std::vector<void*>> free_blocks_;
  AllocatorStats stats_;
};

CachingAllocator& cpu_allocator();
// Throws pmpl::Error when pmpl was built without CUDA or no GPU is present.
CachingAllocator& cuda_allocator(int device);
CachingAllocator& allocator_for(Device device);
// Page-locked host memory (cudaMallocHost); only used where a GPU is present.
CachingAllocator& pinned_allocator();

// Tests turn this on: every block handed out is first filled with 0xFF bytes, which reads as NaN
// in f32/f64 (and as -1 in integers), so an op that forgets to write an element fails its test.
void set_poison_allocations(bool on);
bool poison_allocations();

}  // namespace pmpl
