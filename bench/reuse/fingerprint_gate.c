/*
 * fingerprint_gate.c — helper of threshold_curve.py: the element's scene-change gate on
 * raw frames, with the element's own code (fvlm_fingerprint_compute/_distance, ORC).
 *
 * What it is: reads RGBx squares of SIZE x SIZE from stdin, one after another; for every
 * threshold on the command line simulates the gate (compare with the last *encoded*
 * frame; encode when the distance reaches the threshold) and prints one line per frame:
 * "<frame> <distance to the previous frame> <reused under thr 1> <reused under thr 2> ...".
 * What it is not: the model; no GStreamer pipeline (the square is what GstVideoConverter
 * would hand the worker).
 *
 * Usage: fingerprint_gate SIZE THR... < frames.rgbx
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gstfastvlmworker.h"

#define MAX_THR 32

int
main (int argc, char **argv)
{
  int size, n_thr = argc - 2;
  double thr[MAX_THR];
  guint8 ref[MAX_THR][FVLM_THUMB_PIXELS], prev[FVLM_THUMB_PIXELS], cur[FVLM_THUMB_PIXELS];
  int have_ref[MAX_THR] = { 0 };
  size_t bytes;
  guint8 *frame;
  long n = 0;

  if (argc < 3 || n_thr > MAX_THR)
    goto usage;
  size = atoi (argv[1]);
  if (size <= 0 || size % FVLM_THUMB_SIDE != 0)
    goto usage;
  for (int t = 0; t < n_thr; t++)
    thr[t] = atof (argv[2 + t]);
  bytes = (size_t) size * size * 4;
  frame = malloc (bytes);
  while (fread (frame, 1, bytes, stdin) == bytes) {
    fvlm_fingerprint_compute (frame, size, cur);
    printf ("%ld %.4f", n, n ? fvlm_fingerprint_distance (cur, prev) : -1.0);
    for (int t = 0; t < n_thr; t++) {
      int reused = have_ref[t] && thr[t] > 0
          && fvlm_fingerprint_distance (cur, ref[t]) < thr[t];

      if (!reused) {
        memcpy (ref[t], cur, sizeof (cur));
        have_ref[t] = 1;
      }
      printf (" %d", reused);
    }
    printf ("\n");
    memcpy (prev, cur, sizeof (cur));
    n++;
  }
  free (frame);
  return 0;

usage:
  fprintf (stderr, "usage: fingerprint_gate SIZE(multiple of %d) THR... < frames\n",
      FVLM_THUMB_SIDE);
  return 2;
}
