/*
 * llm.h — the Qwen2 decoder: weights read from llama.cpp's `qwen2` GGUF layout, the KV
 * cache and the batched forward pass (token ids or embedding rows in, logits out).
 * (Skeleton: the decoder work fills this in.)
 */
#ifndef FVLM_LLM_H
#define FVLM_LLM_H

typedef struct fvlm_llm fvlm_llm;

#endif
