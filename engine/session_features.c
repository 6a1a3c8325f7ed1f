/*
 * session_features.c — fastvlm_image_features (fastvlm.h, "Reuse across frames"): projected
 * image rows as an immutable, atomically reference-counted handle with a model-wide id, and
 * moving them in and out of a session, so one encoded frame can be asked about again (by
 * the same or another session of the model) without the tower.
 *
 * The id, not the address, is what the KV cache compares (session_kv.c): a freed handle's
 * address may come back for another image, an id never does (a 64-bit counter in the
 * model). Not here: encoding (session.c runs the tower), the KV cache (session_kv.c).
 */
#include <stdlib.h>

#include "session_impl.h"

fastvlm_image_features *fvlm_features_new(const fastvlm_model *m, int32_t n_rows,
                                          int32_t n_embd)
{
    fastvlm_image_features *f;

    if (n_rows < 1 || n_embd < 1)
        return NULL;
    f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->rows = malloc((size_t)n_rows * (size_t)n_embd * sizeof(float));
    if (!f->rows) {
        free(f);
        return NULL;
    }
    atomic_init(&f->refcount, 1);
    f->model = m;
    /* The model is immutable but for this counter (model.h); +1: ids start at 1, so that
     * FVLM_KV_TOKEN (0) is never an image. */
    f->id = atomic_fetch_add(&((fastvlm_model *)m)->next_features_id, 1) + 1;
    f->n_rows = n_rows;
    f->n_embd = n_embd;
    return f;
}

fastvlm_image_features *fastvlm_image_features_ref(fastvlm_image_features *f)
{
    if (f)
        atomic_fetch_add_explicit(&f->refcount, 1, memory_order_relaxed);
    return f;
}

void fastvlm_image_features_unref(fastvlm_image_features *f)
{
    if (!f)
        return;
    /* acq_rel: the last owner must see every other owner's reads done before it frees */
    if (atomic_fetch_sub_explicit(&f->refcount, 1, memory_order_acq_rel) == 1) {
        free(f->rows);
        free(f);
    }
}

int32_t fastvlm_image_features_n_rows(const fastvlm_image_features *f)
{
    return f ? f->n_rows : 0;
}

int32_t fastvlm_image_features_n_embd(const fastvlm_image_features *f)
{
    return f ? f->n_embd : 0;
}

uint64_t fastvlm_image_features_id(const fastvlm_image_features *f)
{
    return f ? f->id : 0;
}

const float *fastvlm_image_features_data(const fastvlm_image_features *f)
{
    return f ? f->rows : NULL;
}

fastvlm_status fastvlm_session_get_image_features(fastvlm_session *s,
                                                  fastvlm_image_features **out,
                                                  fastvlm_error *err)
{
    fvlm_clear_error(err);
    if (out)
        *out = NULL;
    if (!s || !out)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                              "fastvlm_session_get_image_features: NULL session/out");
    if (!s->image)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                              "fastvlm_session_get_image_features: the session has no image");
    *out = fastvlm_image_features_ref(s->image);
    return FASTVLM_OK;
}

fastvlm_status fastvlm_session_set_image_features(fastvlm_session *s,
                                                  fastvlm_image_features *f,
                                                  fastvlm_error *err)
{
    fvlm_clear_error(err);
    if (!s || !f)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                              "fastvlm_session_set_image_features: NULL session/features");
    if (f->model != s->model || f->n_embd != s->hp->n_embd)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                              "fastvlm_session_set_image_features: the features (id %llu, "
                              "%d x %d) were made by another model",
                              (unsigned long long)f->id, f->n_rows, f->n_embd);
    if (f == s->image) {
        /* the same handle again: nothing to compute, nothing new to report */
        s->image_timings_pending = false;
        return FASTVLM_OK;
    }
    fastvlm_image_features_ref(f);
    fastvlm_image_features_unref(s->image);
    s->image = f;
    s->image_timings_pending = false;
    return FASTVLM_OK;
}
