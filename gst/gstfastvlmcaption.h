/*
 * gstfastvlmcaption.h — the fastvlmcaption element: captions live or recorded video with
 * FastVLM while passing the video through untouched.
 *
 * What it is: a GstVideoFilter working in place with an extra always `text_src` pad; the
 * instance struct below lists which thread owns each field. What it is not: the model
 * (libfastvlm, through fastvlm.h only), nor the thread that runs it (gstfastvlmworker.c).
 */
#ifndef __GST_FASTVLM_CAPTION_H__
#define __GST_FASTVLM_CAPTION_H__

#include <gst/gst.h>
#include <gst/video/video.h>
#include <gst/video/gstvideofilter.h>

#include "fastvlm.h"
#include "gstfastvlmmodelcache.h"
#include "gstfastvlmoverlay.h"
#include "gstfastvlmpreprocess.h"
#include "gstfastvlmstats.h"
#include "gstfastvlmtextsrc.h"
#include "gstfastvlmworker.h"

G_BEGIN_DECLS

#define GST_TYPE_FASTVLM_CAPTION (gst_fastvlm_caption_get_type ())
G_DECLARE_FINAL_TYPE (GstFastVLMCaption, gst_fastvlm_caption, GST, FASTVLM_CAPTION,
    GstVideoFilter)

#define GST_TYPE_FASTVLM_CAPTION_MODE (gst_fastvlm_caption_mode_get_type ())
GType gst_fastvlm_caption_mode_get_type (void);

GST_ELEMENT_REGISTER_DECLARE (fastvlmcaption)

typedef enum
{
  GST_FASTVLM_CAPTION_MODE_AUTO,        /* live when upstream answers the LATENCY query live */
  GST_FASTVLM_CAPTION_MODE_LIVE,        /* latest frame wins, video never waits */
  GST_FASTVLM_CAPTION_MODE_OFFLINE      /* every sampled frame captioned, in order */
} GstFastVLMCaptionMode;

struct _GstFastVLMCaption
{
  GstVideoFilter videofilter;

  GstPad *text_srcpad;

  /* properties, under the object lock */
  gchar *model_path;
  gchar *mmproj_path;
  gchar *config_path;
  GError *config_error;         /* from the last `config`, reported by start() */
  /* the last value refused by a limit (docs/limits.md), per FvlmRefused property; cleared
   * by a value within it, reported by start() */
  gchar *refused[3];
  gboolean applying_config;
  gchar *prompt;
  gchar *system_prompt;
  guint prompt_id;              /* bumped by every prompt / system-prompt change and ask */
  guint max_new_tokens;
  gfloat temperature;
  gfloat top_p;
  guint64 seed;
  gint image_size;              /* pixels, 0 = the model's */
  gint n_threads;               /* 0 = number of CPUs */
  gint concurrent_runs;         /* runs of the shared model at once; 0 = CPUs / threads */
  gboolean batch_decode;        /* join decode steps with concurrent runs on the model */
  GstClockTime interval;        /* ns of running time between samples */
  GstFastVLMCaptionMode mode;
  GstClockTime max_latency;     /* ns, 0 = unbounded */
  gboolean overlay;
  GstClockTime stats_interval;  /* ns of running time between fastvlm-stats messages */
  gchar **prompts;              /* `prompts` (NULL-terminated, >= 1), or NULL: `prompt` */
  gboolean reuse;               /* fingerprint gate, KV prefix reuse, speculative decoding */
  gdouble reuse_threshold;      /* fingerprint distance (0-255) below which frames reuse */
  gchar *oneshot_prompt;        /* "ask": question for the next sample, until answered */
  guint oneshot_id;

  /* engine: created in start(), freed in stop() (state-change thread) */
  FvlmModelHandle *model;
  fastvlm_model_info info;
  FvlmWorker *worker;
  gint size;                    /* side of the model's input square, pixels */
  guint8 pad_rgb[3];

  /* streaming thread only */
  FvlmPreprocess preprocess;
  gboolean have_preprocess;
  gboolean live;
  gboolean live_known;
  GstClockTime last_sample_rt;
  gint64 last_sample_us;
  GstClockTime next_stats_rt;
  gint64 last_arrival_us;
  gdouble frame_period_us;      /* exponential mean of the gaps between arrivals */
  FvlmOverlay *overlay_renderer;
  guint overlay_serial_seen;
  guint64 next_seq;

  /* shared by the streaming, worker and downstream threads, under `lock` */
  GMutex lock;
  GQueue pending_metas;         /* GstStructure*: results waiting for an outgoing buffer */
  gchar *overlay_text;
  guint overlay_serial;
  GstClockTime qos_earliest;    /* running time; frames at or before it skip inference */
  GstClockTime qos_throttle;    /* ns between samples asked by a THROTTLE QoS event */
  gdouble qos_proportion;
  FvlmStats stats;
  GstSegment segment;           /* the video segment */
  GstClockTime video_end;       /* end (PTS + duration) of the latest frame in `segment` */
  gboolean text_eos_pending;
  guint32 last_seek_seqnum;

  FvlmTextSrc text;
};

G_END_DECLS

#endif /* __GST_FASTVLM_CAPTION_H__ */
