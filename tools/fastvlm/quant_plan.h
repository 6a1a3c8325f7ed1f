/*
 * quant_plan.h — what `fastvlm quantize` does to each tensor: the model components a
 * quantization plan names, the classification of GGUF tensor names into them, the type
 * names a plan may use, the block-size fallback, and the plan file (YAML, via libyaml).
 *
 * Plan file: one YAML mapping from component to type, e.g.
 *     vision: q8_0
 *     projector: f16
 *     attention: q4_0
 *     ffn: q4_0
 *     embeddings: q8_0
 *     output: q8_0
 * Components absent from the plan (or given as `keep`) are copied unchanged. Unknown
 * components, unknown types, duplicates and non-scalar values are errors naming the file,
 * line and column. Not here: the data conversion and the file writing (cmd_quantize.c).
 */
#ifndef FVLM_TOOLS_QUANT_PLAN_H
#define FVLM_TOOLS_QUANT_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

typedef enum qplan_component {
    QPLAN_VISION = 0,   /* v.* matrices: ffn_up, ffn_down, attn_qkv, attn_out, down.N.pw */
    QPLAN_PROJECTOR,    /* mm.N.weight */
    QPLAN_ATTENTION,    /* blk.N.attn_q / attn_k / attn_v / attn_output .weight */
    QPLAN_FFN,          /* blk.N.ffn_gate / ffn_up / ffn_down .weight */
    QPLAN_EMBEDDINGS,   /* token_embd.weight */
    QPLAN_OUTPUT,       /* output.weight (the untied lm_head) */
    QPLAN_N_COMPONENTS,
    QPLAN_NONE = -1     /* everything else: 1-D tensors, conv kernels, norms, biases, SE */
} qplan_component;

#define QPLAN_KEEP (-1)   /* plan entry: leave the tensor's type as it is */

typedef struct qplan {
    int type[QPLAN_N_COMPONENTS];   /* an fvlm_type id, or QPLAN_KEEP */
} qplan;

/* A plan that keeps everything. */
void qplan_init(qplan *p);
/* Sets every component to `type`. */
void qplan_set_all(qplan *p, fvlm_type type);

/* Reads a YAML plan. On error returns false with "FILE:LINE:COL: message" in err. */
bool qplan_load(const char *path, qplan *p, char *err, size_t err_len);

/* Plan type names: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_k q5_k q6_k (any case).
 * Returns false for anything else. */
bool qplan_parse_type(const char *s, fvlm_type *out);
/* The canonical (lower-case) name of a plan type, "?" otherwise. */
const char *qplan_type_name(fvlm_type t);
/* The list of accepted names, for messages. */
const char *qplan_type_names(void);

const char *qplan_component_name(qplan_component c);

/* The component a tensor belongs to, from its GGUF name; only 2-D tensors qualify. */
qplan_component qplan_classify(const char *name, int n_dims);

/* The type a tensor with rows of `row_len` elements actually gets when `target` is asked
 * for: `target` if row_len is a multiple of its block size; otherwise llama.cpp's fallback
 * (q4_k -> q5_0, q5_k -> q5_1, q6_k -> q8_0, then f16 if that does not fit either;
 * 32-element block types -> f16). */
fvlm_type qplan_fallback(fvlm_type target, int64_t row_len);

/* llama.cpp's general.file_type (llama_ftype) for a file mostly of type t; -1 if none. */
int qplan_ftype_of(fvlm_type t);

#endif
