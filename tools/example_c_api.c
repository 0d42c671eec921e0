/* Runs a `pmpl export` file on a raw RGB image with nothing but the C API (models/deploy/pmpl_c.h
 * and libpmpl_runtime): the way to embed pmpl in another program.
 *
 * usage: pmpl_c_example MODEL.pmpl IMAGE.rgb
 *   IMAGE.rgb: size x size x 3 bytes of RGB (size: what the model expects; a gray image if the
 *   file is missing or short, so the example also runs on its own). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/deploy/pmpl_c.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s MODEL.pmpl [IMAGE.rgb]\n", argv[0]);
    return 2;
  }
  pmpl_model* model = pmpl_model_load(argv[1]);
  if (model == NULL) {
    fprintf(stderr, "pmpl_c_example: %s\n", pmpl_last_error());
    return 2;
  }
  int h, w, c;
  pmpl_model_input_shape(model, &h, &w, &c);
  const int classes = pmpl_model_num_classes(model);
  size_t bytes = (size_t)h * (size_t)w * (size_t)c;
  unsigned char* image = malloc(bytes);
  float* logits = malloc(sizeof(float) * (size_t)classes);
  memset(image, 128, bytes);
  if (argc > 2) {
    FILE* f = fopen(argv[2], "rb");
    if (f != NULL) {
      size_t got = fread(image, 1, bytes, f);
      (void)got;
      fclose(f);
    }
  }
  if (pmpl_model_run(model, image, 1, PMPL_INPUT_U8_NHWC, logits) != 0) {
    fprintf(stderr, "pmpl_c_example: %s\n", pmpl_last_error());
    return 1;
  }
  int best = 0;
  for (int k = 1; k < classes; ++k) {
    if (logits[k] > logits[best]) best = k;
  }
  printf("%dx%dx%d input, %d classes: top-1 %s (logit %.4f)\n", h, w, c, classes, pmpl_model_class_name(model, best),
         logits[best]);
  free(image);
  free(logits);
  pmpl_model_free(model);
  return 0;
}
