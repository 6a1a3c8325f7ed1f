#!/usr/bin/python3
"""pipelines/captions.py — run a launch line and print each fastvlmcaption result as a line.

What it is: `captions.py 'videotestsrc ! fastvlmcaption ! fakesink'` runs the pipeline (as
gst-launch-1.0 would) to EOS or an error and prints one line per `fastvlm-caption` message:
the described frame's time, the question when several are asked, and the answer — readable,
unlike gst-launch-1.0 -m's escaped structures. --timeout SECONDS stops a live pipeline
(default 120); --fields also prints latency-ms and n-tokens. Exit 1 on a pipeline error.
What it is not: a results exporter for other systems (fastvlmjsonwriter does that).
"""
import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("launch", nargs="+", help="the pipeline, as for gst-launch-1.0")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--fields", action="store_true")
    a = ap.parse_args()
    Gst.init(None)
    try:
        pipe = Gst.parse_launchv(a.launch)   # argv quoting, as gst-launch-1.0
    except gi.repository.GLib.Error as e:
        print(f"captions.py: bad pipeline: {e.message}", file=sys.stderr)
        return 1
    rc = 0
    pipe.set_state(Gst.State.PLAYING)
    bus = pipe.get_bus()
    deadline = a.timeout * Gst.SECOND
    clock = Gst.SystemClock.obtain()
    start = clock.get_time()
    while True:
        left = deadline - (clock.get_time() - start)
        if left <= 0:
            break
        m = bus.timed_pop_filtered(left, Gst.MessageType.EOS | Gst.MessageType.ERROR
                                   | Gst.MessageType.ELEMENT | Gst.MessageType.WARNING)
        if m is None or m.type == Gst.MessageType.EOS:
            break
        if m.type in (Gst.MessageType.ERROR, Gst.MessageType.WARNING):
            e, dbg = m.parse_error() if m.type == Gst.MessageType.ERROR else m.parse_warning()
            print(f"{'ERROR' if m.type == Gst.MessageType.ERROR else 'WARNING'} from "
                  f"{m.src.get_name()}: {e.message}", file=sys.stderr)
            if m.type == Gst.MessageType.ERROR:
                rc = 1
                break
            continue
        s = m.get_structure()
        if s is None or s.get_name() != "fastvlm-caption":
            continue
        t = s.get_value("frame-pts") / 1e9
        line = f"  {t:7.2f} s  "
        if s.get_value("n-prompts") > 1:
            line += f"[{s.get_value('prompt')}] "
        line += s.get_value("text")
        if a.fields:
            line += (f"   ({s.get_value('latency-ms'):.0f} ms, "
                     f"{s.get_value('n-tokens')} tokens)")
        print(line, flush=True)
    pipe.set_state(Gst.State.NULL)
    return rc


if __name__ == "__main__":
    sys.exit(main())
