#!/usr/bin/env python3
"""summarize.py — turns a soak.sh results directory into soak.csv and summary.md.

What it is: reads OUT/run.env (parameters, machine), OUT/proc.csv (RSS, fds, threads of the
gst-launch process, sampled by soak.sh) and OUT/messages.log (the element's fastvlm-stats
messages stamped with the wall clock); writes OUT/soak.csv, one row per process sample with
the latest stats at that moment, and OUT/summary.md; prints the summary; exits 1 when a
check fails (pipeline error, frames missing, fds/threads changed after warm-up, RSS grew
more than max_growth_kb after warm-up).
What it is not: a plotting tool; the CSV is there for that.

Usage: summarize.py OUT
"""
import csv
import os
import re
import sys

STAT_FIELDS = ["frames-seen", "frames-captioned", "skipped-busy", "reused",
               "reused-features", "errors", "window", "latency-p50-ms",
               "latency-p95-ms", "latency-p99-ms"]


def read_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                env[k] = v
    return env


def parse_stats(line):
    fields = {}
    for name in STAT_FIELDS:
        m = re.search(r"\b%s=\((?:guint64|double|uint|int)\)([-0-9.e+]+)" % re.escape(name),
                      line)
        if m:
            fields[name] = float(m.group(1))
    return fields


def main():
    out = sys.argv[1]
    env = read_env(os.path.join(out, "run.env"))
    t0 = None
    procs = []
    with open(os.path.join(out, "proc.csv")) as f:
        for row in csv.DictReader(f):
            procs.append({"t": float(row["t"]), "rss_kb": int(row["rss_kb"]),
                          "fds": int(row["fds"]), "threads": int(row["threads"])})
    stats, errors, warnings, eos = [], [], [], False
    with open(os.path.join(out, "messages.log")) as f:
        for line in f:
            stamp, _, rest = line.partition(" ")
            if "fastvlm-stats" in rest:
                stats.append((float(stamp), parse_stats(rest)))
            elif "ERROR" in rest:
                errors.append(rest.strip())
            elif "WARNING" in rest:
                warnings.append(rest.strip())
            elif "Got EOS" in rest:
                eos = True
    # the first sample is taken right after start: its time is ~0 on the proc clock, and
    # the stats stamps are wall-clock; align both on the first stats message's arrival
    start_wall = float(env.get("start_wall", "0")) or (stats[0][0] - 1.0 if stats else 0.0)

    rows = []
    for p in procs:
        latest = {}
        for stamp, s in stats:
            if stamp - start_wall <= p["t"]:
                latest = s
        row = dict(p)
        for name in STAT_FIELDS:
            row[name] = latest.get(name, "")
        rows.append(row)
    with open(os.path.join(out, "soak.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["t", "rss_kb", "fds", "threads"] + STAT_FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()})

    frames = int(env["frames"])
    final = stats[-1][1] if stats else {}
    seen = int(final.get("frames-seen", 0))
    duration = procs[-1]["t"] if procs else 0.0
    # warm-up: model load, buffer pools, caches, and GLib's pool threads left idle by
    # the start-up, which exit after 15 s: the first 10% of the samples or 20 s,
    # whichever is longer, keeping at least 3 samples after it
    warm = max(2, len(procs) // 10, sum(1 for p in procs if p["t"] < 20.0))
    warm = min(warm, max(0, len(procs) - 3))
    steady = procs[warm:]
    rss = [p["rss_kb"] for p in procs]
    rss_steady = [p["rss_kb"] for p in steady]
    growth = rss_steady[-1] - rss_steady[0] if rss_steady else 0
    # least-squares slope of RSS over the steady samples, KiB per minute
    slope = 0.0
    if len(steady) >= 3:
        ts = [p["t"] for p in steady]
        mt, mr = sum(ts) / len(ts), sum(rss_steady) / len(rss_steady)
        den = sum((t - mt) ** 2 for t in ts)
        if den > 0:
            slope = sum((t - mt) * (r - mr) for t, r in zip(ts, rss_steady)) / den * 60
    fds = sorted({p["fds"] for p in steady})
    threads = sorted({p["threads"] for p in steady})
    # a leak grows; a count may drop (an idle pool thread exiting, the source's thread at
    # EOS) without anything being wrong
    fds_grew = bool(steady) and max(p["fds"] for p in steady) > steady[0]["fds"]
    threads_grew = bool(steady) and max(p["threads"] for p in steady) > steady[0]["threads"]

    checks = [
        ("pipeline ended with EOS, exit 0", eos and env.get("launch_rc") == "0"
         and not errors),
        ("all %d frames went through (frames-seen %d)" % (frames, seen), seen == frames),
        ("open fds after warm-up never above its first value (values %s)" % fds,
         not fds_grew),
        ("threads after warm-up never above its first value (values %s)" % threads,
         not threads_grew),
        ("RSS growth after warm-up %+d KiB <= %s KiB" % (growth, env["max_growth_kb"]),
         growth <= int(env["max_growth_kb"])),
    ]

    lines = []
    lines.append("# Soak: %s frames, live %s fps, %s, pattern %s%s" % (
        env["frames"], env["fps"], env["size"], env["pattern"],
        " — " + env["note"] if env.get("note") else ""))
    lines.append("")
    lines.append("`%s`, %s, commit %s, %s, %s cores; load average %s at start, %s at end." % (
        env["command"], env["date"], env["commit"], env["cpu"], env["cores"],
        env["load_start"], env.get("load_end", "?")))
    lines.append("Tiny random model (tests/gst/make_model.py), threads=1, max-new-tokens=8, "
                 "reuse on (default); process sampled every %s s; warm-up = the first %d "
                 "samples (10%% of the run or 20 s)." % (env["every"], warm))
    lines.append("")
    lines.append("| check | result |")
    lines.append("|---|---|")
    for name, ok in checks:
        lines.append("| %s | %s |" % (name, "ok" if ok else "**FAILED**"))
    lines.append("")
    lines.append("Run: %.0f s, %d frames seen, %d captions (%d reused answers, %d reused "
                 "features), %d skipped busy, %d errors, %d warnings." % (
                     duration, seen, final.get("frames-captioned", 0),
                     final.get("reused", 0), final.get("reused-features", 0),
                     final.get("skipped-busy", 0), final.get("errors", 0), len(warnings)))
    lines.append("")
    if rss:
        lines.append("RSS: first %.1f MiB, after warm-up %.1f MiB, last %.1f MiB, max %.1f MiB; "
                     "growth after warm-up %+d KiB, slope %+.1f KiB/min. Open fds %s, "
                     "threads %s (after warm-up)." % (
                         rss[0] / 1024, rss_steady[0] / 1024, rss[-1] / 1024,
                         max(rss) / 1024, growth, slope, fds, threads))
    lines.append("")
    lines.append("Over time (latency percentiles over the element's last <= 256 runs):")
    lines.append("")
    lines.append("| t (s) | frames seen | captions | RSS (MiB) | fds | threads | "
                 "p50 (ms) | p95 (ms) | p99 (ms) |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    n = len(rows)
    picks = sorted({round(i * (n - 1) / 9) for i in range(10)}) if n > 10 else range(n)
    for i in picks:
        r = rows[i]

        def num(name, fmt):
            return fmt % r[name] if r[name] != "" else "-"
        lines.append("| %.0f | %s | %s | %.1f | %d | %d | %s | %s | %s |" % (
            r["t"], num("frames-seen", "%d"), num("frames-captioned", "%d"),
            r["rss_kb"] / 1024, r["fds"], r["threads"], num("latency-p50-ms", "%.1f"),
            num("latency-p95-ms", "%.1f"), num("latency-p99-ms", "%.1f")))
    lines.append("")
    lines.append("Files: soak.csv (every sample), proc.csv, messages.log (stats messages), "
                 "run.env.")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(text)
    sys.stdout.write(text)
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
