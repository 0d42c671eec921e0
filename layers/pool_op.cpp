#include "layers/pool_op.h"

#include <array>

#include "engine/error.h"

namespace pmpl {
namespace {

constexpr std::array<std::string_view, kNumPoolOps> kPoolOpNames = {
    "skip", "strip", "max3", "max5", "max7", "avg3", "avg5", "avg7"};

}  // namespace

std::string_view pool_op_name(PoolOp op) { return kPoolOpNames[static_cast<size_t>(op)]; }

PoolOp parse_pool_op(std::string_view name) {
  for (int i = 0; i < kNumPoolOps; ++i) {
    if (kPoolOpNames[static_cast<size_t>(i)] == name) return static_cast<PoolOp>(i);
  }
  PMPL_CHECK(false, "unknown Meta-Pooling op '{}': use one of skip, strip, max3, max5, max7, "
                    "avg3, avg5, avg7", name);
  return PoolOp::kSkip;
}

}  // namespace pmpl
