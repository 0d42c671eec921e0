/* The pmpl deployment runtime's C API: load a file written by `pmpl export` and run it. Nothing
 * from training is involved. Thread safety: a model may be run from one thread at a time; distinct
 * models are independent. Errors: functions return NULL or a negative number, and
 * pmpl_last_error() (per thread) says what went wrong in one line. */
#ifndef PMPL_C_H
#define PMPL_C_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pmpl_model pmpl_model;

/* Input layouts for pmpl_model_run. */
enum {
  PMPL_INPUT_F32_NCHW = 0, /* float [batch, 3, size, size], already normalised (PyTorch's way) */
  PMPL_INPUT_U8_NHWC = 1   /* uint8 [batch, size, size, 3], RGB; normalised by the runtime */
};

pmpl_model* pmpl_model_load(const char* path);
/* The input the model expects: *height = *width = size, *channels = 3. Returns 0 or -1. */
int pmpl_model_input_shape(const pmpl_model* model, int* height, int* width, int* channels);
int pmpl_model_num_classes(const pmpl_model* model);
/* Class `index`'s name (valid while the model lives), or NULL. */
const char* pmpl_model_class_name(const pmpl_model* model, int index);
/* Writes batch * num_classes logits. Returns 0 or -1. */
int pmpl_model_run(pmpl_model* model, const void* input, int batch, int input_layout, float* logits);
void pmpl_model_free(pmpl_model* model);
const char* pmpl_last_error(void);

#ifdef __cplusplus
}
#endif

#endif
