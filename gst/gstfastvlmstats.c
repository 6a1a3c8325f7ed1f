/*
 * gstfastvlmstats.c — counters, latency percentiles and mean stage times of the element.
 * What it is not: a clock or a lock; callers pass measured times and hold the element's
 * lock. The window keeps only model runs so reused captions do not flatter the latency.
 */
#include <stdlib.h>
#include <string.h>

#include "gstfastvlmstats.h"

void
fvlm_stats_reset (FvlmStats * stats)
{
  memset (stats, 0, sizeof (*stats));
}

void
fvlm_stats_add_sample (FvlmStats * stats, const FvlmStatsSample * sample)
{
  stats->window[stats->window_pos] = *sample;
  stats->window_pos = (stats->window_pos + 1) % FVLM_STATS_WINDOW;
  if (stats->n_window < FVLM_STATS_WINDOW)
    stats->n_window++;
}

static int
fvlm_stats_cmp_double (const void *a, const void *b)
{
  gdouble x = *(const gdouble *) a, y = *(const gdouble *) b;

  return (x > y) - (x < y);
}

gdouble
fvlm_stats_latency_percentile (const FvlmStats * stats, gdouble p)
{
  gdouble sorted[FVLM_STATS_WINDOW];
  guint n = stats->n_window, rank;

  if (n == 0)
    return 0.0;
  for (guint i = 0; i < n; i++)
    sorted[i] = stats->window[i].latency;
  qsort (sorted, n, sizeof (gdouble), fvlm_stats_cmp_double);
  /* nearest rank: the smallest value with at least p% of the samples at or below it */
  rank = (guint) (p / 100.0 * n + 0.999999);
  rank = CLAMP (rank, 1, n);
  return sorted[rank - 1];
}

GstStructure *
fvlm_stats_to_structure (const FvlmStats * stats, gboolean busy)
{
  gdouble queue = 0, pre = 0, vis = 0, pref = 0, dec = 0, tokens = 0;
  guint n = stats->n_window;

  for (guint i = 0; i < n; i++) {
    queue += stats->window[i].queue;
    pre += stats->window[i].preprocess;
    vis += stats->window[i].vision;
    pref += stats->window[i].prefill;
    dec += stats->window[i].decode;
    tokens += stats->window[i].n_tokens;
  }

  return gst_structure_new ("fastvlm-stats",
      "frames-seen", G_TYPE_UINT64, stats->frames_seen,
      "frames-captioned", G_TYPE_UINT64, stats->captioned,
      "skipped-interval", G_TYPE_UINT64, stats->skipped_interval,
      "skipped-busy", G_TYPE_UINT64, stats->skipped_busy,
      "skipped-qos", G_TYPE_UINT64, stats->skipped_qos,
      "skipped-late", G_TYPE_UINT64, stats->skipped_late,
      "reused", G_TYPE_UINT64, stats->reused,
      "reused-answer", G_TYPE_UINT64, stats->reused,
      "reused-features", G_TYPE_UINT64, stats->reused_features,
      "n-prompt-positions", G_TYPE_UINT64, stats->prompt_positions,
      "n-reused-positions", G_TYPE_UINT64, stats->reused_positions,
      "n-draft", G_TYPE_UINT64, stats->n_draft,
      "n-accepted", G_TYPE_UINT64, stats->n_accepted,
      "draft-acceptance", G_TYPE_DOUBLE, stats->n_draft ?
      (gdouble) stats->n_accepted / stats->n_draft : 0.0,
      "truncated", G_TYPE_UINT64, stats->truncated,
      "errors", G_TYPE_UINT64, stats->errors,
      "busy", G_TYPE_BOOLEAN, busy,
      "window", G_TYPE_UINT, n,
      "latency-p50-ms", G_TYPE_DOUBLE, fvlm_stats_latency_percentile (stats, 50),
      "latency-p95-ms", G_TYPE_DOUBLE, fvlm_stats_latency_percentile (stats, 95),
      "latency-p99-ms", G_TYPE_DOUBLE, fvlm_stats_latency_percentile (stats, 99),
      "queue-ms", G_TYPE_DOUBLE, n ? queue / n : 0.0,
      "preprocess-ms", G_TYPE_DOUBLE, n ? pre / n : 0.0,
      "vision-ms", G_TYPE_DOUBLE, n ? vis / n : 0.0,
      "prefill-ms", G_TYPE_DOUBLE, n ? pref / n : 0.0,
      "decode-ms", G_TYPE_DOUBLE, n ? dec / n : 0.0,
      "decode-tokens-per-second", G_TYPE_DOUBLE,
      dec > 0 ? tokens * 1000.0 / dec : 0.0, NULL);
}
