#!/usr/bin/env python3
"""test_pipelines.py — runs one pipelines/ script on a tiny generated clip, checks its output.

What it is: the driver behind the 'pipelines' meson suite. Each CASE makes a short input
(videotestsrc, 160x120, a few seconds at most, MJPEG in Matroska when the script reads a
file), runs the real script from pipelines/ with the tiny random test model, and checks the
result through GStreamer itself: subtitle files have one cue per sampled frame (offline
mode), at that frame's time, not overlapping, with non-empty UTF-8 text; the MKV has a
video track with every frame and a subtitle track with the same captions; overlay outputs
decode to the input's frame count and visibly differ from the plain video; the RTSP script
captions a live stream served by rtsp-test-server on 127.0.0.1. Captions come from random
weights, so their wording is never checked.

What it is not: a test of the element's internals (tests/gst/), nor of the scripts that
need hardware: the window and camera scripts run with their sink/source replaced
(FASTVLM_VIDEO_SINK / FASTVLM_CAMERA_SOURCE), which checks everything but the window and
the camera.

Usage: test_pipelines.py CASE [RTSP_SERVER]
  CASE: webvtt srt mkv overlay overlay-element window webcam rtsp preset errors
Env: FASTVLM_SRCDIR, FASTVLM_BUILDDIR (set by meson). The tiny model is expected at
$FASTVLM_BUILDDIR/models/tiny.gguf + tiny-mmproj.gguf (tests/run.sh makes it); if it is
missing it is made there with the same commands, under a lock so parallel cases wait.
"""

import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile

SRC = os.environ["FASTVLM_SRCDIR"]
BUILD = os.environ["FASTVLM_BUILDDIR"]
PY = "/usr/bin/python3"
MODEL = os.path.join(BUILD, "models", "tiny.gguf")
MMPROJ = os.path.join(BUILD, "models", "tiny-mmproj.gguf")

FRAMES, FPS, WIDTH, HEIGHT = 20, 10, 160, 120       # 2 s of video
INTERVAL, INTERVAL_S = "500ms", 0.5                 # so a 2 s clip gives several captions
SCRIPT_TIMEOUT = 900                                # a safety net on a loaded 2-core machine

# Gst must see our plugin and keep its registry per case (parallel tests would otherwise
# rewrite one shared registry file); set before Gst is imported and initialised.
WORK = tempfile.mkdtemp(prefix="fastvlm-pipelines-")
os.environ["GST_PLUGIN_PATH_1_0"] = os.path.join(BUILD, "gst")
os.environ["GST_REGISTRY_1_0"] = os.path.join(WORK, "registry.bin")

import gi  # noqa: E402

gi.require_version("Gst", "1.0")
gi.require_version("GstPbutils", "1.0")
from gi.repository import Gst, GstPbutils  # noqa: E402

Gst.init(None)


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


# --------------------------------------------------------------------------------------
# Fixtures

def ensure_tiny_model():
    """Makes the tiny model in $BUILD/models if tests/run.sh has not (same commands)."""
    os.makedirs(os.path.dirname(MODEL), exist_ok=True)
    with open(os.path.join(os.path.dirname(MODEL), ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(MODEL) and os.path.exists(MMPROJ):
            return
        hf = os.path.join(os.path.dirname(MODEL), "tiny-hf")
        subprocess.run([PY, os.path.join(SRC, "tools", "make_tiny_model.py"), hf, "--seed", "1"],
                       check=True)
        subprocess.run([PY, os.path.join(SRC, "tools", "convert_hf_to_gguf.py"), hf,
                        "--outfile", MODEL, "--outtype", "f32"], check=True)
    check(os.path.exists(MODEL) and os.path.exists(MMPROJ), "tiny model was not made")


def make_clip(path, frames=FRAMES):
    """A short MJPEG-in-Matroska clip: cheap to encode and to decode."""
    run_gst(f"videotestsrc num-buffers={frames} pattern=ball "
            f"! video/x-raw,format=I420,width={WIDTH},height={HEIGHT},framerate={FPS}/1 "
            f"! jpegenc ! matroskamux ! filesink location={path}")


def run_gst(description, timeout=120):
    """Runs a pipeline description to EOS in this process; raises on error or timeout."""
    pipe = Gst.parse_launch(description)
    try:
        pipe.set_state(Gst.State.PLAYING)
        msg = pipe.get_bus().timed_pop_filtered(timeout * Gst.SECOND,
                                                Gst.MessageType.EOS | Gst.MessageType.ERROR)
        check(msg is not None, f"pipeline did not finish in {timeout}s: {description}")
        if msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            raise Failure(f"{description}: {err.message} ({dbg})")
    finally:
        pipe.set_state(Gst.State.NULL)
    return pipe


def script_env(**extra):
    env = dict(os.environ)
    env.update({
        "FASTVLM_BUILD": BUILD,
        "GST_PLUGIN_PATH": os.path.join(BUILD, "gst"),
        "FASTVLM_MODEL": MODEL,
        "FASTVLM_MMPROJ": MMPROJ,
        "FASTVLM_VERBOSE": "1",
    })
    env.update(extra)
    return env


def run_script(name, *args, env=None, expect_ok=True):
    cmd = ["bash", os.path.join(SRC, "pipelines", name), *args]
    print("$", " ".join(cmd), flush=True)
    p = subprocess.run(cmd, env=env or script_env(), capture_output=True, text=True,
                       timeout=SCRIPT_TIMEOUT)
    sys.stdout.write(p.stdout[-4000:])
    sys.stdout.write(p.stderr[-4000:])
    if expect_ok:
        check(p.returncode == 0, f"{name} exited with {p.returncode}")
    return p


# --------------------------------------------------------------------------------------
# Output checks

def parse_time(h, m, s, ms):
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000.0


def expected_starts(clip_seconds, interval_s):
    """Offline mode captions every sampled frame: the first frame, then the first frame at
    least `interval` after the previous sample (frames every 1/FPS s)."""
    starts, t, frame = [], None, 0
    while frame / FPS < clip_seconds - 1e-9:
        pts = frame / FPS
        if t is None or pts >= t + interval_s - 1e-9:
            starts.append(round(pts, 3))
            t = pts
        frame += 1
    return starts


def check_cues(cues, clip_seconds, what, interval_s=INTERVAL_S):
    """Offline cues (start, end, text): one per sampled frame, at the frames' times, not
    overlapping, with non-empty text."""
    starts = [round(c[0], 3) for c in cues]
    expect = expected_starts(clip_seconds, interval_s)
    check(starts == expect, f"{what}: captions start at {starts}, expected {expect}")
    check_cue_sequence(cues, what)


def check_cue_sequence(cues, what):
    for i, (start, end, text) in enumerate(cues):
        check(text.strip() != "", f"{what}: empty caption at {start}s")
        check(end > start, f"{what}: cue at {start}s ends at {end}s")
        if i + 1 < len(cues):
            nxt = cues[i + 1][0]
            check(nxt > start, f"{what}: cue at {nxt}s comes after one at {start}s")
            check(end <= nxt + 0.0015, f"{what}: cue at {start}s lasts past the next ({nxt}s)")
    print(f"{what}: {len(cues)} cues, first: {cues[0]}")


def read_text(path):
    check(os.path.exists(path), f"no output file {path}")
    with open(path, "rb") as f:
        data = f.read()
    check(len(data) > 0, f"{path} is empty")
    return data.decode("utf-8")      # captions must be valid UTF-8: raises otherwise


def parse_webvtt(path):
    text = read_text(path)
    check(text.startswith("WEBVTT"), f"{path}: no WEBVTT header")
    cues = []
    for block in re.split(r"\n\s*\n", text.strip())[1:]:
        lines = block.split("\n")
        m = re.match(r"(\d+):(\d\d):(\d\d)\.(\d{3}) --> (\d+):(\d\d):(\d\d)\.(\d{3})", lines[0])
        check(m is not None, f"{path}: bad cue timing line {lines[0]!r}")
        cues.append((parse_time(*m.groups()[:4]), parse_time(*m.groups()[4:]),
                     "\n".join(lines[1:])))
    return cues


def parse_srt(path):
    text = read_text(path)
    cues = []
    for n, block in enumerate(re.split(r"\n\s*\n", text.strip()), start=1):
        lines = block.split("\n")
        check(len(lines) >= 2 and lines[0].strip() == str(n), f"{path}: cue {n} not numbered {n}")
        m = re.match(r"(\d+):(\d\d):(\d\d),(\d{3}) --> (\d+):(\d\d):(\d\d),(\d{3})", lines[1])
        check(m is not None, f"{path}: bad cue timing line {lines[1]!r}")
        cues.append((parse_time(*m.groups()[:4]), parse_time(*m.groups()[4:]),
                     "\n".join(lines[2:])))
    return cues


def count_frames(path):
    """Decodes a video file; returns (frames, width, height)."""
    frames = [0]
    pipe = Gst.parse_launch(f"filesrc location={path} ! decodebin ! videoconvert "
                            "! fakesink name=out sync=false")
    sink = pipe.get_by_name("out")
    sink.get_static_pad("sink").add_probe(
        Gst.PadProbeType.BUFFER, lambda pad, info: (frames.__setitem__(0, frames[0] + 1),
                                                    Gst.PadProbeReturn.OK)[1])
    caps = []
    sink.get_static_pad("sink").add_probe(
        Gst.PadProbeType.EVENT_DOWNSTREAM,
        lambda pad, info: (caps.append(info.get_event().parse_caps())
                           if info.get_event().type == Gst.EventType.CAPS else None,
                           Gst.PadProbeReturn.OK)[1])
    pipe.set_state(Gst.State.PLAYING)
    msg = pipe.get_bus().timed_pop_filtered(120 * Gst.SECOND,
                                            Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipe.set_state(Gst.State.NULL)
    check(msg is not None and msg.type == Gst.MessageType.EOS, f"cannot decode {path}")
    check(caps, f"{path}: no video caps")
    s = caps[-1].get_structure(0)
    return frames[0], s.get_int("width")[1], s.get_int("height")[1]


def check_video(path, frames=FRAMES):
    n, w, h = count_frames(path)
    print(f"{path}: {n} frames {w}x{h}")
    check((w, h) == (WIDTH, HEIGHT), f"{path}: {w}x{h}, expected {WIDTH}x{HEIGHT}")
    check(n == frames, f"{path}: {n} frames, expected {frames}")


def gray_frames(path):
    """Decodes a video file into a list of HEIGHT x WIDTH uint8 luma arrays."""
    import numpy as np
    out = []
    pipe = Gst.parse_launch(f"filesrc location={path} ! decodebin ! videoconvert "
                            f"! video/x-raw,format=GRAY8,width={WIDTH},height={HEIGHT} "
                            "! appsink name=out sync=false")
    sink = pipe.get_by_name("out")
    pipe.set_state(Gst.State.PLAYING)
    while True:
        sample = sink.emit("try-pull-sample", 60 * Gst.SECOND)
        if sample is None:
            break
        buf = sample.get_buffer()
        ok, m = buf.map(Gst.MapFlags.READ)
        check(ok, f"{path}: cannot map a frame")
        stride = len(m.data) // HEIGHT        # rows are padded to 4 bytes
        out.append(np.frombuffer(bytes(m.data), np.uint8).reshape(HEIGHT, stride)[:, :WIDTH])
        buf.unmap(m)
    pipe.set_state(Gst.State.NULL)
    return out


def check_text_drawn(clip, out, what):
    """Captions were drawn: the output differs from the clip far more than the same clip
    through the same encoder without captions does (the codec's own error)."""
    import numpy as np
    plain = os.path.join(WORK, "plain.mkv")
    enc = os.environ.get("FASTVLM_VIDEO_ENCODER", "vp8enc deadline=1 cpu-used=8")
    run_gst(f"filesrc location={clip} ! decodebin ! videoconvert ! {enc} ! matroskamux "
            f"! filesink location={plain}")
    ref, base, drawn = gray_frames(clip), gray_frames(plain), gray_frames(out)
    check(len(ref) == len(base) == len(drawn) == FRAMES, f"{what}: frame counts differ")

    def err(a, b):
        return max(float(np.mean(np.abs(x.astype(np.int16) - y))) for x, y in zip(a, b))
    codec, captioned = err(ref, base), err(ref, drawn)
    print(f"{what}: largest mean |difference| per frame: codec {codec:.2f}, "
          f"with captions {captioned:.2f} (0-255 levels)")
    check(captioned > codec + 2.0, f"{what}: no caption visible in the video")


def check_mkv_subtitles(path):
    """The MKV has one video and one subtitle track; the subtitle track holds captions."""
    info = GstPbutils.Discoverer.new(60 * Gst.SECOND).discover_uri(Gst.filename_to_uri(path))
    subs, videos = info.get_subtitle_streams(), info.get_video_streams()
    check(len(videos) == 1, f"{path}: {len(videos)} video streams")
    check(len(subs) == 1, f"{path}: {len(subs)} subtitle streams (discoverer)")
    texts = []
    video_frames = [0]

    def on_text(pad, info):
        buf = info.get_buffer()
        ok, m = buf.map(Gst.MapFlags.READ)
        if ok:
            texts.append((buf.pts / Gst.SECOND, bytes(m.data).decode("utf-8")))
            buf.unmap(m)
        return Gst.PadProbeReturn.OK

    def on_video(pad, info):
        video_frames[0] += 1
        return Gst.PadProbeReturn.OK

    pipe = Gst.parse_launch(
        f"filesrc location={path} ! matroskademux name=d "
        "d.subtitle_0 ! queue ! fakesink name=t sync=false async=false "
        "d.video_0 ! queue ! decodebin ! fakesink name=v sync=false")
    pipe.get_by_name("t").get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, on_text)
    pipe.get_by_name("v").get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, on_video)
    pipe.set_state(Gst.State.PLAYING)
    msg = pipe.get_bus().timed_pop_filtered(120 * Gst.SECOND,
                                            Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipe.set_state(Gst.State.NULL)
    check(msg is not None and msg.type == Gst.MessageType.EOS, f"cannot demux {path}")
    print(f"{path}: {video_frames[0]} video frames, {len(texts)} subtitles, first: "
          f"{texts[:1]}")
    check(video_frames[0] == FRAMES, f"{path}: {video_frames[0]} frames, expected {FRAMES}")
    starts = [round(pts, 3) for pts, _ in texts]
    expect = expected_starts(FRAMES / FPS, INTERVAL_S)
    check(starts == expect, f"{path}: subtitles at {starts}, expected {expect}")
    for pts, text in texts:
        check(text.strip() != "", f"{path}: empty subtitle at {pts}s")


# --------------------------------------------------------------------------------------
# Cases

def case_webvtt():
    clip, out = os.path.join(WORK, "clip.mkv"), os.path.join(WORK, "clip.vtt")
    make_clip(clip)
    run_script("caption-to-webvtt.sh", "-i", INTERVAL, clip, out)
    check_cues(parse_webvtt(out), FRAMES / FPS, "webvtt")


def case_srt():
    clip, out = os.path.join(WORK, "clip.mkv"), os.path.join(WORK, "clip.srt")
    make_clip(clip)
    run_script("caption-to-srt.sh", "--interval", "0.3s", clip, out)
    check_cues(parse_srt(out), FRAMES / FPS, "srt", interval_s=0.3)


def case_mkv():
    clip, out = os.path.join(WORK, "clip.mkv"), os.path.join(WORK, "out.mkv")
    make_clip(clip)
    run_script("caption-to-mkv.sh", "-i", INTERVAL, clip, out)
    check_mkv_subtitles(out)


def case_overlay():
    clip, out = os.path.join(WORK, "clip.mkv"), os.path.join(WORK, "overlay.mkv")
    make_clip(clip)
    run_script("overlay-to-file.sh", "-i", INTERVAL, clip, out)
    check_video(out)
    check_text_drawn(clip, out, "overlay")


def case_overlay_element():
    """The element draws the captions itself (overlay=true) instead of textoverlay."""
    clip, out = os.path.join(WORK, "clip.mkv"), os.path.join(WORK, "overlay-el.mkv")
    make_clip(clip)
    run_script("overlay-to-file.sh", "-i", INTERVAL, clip, out,
               env=script_env(FASTVLM_OVERLAY="element"))
    check_video(out)
    check_text_drawn(clip, out, "overlay-element")


def case_preset():
    """A preset (configs/tiny-test.yaml) drives the element; -m/-p given after it win."""
    clip, out = os.path.join(WORK, "clip.mkv"), os.path.join(WORK, "preset.vtt")
    make_clip(clip)
    run_script("caption-to-webvtt.sh", "-c", os.path.join(SRC, "configs", "tiny-test.yaml"),
               "-m", MODEL, "-p", MMPROJ, clip, out)
    check_cues(parse_webvtt(out), FRAMES / FPS, "preset")     # its interval is 500ms


def case_window():
    """overlay-window.sh with its window replaced by an encoder into a file."""
    clip, out = os.path.join(WORK, "clip.mkv"), os.path.join(WORK, "window.mkv")
    make_clip(clip)
    env = script_env(FASTVLM_VIDEO_SINK=f"jpegenc ! matroskamux ! filesink location={out}")
    run_script("overlay-window.sh", "-i", INTERVAL, clip, env=env)
    check_video(out)


def case_webcam():
    """webcam.sh with the camera replaced by a live test source and the window by a file."""
    out = os.path.join(WORK, "webcam.mkv")
    env = script_env(
        FASTVLM_CAMERA_SOURCE=f"videotestsrc is-live=true num-buffers={FRAMES} pattern=ball "
                              f"! video/x-raw,width={WIDTH},height={HEIGHT},framerate={FPS}/1",
        FASTVLM_VIDEO_SINK=f"jpegenc ! matroskamux ! filesink location={out}")
    run_script("webcam.sh", "-i", INTERVAL, env=env)
    check_video(out)


def case_rtsp(server):
    out = os.path.join(WORK, "rtsp.vtt")
    frames = 40                       # 4 s of a 10 fps live stream
    srv = subprocess.Popen([server, "--width", str(WIDTH), "--height", str(HEIGHT),
                            "--fps", str(FPS), "--lifetime", str(SCRIPT_TIMEOUT + 60),
                            "--watch-stdin"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        url = srv.stdout.readline().strip()
        check(url.startswith("rtsp://127.0.0.1:"), f"test server printed {url!r}")
        print("server:", url)
        run_script("rtsp.sh", "--frames", str(frames), "-i", INTERVAL, url, out,
                   env=script_env(FASTVLM_RTSP_PROTOCOLS="tcp"))
    finally:
        srv.stdin.close()             # the server exits when its stdin closes
        try:
            srv.wait(timeout=30)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()
    cues = parse_webvtt(out)
    # Live: frames the model cannot keep up with are skipped, so which frames get a caption
    # depends on the machine's speed; only "captions arrive, in order, well-formed" holds.
    check(len(cues) >= 1, "rtsp: no caption arrived")
    check_cue_sequence(cues, "rtsp")


def case_errors():
    """The scripts fail loudly: missing input/model, bad options, a corrupt model file."""
    clip = os.path.join(WORK, "clip.mkv")
    make_clip(clip, frames=5)
    p = run_script("caption-to-webvtt.sh", os.path.join(WORK, "missing.mkv"), expect_ok=False)
    check(p.returncode == 2 and "input not found" in p.stderr, "missing input not reported")
    p = run_script("caption-to-srt.sh", "-m", os.path.join(WORK, "none.gguf"), clip,
                   expect_ok=False)
    check(p.returncode == 2 and "model not found" in p.stderr, "missing model not reported")
    p = run_script("caption-to-srt.sh", "--bogus", clip, expect_ok=False)
    check(p.returncode == 2 and "unknown option" in p.stderr, "bad option not reported")
    p = run_script("caption-to-srt.sh", "-i", "2 fortnights", clip, expect_ok=False)
    check(p.returncode == 2 and "not a duration" in p.stderr, "bad interval not reported")
    p = run_script("rtsp.sh", "http://127.0.0.1:1/x", expect_ok=False)
    check(p.returncode == 2 and "not an RTSP URL" in p.stderr, "bad URL not reported")
    p = run_script("caption-to-srt.sh", "-c", os.path.join(WORK, "none.yaml"), clip,
                   expect_ok=False)
    check(p.returncode == 2 and "config file not found" in p.stderr, "missing config not reported")
    # An invalid preset fails the element's start with the loader's FILE:LINE:COLUMN message.
    bad_cfg = os.path.join(WORK, "bad.yaml")
    with open(bad_cfg, "w") as f:
        f.write("# a typo on line 2\nmax-new-token: 3\n")
    p = run_script("caption-to-srt.sh", "-c", bad_cfg, clip, os.path.join(WORK, "x.srt"),
                   expect_ok=False)
    check(p.returncode != 0, "an invalid preset did not make the script fail")
    check(f"{bad_cfg}:2:1: unknown key 'max-new-token' (did you mean 'max-new-tokens'?)"
          in p.stdout + p.stderr, "the preset's error is not reported with its position")
    p = run_script("caption-to-webvtt.sh", "--help")
    check("caption-to-webvtt.sh [options] INPUT" in p.stdout, "--help prints no usage")
    # A model file that is not GGUF: the element must fail the state change, the script exit
    # non-zero, and no subtitle file be left looking like a success.
    bad = os.path.join(WORK, "bad.gguf")
    with open(bad, "wb") as f:
        f.write(b"this is not a gguf file\n" * 10)
    out = os.path.join(WORK, "bad.vtt")
    p = run_script("caption-to-webvtt.sh", "-m", bad, clip, out, expect_ok=False)
    check(p.returncode != 0, "a corrupt model did not make the script fail")
    check(not os.path.exists(out) or parse_webvtt_count(out) == 0,
          "captions written with a corrupt model")


def parse_webvtt_count(path):
    text = open(path, "rb").read().decode("utf-8", "replace")
    return text.count("-->")


CASES = {
    "webvtt": case_webvtt, "srt": case_srt, "mkv": case_mkv, "overlay": case_overlay,
    "overlay-element": case_overlay_element,
    "preset": case_preset, "window": case_window, "webcam": case_webcam, "rtsp": case_rtsp,
    "errors": case_errors,
}


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in CASES:
        print(__doc__, file=sys.stderr)
        return 2
    case = sys.argv[1]
    try:
        ensure_tiny_model()
        if case == "rtsp":
            check(len(sys.argv) == 3, "rtsp needs the test server's path")
            case_rtsp(sys.argv[2])
        else:
            CASES[case]()
    except (Failure, subprocess.TimeoutExpired, subprocess.CalledProcessError) as e:
        print(f"FAIL {case}: {e}", file=sys.stderr)
        print(f"(files kept in {WORK})", file=sys.stderr)
        return 1
    shutil.rmtree(WORK, ignore_errors=True)
    print(f"ok {case}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
