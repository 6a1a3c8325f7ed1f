/*
 * vision.h — FastViTHD vision tower + mlp2x_gelu projector read from an mmproj GGUF
 * (docs/model-format.md), and image preprocessing (image.c).
 * Not here: splicing image rows into the prompt (session.c).
 */
#ifndef FVLM_VISION_H
#define FVLM_VISION_H

#include <stdbool.h>
#include <stdint.h>

#include "fastvlm.h"
#include "gguf.h"
#include "threadpool.h"

typedef struct fvlm_vision fvlm_vision;

/* Reads hyperparameters and tensors from `g` (which must outlive the result). */
fastvlm_status fvlm_vision_load(const fvlm_gguf *g, fvlm_vision **out, fastvlm_error *err);
void fvlm_vision_free(fvlm_vision *v);

/* Fills the vision fields of `info` (has_vision, image_size, patch_stride, vision_embd,
 * n_image_tokens, image_pad_rgb, image_mean, image_std, image_rescale). */
void fvlm_vision_fill_info(const fvlm_vision *v, fastvlm_model_info *info);
/* Width of one output row: vision_embd (tower_only) or the projector's output width. */
int32_t fvlm_vision_out_dim(const fvlm_vision *v, bool tower_only);

/* Tower (+ projector unless tower_only) on planar [3][size][size]; size % 64 == 0.
 * Writes (size/64)² rows of fvlm_vision_out_dim() floats, raster order. Allocates its
 * scratch per call. Polls `should_abort` between blocks (may be NULL). */
fastvlm_status fvlm_vision_encode(const fvlm_vision *v, fvlm_pool *pool,
                                  const float *planar, int32_t size, bool tower_only,
                                  float *out, fastvlm_abort_fn should_abort, void *abort_ud,
                                  fastvlm_error *err);

/* image.c: RGB8 interleaved (any size/stride) → pad to a centred square of `pad_rgb`
 * (0..255) → antialiased bicubic (PIL's, a = −0.5, 8-bit rounding like PIL) to size×size
 * → v·rescale → (v − mean)/std → planar [3][size][size]. FASTVLM_ERR_IMAGE for an empty
 * image, over FASTVLM_MAX_IMAGE_PIXELS, a side over 65536 (the padded square), a stride
 * under 3·width, or size outside [1, 16384]. */
fastvlm_status fvlm_image_preprocess(const uint8_t *rgb, int32_t width, int32_t height,
                                     size_t stride, int32_t size, const float pad_rgb[3],
                                     float rescale, const float mean[3], const float std[3],
                                     float *out, fastvlm_error *err);

#endif
