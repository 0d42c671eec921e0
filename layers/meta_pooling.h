// The Meta-Pooling spatial enhancer (DESIGN §4): y = hardswish(BN(sum_i p_i * op_i(x))),
// p = softmax(alpha), over eight stride-1, same-size candidates. During search every candidate
// runs, weighted; once fixed to one op (or two, summed) only those run, unweighted. A removed
// enhancer (genotype op "none") passes its input through: the backbone's block exactly. A gated
// searching enhancer (--gate, docs/PMPL.md section 12) also weighs itself against its removal:
// y = q_none * x + q_keep * enhancer(x), q = softmax(gate), so the search can choose "none".
#pragma once

#include <string_view>
#include <vector>

#include "core/rng.h"
#include "layers/layers.h"
#include "layers/pool_op.h"

namespace pmpl {

// Runs one candidate on x [N, H, W, C]; `strip` is needed for PoolOp::kStrip only.
Tensor run_pool_op(PoolOp op, const Tensor& x, Module* strip);

// Coordinate-attention strip pooling: means over W and over H, a shared 1x1 conv to
// max(8, C / 32) channels + BN + hardswish, a 1x1 conv back to C per direction, sigmoid, and
// x * a_w * a_h. Parameter names as the reference: conv1, bn1, conv_h, conv_w.
class StripAttention : public Module {
 public:
  StripAttention(int64_t channels, Generator& gen);
  std::string type_name() const override { return "StripAttention"; }
  // The attention of x [N, H, W, C]: {a_h [N, H, 1, C], a_w [N, 1, W, C]}; forward is
  // (x * a_w) * a_h, which the search's ops::meta_pool_mix forms itself from these.
  Tensors attention(const Tensor& x);
  double batchnorm_eps() const { return bn1_->eps(); }

 protected:
  Tensor forward_impl(const Tensor& x) override;

 private:
  std::shared_ptr<Conv2d> conv1_, conv_h_, conv_w_;
  std::shared_ptr<BatchNorm> bn1_;
};

class MetaPooling : public Module {
 public:
  // The batchnorm's initial gamma and beta (meta_pooling.cpp says why).
  static constexpr double kBatchNormWeightInit = 0.1;
  static constexpr double kBatchNormBiasInit = 3.5;

  // Index of each of the gate's two weights (q = softmax(gate)).
  static constexpr int kGateNone = 0;
  static constexpr int kGateKeep = 1;

  // Searching over all eight candidates; alpha starts at 1e-3 * N(0, 1). `gated`: with a gate,
  // an architecture parameter [2] starting at 0 (removal and the enhancer weighed equally).
  MetaPooling(int64_t channels, Generator& gen, bool gated = false);
  // Built fixed (from a genotype): runs `ops` summed; no alpha, and strip only if chosen.
  MetaPooling(int64_t channels, std::vector<PoolOp> ops, Generator& gen);
  // Built removed: no parameters, no alpha; forward is the identity and trace adds no node.
  static std::shared_ptr<MetaPooling> make_removed();
  std::string type_name() const override { return "MetaPooling"; }

  bool fixed() const { return removed_ || !fixed_ops_.empty(); }
  bool removed() const { return removed_; }
  // Empty for a removed enhancer.
  const std::vector<PoolOp>& fixed_ops() const { return fixed_ops_; }
  // Fixes a searching enhancer for good to `ops` (one, or two summed). alpha stops being a
  // parameter (it stays, frozen, as a buffer under the same name, for the record) and an unchosen
  // strip candidate is dropped, so parameters() shrinks: optimizers must re-collect.
  void fix(std::vector<PoolOp> ops);
  // Removes a searching enhancer for good: alpha is kept as fix() keeps it, the strip attention
  // and the batchnorm go, so parameters() shrinks and forward passes its input through. With
  // `fold` and a next convolution, the per-channel scale the batchnorm applied (gamma /
  // sqrt(running var + eps); hardswish is the identity where it starts) is folded into that
  // convolution's weights first, so the network computes what it did up to a per-channel shift,
  // which the batchnorm after that convolution removes (docs/PMPL.md section 11). Without: the
  // structure alone, for weights that already carry the fold (a checkpoint being restored). A
  // gated enhancer folds nothing: its input already reached the next layer, weighted by
  // q_none, a scale the same for every channel, which a batchnorm after absorbs.
  void remove(bool fold);
  // The convolution that reads this enhancer's output directly, if one does (the block sets it).
  void set_next_conv(Conv2d* conv) { next_conv_ = conv; }
  // softmax(alpha) as plain numbers; empty for an enhancer built fixed.
  std::vector<double> probabilities() const;
  // The same from a copy of alpha on the host (callers holding all alphas copy them once).
  static std::vector<double> probabilities_of(const Tensor& alpha);
  const Tensor& alpha() const { return alpha_; }
  // Whether it was built with a gate (kept, frozen, after a fix, as alpha is).
  bool gated() const { return gate_.defined(); }
  const Tensor& gate() const { return gate_; }
  // softmax(gate) as plain numbers, {q_none, q_keep}; empty without a gate.
  std::vector<double> gate_probabilities() const;
  // The batchnorm after the mixture (or the fixed ops); a removed enhancer has none.
  BatchNorm& batchnorm();
  // One "enhancer" node (layers/trace.h) with the fixed ops, the batchnorm's tensors ("bn.*") and
  // the strip attention's ("strip.*"), none for a removed enhancer; pmpl::Error while it still
  // searches.
  int trace(Trace& trace, int x, const std::string& path) const override;

 protected:
  Tensor forward_impl(const Tensor& x) override;

 private:
  MetaPooling() = default;
  static std::shared_ptr<BatchNorm> make_batchnorm(int64_t channels);
  // Keeps alpha (and the gate), frozen, as buffers under their names (for the record) once the
  // search is done.
  void freeze_alpha();

  Tensor alpha_;
  Tensor gate_;
  std::shared_ptr<StripAttention> strip_;
  std::shared_ptr<BatchNorm> bn_;
  std::vector<PoolOp> fixed_ops_;
  bool removed_ = false;
  Conv2d* next_conv_ = nullptr;
};

}  // namespace pmpl
