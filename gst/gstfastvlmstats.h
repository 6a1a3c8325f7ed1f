/*
 * gstfastvlmstats.h — the counters and timing statistics behind the element's `stats`
 * property and its periodic "fastvlm-stats" bus message.
 *
 * What it is: plain counters plus a window of the last FVLM_STATS_WINDOW results, from
 * which latency percentiles and mean per-stage times are computed on demand.
 * What it is not: thread-safe on its own — the element guards it with its lock.
 */
#ifndef __GST_FASTVLM_STATS_H__
#define __GST_FASTVLM_STATS_H__

#include <gst/gst.h>

G_BEGIN_DECLS

#define FVLM_STATS_WINDOW 256

/* Times of one result, milliseconds. */
typedef struct
{
  gdouble latency;              /* frame reached the element -> result ready */
  gdouble queue;                /* waiting in the mailbox */
  gdouble preprocess;           /* converter (streaming thread) + ORC (worker) */
  gdouble vision;               /* tower + projector */
  gdouble prefill;
  gdouble decode;
  gint n_tokens;
} FvlmStatsSample;

typedef struct
{
  guint64 frames_seen;          /* buffers through the video pad */
  guint64 captioned;            /* results published (model runs + reuses) */
  guint64 skipped_interval;     /* not sampled: closer than `interval` to the last sample */
  guint64 skipped_busy;         /* live: worker busy (not converted, or replaced in the mailbox) */
  guint64 skipped_qos;          /* live: late or throttled per downstream QoS */
  guint64 skipped_late;         /* live: could not make max-latency, dropped unanswered */
  guint64 reused;               /* scene unchanged: previous caption republished */
  guint64 reused_features;      /* scene unchanged: kept image features, tower skipped */
  /* engine reuse over all model runs (docs/reuse.md) */
  guint64 prompt_positions;     /* prompt positions asked for */
  guint64 reused_positions;     /* of which taken from the KV cache */
  guint64 n_draft;              /* draft tokens verified */
  guint64 n_accepted;           /* of which accepted */
  guint64 truncated;            /* stopped before end of text (max-new-tokens, max-latency) */
  guint64 errors;               /* engine errors (posted as warnings) */
  FvlmStatsSample window[FVLM_STATS_WINDOW];    /* ring of the last model runs */
  guint n_window;
  guint window_pos;
} FvlmStats;

void           fvlm_stats_reset      (FvlmStats * stats);

/* Records one model run (reuses are counted, not timed). */
void           fvlm_stats_add_sample (FvlmStats * stats, const FvlmStatsSample * sample);

/* Nearest-rank percentile (0 < p <= 100) of the window's latencies; 0 when empty. */
gdouble        fvlm_stats_latency_percentile (const FvlmStats * stats, gdouble p);

/* A "fastvlm-stats" structure; fields are documented in the element's SECTION comment. */
GstStructure * fvlm_stats_to_structure (const FvlmStats * stats, gboolean busy);

G_END_DECLS

#endif /* __GST_FASTVLM_STATS_H__ */
