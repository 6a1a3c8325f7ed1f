/*
 * gstfastvlmcaption.c — the fastvlmcaption element: GStreamer side of FastVLM captioning.
 *
 * What it is: pads, caps, properties, events, queries, state changes, the sampling
 * decision on the streaming thread, and the four outputs of every result (meta, text pad,
 * bus message, signal) plus the optional overlay. What it is not: the model thread
 * (gstfastvlmworker.c), the preprocessing (gstfastvlmpreprocess.c + orc/fastvlm.orc), the
 * text stream bookkeeping (gstfastvlmtextsrc.c), nor the engine (fastvlm.h).
 */

/**
 * SECTION:element-fastvlmcaption
 * @title: fastvlmcaption
 *
 * Describes video in words with Apple's FastVLM (FastViTHD vision tower, mlp2x_gelu
 * projector, Qwen2 decoder) running in libfastvlm on the CPU. Video goes through
 * untouched (in place, no copy); sampled frames are copied, downscaled, into a one-slot
 * mailbox read by a worker thread, so the video never waits for the model in live mode.
 *
 * Every result is delivered four ways:
 *
 * * a `FastVLMCaptionMeta` custom meta (registered without tags, so it survives
 *   videoconvert/videoscale) on a video buffer: offline on the frame it describes, live on
 *   the next outgoing frame. Read it with
 *   `gst_buffer_get_custom_meta (buf, "FastVLMCaptionMeta")`;
 * * a buffer on the always `text_src` pad (`text/x-raw, format=utf8`): PTS = the described
 *   frame's PTS, duration = until the next caption (the request already waiting when
 *   known, else the end of the latest video frame or the sampling interval), GAP events
 *   for spans without caption, queued by the worker thread and pushed by the pad's own
 *   task. It feeds textoverlay,
 *   webvttenc, srtenc or matroskamux;
 * * an element message named `fastvlm-caption` on the bus;
 * * the #GstFastVLMCaption::caption signal, emitted from the worker thread.
 *
 * With overlay=true the latest caption is also drawn on the video.
 *
 * ## Fields of `fastvlm-caption` (message, signal, meta)
 *
 * * `text` (string): the caption, UTF-8.
 * * `prompt` (string): the question that was asked.
 * * `prompt-id` (uint): id of that question; every change of prompt or system-prompt and
 *   every #GstFastVLMCaption::ask makes a new id.
 * * `caption-id` (guint64): number of the request (increasing per element).
 * * `frame-pts` (guint64, ns): PTS of the described frame.
 * * `frame-duration` (guint64, ns): its duration (GST_CLOCK_TIME_NONE when unknown).
 * * `frame-running-time` (guint64, ns): its running time.
 * * `started-running-time`, `ended-running-time` (guint64, ns): clock running time at
 *   which the model run started and ended (GST_CLOCK_TIME_NONE without a clock).
 * * `latency-ms` (double): from the frame reaching the element to the result.
 * * `queue-ms` (double): time the frame waited in the mailbox.
 * * `preprocess-ms` (double): colour conversion + scaling + ORC normalisation.
 * * `vision-ms` (double): vision tower + projector.
 * * `prefill-ms` (double): prompt prefill.
 * * `decode-ms` (double): token generation.
 * * `n-tokens` (int): generated tokens.
 * * `tokens-per-second` (double): n-tokens / decode time.
 * * `truncated` (boolean): stopped before the model ended the answer (max-new-tokens,
 *   context, or max-latency).
 * * `stop-reason` (string): "eos", "length", "context", "latency" or "reused".
 * * `reused` (boolean): the scene had not changed (reuse-threshold), the previous caption
 *   was republished without running the model.
 * * `reuse` (string): "none" (frame encoded), "features" (the last encoded frame's image
 *   features, tower skipped, vision-ms 0) or "answer" (as `reused`).
 * * `encoded-pts` (guint64, ns): PTS of the frame whose features the caption describes.
 * * `scene-distance` (double): fingerprint distance to that frame (-1: not compared).
 * * `prompt-index`, `n-prompts` (uint): the question's index in `prompts` and their count.
 * * `n-prompt-tokens`, `n-reused-positions` (int): prompt positions, of which from cache.
 * * `n-draft`, `n-accepted` (int), `draft-acceptance` (double): speculative decoding.
 *
 * ## Fields of `fastvlm-stats` (the stats property and the periodic message)
 *
 * Counters since start (guint64): `frames-seen`, `frames-captioned`, `skipped-interval`
 * (closer than interval to the last sample), `skipped-busy` (live: model busy; either not
 * converted or replaced in the mailbox by a newer frame), `skipped-qos` (live: late or
 * throttled per downstream QoS), `skipped-late` (live: dropped unanswered at max-latency),
 * `reused` (= `reused-answer`), `reused-features`, `truncated`, `errors`,
 * `n-prompt-positions`, `n-reused-positions`, `n-draft`, `n-accepted`;
 * `draft-acceptance` (double). `busy` (boolean): a model run is in progress.
 * Over the last `window` (uint, up to 256) model runs: `latency-p50-ms`, `latency-p95-ms`,
 * `latency-p99-ms`, `queue-ms`, `preprocess-ms`, `vision-ms`, `prefill-ms`, `decode-ms`
 * (means, double) and `decode-tokens-per-second` (double).
 * Sharing (uint unless said): `model-users` (elements of the process on the same loaded
 * model), `scheduler-streams`, `scheduler-max-runs`, `scheduler-running`,
 * `scheduler-waiting` and `scheduler-grants` (guint64) of that model's run scheduler;
 * `batch-forwards` and `batch-steps` (guint64): batched decode forwards on that model
 * and the decode steps they carried (batch-decode).
 *
 * ## Many elements, one model
 *
 * Elements of one process naming the same model files share the loaded model and take
 * turns running it (gstfastvlmscheduler.c): at most `concurrent-runs` runs at once (default:
 * one, with all the threads), the stream served least recently first. A live stream's
 * waiting frame keeps being replaced by newer ones until its turn; a flush or state change
 * of one element cancels only its own wait or run.
 *
 * ## Other bus messages
 *
 * * PROGRESS (type start/complete/error, code "load-model") around the model load in the
 *   READY→PAUSED transition.
 * * QOS for each frame whose inference was skipped because of downstream QoS, with
 *   processed (frames given to the model) and dropped (skipped-qos) counts in BUFFERS.
 * * ERROR (RESOURCE, NOT_FOUND / OPEN_READ / FAILED / SETTINGS) when the model cannot be
 *   loaded; the state change then fails. The message names the file.
 * * WARNING when the engine fails on one frame (the stream goes on) or no model is set.
 *
 * ## Live and offline
 *
 * mode=live (or auto with a live upstream): the streaming thread never waits; a frame is
 * sampled when `interval` has passed (running time; works with framerate=0/1), the frame
 * is not late per QoS and the model is about to be free; a newer sample replaces a
 * waiting one. The LATENCY query answer grows by max-latency, and a generation that
 * reaches max-latency stops between tokens (result marked truncated).
 * mode=offline (or auto with a file): every sampled frame is captioned in order and
 * carries its own caption; the streaming thread waits for the model. QoS is ignored.
 * FLUSH_START aborts the generation in flight; EOS waits for pending work and is forwarded
 * on both source pads.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 filesrc location=clip.mp4 ! decodebin ! videoconvert ! \
 *     fastvlmcaption model=FastVLM-0.5B.gguf mmproj=FastVLM-0.5B-mmproj.gguf \
 *     interval=2000000000 name=c ! fakesink  c.text_src ! fakesink dump=true
 * ]| Captions a file every 2 s of video and prints the text buffers.
 * |[
 * gst-launch-1.0 -m videotestsrc is-live=true ! video/x-raw,width=640,height=480 ! \
 *     fastvlmcaption model=m.gguf mmproj=m-mmproj.gguf overlay=true ! \
 *     videoconvert ! autovideosink
 * ]| Live captions drawn on the video; -m prints the fastvlm-caption messages.
 * |[
 * gst-launch-1.0 filesrc location=clip.mp4 ! decodebin ! videoconvert ! \
 *     fastvlmcaption model=m.gguf mmproj=m-mmproj.gguf mode=offline interval=1000000000 \
 *     name=c ! fakesink  c.text_src ! webvttenc ! filesink location=clip.vtt
 * ]| Writes WebVTT subtitles, one caption per second of video.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>

#include "gstfastvlmcaption.h"
#include "gstfastvlmcaptionmeta.h"
#include "gstfastvlmdefaultmodel.h"
#ifdef HAVE_FASTVLM_CONFIG
#include "fastvlm-config.h"
#endif

GST_DEBUG_CATEGORY_STATIC (gst_fastvlm_caption_debug);
#define GST_CAT_DEFAULT gst_fastvlm_caption_debug

#define DEFAULT_PROMPT "Describe the image."
#define DEFAULT_SYSTEM_PROMPT "You are a helpful assistant."
#define DEFAULT_MAX_NEW_TOKENS 64
#define DEFAULT_TEMPERATURE 0.0f
#define DEFAULT_TOP_P 1.0f
#define DEFAULT_SEED 0
#define DEFAULT_IMAGE_SIZE 0
#define DEFAULT_THREADS 0
#define DEFAULT_CONCURRENT_RUNS 0
#define DEFAULT_BATCH_DECODE FALSE
#define DEFAULT_INTERVAL 0
#define DEFAULT_MODE GST_FASTVLM_CAPTION_MODE_AUTO
#define DEFAULT_MAX_LATENCY 0
#define DEFAULT_OVERLAY FALSE
#define DEFAULT_STATS_INTERVAL GST_SECOND
#define DEFAULT_REUSE TRUE
/* fingerprint distance in grey levels; measured in docs/reuse.md ("The element") */
#define DEFAULT_REUSE_THRESHOLD 1.0
/* Longest caption the max-new-tokens property allows (docs/limits.md); the other limits
 * on what the element takes are the engine's (fastvlm.h). */
#define MAX_NEW_TOKENS_LIMIT 4096

enum
{
  PROP_0,
  PROP_MODEL,
  PROP_MMPROJ,
  PROP_CONFIG,
  PROP_PROMPT,
  PROP_SYSTEM_PROMPT,
  PROP_PROMPT_ID,
  PROP_MAX_NEW_TOKENS,
  PROP_TEMPERATURE,
  PROP_TOP_P,
  PROP_SEED,
  PROP_IMAGE_SIZE,
  PROP_THREADS,
  PROP_INTERVAL,
  PROP_MODE,
  PROP_MAX_LATENCY,
  PROP_OVERLAY,
  PROP_STATS,
  PROP_STATS_INTERVAL,
  PROP_REUSE_THRESHOLD,
  PROP_REUSE,
  PROP_PROMPTS,
  PROP_CONCURRENT_RUNS,
  PROP_BATCH_DECODE
};

enum
{
  SIGNAL_CAPTION,
  SIGNAL_ASK,
  LAST_SIGNAL
};

static guint gst_fastvlm_caption_signals[LAST_SIGNAL] = { 0 };

#define VIDEO_FORMATS "{ I420, YV12, NV12, NV21, Y42B, Y444, YUY2, UYVY, " \
    "RGB, BGR, RGBx, BGRx, xRGB, xBGR, RGBA, BGRA, ARGB, ABGR, GRAY8 }"

static GstStaticPadTemplate gst_fastvlm_caption_sink_template =
GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (VIDEO_FORMATS)));

static GstStaticPadTemplate gst_fastvlm_caption_src_template =
GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (VIDEO_FORMATS)));

static GstStaticPadTemplate gst_fastvlm_caption_text_src_template =
GST_STATIC_PAD_TEMPLATE ("text_src",
    GST_PAD_SRC,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS ("text/x-raw, format=(string)utf8"));

#define gst_fastvlm_caption_parent_class parent_class
G_DEFINE_TYPE (GstFastVLMCaption, gst_fastvlm_caption, GST_TYPE_VIDEO_FILTER)
GST_ELEMENT_REGISTER_DEFINE (fastvlmcaption, "fastvlmcaption", GST_RANK_NONE,
    GST_TYPE_FASTVLM_CAPTION)

static void gst_fastvlm_caption_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec);
static void gst_fastvlm_caption_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec);
static void gst_fastvlm_caption_finalize (GObject * object);
static GstStateChangeReturn gst_fastvlm_caption_change_state (GstElement *
    element, GstStateChange transition);
static gboolean gst_fastvlm_caption_start (GstBaseTransform * trans);
static gboolean gst_fastvlm_caption_stop (GstBaseTransform * trans);
static gboolean gst_fastvlm_caption_sink_event (GstBaseTransform * trans,
    GstEvent * event);
static gboolean gst_fastvlm_caption_src_event (GstBaseTransform * trans,
    GstEvent * event);
static gboolean gst_fastvlm_caption_query (GstBaseTransform * trans,
    GstPadDirection direction, GstQuery * query);
static GstFlowReturn gst_fastvlm_caption_transform_ip (GstBaseTransform * trans,
    GstBuffer * buf);
static gboolean gst_fastvlm_caption_set_info (GstVideoFilter * filter,
    GstCaps * incaps, GstVideoInfo * in_info, GstCaps * outcaps,
    GstVideoInfo * out_info);
static gboolean gst_fastvlm_caption_text_event (GstPad * pad,
    GstObject * parent, GstEvent * event);
static gboolean gst_fastvlm_caption_text_query (GstPad * pad,
    GstObject * parent, GstQuery * query);
static guint gst_fastvlm_caption_ask (GstFastVLMCaption * self,
    const gchar * question);

GType
gst_fastvlm_caption_mode_get_type (void)
{
  static gsize id = 0;
  static const GEnumValue values[] = {
    {GST_FASTVLM_CAPTION_MODE_AUTO,
        "Live when upstream is live, else offline", "auto"},
    {GST_FASTVLM_CAPTION_MODE_LIVE,
        "Latest frame wins, video never waits, bounded latency", "live"},
    {GST_FASTVLM_CAPTION_MODE_OFFLINE,
        "Every sampled frame is captioned in order, video waits", "offline"},
    {0, NULL, NULL}
  };

  if (g_once_init_enter (&id)) {
    GType type = g_enum_register_static ("GstFastVLMCaptionMode", values);
    g_once_init_leave (&id, type);
  }
  return (GType) id;
}

static void
gst_fastvlm_caption_class_init (GstFastVLMCaptionClass * klass)
{
  GObjectClass *gobject_class = (GObjectClass *) klass;
  GstElementClass *element_class = (GstElementClass *) klass;
  GstBaseTransformClass *trans_class = (GstBaseTransformClass *) klass;
  GstVideoFilterClass *vfilter_class = (GstVideoFilterClass *) klass;

  GST_DEBUG_CATEGORY_INIT (gst_fastvlm_caption_debug, "fastvlmcaption", 0,
      "FastVLM video captioning");

  gobject_class->set_property = gst_fastvlm_caption_set_property;
  gobject_class->get_property = gst_fastvlm_caption_get_property;
  gobject_class->finalize = gst_fastvlm_caption_finalize;

  g_object_class_install_property (gobject_class, PROP_MODEL,
      g_param_spec_string ("model", "Model",
          "Path of the language-model GGUF (llama.cpp qwen2 layout). Unset: the "
          "built-in demo model (" FVLM_DEFAULT_MODEL_NAME ", a small captioner of "
          "synthetic shapes and videotestsrc patterns) from $FASTVLM_MODEL_DIR, the "
          "installed models directory or the source tree, with its mmproj when mmproj is "
          "unset too. \"\" (empty): no model, video passes through", NULL,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_MMPROJ,
      g_param_spec_string ("mmproj", "Vision projector",
          "Path of the vision tower + projector GGUF (the \"mmproj\")", NULL,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_CONFIG,
      g_param_spec_string ("config", "Config file",
          "YAML file whose top-level mapping sets properties of this element by name "
          "(applied when set; invalid files fail the next start)", NULL,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_PROMPT,
      g_param_spec_string ("prompt", "Prompt",
          "Question asked about each sampled frame; a change applies to the next "
          "request and gets a new prompt-id. At most "
          G_STRINGIFY (FASTVLM_MAX_PROMPT_BYTES) " bytes: a longer one is "
          "refused (WARNING; the next start fails until a valid one is set)",
          DEFAULT_PROMPT,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_SYSTEM_PROMPT,
      g_param_spec_string ("system-prompt", "System prompt",
          "System message of the chat template; a change applies to the next request "
          "and gets a new prompt-id. At most " G_STRINGIFY (FASTVLM_MAX_PROMPT_BYTES)
          " bytes, refused like prompt",
          DEFAULT_SYSTEM_PROMPT,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_PROMPT_ID,
      g_param_spec_uint ("prompt-id", "Prompt id",
          "Id of the current prompt + system prompt (results carry the id they answer)",
          0, G_MAXUINT, 1, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_MAX_NEW_TOKENS,
      g_param_spec_uint ("max-new-tokens", "Max new tokens",
          "Longest caption, in tokens", 1, MAX_NEW_TOKENS_LIMIT, DEFAULT_MAX_NEW_TOKENS,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_TEMPERATURE,
      g_param_spec_float ("temperature", "Temperature",
          "Sampling temperature; 0 = greedy (deterministic)", 0.0f, 10.0f,
          DEFAULT_TEMPERATURE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_TOP_P,
      g_param_spec_float ("top-p", "Top p",
          "Nucleus sampling mass (used when temperature > 0); 1 = off", 0.0f, 1.0f,
          DEFAULT_TOP_P,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_SEED,
      g_param_spec_uint64 ("seed", "Seed",
          "Sampling seed (used when temperature > 0)", 0, G_MAXUINT64, DEFAULT_SEED,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_IMAGE_SIZE,
      g_param_spec_int ("image-size", "Image size",
          "Side of the square the model sees, pixels, a multiple of 64; 0 = the model's "
          "own (1024 for FastVLM)", 0, FASTVLM_MAX_IMAGE_SIZE, DEFAULT_IMAGE_SIZE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_THREADS,
      g_param_spec_int ("threads", "Threads",
          "CPU threads of the model; 0 = one per CPU", 0, 256, DEFAULT_THREADS,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_CONCURRENT_RUNS,
      g_param_spec_int ("concurrent-runs", "Concurrent runs",
          "Model runs at once among all elements of the process sharing this model "
          "(same files); the others wait their turn, least recently served first. The "
          "smallest value among those elements applies. 0 = CPUs / threads, at least 1",
          0, 256, DEFAULT_CONCURRENT_RUNS,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_BATCH_DECODE,
      g_param_spec_boolean ("batch-decode", "Batch decode",
          "Run this element's decode steps together with those of the other elements "
          "on the same model running at the same time (one forward reads the weights "
          "once for all; needs concurrent-runs > 1). Captions are the same either way",
          DEFAULT_BATCH_DECODE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_INTERVAL,
      g_param_spec_uint64 ("interval", "Interval",
          "Least running time between two sampled frames, in ns; 0 = as often as the "
          "model allows", 0, G_MAXUINT64, DEFAULT_INTERVAL,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_MODE,
      g_param_spec_enum ("mode", "Mode",
          "live: latest frame wins and video never waits; offline: every sampled frame "
          "is captioned and carries its caption; auto: live if upstream is live",
          GST_TYPE_FASTVLM_CAPTION_MODE, DEFAULT_MODE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_MAX_LATENCY,
      g_param_spec_uint64 ("max-latency", "Max latency",
          "Live: latency budget from frame arrival to caption, in ns, added to the "
          "LATENCY query; a generation reaching it stops (truncated) and a frame that "
          "cannot make it is dropped; 0 = unbounded, nothing declared", 0,
          G_MAXUINT64, DEFAULT_MAX_LATENCY,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_OVERLAY,
      g_param_spec_boolean ("overlay", "Overlay",
          "Draw the latest caption on the video (white on a dark box, bottom)",
          DEFAULT_OVERLAY,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "fastvlm-stats structure: counters, latency percentiles (ms), mean stage times "
          "(ms), decode tokens/s (fields in the element documentation)",
          GST_TYPE_STRUCTURE, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_STATS_INTERVAL,
      g_param_spec_uint64 ("stats-interval", "Stats interval",
          "Running time between fastvlm-stats element messages, in ns; 0 = none "
          "(one is still posted at EOS)", 0, G_MAXUINT64, DEFAULT_STATS_INTERVAL,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_REUSE_THRESHOLD,
      g_param_spec_double ("reuse-threshold", "Reuse threshold",
          "Scene-change test (with reuse): when the mean absolute difference of 32x32 "
          "grey thumbnails (0-255 levels) from the last encoded frame is below this, "
          "its image features are reused (vision tower skipped) and, with greedy "
          "decoding and the same question, its caption is republished; 0 = never",
          0.0, 255.0, DEFAULT_REUSE_THRESHOLD,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_REUSE,
      g_param_spec_boolean ("reuse", "Reuse across frames",
          "Reuse work of earlier frames: the scene-change test (reuse-threshold), the "
          "model's KV cache prefix, and the previous answer as a speculative draft. "
          "Captions are the same either way; false = compute everything anew",
          DEFAULT_REUSE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_PROMPTS,
      gst_param_spec_array ("prompts", "Prompts",
          "Several questions asked about each sampled frame, one result each (with "
          "prompt-index); when not empty it overrides prompt. A change applies to the "
          "next request and gets a new prompt-id. At most "
          G_STRINGIFY (FASTVLM_MAX_PROMPTS) " questions of at most "
          G_STRINGIFY (FASTVLM_MAX_PROMPT_BYTES) " bytes each, refused like prompt",
          g_param_spec_string ("question", "Question", "One question", NULL,
              G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS),
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstFastVLMCaption::caption:
   * @self: the element
   * @result: the `fastvlm-caption` structure (fields in the element documentation)
   *
   * Emitted from the worker thread for every result, after the meta is queued and the
   * message posted, before the text buffer is pushed.
   */
  gst_fastvlm_caption_signals[SIGNAL_CAPTION] =
      g_signal_new ("caption", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
      NULL, NULL, NULL, G_TYPE_NONE, 1,
      GST_TYPE_STRUCTURE | G_SIGNAL_TYPE_STATIC_SCOPE);

  /**
   * GstFastVLMCaption::ask:
   * @self: the element
   * @question: a one-shot question
   *
   * Asks @question about the next frame (sampled at once, whatever the interval),
   * instead of the prompt, until it is answered. Returns its prompt-id, or 0 when
   * @question is refused: longer than FASTVLM_MAX_PROMPT_BYTES (a WARNING message
   * names the limit and the length).
   */
  gst_fastvlm_caption_signals[SIGNAL_ASK] =
      g_signal_new_class_handler ("ask", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION,
      G_CALLBACK (gst_fastvlm_caption_ask), NULL, NULL, NULL, G_TYPE_UINT, 1,
      G_TYPE_STRING);

  gst_element_class_set_static_metadata (element_class,
      "FastVLM video captioning", "Filter/Analyzer/Video",
      "Describes video in words with Apple's FastVLM vision-language model; video "
      "passes through, captions come as meta, text pad, bus message and signal",
      "gst-fastvlm developers");
  gst_element_class_add_static_pad_template (element_class,
      &gst_fastvlm_caption_sink_template);
  gst_element_class_add_static_pad_template (element_class,
      &gst_fastvlm_caption_src_template);
  gst_element_class_add_static_pad_template (element_class,
      &gst_fastvlm_caption_text_src_template);
  element_class->change_state =
      GST_DEBUG_FUNCPTR (gst_fastvlm_caption_change_state);

  trans_class->start = GST_DEBUG_FUNCPTR (gst_fastvlm_caption_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_fastvlm_caption_stop);
  trans_class->sink_event = GST_DEBUG_FUNCPTR (gst_fastvlm_caption_sink_event);
  trans_class->src_event = GST_DEBUG_FUNCPTR (gst_fastvlm_caption_src_event);
  trans_class->query = GST_DEBUG_FUNCPTR (gst_fastvlm_caption_query);
  /* our own transform_ip (not GstVideoFilter's): it maps the frame only when it is
   * sampled or drawn on, and only for reading when sampled */
  trans_class->transform_ip =
      GST_DEBUG_FUNCPTR (gst_fastvlm_caption_transform_ip);
  trans_class->passthrough_on_same_caps = FALSE;
  trans_class->transform_ip_on_passthrough = FALSE;
  vfilter_class->set_info = GST_DEBUG_FUNCPTR (gst_fastvlm_caption_set_info);

  gst_type_mark_as_plugin_api (GST_TYPE_FASTVLM_CAPTION_MODE, 0);
}

static void
gst_fastvlm_caption_init (GstFastVLMCaption * self)
{
  GstBaseTransform *trans = GST_BASE_TRANSFORM (self);

  /* Video is never transformed, only read (sampling) or drawn on (overlay), in place.
   * Not passthrough: a caption meta needs a writable (metadata-only copy) buffer.
   * No base-class QoS: it would drop frames; QoS here skips inference only. */
  gst_base_transform_set_in_place (trans, TRUE);
  gst_base_transform_set_passthrough (trans, FALSE);
  gst_base_transform_set_qos_enabled (trans, FALSE);

  self->text_srcpad = gst_pad_new_from_static_template
      (&gst_fastvlm_caption_text_src_template, "text_src");
  gst_pad_set_event_function (self->text_srcpad,
      GST_DEBUG_FUNCPTR (gst_fastvlm_caption_text_event));
  gst_pad_set_query_function (self->text_srcpad,
      GST_DEBUG_FUNCPTR (gst_fastvlm_caption_text_query));
  gst_pad_use_fixed_caps (self->text_srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->text_srcpad);

  self->prompt = g_strdup (DEFAULT_PROMPT);
  self->system_prompt = g_strdup (DEFAULT_SYSTEM_PROMPT);
  self->prompt_id = 1;
  self->max_new_tokens = DEFAULT_MAX_NEW_TOKENS;
  self->temperature = DEFAULT_TEMPERATURE;
  self->top_p = DEFAULT_TOP_P;
  self->seed = DEFAULT_SEED;
  self->image_size = DEFAULT_IMAGE_SIZE;
  self->n_threads = DEFAULT_THREADS;
  self->concurrent_runs = DEFAULT_CONCURRENT_RUNS;
  self->batch_decode = DEFAULT_BATCH_DECODE;
  self->interval = DEFAULT_INTERVAL;
  self->mode = DEFAULT_MODE;
  self->max_latency = DEFAULT_MAX_LATENCY;
  self->overlay = DEFAULT_OVERLAY;
  self->stats_interval = DEFAULT_STATS_INTERVAL;
  self->reuse_threshold = DEFAULT_REUSE_THRESHOLD;
  self->reuse = DEFAULT_REUSE;
  self->prompts = NULL;

  g_mutex_init (&self->lock);
  g_queue_init (&self->pending_metas);
  gst_segment_init (&self->segment, GST_FORMAT_TIME);
  self->video_end = GST_CLOCK_TIME_NONE;
  self->qos_earliest = GST_CLOCK_TIME_NONE;
  self->qos_throttle = 0;
  fvlm_stats_reset (&self->stats);
  fvlm_text_src_init (&self->text, self->text_srcpad);
}

static void
gst_fastvlm_caption_finalize (GObject * object)
{
  GstFastVLMCaption *self = GST_FASTVLM_CAPTION (object);

  g_free (self->model_path);
  g_free (self->mmproj_path);
  g_free (self->config_path);
  g_clear_error (&self->config_error);
  g_free (self->prompt);
  g_free (self->system_prompt);
  g_strfreev (self->prompts);
  for (guint i = 0; i < G_N_ELEMENTS (self->refused); i++)
    g_free (self->refused[i]);
  g_free (self->oneshot_prompt);
  g_free (self->overlay_text);
  g_queue_clear_full (&self->pending_metas, (GDestroyNotify) gst_structure_free);
  fvlm_text_src_clear (&self->text);
  g_mutex_clear (&self->lock);

  G_OBJECT_CLASS (parent_class)->finalize (object);
}

/* ---- properties -------------------------------------------------------------------- */

/* `config`: applies a YAML file through fastvlm_config_apply(), which sets our properties
 * by name (re-entering set_property, so no lock is held here). */
static void
gst_fastvlm_caption_apply_config (GstFastVLMCaption * self, const gchar * path)
{
  GError *error = NULL;

  if (path == NULL || *path == '\0')
    goto done;
#ifdef HAVE_FASTVLM_CONFIG
  if (!fastvlm_config_apply (G_OBJECT (self), path, &error))
    GST_WARNING_OBJECT (self, "config %s: %s", path, error->message);
#else
  g_set_error (&error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS,
      "%s: this build has no YAML config support", path);
#endif

done:
  GST_OBJECT_LOCK (self);
  g_clear_error (&self->config_error);
  self->config_error = error;
  GST_OBJECT_UNLOCK (self);
}

/* Indices of GstFastVLMCaption.refused. */
typedef enum
{
  FVLM_REFUSED_PROMPT,
  FVLM_REFUSED_SYSTEM_PROMPT,
  FVLM_REFUSED_PROMPTS
} FvlmRefused;

/* NULL when question @s (named @what) is within FASTVLM_MAX_PROMPT_BYTES, else why not. */
static gchar *
gst_fastvlm_caption_check_prompt (const gchar * what, const gchar * s)
{
  gsize n = s ? strlen (s) : 0;

  if (n > FASTVLM_MAX_PROMPT_BYTES)
    return g_strdup_printf ("%s is %" G_GSIZE_FORMAT " bytes, over the limit of "
        "%d bytes (FASTVLM_MAX_PROMPT_BYTES)", what, n, FASTVLM_MAX_PROMPT_BYTES);
  return NULL;
}

/* The same for `prompts` (NULL-terminated, or NULL): their number and each one. */
static gchar *
gst_fastvlm_caption_check_prompts (gchar ** prompts)
{
  guint n = prompts ? g_strv_length (prompts) : 0;

  if (n > FASTVLM_MAX_PROMPTS)
    return g_strdup_printf ("prompts has %u questions, over the limit of %d "
        "(FASTVLM_MAX_PROMPTS)", n, FASTVLM_MAX_PROMPTS);
  for (guint i = 0; i < n; i++) {
    gchar *what = g_strdup_printf ("prompts[%u]", i);
    gchar *why = gst_fastvlm_caption_check_prompt (what, prompts[i]);

    g_free (what);
    if (why)
      return why;
  }
  return NULL;
}

/* Records (or, with @why NULL, clears) the refusal of property @which; takes @why. Call
 * with the object lock held. */
static void
gst_fastvlm_caption_set_refused (GstFastVLMCaption * self, FvlmRefused which,
    gchar * why)
{
  g_free (self->refused[which]);
  self->refused[which] = why;
}

/* Says a value was refused: a WARNING on the bus (lost when the element has no bus
 * yet, which is why start() reports it again). Lock not held. */
static void
gst_fastvlm_caption_post_refused (GstFastVLMCaption * self, const gchar * why)
{
  GST_WARNING_OBJECT (self, "%s: refused", why);
  GST_ELEMENT_WARNING (self, RESOURCE, SETTINGS,
      ("%s: refused, the previous value is kept", why), (NULL));
}

/* `prompts` as a NULL-terminated copy, or NULL when empty (strings that are not
 * strings, or NULL, are skipped). */
static gchar **
gst_fastvlm_caption_prompts_from_value (const GValue * value)
{
  guint n = gst_value_array_get_size (value), k = 0;
  gchar **prompts;

  if (n == 0)
    return NULL;
  prompts = g_new0 (gchar *, n + 1);
  for (guint i = 0; i < n; i++) {
    const GValue *v = gst_value_array_get_value (value, i);

    if (G_VALUE_HOLDS_STRING (v) && g_value_get_string (v))
      prompts[k++] = g_value_dup_string (v);
  }
  if (k == 0)
    g_clear_pointer (&prompts, g_free);
  return prompts;
}

static void
gst_fastvlm_caption_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstFastVLMCaption *self = GST_FASTVLM_CAPTION (object);
  gboolean latency_changed = FALSE;
  gchar *refused = NULL;

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL:
      g_free (self->model_path);
      self->model_path = g_value_dup_string (value);
      break;
    case PROP_MMPROJ:
      g_free (self->mmproj_path);
      self->mmproj_path = g_value_dup_string (value);
      break;
    case PROP_CONFIG:{
      gchar *path = g_value_dup_string (value);
      gboolean nested = self->applying_config;

      g_free (self->config_path);
      self->config_path = g_strdup (path);
      self->applying_config = TRUE;
      GST_OBJECT_UNLOCK (self);
      /* a config file naming another config is not followed */
      if (!nested)
        gst_fastvlm_caption_apply_config (self, path);
      g_free (path);
      GST_OBJECT_LOCK (self);
      self->applying_config = nested;
      break;
    }
    case PROP_PROMPT:
    case PROP_SYSTEM_PROMPT:{
      gboolean is_prompt = prop_id == PROP_PROMPT;
      gchar **field = is_prompt ? &self->prompt : &self->system_prompt;
      const gchar *s = g_value_get_string (value);
      gchar *why = gst_fastvlm_caption_check_prompt (pspec->name, s);

      gst_fastvlm_caption_set_refused (self, is_prompt ? FVLM_REFUSED_PROMPT :
          FVLM_REFUSED_SYSTEM_PROMPT, g_strdup (why));
      if (why) {
        refused = why;
        break;
      }
      if (s == NULL)
        s = is_prompt ? DEFAULT_PROMPT : DEFAULT_SYSTEM_PROMPT;
      if (g_strcmp0 (*field, s) != 0) {
        g_free (*field);
        *field = g_strdup (s);
        self->prompt_id++;
      }
      break;
    }
    case PROP_MAX_NEW_TOKENS:
      self->max_new_tokens = g_value_get_uint (value);
      break;
    case PROP_TEMPERATURE:
      self->temperature = g_value_get_float (value);
      break;
    case PROP_TOP_P:
      self->top_p = g_value_get_float (value);
      break;
    case PROP_SEED:
      self->seed = g_value_get_uint64 (value);
      break;
    case PROP_IMAGE_SIZE:
      self->image_size = g_value_get_int (value);
      break;
    case PROP_THREADS:
      self->n_threads = g_value_get_int (value);
      break;
    case PROP_CONCURRENT_RUNS:
      self->concurrent_runs = g_value_get_int (value);
      break;
    case PROP_BATCH_DECODE:
      self->batch_decode = g_value_get_boolean (value);
      break;
    case PROP_INTERVAL:
      self->interval = g_value_get_uint64 (value);
      break;
    case PROP_MODE:
      self->mode = g_value_get_enum (value);
      break;
    case PROP_MAX_LATENCY:{
      GstClockTime v = g_value_get_uint64 (value);

      latency_changed = v != self->max_latency;
      self->max_latency = v;
      break;
    }
    case PROP_OVERLAY:
      self->overlay = g_value_get_boolean (value);
      break;
    case PROP_STATS_INTERVAL:
      self->stats_interval = g_value_get_uint64 (value);
      break;
    case PROP_REUSE_THRESHOLD:
      self->reuse_threshold = g_value_get_double (value);
      break;
    case PROP_REUSE:
      self->reuse = g_value_get_boolean (value);
      break;
    case PROP_PROMPTS:{
      gchar **prompts = gst_fastvlm_caption_prompts_from_value (value);
      gchar *why = gst_fastvlm_caption_check_prompts (prompts);

      gst_fastvlm_caption_set_refused (self, FVLM_REFUSED_PROMPTS,
          g_strdup (why));
      if (why) {
        refused = why;
        g_strfreev (prompts);
        break;
      }
      if (!g_strv_equal ((const gchar * const *) (prompts ? prompts :
                  (gchar *[]) {NULL}), (const gchar * const *) (self->prompts ?
                  self->prompts : (gchar *[]) {NULL}))) {
        g_strfreev (self->prompts);
        self->prompts = prompts;
        self->prompt_id++;
      } else {
        g_strfreev (prompts);
      }
      break;
    }
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);

  if (refused) {
    gst_fastvlm_caption_post_refused (self, refused);
    g_free (refused);
  }
  /* the declared latency changed: let the pipeline recompute it */
  if (latency_changed)
    gst_element_post_message (GST_ELEMENT (self),
        gst_message_new_latency (GST_OBJECT (self)));
}

static GstStructure *
gst_fastvlm_caption_get_stats (GstFastVLMCaption * self)
{
  gboolean busy;
  FvlmSchedulerStats sched = { 0, };
  guint users = 0;
  guint64 n_batches = 0, n_rows = 0;
  GstStructure *s;

  /* the worker exists from start() to stop(), both on the state-change thread; reading
   * the pointer under the object lock keeps this from racing with them (stop() frees
   * the worker before it releases the model) */
  GST_OBJECT_LOCK (self);
  busy = self->worker ? fvlm_worker_is_busy (self->worker) : FALSE;
  if (self->worker) {
    fvlm_worker_get_scheduler_stats (self->worker, &sched);
    users = fvlm_model_handle_get_users (self->model);
    if (fvlm_model_handle_get_batcher (self->model))
      fastvlm_batcher_get_stats (fvlm_model_handle_get_batcher (self->model),
          &n_batches, &n_rows);
  }
  GST_OBJECT_UNLOCK (self);

  g_mutex_lock (&self->lock);
  s = fvlm_stats_to_structure (&self->stats, busy);
  g_mutex_unlock (&self->lock);
  gst_structure_set (s, "model-users", G_TYPE_UINT, users,
      "scheduler-streams", G_TYPE_UINT, sched.n_streams,
      "scheduler-max-runs", G_TYPE_UINT, sched.max_runs,
      "scheduler-running", G_TYPE_UINT, sched.running,
      "scheduler-waiting", G_TYPE_UINT, sched.waiting,
      "scheduler-grants", G_TYPE_UINT64, sched.grants,
      "batch-forwards", G_TYPE_UINT64, n_batches,
      "batch-steps", G_TYPE_UINT64, n_rows, NULL);
  return s;
}

static void
gst_fastvlm_caption_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstFastVLMCaption *self = GST_FASTVLM_CAPTION (object);

  if (prop_id == PROP_STATS) {
    g_value_take_boxed (value, gst_fastvlm_caption_get_stats (self));
    return;
  }

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL:
      g_value_set_string (value, self->model_path);
      break;
    case PROP_MMPROJ:
      g_value_set_string (value, self->mmproj_path);
      break;
    case PROP_CONFIG:
      g_value_set_string (value, self->config_path);
      break;
    case PROP_PROMPT:
      g_value_set_string (value, self->prompt);
      break;
    case PROP_SYSTEM_PROMPT:
      g_value_set_string (value, self->system_prompt);
      break;
    case PROP_PROMPT_ID:
      g_value_set_uint (value, self->prompt_id);
      break;
    case PROP_MAX_NEW_TOKENS:
      g_value_set_uint (value, self->max_new_tokens);
      break;
    case PROP_TEMPERATURE:
      g_value_set_float (value, self->temperature);
      break;
    case PROP_TOP_P:
      g_value_set_float (value, self->top_p);
      break;
    case PROP_SEED:
      g_value_set_uint64 (value, self->seed);
      break;
    case PROP_IMAGE_SIZE:
      g_value_set_int (value, self->image_size);
      break;
    case PROP_THREADS:
      g_value_set_int (value, self->n_threads);
      break;
    case PROP_CONCURRENT_RUNS:
      g_value_set_int (value, self->concurrent_runs);
      break;
    case PROP_BATCH_DECODE:
      g_value_set_boolean (value, self->batch_decode);
      break;
    case PROP_INTERVAL:
      g_value_set_uint64 (value, self->interval);
      break;
    case PROP_MODE:
      g_value_set_enum (value, self->mode);
      break;
    case PROP_MAX_LATENCY:
      g_value_set_uint64 (value, self->max_latency);
      break;
    case PROP_OVERLAY:
      g_value_set_boolean (value, self->overlay);
      break;
    case PROP_STATS_INTERVAL:
      g_value_set_uint64 (value, self->stats_interval);
      break;
    case PROP_REUSE_THRESHOLD:
      g_value_set_double (value, self->reuse_threshold);
      break;
    case PROP_REUSE:
      g_value_set_boolean (value, self->reuse);
      break;
    case PROP_PROMPTS:
      for (gchar ** p = self->prompts; p && *p; p++) {
        GValue v = G_VALUE_INIT;

        g_value_init (&v, G_TYPE_STRING);
        g_value_set_string (&v, *p);
        gst_value_array_append_and_take_value (value, &v);
      }
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static guint
gst_fastvlm_caption_ask (GstFastVLMCaption * self, const gchar * question)
{
  gchar *why = gst_fastvlm_caption_check_prompt ("ask question", question);
  guint id;

  if (why) {
    gst_fastvlm_caption_post_refused (self, why);
    g_free (why);
    return 0;
  }
  GST_OBJECT_LOCK (self);
  g_free (self->oneshot_prompt);
  self->oneshot_prompt = g_strdup (question);
  id = self->oneshot_id = ++self->prompt_id;
  GST_OBJECT_UNLOCK (self);
  GST_INFO_OBJECT (self, "one-shot question %u: %s", id, question);
  return id;
}

/* ---- results (worker thread) ------------------------------------------------------- */

static GstClockTime
gst_fastvlm_caption_running_time_at (GstFastVLMCaption * self, gint64 mono_us)
{
  GstClockTime now = gst_element_get_current_running_time (GST_ELEMENT (self));
  gint64 ago_ns = (g_get_monotonic_time () - mono_us) * 1000;

  if (!GST_CLOCK_TIME_IS_VALID (now))
    return GST_CLOCK_TIME_NONE;
  return (gint64) now > ago_ns ? now - ago_ns : 0;
}

static GstStructure *
gst_fastvlm_caption_result_structure (GstFastVLMCaption * self,
    const FvlmRequest * req, const FvlmResult * res)
{
  const gchar *prompt = req->prompts ? req->prompts[res->prompt_index] :
      req->prompt;

  return gst_structure_new ("fastvlm-caption",
      "text", G_TYPE_STRING, res->text,
      "prompt", G_TYPE_STRING, prompt,
      "prompt-id", G_TYPE_UINT, req->prompt_id,
      "prompt-index", G_TYPE_UINT, (guint) res->prompt_index,
      "n-prompts", G_TYPE_UINT, (guint) res->n_prompts,
      "caption-id", G_TYPE_UINT64, req->seq,
      "frame-pts", G_TYPE_UINT64, req->pts,
      "frame-duration", G_TYPE_UINT64, req->duration,
      "frame-running-time", G_TYPE_UINT64, req->running_time,
      "started-running-time", G_TYPE_UINT64,
      gst_fastvlm_caption_running_time_at (self, res->start_us),
      "ended-running-time", G_TYPE_UINT64,
      gst_fastvlm_caption_running_time_at (self, res->end_us),
      "latency-ms", G_TYPE_DOUBLE, res->latency_ms,
      "queue-ms", G_TYPE_DOUBLE, res->queue_ms,
      "preprocess-ms", G_TYPE_DOUBLE, res->preprocess_ms,
      "vision-ms", G_TYPE_DOUBLE, res->vision_ms,
      "prefill-ms", G_TYPE_DOUBLE, res->prefill_ms,
      "decode-ms", G_TYPE_DOUBLE, res->decode_ms,
      "n-tokens", G_TYPE_INT, res->n_tokens,
      "tokens-per-second", G_TYPE_DOUBLE,
      res->decode_ms > 0 ? res->n_tokens * 1000.0 / res->decode_ms : 0.0,
      "truncated", G_TYPE_BOOLEAN, res->truncated,
      "stop-reason", G_TYPE_STRING, fvlm_stop_to_string (res->stop),
      "reused", G_TYPE_BOOLEAN, res->reused,
      "reuse", G_TYPE_STRING, fvlm_reuse_to_string (res->reuse),
      "encoded-pts", G_TYPE_UINT64, res->encoded_pts,
      "scene-distance", G_TYPE_DOUBLE, res->scene_distance,
      "n-prompt-tokens", G_TYPE_INT, res->n_prompt_tokens,
      "n-reused-positions", G_TYPE_INT, res->n_reused_positions,
      "n-draft", G_TYPE_INT, res->n_draft,
      "n-accepted", G_TYPE_INT, res->n_accepted,
      "draft-acceptance", G_TYPE_DOUBLE, res->n_draft > 0 ?
      (gdouble) res->n_accepted / res->n_draft : 0.0, NULL);
}

/* The one-shot question is answered (or given up on): back to the prompt. */
static void
gst_fastvlm_caption_oneshot_done (GstFastVLMCaption * self, guint prompt_id)
{
  GST_OBJECT_LOCK (self);
  if (self->oneshot_prompt && self->oneshot_id == prompt_id)
    g_clear_pointer (&self->oneshot_prompt, g_free);
  GST_OBJECT_UNLOCK (self);
}

static void
gst_fastvlm_caption_on_result (FvlmWorker * worker, const FvlmRequest * req,
    const FvlmResult * res, gpointer user_data)
{
  GstFastVLMCaption *self = user_data;
  GstStructure *s = gst_fastvlm_caption_result_structure (self, req, res);
  GstStructure *msg_s;

  GST_DEBUG_OBJECT (self, "caption %" G_GUINT64_FORMAT " for %" GST_TIME_FORMAT
      " after %.1f ms: %s", req->seq, GST_TIME_ARGS (req->pts), res->latency_ms,
      res->text);

  g_mutex_lock (&self->lock);
  self->stats.captioned++;
  if (res->reused) {
    self->stats.reused++;
  } else {
    if (res->reuse == FVLM_REUSE_FEATURES)
      self->stats.reused_features++;
    self->stats.prompt_positions += res->n_prompt_tokens;
    self->stats.reused_positions += res->n_reused_positions;
    self->stats.n_draft += res->n_draft;
    self->stats.n_accepted += res->n_accepted;
    FvlmStatsSample sample = { res->latency_ms, res->queue_ms,
      res->preprocess_ms, res->vision_ms, res->prefill_ms, res->decode_ms,
      res->n_tokens
    };
    fvlm_stats_add_sample (&self->stats, &sample);
  }
  if (res->truncated)
    self->stats.truncated++;
  g_queue_push_tail (&self->pending_metas, gst_structure_copy (s));
  g_free (self->overlay_text);
  self->overlay_text = g_strdup (res->text);
  self->overlay_serial++;
  g_mutex_unlock (&self->lock);

  gst_fastvlm_caption_oneshot_done (self, req->prompt_id);

  msg_s = gst_structure_copy (s);
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_element (GST_OBJECT (self), msg_s));
  g_signal_emit (self, gst_fastvlm_caption_signals[SIGNAL_CAPTION], 0, s);
  gst_structure_free (s);
}

/* Text pad: the caption lasts until the next one. The next one describes the request
 * already waiting in the mailbox if there is one; otherwise it cannot start before the
 * end of the video seen so far, nor before the sampling interval has passed. */
static void
gst_fastvlm_caption_on_output (FvlmWorker * worker, const FvlmRequest * req,
    const FvlmResult * res, gpointer user_data)
{
  GstFastVLMCaption *self = user_data;
  GstClockTime next, end, duration = GST_CLOCK_TIME_NONE, interval;

  if (GST_CLOCK_TIME_IS_VALID (req->pts)) {
    GST_OBJECT_LOCK (self);
    interval = self->interval;
    GST_OBJECT_UNLOCK (self);
    interval = (GstClockTime) (interval * ABS (req->segment.rate));

    next = fvlm_worker_pending_pts (worker, FALSE);
    if (GST_CLOCK_TIME_IS_VALID (next) && next > req->pts) {
      duration = next - req->pts;
    } else {
      g_mutex_lock (&self->lock);
      end = self->video_end;
      g_mutex_unlock (&self->lock);
      if (!GST_CLOCK_TIME_IS_VALID (end) || end < req->pts)
        end = req->pts;
      if (GST_CLOCK_TIME_IS_VALID (req->duration))
        end = MAX (end, req->pts + req->duration);
      end = MAX (end, req->pts + interval);
      duration = end - req->pts;
    }
  }
  fvlm_text_src_push_caption (&self->text, &req->segment, req->pts, duration,
      res->text);
}

static void
gst_fastvlm_caption_on_dropped (FvlmWorker * worker, const FvlmRequest * req,
    FvlmDropReason reason, const gchar * message, gpointer user_data)
{
  GstFastVLMCaption *self = user_data;

  g_mutex_lock (&self->lock);
  if (reason == FVLM_DROP_LATE)
    self->stats.skipped_late++;
  else
    self->stats.errors++;
  g_mutex_unlock (&self->lock);

  if (reason == FVLM_DROP_ERROR) {
    GST_ELEMENT_WARNING (self, LIBRARY, FAILED,
        ("The model failed on the frame at %" GST_TIME_FORMAT ": %s",
            GST_TIME_ARGS (req->pts), message), (NULL));
    /* a failing one-shot question is not retried forever */
    gst_fastvlm_caption_oneshot_done (self, req->prompt_id);
  } else {
    GST_DEBUG_OBJECT (self, "request %" G_GUINT64_FORMAT " dropped: %s",
        req->seq, message);
  }
}

/* Nothing is queued or running: cover the text stream up to the video, and finish it
 * after EOS. */
static void
gst_fastvlm_caption_on_idle (FvlmWorker * worker, gpointer user_data)
{
  GstFastVLMCaption *self = user_data;
  GstClockTime until, pending;
  GstSegment segment;
  gboolean eos;

  g_mutex_lock (&self->lock);
  until = self->video_end;
  segment = self->segment;
  eos = self->text_eos_pending;
  self->text_eos_pending = FALSE;
  g_mutex_unlock (&self->lock);

  /* a request submitted since the kick owns the time from its PTS on */
  pending = fvlm_worker_pending_pts (worker, TRUE);
  if (GST_CLOCK_TIME_IS_VALID (pending) && GST_CLOCK_TIME_IS_VALID (until))
    until = MIN (until, pending);
  if (GST_CLOCK_TIME_IS_VALID (until))
    fvlm_text_src_push_gap (&self->text, &segment, until);
  if (eos)
    fvlm_text_src_push_eos (&self->text, &segment);
}

/* A model run starts. Live, the text stream is covered up to the frame it describes first:
 * idle() never runs while the model is busy, so without this a sink on text_src got
 * nothing until the first caption — and, still prerolling, held the whole live pipeline
 * (video included) in PAUSED for one model run (tests/robustness test-states
 * live_preroll_no_wait; seconds with a real model). Offline the video waits for this
 * caption anyway, and the caption prerolls the text sink. */
static void
gst_fastvlm_caption_on_started (FvlmWorker * worker, const FvlmRequest * req,
    gpointer user_data)
{
  GstFastVLMCaption *self = user_data;

  if (req->live && GST_CLOCK_TIME_IS_VALID (req->pts))
    fvlm_text_src_push_gap (&self->text, &req->segment, req->pts);
}

static const FvlmWorkerFuncs gst_fastvlm_caption_worker_funcs = {
  gst_fastvlm_caption_on_result,
  gst_fastvlm_caption_on_output,
  gst_fastvlm_caption_on_dropped,
  gst_fastvlm_caption_on_idle,
  gst_fastvlm_caption_on_started,
};

/* ---- state ------------------------------------------------------------------------- */

static void
gst_fastvlm_caption_post_progress (GstFastVLMCaption * self,
    GstProgressType type, const gchar * text)
{
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_progress (GST_OBJECT (self), type, "load-model", text));
}

/* GST_ELEMENT_ERROR with a resource error code known only at run time. */
static void
gst_fastvlm_caption_post_resource_error (GstFastVLMCaption * self,
    gint code, gchar * text, gchar * debug)
{
  gst_element_message_full (GST_ELEMENT (self), GST_MESSAGE_ERROR,
      GST_RESOURCE_ERROR, code, text, debug, __FILE__, GST_FUNCTION, __LINE__);
}

static void
gst_fastvlm_caption_reset_stream (GstFastVLMCaption * self)
{
  self->live_known = FALSE;
  self->last_sample_rt = GST_CLOCK_TIME_NONE;
  self->last_sample_us = 0;
  self->next_stats_rt = GST_CLOCK_TIME_NONE;
  self->last_arrival_us = 0;

  g_mutex_lock (&self->lock);
  g_queue_clear_full (&self->pending_metas, (GDestroyNotify) gst_structure_free);
  self->qos_earliest = GST_CLOCK_TIME_NONE;
  self->qos_throttle = 0;
  self->qos_proportion = 1.0;
  self->video_end = GST_CLOCK_TIME_NONE;
  self->text_eos_pending = FALSE;
  g_mutex_unlock (&self->lock);
}

static gboolean
gst_fastvlm_caption_start (GstBaseTransform * trans)
{
  GstFastVLMCaption *self = GST_FASTVLM_CAPTION (trans);
  gchar *model_path, *mmproj_path, *text, *refused = NULL;
  gint image_size, n_threads, concurrent_runs;
  gboolean batch_decode;
  guint max_runs;
  GError *error = NULL;
  fastvlm_session_params sp;
  FvlmNormalize norm;
  FvlmWorker *worker;

  GST_OBJECT_LOCK (self);
  if (self->config_error)
    error = g_error_copy (self->config_error);
  for (guint i = 0; i < G_N_ELEMENTS (self->refused) && !refused; i++)
    refused = g_strdup (self->refused[i]);
  model_path = g_strdup (self->model_path);
  mmproj_path = g_strdup (self->mmproj_path);
  image_size = self->image_size;
  n_threads = self->n_threads;
  concurrent_runs = self->concurrent_runs;
  batch_decode = self->batch_decode;
  GST_OBJECT_UNLOCK (self);

  g_mutex_lock (&self->lock);
  fvlm_stats_reset (&self->stats);
  g_mutex_unlock (&self->lock);
  fvlm_text_src_reset (&self->text);
  gst_fastvlm_caption_reset_stream (self);
  self->next_seq = 0;
  self->overlay_renderer = fvlm_overlay_new ();
  self->overlay_serial_seen = 0;

  if (error)
    goto config_failed;
  if (refused)
    goto refused;
  if (model_path == NULL) {
    /* Never set: the built-in demo model (an explicit "" means no model). */
    gchar *dm = NULL, *dp = NULL, *searched = NULL;

    if (!fvlm_default_model_find (&dm, &dp, &searched)) {
      GST_ELEMENT_WARNING (self, RESOURCE, NOT_FOUND,
          ("No model set and the built-in demo model was not found: video passes "
              "through without captions"),
          ("looked for %s and %s in: %s; set the model and mmproj properties",
              FVLM_DEFAULT_MODEL_NAME, FVLM_DEFAULT_MMPROJ_NAME, searched));
      g_free (searched);
      g_free (mmproj_path);
      return TRUE;
    }
    GST_INFO_OBJECT (self, "no model set: using the demo model %s", dm);
    model_path = dm;
    if (mmproj_path == NULL)
      mmproj_path = dp;
    else
      g_free (dp);
  }
  if (*model_path == '\0')
    goto no_model;

  gst_fastvlm_caption_post_progress (self, GST_PROGRESS_TYPE_START,
      "Loading the FastVLM model");
  self->model = fvlm_model_cache_acquire (model_path, mmproj_path, &error);
  if (self->model == NULL)
    goto load_failed;
  fastvlm_model_get_info (fvlm_model_handle_get_model (self->model),
      &self->info);
  if (!self->info.has_vision)
    goto no_vision;

  self->size = image_size > 0 ? image_size : self->info.image_size;
  if (self->size <= 0 || self->size % 64 != 0)
    goto bad_size;
  for (gint c = 0; c < 3; c++)
    self->pad_rgb[c] = (guint8) CLAMP (self->info.image_pad_rgb[c] + 0.5f,
        0.0f, 255.0f);
  fvlm_normalize_init (&norm, self->info.image_rescale, self->info.image_mean,
      self->info.image_std);

  sp = fastvlm_session_default_params ();
  sp.n_threads = n_threads > 0 ? n_threads : (gint) g_get_num_processors ();
  sp.image_size = self->size;
  /* auto: as many runs at once as keep engine threads ~ CPUs (one with all threads) */
  max_runs = concurrent_runs > 0 ? (guint) concurrent_runs :
      MAX (1u, g_get_num_processors () / (guint) sp.n_threads);
  worker = fvlm_worker_new (fvlm_model_handle_get_model (self->model), &sp,
      &norm, fvlm_model_handle_get_scheduler (self->model), max_runs,
      batch_decode ? fvlm_model_handle_get_batcher (self->model) : NULL,
      &gst_fastvlm_caption_worker_funcs, self, &error);
  if (worker == NULL)
    goto session_failed;
  GST_OBJECT_LOCK (self);
  self->worker = worker;
  GST_OBJECT_UNLOCK (self);

  text = g_strdup_printf ("Loaded the FastVLM model (%d layers, image %dx%d)",
      self->info.n_layer, self->size, self->size);
  gst_fastvlm_caption_post_progress (self, GST_PROGRESS_TYPE_COMPLETE, text);
  g_free (text);
  GST_INFO_OBJECT (self, "model %s ready, %d threads, image %d, %u runs at once",
      fvlm_model_handle_get_key (self->model), sp.n_threads, self->size,
      max_runs);
  g_free (model_path);
  g_free (mmproj_path);
  return TRUE;

  /* ERRORS */
config_failed:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
        ("Invalid configuration file: %s", error->message), (NULL));
    goto failed;
  }
refused:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
        ("%s (the value was refused; set one within the limit)", refused), (NULL));
    g_free (refused);
    goto failed;
  }
no_model:
  {
    GST_ELEMENT_WARNING (self, RESOURCE, NOT_FOUND,
        ("Model set to \"\": video passes through without captions"),
        ("set the model and mmproj properties, or leave model unset for the "
            "built-in demo model"));
    g_free (model_path);
    g_free (mmproj_path);
    return TRUE;
  }
load_failed:
  {
    gst_fastvlm_caption_post_progress (self, GST_PROGRESS_TYPE_ERROR,
        "Could not load the FastVLM model");
    gst_fastvlm_caption_post_resource_error (self, error->code,
        g_strdup_printf ("Could not load the FastVLM model: %s",
            error->message), g_strdup_printf ("model=%s mmproj=%s", model_path,
            GST_STR_NULL (mmproj_path)));
    goto failed;
  }
no_vision:
  {
    gst_fastvlm_caption_post_progress (self, GST_PROGRESS_TYPE_ERROR,
        "The model has no vision tower");
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED,
        ("The model %s has no vision tower: set mmproj to its mmproj GGUF",
            model_path), (NULL));
    goto failed;
  }
bad_size:
  {
    gst_fastvlm_caption_post_progress (self, GST_PROGRESS_TYPE_ERROR,
        "Invalid image size");
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
        ("image-size %d is not a positive multiple of 64", self->size), (NULL));
    goto failed;
  }
session_failed:
  {
    gst_fastvlm_caption_post_progress (self, GST_PROGRESS_TYPE_ERROR,
        "Could not create a model session");
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED, ("%s", error->message), (NULL));
    goto failed;
  }
failed:
  {
    g_clear_error (&error);
    fvlm_model_cache_release (self->model);
    self->model = NULL;
    fvlm_overlay_free (self->overlay_renderer);
    self->overlay_renderer = NULL;
    g_free (model_path);
    g_free (mmproj_path);
    return FALSE;
  }
}

static gboolean
gst_fastvlm_caption_stop (GstBaseTransform * trans)
{
  GstFastVLMCaption *self = GST_FASTVLM_CAPTION (trans);
  FvlmWorker *worker;

  /* the worker was set flushing in change_state before the pads went down; joining it
   * here, after the streaming thread has left, is the last step */
  GST_OBJECT_LOCK (self);
  worker = self->worker;
  self->worker = NULL;
  GST_OBJECT_UNLOCK (self);
  fvlm_worker_free (worker);

  fvlm_model_cache_release (self->model);
  self->model = NULL;
  fvlm_preprocess_clear (&self->preprocess);
  self->have_preprocess = FALSE;
  fvlm_overlay_free (self->overlay_renderer);
  self->overlay_renderer = NULL;
  gst_fastvlm_caption_reset_stream (self);
  g_mutex_lock (&self->lock);
  g_clear_pointer (&self->overlay_text, g_free);
  g_mutex_unlock (&self->lock);
  return TRUE;
}

static GstStateChangeReturn
gst_fastvlm_caption_change_state (GstElement * element,
    GstStateChange transition)
{
  GstFastVLMCaption *self = GST_FASTVLM_CAPTION (element);

  switch (transition) {
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      /* Shutdown order: make the worker flush (aborting the generation in flight and
       * waking a streaming thread waiting on it) before the pads are deactivated, which
       * waits for the streaming thread; stop() then joins the worker. */
      GST_OBJECT_LOCK (self);
      if (self->worker)
        fvlm_worker_set_flushing (self->worker, TRUE);
      GST_OBJECT_UNLOCK (self);
      break;
    case GST_STATE_CHANGE_PLAYING_TO_PAUSED:
      /* The sinks went PAUSED first and need new data to preroll; the text stream may
       * get none until the run in flight ends (seconds), and a live pipeline resumed
       * meanwhile would not play before that (tests/robustness test-states
       * state_pairs_live): an empty GAP where the text stands lets a sink preroll. */
      fvlm_text_src_push_preroll_gap (&self->text);
      break;
    case GST_STATE_CHANGE_PAUSED_TO_PLAYING:
      /* Once more on the way back: a sink that was still waking from its previous
       * preroll when PLAYING->PAUSED came counts itself prerolled, takes the GAP above
       * as ordinary data and then, asked for PLAYING, wants a new preroll (basesink's
       * have_preroll is cleared only when its streaming thread runs on). 2 of 80 loaded
       * runs of state_pairs_live met it; an empty GAP here ends that wait. */
      fvlm_text_src_push_preroll_gap (&self->text);
      break;
    default:
      break;
  }

  return GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
}

static gboolean
gst_fastvlm_caption_set_info (GstVideoFilter * filter, GstCaps * incaps,
    GstVideoInfo * in_info, GstCaps * outcaps, GstVideoInfo * out_info)
{
  GstFastVLMCaption *self = GST_FASTVLM_CAPTION (filter);

  if (self->model == NULL)
    return TRUE;

  self->have_preprocess = fvlm_preprocess_init (&self->preprocess, in_info,
      self->size, self->pad_rgb);
  if (!self->have_preprocess)
    goto no_converter;
  GST_DEBUG_OBJECT (self, "%s %dx%d -> letterbox %d,%d %dx%d in %d^2",
      GST_VIDEO_INFO_NAME (in_info), GST_VIDEO_INFO_WIDTH (in_info),
      GST_VIDEO_INFO_HEIGHT (in_info), self->preprocess.dest_x,
      self->preprocess.dest_y, self->preprocess.dest_w, self->preprocess.dest_h,
      self->size);
  return TRUE;

  /* ERRORS */
no_converter:
  {
    gchar *caps = gst_caps_to_string (incaps);

    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL),
        ("cannot convert %s for the model", caps));
    g_free (caps);
    return FALSE;
  }
}

/* ---- events and queries ------------------------------------------------------------ */

static gboolean
gst_fastvlm_caption_sink_event (GstBaseTransform * trans, GstEvent * event)
{
  GstFastVLMCaption *self = GST_FASTVLM_CAPTION (trans);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_STREAM_START:
      fvlm_text_src_set_stream_start (&self->text, event);
      break;
    case GST_EVENT_SEGMENT:{
      const GstSegment *segment;

      gst_event_parse_segment (event, &segment);
      g_mutex_lock (&self->lock);
      self->segment = *segment;
      self->video_end = GST_CLOCK_TIME_NONE;
      g_mutex_unlock (&self->lock);
      break;
    }
    case GST_EVENT_GAP:{
      GstClockTime ts, duration;

      gst_event_parse_gap (event, &ts, &duration);
      if (GST_CLOCK_TIME_IS_VALID (ts)) {
        if (GST_CLOCK_TIME_IS_VALID (duration))
          ts += duration;
        g_mutex_lock (&self->lock);
        if (!GST_CLOCK_TIME_IS_VALID (self->video_end) || ts > self->video_end)
          self->video_end = ts;
        g_mutex_unlock (&self->lock);
        if (self->worker)
          fvlm_worker_kick (self->worker);
      }
      break;
    }
    case GST_EVENT_FLUSH_START:
      if (self->worker)
        fvlm_worker_set_flushing (self->worker, TRUE);
      fvlm_text_src_flush_start (&self->text);
      break;
    case GST_EVENT_FLUSH_STOP:{
      gboolean reset_time;

      gst_event_parse_flush_stop (event, &reset_time);
      /* waits for the aborted generation to return, so none of its output follows */
      if (self->worker)
        fvlm_worker_set_flushing (self->worker, FALSE);
      gst_fastvlm_caption_reset_stream (self);
      fvlm_text_src_flush_stop (&self->text, reset_time);
      break;
    }
    case GST_EVENT_EOS:
      /* drain: the request waiting and the one running finish (offline there are none
       * left: each sampled frame waited for its caption) */
      if (self->worker)
        fvlm_worker_drain (self->worker);
      g_mutex_lock (&self->lock);
      self->text_eos_pending = TRUE;
      g_mutex_unlock (&self->lock);
      if (self->worker) {
        /* the worker ends the text stream after its last output, without blocking us:
         * a muxer may need the video EOS before it takes that output */
        fvlm_worker_kick (self->worker);
      } else {
        GstSegment segment;

        g_mutex_lock (&self->lock);
        segment = self->segment;
        self->text_eos_pending = FALSE;
        g_mutex_unlock (&self->lock);
        fvlm_text_src_push_eos (&self->text, &segment);
      }
      gst_element_post_message (GST_ELEMENT (self),
          gst_message_new_element (GST_OBJECT (self),
              gst_fastvlm_caption_get_stats (self)));
      break;
    default:
      break;
  }

  return GST_BASE_TRANSFORM_CLASS (parent_class)->sink_event (trans, event);
}

/* A SEEK reaching both source pads (a pipeline with sinks on both) goes upstream once. */
static gboolean
gst_fastvlm_caption_seek_is_new (GstFastVLMCaption * self, GstEvent * event)
{
  guint32 seqnum = gst_event_get_seqnum (event);
  gboolean is_new;

  g_mutex_lock (&self->lock);
  is_new = seqnum != self->last_seek_seqnum;
  self->last_seek_seqnum = seqnum;
  g_mutex_unlock (&self->lock);
  return is_new;
}

static gboolean
gst_fastvlm_caption_src_event (GstBaseTransform * trans, GstEvent * event)
{
  GstFastVLMCaption *self = GST_FASTVLM_CAPTION (trans);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_QOS:{
      GstQOSType type;
      gdouble proportion;
      GstClockTimeDiff diff;
      GstClockTime timestamp;

      gst_event_parse_qos (event, &type, &proportion, &diff, &timestamp);
      g_mutex_lock (&self->lock);
      self->qos_proportion = proportion;
      if (type == GST_QOS_TYPE_THROTTLE) {
        /* diff: the least time downstream wants between buffers */
        self->qos_throttle = diff > 0 ? (GstClockTime) diff : 0;
      } else if (GST_CLOCK_TIME_IS_VALID (timestamp)) {
        /* as GstBaseTransform: frames at or before timestamp + diff are late */
        self->qos_earliest = (gint64) timestamp + diff > 0 ?
            timestamp + diff : 0;
      }
      g_mutex_unlock (&self->lock);
      GST_LOG_OBJECT (self, "QoS %d proportion %f diff %" G_GINT64_FORMAT
          " ts %" GST_TIME_FORMAT, type, proportion, diff,
          GST_TIME_ARGS (timestamp));
      break;
    }
    case GST_EVENT_SEEK:
      if (!gst_fastvlm_caption_seek_is_new (self, event)) {
        gst_event_unref (event);
        return TRUE;
      }
      break;
    default:
      break;
  }

  return GST_BASE_TRANSFORM_CLASS (parent_class)->src_event (trans, event);
}

/* LATENCY, for either source pad: upstream's, plus max-latency when live. */
static gboolean
gst_fastvlm_caption_query_latency (GstFastVLMCaption * self, GstQuery * query)
{
  GstBaseTransform *trans = GST_BASE_TRANSFORM (self);
  gboolean live;
  GstClockTime min, max, ours;
  GstFastVLMCaptionMode mode;

  if (!gst_pad_peer_query (trans->sinkpad, query))
    return FALSE;

  gst_query_parse_latency (query, &live, &min, &max);
  GST_OBJECT_LOCK (self);
  ours = self->max_latency;
  mode = self->mode;
  GST_OBJECT_UNLOCK (self);

  if (live && mode != GST_FASTVLM_CAPTION_MODE_OFFLINE && ours > 0) {
    min += ours;
    if (GST_CLOCK_TIME_IS_VALID (max))
      max += ours;
    gst_query_set_latency (query, live, min, max);
  }
  GST_DEBUG_OBJECT (self, "latency: live %d min %" GST_TIME_FORMAT " max %"
      GST_TIME_FORMAT, live, GST_TIME_ARGS (min), GST_TIME_ARGS (max));
  return TRUE;
}

static gboolean
gst_fastvlm_caption_query (GstBaseTransform * trans, GstPadDirection direction,
    GstQuery * query)
{
  GstFastVLMCaption *self = GST_FASTVLM_CAPTION (trans);

  if (direction == GST_PAD_SRC && GST_QUERY_TYPE (query) == GST_QUERY_LATENCY)
    return gst_fastvlm_caption_query_latency (self, query);

  return GST_BASE_TRANSFORM_CLASS (parent_class)->query (trans, direction,
      query);
}

static gboolean
gst_fastvlm_caption_text_event (GstPad * pad, GstObject * parent,
    GstEvent * event)
{
  GstFastVLMCaption *self = GST_FASTVLM_CAPTION (parent);
  GstBaseTransform *trans = GST_BASE_TRANSFORM (parent);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_SEEK:
      if (!gst_fastvlm_caption_seek_is_new (self, event)) {
        gst_event_unref (event);
        return TRUE;
      }
      return gst_pad_push_event (trans->sinkpad, event);
    case GST_EVENT_LATENCY:
      return gst_pad_push_event (trans->sinkpad, event);
    default:
      /* QoS, navigation, reconfigure of the text branch concern no one upstream */
      gst_event_unref (event);
      return TRUE;
  }
}

static gboolean
gst_fastvlm_caption_text_query (GstPad * pad, GstObject * parent,
    GstQuery * query)
{
  GstFastVLMCaption *self = GST_FASTVLM_CAPTION (parent);

  switch (GST_QUERY_TYPE (query)) {
    case GST_QUERY_LATENCY:
      return gst_fastvlm_caption_query_latency (self, query);
    default:
      /* caps/accept-caps from the template (fixed caps); position, duration and
       * others go upstream through the video sink pad */
      return gst_pad_query_default (pad, parent, query);
  }
}

/* ---- streaming thread -------------------------------------------------------------- */

/* Decides once per stream whether we run live: mode, or upstream's LATENCY answer. */
static void
gst_fastvlm_caption_update_live (GstFastVLMCaption * self,
    GstFastVLMCaptionMode mode)
{
  GstQuery *query;
  gboolean live = FALSE;

  if (mode == GST_FASTVLM_CAPTION_MODE_LIVE) {
    live = TRUE;
  } else if (mode == GST_FASTVLM_CAPTION_MODE_AUTO) {
    query = gst_query_new_latency ();
    if (gst_pad_peer_query (GST_BASE_TRANSFORM (self)->sinkpad, query))
      gst_query_parse_latency (query, &live, NULL, NULL);
    gst_query_unref (query);
  }
  self->live = live;
  self->live_known = TRUE;
  GST_INFO_OBJECT (self, "running %s", live ? "live" : "offline");
}

typedef enum
{
  FVLM_SAMPLE,
  FVLM_SKIP_INTERVAL,
  FVLM_SKIP_QOS,
  FVLM_SKIP_BUSY
} FvlmDecision;

/* The properties the streaming thread reads per frame. */
typedef struct
{
  GstClockTime interval;
  GstClockTime stats_interval;
  GstFastVLMCaptionMode mode;
  gboolean overlay;
  gboolean oneshot;
} FvlmFrameProps;

static FvlmDecision
gst_fastvlm_caption_decide (GstFastVLMCaption * self,
    const FvlmFrameProps * props, GstClockTime rt, gint64 now_us)
{
  GstClockTime interval = props->interval, earliest;
  gint64 remaining;

  /* a one-shot question takes the next frame, whatever the interval and load */
  if (props->oneshot)
    return FVLM_SAMPLE;

  g_mutex_lock (&self->lock);
  earliest = self->qos_earliest;
  if (self->live)
    interval = MAX (interval, self->qos_throttle);
  g_mutex_unlock (&self->lock);

  if (interval > 0) {
    if (GST_CLOCK_TIME_IS_VALID (rt) && GST_CLOCK_TIME_IS_VALID
        (self->last_sample_rt)) {
      if (rt < self->last_sample_rt + interval)
        return FVLM_SKIP_INTERVAL;
    } else if (!GST_CLOCK_TIME_IS_VALID (rt) && self->last_sample_us != 0) {
      /* no timestamps: fall back to the wall clock */
      if ((now_us - self->last_sample_us) * 1000 < (gint64) interval)
        return FVLM_SKIP_INTERVAL;
    }
  }
  if (!self->live)
    return FVLM_SAMPLE;

  if (GST_CLOCK_TIME_IS_VALID (earliest) && GST_CLOCK_TIME_IS_VALID (rt)
      && rt <= earliest)
    return FVLM_SKIP_QOS;

  /* Busy: converting now is wasted unless the run is about to end (within 1.5 frame
   * periods); when it is, this frame goes to the mailbox and newer ones replace it. */
  remaining = fvlm_worker_predicted_remaining_us (self->worker);
  if (remaining != G_MININT64 && remaining > 1.5 * self->frame_period_us)
    return FVLM_SKIP_BUSY;
  return FVLM_SAMPLE;
}

static void
gst_fastvlm_caption_post_qos (GstFastVLMCaption * self, GstBuffer * buf,
    GstClockTime rt)
{
  GstBaseTransform *trans = GST_BASE_TRANSFORM (self);
  GstClockTime pts = GST_BUFFER_PTS (buf);
  GstMessage *msg;
  guint64 processed, dropped;
  gdouble proportion;
  GstClockTime earliest;

  g_mutex_lock (&self->lock);
  processed = self->next_seq;
  dropped = self->stats.skipped_qos;
  proportion = self->qos_proportion;
  earliest = self->qos_earliest;
  g_mutex_unlock (&self->lock);

  msg = gst_message_new_qos (GST_OBJECT (self), TRUE, rt,
      gst_segment_to_stream_time (&trans->segment, GST_FORMAT_TIME, pts), pts,
      GST_BUFFER_DURATION (buf));
  gst_message_set_qos_values (msg,
      GST_CLOCK_TIME_IS_VALID (earliest) ? (gint64) rt - (gint64) earliest : 0,
      proportion, 1000000);
  gst_message_set_qos_stats (msg, GST_FORMAT_BUFFERS, processed, dropped);
  gst_element_post_message (GST_ELEMENT (self), msg);
}

/* Copies the frame, downscaled, into a request and hands it to the worker. Offline, waits
 * for the caption. Returns FALSE when flushing. */
static gboolean
gst_fastvlm_caption_sample (GstFastVLMCaption * self, GstBuffer * buf,
    GstClockTime rt, gint64 arrival_us)
{
  GstVideoFilter *filter = GST_VIDEO_FILTER (self);
  GstVideoFrame frame;
  FvlmRequest *req;
  gint64 t0;
  guint n_replaced = 0;
  guint64 seq;

  req = g_new0 (FvlmRequest, 1);
  req->seq = seq = ++self->next_seq;
  req->epoch = fvlm_worker_get_epoch (self->worker);
  req->pts = GST_BUFFER_PTS (buf);
  req->duration = GST_BUFFER_DURATION (buf);
  req->running_time = rt;
  req->arrival_us = arrival_us;
  req->size = self->size;
  req->rgbx = fvlm_worker_alloc_rgbx (self->worker, self->size);
  req->segment = GST_BASE_TRANSFORM (self)->segment;

  /* the only access to the upstream buffer's pixels: read, copy, let go */
  t0 = g_get_monotonic_time ();
  if (!gst_video_frame_map (&frame, &filter->in_info, buf, GST_MAP_READ))
    goto map_failed;
  fvlm_preprocess_convert (&self->preprocess, &frame, req->rgbx);
  gst_video_frame_unmap (&frame);

  GST_OBJECT_LOCK (self);
  if (self->oneshot_prompt) {
    req->prompt = g_strdup (self->oneshot_prompt);
    req->prompt_id = self->oneshot_id;
  } else {
    req->prompt = g_strdup (self->prompt);
    req->prompt_id = self->prompt_id;
    if (self->prompts) {
      req->prompts = g_strdupv (self->prompts);
      req->n_prompts = (gint) g_strv_length (req->prompts);
    }
  }
  req->reuse = self->reuse;
  req->live = self->live;
  req->system_prompt = g_strdup (self->system_prompt);
  req->max_new_tokens = self->max_new_tokens;
  req->temperature = self->temperature;
  req->top_p = self->top_p;
  req->seed = self->seed;
  req->budget_us = self->live ? (gint64) (self->max_latency / 1000) : 0;
  req->reuse_threshold = self->reuse_threshold;
  GST_OBJECT_UNLOCK (self);

  /* the scene-change fingerprint, here so the worker only compares 1 KiB */
  if (req->reuse)
    fvlm_fingerprint_compute (req->rgbx, req->size, req->thumb);
  req->convert_ms = (g_get_monotonic_time () - t0) / 1000.0;

  if (!fvlm_worker_submit (self->worker, req, !self->live, &n_replaced))
    return FALSE;
  if (n_replaced) {
    g_mutex_lock (&self->lock);
    self->stats.skipped_busy += n_replaced;
    g_mutex_unlock (&self->lock);
  }
  if (!self->live && !fvlm_worker_wait_done (self->worker, seq))
    return FALSE;
  return TRUE;

  /* ERRORS */
map_failed:
  {
    GST_ELEMENT_WARNING (self, STREAM, FAILED, (NULL),
        ("cannot map the video frame for reading"));
    fvlm_request_free (req);
    return TRUE;
  }
}

static void
gst_fastvlm_caption_draw (GstFastVLMCaption * self, GstBuffer * buf)
{
  GstVideoFilter *filter = GST_VIDEO_FILTER (self);
  GstVideoFrame frame;
  gboolean has_text;
  guint serial;

  g_mutex_lock (&self->lock);
  serial = self->overlay_serial;
  if (serial != self->overlay_serial_seen)
    fvlm_overlay_set_text (self->overlay_renderer, self->overlay_text);
  has_text = self->overlay_text != NULL && self->overlay_text[0] != '\0';
  g_mutex_unlock (&self->lock);
  self->overlay_serial_seen = serial;

  if (!has_text)
    return;
  /* writing may copy the memory if it is shared (after a tee): only when drawing */
  if (!gst_video_frame_map (&frame, &filter->in_info, buf, GST_MAP_READWRITE)) {
    GST_WARNING_OBJECT (self, "cannot map the frame for drawing");
    return;
  }
  fvlm_overlay_blend (self->overlay_renderer, &frame);
  gst_video_frame_unmap (&frame);
}

static GstFlowReturn
gst_fastvlm_caption_transform_ip (GstBaseTransform * trans, GstBuffer * buf)
{
  GstFastVLMCaption *self = GST_FASTVLM_CAPTION (trans);
  gint64 arrival_us = g_get_monotonic_time ();
  GstClockTime pts = GST_BUFFER_PTS (buf), duration = GST_BUFFER_DURATION (buf);
  GstClockTime rt = GST_CLOCK_TIME_NONE, end;
  FvlmFrameProps props;
  FvlmDecision decision;
  GstStructure *fields, *stats = NULL;
  GstSegment segment;

  if (trans->segment.format == GST_FORMAT_TIME)
    rt = gst_segment_to_running_time (&trans->segment, GST_FORMAT_TIME, pts);

  GST_OBJECT_LOCK (self);
  props.interval = self->interval;
  props.stats_interval = self->stats_interval;
  props.mode = self->mode;
  props.overlay = self->overlay;
  props.oneshot = self->oneshot_prompt != NULL;
  GST_OBJECT_UNLOCK (self);

  if (self->last_arrival_us != 0) {
    gdouble gap = (gdouble) (arrival_us - self->last_arrival_us);

    self->frame_period_us = self->frame_period_us > 0 ?
        0.8 * self->frame_period_us + 0.2 * gap : gap;
  }
  self->last_arrival_us = arrival_us;

  g_mutex_lock (&self->lock);
  self->stats.frames_seen++;
  g_mutex_unlock (&self->lock);

  if (self->worker == NULL || !self->have_preprocess)
    goto output;
  if (!self->live_known)
    gst_fastvlm_caption_update_live (self, props.mode);

  decision = gst_fastvlm_caption_decide (self, &props, rt, arrival_us);
  switch (decision) {
    case FVLM_SAMPLE:
      self->last_sample_rt = rt;
      self->last_sample_us = arrival_us;
      if (!gst_fastvlm_caption_sample (self, buf, rt, arrival_us))
        goto flushing;
      break;
    case FVLM_SKIP_INTERVAL:
      g_mutex_lock (&self->lock);
      self->stats.skipped_interval++;
      g_mutex_unlock (&self->lock);
      break;
    case FVLM_SKIP_BUSY:
      g_mutex_lock (&self->lock);
      self->stats.skipped_busy++;
      g_mutex_unlock (&self->lock);
      break;
    case FVLM_SKIP_QOS:
      g_mutex_lock (&self->lock);
      self->stats.skipped_qos++;
      g_mutex_unlock (&self->lock);
      gst_fastvlm_caption_post_qos (self, buf, rt);
      break;
  }

output:
  /* results not yet on a buffer ride on this one (offline: exactly this frame's) */
  g_mutex_lock (&self->lock);
  while ((fields = g_queue_pop_head (&self->pending_metas))) {
    g_mutex_unlock (&self->lock);
    fvlm_caption_meta_add (buf, fields);
    gst_structure_free (fields);
    g_mutex_lock (&self->lock);
  }
  /* the text stream may now be covered up to the end of this frame */
  end = GST_CLOCK_TIME_IS_VALID (duration) ? pts + duration : pts;
  if (GST_CLOCK_TIME_IS_VALID (end) && (!GST_CLOCK_TIME_IS_VALID
          (self->video_end) || end > self->video_end))
    self->video_end = end;
  segment = self->segment;
  g_mutex_unlock (&self->lock);
  if (self->worker)
    fvlm_worker_kick (self->worker);
  else
    /* no model, no worker: this thread keeps the text stream going (it only queues),
     * or a sink on text_src never prerolls and the pipeline never plays */
    fvlm_text_src_push_gap (&self->text, &segment, end);

  if (props.overlay && self->overlay_renderer)
    gst_fastvlm_caption_draw (self, buf);

  if (props.stats_interval > 0 && GST_CLOCK_TIME_IS_VALID (rt)) {
    if (!GST_CLOCK_TIME_IS_VALID (self->next_stats_rt))
      self->next_stats_rt = rt + props.stats_interval;
    else if (rt >= self->next_stats_rt) {
      self->next_stats_rt = rt + props.stats_interval;
      stats = gst_fastvlm_caption_get_stats (self);
    }
  }
  if (stats)
    gst_element_post_message (GST_ELEMENT (self),
        gst_message_new_element (GST_OBJECT (self), stats));
  return GST_FLOW_OK;

  /* ERRORS */
flushing:
  {
    GST_DEBUG_OBJECT (self, "flushing while waiting for the model");
    return GST_FLOW_FLUSHING;
  }
}
