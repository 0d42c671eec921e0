// The Meta-Pooling enhancer's eight candidate ops and their names, on their own: what genotypes
// (models/genotype.h) and the command line need without the layers that run them.
#pragma once

#include <cstdint>
#include <string_view>

namespace pmpl {

enum class PoolOp : uint8_t { kSkip, kStrip, kMax3, kMax5, kMax7, kAvg3, kAvg5, kAvg7 };
inline constexpr int kNumPoolOps = 8;

std::string_view pool_op_name(PoolOp op);  // "skip", "strip", "max3", ... "avg7"
// Throws pmpl::Error naming the valid choices.
PoolOp parse_pool_op(std::string_view name);

}  // namespace pmpl
