// Test entry point: every allocation is poisoned (filled with NaN bytes) so that an op that
// leaves an output element unwritten fails its test instead of passing on stale zeros.
#include <gtest/gtest.h>

#include "engine/allocator.h"

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  pmpl::set_poison_allocations(true);
  return RUN_ALL_TESTS();
}
