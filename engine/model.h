/*
 * model.h — the loaded, immutable fastvlm_model: the files, tokenizer, decoder weights and
 * (optionally) the vision tower. Shared read-only by every session.
 */
#ifndef FVLM_MODEL_H
#define FVLM_MODEL_H

#include "error.h"
#include "fastvlm.h"
#include "gguf.h"
#include "llm.h"
#include "tokenizer.h"
#include "vision.h"

struct fastvlm_model {
    fvlm_logger log;
    fvlm_gguf *llm_file;        /* the qwen2 GGUF (kept open: weights point into it) */
    fvlm_gguf *mmproj_file;     /* NULL without vision */
    fvlm_tokenizer *tok;
    fvlm_llm *llm;              /* NULL when loaded vocab_only */
    fvlm_vision *vision;        /* NULL without mmproj */
    char *chat_template;        /* NUL-terminated copy, or NULL */
    fastvlm_model_info info;
    /* The one mutable field: ids of image features (session_features.c), unique within the
     * model so that any session's KV cache can tell two images apart. */
    _Atomic uint64_t next_features_id;
};

#endif
