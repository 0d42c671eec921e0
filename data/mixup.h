// Mixup and CutMix on a training batch, as timm does them in its fast collate (timm.data.mixup,
// FastCollateMixup, mode "batch"): one draw per batch decides whether it is mixed (prob), then
// whether by cutmix or mixup (switch_prob, when both are on) and lambda ~ Beta(alpha, alpha); image i
// is mixed with image rows-1-i, its label weighted lambda and its partner's 1 - lambda.
//  - mixup: each uint8 value becomes rint(a * lambda + b * (1 - lambda)) in float32.
//  - cutmix: a box of about (1 - lambda) of the area, centred on a uniform pixel and clipped to the
//    image, is copied from the partner; lambda becomes 1 - box area / image area (timm's
//    correct_lam).
// The draws come from a counter-based stream keyed by (seed, epoch, batch, rank), so a batch is
// mixed the same way whichever worker made it, and a resumed run mixes as the first did.
#pragma once

#include <cstdint>

#include "data/transform.h"

namespace pmpl::data {

struct MixupOptions {
  double mixup_alpha = 0.0;   // Beta(alpha, alpha) of mixup; 0: no mixup
  double cutmix_alpha = 0.0;  // Beta(alpha, alpha) of cutmix; 0: no cutmix
  double prob = 1.0;          // chance that a batch is mixed at all
  double switch_prob = 0.5;   // with both on, the chance of cutmix rather than mixup
  bool enabled() const { return mixup_alpha > 0 || cutmix_alpha > 0; }
};

struct MixParams {
  double lambda = 1.0;  // the weight of each image's own label; 1: the batch is left as it is
  bool cutmix = false;
  int y0 = 0, y1 = 0, x0 = 0, x1 = 0;  // cutmix's box: rows [y0, y1), columns [x0, x1)
};

// A Beta(a, a) sample, a > 0, from the stream's draws `draw`, `draw` + 1, ... (advanced past those used).
double beta_sample(double a, const SampleRandom& rng, uint32_t& draw);

// What happens to one batch of `height` x `width` images.
MixParams mix_params(const MixupOptions& options, const SampleRandom& rng, int height, int width);

// Mixes `rows` NHWC uint8 images (3 channels) in place; partner_labels[i] = labels[rows - 1 - i].
void mix_batch(const MixParams& params, uint8_t* images, int64_t rows, int height, int width,
               const int64_t* labels, int64_t* partner_labels);

}  // namespace pmpl::data
