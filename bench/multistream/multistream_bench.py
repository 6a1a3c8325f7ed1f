#!/usr/bin/python3
"""bench/multistream/multistream_bench.py — many live streams on one model, in one process.

What it is: for each N in --streams (default 1,2,4,8) and each scheduling mode in --modes,
one fresh process (this script with --one) runs ONE pipeline of N live branches
    videotestsrc is-live=true pattern=P_i ! WxH@FPS ! fastvlmcaption name=c_i ... ! fakesink
(different patterns per branch, all naming the same model files, so they share one loaded
model and its run scheduler) for --seconds after a warm-up (every stream's first caption),
and measures from the `fastvlm-caption` bus messages:
  * aggregate captions per second over the measured window (all streams),
  * per-stream latency (`latency-ms`, frame arrival -> caption) p50 / p95, nearest rank;
    the table gives the median over streams of p50, and the worst stream's p95,
  * the fewest / most captions a stream got (starvation shows as a 0),
  * RSS at the end and the peak (VmHWM) of the process: memory should stay ~ one model.
Modes: `sched` = concurrent-runs=0 (auto: one run at a time with all the threads, the
default), `free` = concurrent-runs=N (every stream runs whenever it has a frame: what
N elements did before the scheduler, N x threads engine threads), `batch` = free plus
batch-decode=true (the decode steps of the streams running at the same time go through
the engine as one forward: engine/batch.c).
It prints the machine and command first, then a markdown table (or JSON with --json).
What it is not: a test (nothing is asserted), nor the single-stream element benchmark
(bench/element_bench.py), whose model shapes and plugin lookup it reuses.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import element_bench as eb  # noqa: E402

PATTERNS = ["ball", "smpte", "snow", "pinwheel", "spokes", "gradient", "circular",
            "zone-plate"]


def log(*a):
    print("multistream_bench:", *a, file=sys.stderr, flush=True)


def rss_kb():
    out = {}
    with open("/proc/self/status") as f:
        for ln in f:
            if ln.startswith(("VmRSS:", "VmHWM:")):
                out[ln.split(":")[0]] = int(ln.split()[1])
    return out


def one_run(a):
    """Runs one pipeline of a.n streams in this process; prints one JSON object."""
    import gi
    gi.require_version("Gst", "1.0")
    from gi.repository import Gst
    Gst.init(None)
    n = a.n
    runs = a.n if a.mode in ("free", "batch") else 0
    batch = "true" if a.mode == "batch" else "false"
    branches = []
    for i in range(n):
        branches.append(
            f"videotestsrc is-live=true pattern={PATTERNS[i % len(PATTERNS)]} ! "
            f"video/x-raw,format=I420,width={a.width},height={a.height},framerate={a.fps}/1 ! "
            f"fastvlmcaption name=c{i} model=\"{a.model}\" mmproj=\"{a.mmproj}\" "
            f"threads={a.threads} concurrent-runs={runs} batch-decode={batch} "
            f"max-new-tokens={a.max_new_tokens} "
            f"reuse={'true' if a.reuse else 'false'} stats-interval=0 "
            f"{'image-size=%d' % a.size if a.size else ''} ! fakesink sync=true")
    rss0 = rss_kb()
    pipe = Gst.parse_launch("  ".join(branches))
    bus = pipe.get_bus()
    pipe.set_state(Gst.State.PLAYING)
    lat = {i: [] for i in range(n)}
    first = set()
    t_start = None
    deadline = time.monotonic() + a.timeout
    error = None
    while True:
        now = time.monotonic()
        if t_start is not None and now >= t_start + a.seconds:
            break
        if now > deadline:
            error = "timeout before every stream captioned once"
            break
        msg = bus.timed_pop_filtered(100 * Gst.MSECOND,
                                     Gst.MessageType.ELEMENT | Gst.MessageType.ERROR)
        if msg is None:
            continue
        if msg.type == Gst.MessageType.ERROR:
            error = msg.parse_error()[0].message
            break
        s = msg.get_structure()
        if s is None or s.get_name() != "fastvlm-caption":
            continue
        i = int(msg.src.get_name()[1:])
        if t_start is None:
            first.add(i)
            if len(first) == n:       # warm-up over: every stream has been served
                t_start = time.monotonic()
            continue
        lat[i].append(s.get_value("latency-ms"))
    t_end = time.monotonic()
    stats = pipe.get_by_name("c0").get_property("stats")
    rss1 = rss_kb()
    pipe.set_state(Gst.State.NULL)
    window = (t_end - t_start) if t_start else 0.0
    total = sum(len(v) for v in lat.values())
    p50 = [eb.pct(v, 50) for v in lat.values() if v]
    p95 = [eb.pct(v, 95) for v in lat.values() if v]
    res = dict(
        n=n, mode=a.mode, seconds=window, error=error,
        captions=total,
        captions_per_s=total / window if window > 0 else None,
        per_stream=[len(lat[i]) for i in range(n)],
        p50_median=sorted(p50)[len(p50) // 2] if p50 else None,
        p95_worst=max(p95) if p95 else None,
        rss_start_mib=rss0.get("VmRSS", 0) / 1024, rss_end_mib=rss1.get("VmRSS", 0) / 1024,
        rss_peak_mib=rss1.get("VmHWM", 0) / 1024,
        model_users=stats.get_value("model-users") if stats else None,
        max_runs=stats.get_value("scheduler-max-runs") if stats else None,
        batch_rows=(stats.get_value("batch-steps") / stats.get_value("batch-forwards")
                    if stats and stats.get_value("batch-forwards") else None))
    print(json.dumps(res))


def fmt(x, nd=1):
    return "-" if x is None else f"{x:.{nd}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--streams", default="1,2,4,8", help="list of N")
    ap.add_argument("--modes", default="sched,free,batch",
                    help="comma list of sched, free, batch")
    ap.add_argument("--shape", choices=sorted(eb.SHAPES), default="tiny")
    ap.add_argument("--model", help="language-model GGUF (overrides --shape)")
    ap.add_argument("--mmproj", help="vision GGUF (default: MODEL with -mmproj)")
    ap.add_argument("--outtype", choices=["f32", "f16", "bf16", "q8_0", "q4_0"])
    ap.add_argument("--seconds", type=float, default=30.0, help="measured window per run")
    ap.add_argument("--threads", type=int, default=0, help="element 'threads'; 0 = CPUs")
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--size", type=int, default=0, help="image-size; 0 = the model's")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--fps", type=int, default=15)
    ap.add_argument("--reuse", action="store_true",
                    help="reuse=true (static patterns then republish answers)")
    ap.add_argument("--work", default="/tmp/fastvlm-bench", help="model cache directory")
    ap.add_argument("--plugin-dir")
    ap.add_argument("--timeout", type=float, default=900.0, help="warm-up limit per run, s")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.one:
        one_run(a)
        return

    plugin_dir = eb.find_plugin_dir(a.plugin_dir)
    if a.model:
        model = a.model
        mmproj = a.mmproj or model[:-5] + "-mmproj.gguf"
    elif a.shape == "tiny" and os.path.isfile(os.path.join(eb.SRC, "build/tests/gst/tiny.gguf")):
        model = os.path.join(eb.SRC, "build/tests/gst/tiny.gguf")
        mmproj = os.path.join(eb.SRC, "build/tests/gst/tiny-mmproj.gguf")
    else:
        tok = os.environ.get("QWEN_TOKENIZER_JSON", eb.DEFAULT_TOKENIZER)
        model, mmproj = eb.make_models(a.shape, a.work, a.outtype, tok, False)
    env = dict(os.environ, GST_PLUGIN_PATH_1_0=plugin_dir)
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    results = []
    for n in [int(x) for x in a.streams.split(",")]:
        for mode in a.modes.split(","):
            cmd = [eb.PY, os.path.abspath(__file__), "--one", "--n", str(n), "--mode", mode,
                   "--model", model, "--mmproj", mmproj, "--seconds", str(a.seconds),
                   "--threads", str(a.threads), "--max-new-tokens", str(a.max_new_tokens),
                   "--size", str(a.size), "--width", str(a.width), "--height", str(a.height),
                   "--fps", str(a.fps), "--timeout", str(a.timeout)] + \
                (["--reuse"] if a.reuse else [])
            log(f"N={n} mode={mode} ...")
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
            try:
                results.append(json.loads(line))
            except ValueError:
                log(f"N={n} {mode} failed:\n{out.stderr[-2000:]}")
                results.append(dict(n=n, mode=mode, error="run failed"))
    if a.json:
        print(json.dumps(dict(load=load, model=model, results=results), indent=1))
        return
    print(f"command: {' '.join(sys.argv)}")
    print(f"machine: {os.cpu_count()} cores, load average at start {load}; "
          f"Gst plugin {plugin_dir}")
    print(f"model: {model} ({os.path.getsize(model)} B) + {mmproj} "
          f"({os.path.getsize(mmproj)} B)")
    print(f"streams: {a.width}x{a.height} @ {a.fps} fps live, threads {a.threads}, "
          f"max-new-tokens {a.max_new_tokens}, reuse {a.reuse}, {a.seconds} s measured\n")
    print("| N | mode | runs at once | captions/s | per stream min..max | p50 ms (median) "
          "| p95 ms (worst stream) | RSS MiB end / peak | model users | steps per decode forward |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        if r.get("error") and not r.get("captions"):
            print(f"| {r['n']} | {r['mode']} | - | - | - | - | - | - | {r['error']} | - |")
            continue
        ps = r["per_stream"]
        print(f"| {r['n']} | {r['mode']} | {r['max_runs']} | {fmt(r['captions_per_s'], 2)} | "
              f"{min(ps)}..{max(ps)} | {fmt(r['p50_median'])} | {fmt(r['p95_worst'])} | "
              f"{fmt(r['rss_end_mib'])} / {fmt(r['rss_peak_mib'])} | {r['model_users']} | "
              f"{fmt(r['batch_rows'], 2)} |")


if __name__ == "__main__":
    main()
