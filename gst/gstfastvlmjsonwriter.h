/*
 * gstfastvlmjsonwriter.h — the fastvlmjsonwriter element: writes every FastVLMCaptionMeta
 * passing by as one line of JSON (JSON Lines) to a file, a descriptor or stdout.
 *
 * What it is: a GstBaseTransform in passthrough (never touches, copies or delays the
 * buffers) placed on the video path after fastvlmcaption; the instance struct below lists
 * which thread owns each field. What it is not: the producer of the captions
 * (gstfastvlmcaption.c) nor of the meta (gstfastvlmcaptionmeta.c).
 */
#ifndef __GST_FASTVLM_JSON_WRITER_H__
#define __GST_FASTVLM_JSON_WRITER_H__

#include <gst/gst.h>
#include <gst/base/gstbasetransform.h>

G_BEGIN_DECLS

#define GST_TYPE_FASTVLM_JSON_WRITER (gst_fastvlm_json_writer_get_type ())
G_DECLARE_FINAL_TYPE (GstFastVLMJsonWriter, gst_fastvlm_json_writer, GST,
    FASTVLM_JSON_WRITER, GstBaseTransform)

GST_ELEMENT_REGISTER_DECLARE (fastvlmjsonwriter)

struct _GstFastVLMJsonWriter
{
  GstBaseTransform basetransform;

  /* properties, under the object lock */
  gchar *location;              /* file path; NULL or "-" = fd, else stdout */
  gint fd;                      /* already-open descriptor, -1 = none; never closed */
  gboolean append;              /* location only: O_APPEND instead of O_TRUNC */
  gboolean flush_every_line;    /* one write() per line, else batches of <= PIPE_BUF bytes */
  gchar *stream_name;           /* NULL = upstream fastvlmcaption's name, else ours */

  /* set by start(), cleared by stop(); used by the streaming thread in between */
  gint out_fd;                  /* descriptor written to, -1 when stopped */
  gboolean own_fd;              /* opened by start(), so closed by stop() */
  gboolean is_stdout;           /* stdio's stdout is flushed before each write */
  gchar *out_name;              /* the path, "stdout" or "fd N", for messages */

  /* streaming thread (and stop(), once streaming has stopped) */
  GString *pending;             /* complete lines not yet written (flush-every-line=false) */
  gchar *auto_stream;           /* default stream name, found at the first caption */
  guint64 n_lines;              /* lines written since start */
};

G_END_DECLS

#endif /* __GST_FASTVLM_JSON_WRITER_H__ */
