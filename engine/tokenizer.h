/*
 * tokenizer.h — Qwen2 byte-level BPE built from a GGUF's tokenizer.ggml.* metadata
 * (tokens, merges, token_type, pre = "qwen2"): NFC normalisation, the Qwen2 pre-tokenizer
 * split rule, special tokens matched before BPE, byte-level decoding.
 * Not here: chat templates (session.c) and the public detokenizer (which wraps this).
 */
#ifndef FVLM_TOKENIZER_H
#define FVLM_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fastvlm.h"
#include "gguf.h"

typedef struct fvlm_tokenizer fvlm_tokenizer;

/* Builds the tokenizer from `g`'s metadata. Errors name the file and key
 * (MISSING "tokenizer.ggml.merges", UNSUPPORTED model "llama", FORMAT bad merge line ...). */
fastvlm_status fvlm_tokenizer_load(const fvlm_gguf *g, fvlm_tokenizer **out, fastvlm_error *err);
void fvlm_tokenizer_free(fvlm_tokenizer *tok);

int32_t fvlm_tokenizer_n_vocab(const fvlm_tokenizer *tok);
/* Same contract as fastvlm_tokenize(). Thread-safe (no shared mutable state). */
fastvlm_status fvlm_tokenizer_encode(const fvlm_tokenizer *tok, const char *text, size_t len,
                                     bool parse_special, int32_t *ids, size_t n_max,
                                     size_t *n_out, fastvlm_error *err);
/* Decoded bytes of a token (byte-level mapping undone); special tokens give their text. */
const char *fvlm_tokenizer_token_bytes(const fvlm_tokenizer *tok, int32_t id, size_t *len);
bool fvlm_tokenizer_is_special(const fvlm_tokenizer *tok, int32_t id);
/* Id of the token whose vocabulary string is exactly `s` (e.g. "<|im_end|>"), or -1. */
int32_t fvlm_tokenizer_find(const fvlm_tokenizer *tok, const char *s);

/* The Qwen2 pre-tokenizer split alone (exposed for tests): cuts UTF-8 text s[0..len) —
 * taken as already NFC and free of added tokens — into words, writing the byte offset where
 * each word ends to ends[0..max). Returns the number of words (which may exceed max), or
 * (size_t)-1 when out of memory. */
size_t fvlm_qwen2_pretokenize(const char *s, size_t len, size_t *ends, size_t max);

#endif
