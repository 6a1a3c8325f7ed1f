/*
 * imageio.h — image file decoding for the `fastvlm` tool: PNG (libpng) and JPEG (libjpeg)
 * to interleaved 8-bit RGB, the way PIL's Image.open(...).convert("RGB") reads them for
 * predict.py (alpha dropped, not composited; grey and palette expanded; 16-bit samples
 * reduced to their high byte; no EXIF rotation).
 * Not part of libfastvlm: the engine takes pixels, never files.
 */
#ifndef FVLM_IMAGEIO_H
#define FVLM_IMAGEIO_H

#include <stddef.h>
#include <stdint.h>

/* Decodes `path` (format detected from its first bytes). On success returns 0 and sets
 * *rgb (malloc'd, width*height*3 bytes, rows packed: stride = 3*width), *width, *height.
 * Images over FASTVLM_MAX_IMAGE_PIXELS are refused from their header, before decoding.
 * On failure returns -1 and writes a one-line message naming the file into msg. */
int fvlm_image_load(const char *path, uint8_t **rgb, int32_t *width, int32_t *height,
                    char *msg, size_t msg_len);

#endif
