/*
 * gguf_write.h — a small GGUF v3 writer for the `fastvlm` tools (used by `fastvlm quantize`).
 *
 * Metadata entries are serialized into memory as they are added; tensors are declared with
 * their final type, shape and byte size, then the file is streamed: header + entries +
 * tensor infos + padding (gguf_write_begin), each tensor's data in declaration order
 * (gguf_write_tensor_data, which pads to the alignment), and gguf_write_end. Layout as in
 * docs/model-format.md §1: little-endian, data offsets relative to the data section and
 * multiples of the alignment.
 * Not here: reading (engine/gguf.h), and no tensor arithmetic — the caller hands over the
 * bytes. Not part of libfastvlm: the engine never writes files.
 */
#ifndef FVLM_TOOLS_GGUF_WRITE_H
#define FVLM_TOOLS_GGUF_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gguf.h"

typedef struct gguf_writer gguf_writer;

/* A writer laying the data out at `alignment` (a power of two; GGUF's default is 32).
 * NULL on out-of-memory. */
gguf_writer *gguf_writer_new(size_t alignment);
void gguf_writer_free(gguf_writer *w);

/* Metadata. Each returns false on out-of-memory. Keys are not checked for duplicates. */
bool gguf_writer_kv_u32(gguf_writer *w, const char *key, uint32_t v);
bool gguf_writer_kv_str(gguf_writer *w, const char *key, const char *s, size_t len);
/* Copies entry `i` of the opened file `g` unchanged (any type, arrays included); false with
 * a message in err_msg if a value cannot be read back exactly. */
bool gguf_writer_kv_copy(gguf_writer *w, const fvlm_gguf *g, int64_t i, char *err_msg,
                         size_t err_len);

/* Declares a tensor (name copied). `nbytes` must be the exact data size. */
bool gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, int n_dims,
                            const int64_t *ne, size_t nbytes);

/* Writes everything before the data section to `f`. False on a write error (errno set). */
bool gguf_writer_begin(gguf_writer *w, FILE *f);
/* Writes the data of the next declared tensor (`nbytes` as declared) and its padding. */
bool gguf_writer_tensor_data(gguf_writer *w, FILE *f, const void *data, size_t nbytes);
/* Checks that every declared tensor was written. */
bool gguf_writer_end(gguf_writer *w);

#endif
