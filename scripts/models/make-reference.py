#!/usr/bin/env python3
"""Makes the detector's reference vectors in appliance/tests/data/.

Runs each model with LiteRT's Python package (ai-edge-litert, XNNPACK) on a
fixed input and stores the raw outputs as little-endian float32 files plus
detect-reference.json: the anchors at a few indices and the detections this
script decodes with numpy. The Rust tests decode the same raw outputs and
must agree. A venv with the pinned packages is created under target/models/.

Inputs: frame 100 of target/footage/vtest-768x576.y4m (scripts/fetch-footage)
for the SSD, and scikit-image's astronaut.png (scripts/models/fetch), which
is also stored here as a 256x256 I420 picture for the face detector.

    scripts/models/make-reference.py            # write the reference files
    scripts/models/make-reference.py --bench    # time inference, write nothing
    MADO_BENCH_THREADS=1 ...                    # with 1 thread instead of 2
    MADO_BENCH_RUNS=21 ...                      # timed runs per model (200)

A timing run takes the face picture from appliance/tests/data/, as the Rust
benchmark does, and needs no Pillow. MADO_REFERENCE_NO_VENV=1 runs with this
interpreter's own packages instead of the venv: scripts/bench-aarch64-detect
uses it for an emulated aarch64 Python with the aarch64 wheels.
"""
import json
import os
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VENV = os.path.join(ROOT, "target", "models", "venv")
PACKAGES = ["ai-edge-litert==1.4.0", "numpy", "pillow"]
DATA = os.path.join(ROOT, "appliance", "tests", "data")
VTEST = os.path.join(ROOT, "target", "footage", "vtest-768x576.y4m")
VTEST_FRAME = 100
ASTRONAUT = os.path.join(ROOT, "target", "models", "fetch", "astronaut.png")
THREADS = int(os.environ.get("MADO_BENCH_THREADS", "2"))
RUNS = int(os.environ.get("MADO_BENCH_RUNS", "200"))

if os.environ.get("MADO_REFERENCE_NO_VENV") != "1" and os.path.realpath(sys.prefix) != os.path.realpath(VENV):
    if not os.path.exists(os.path.join(VENV, "bin", "python")):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
        subprocess.check_call([os.path.join(VENV, "bin", "pip"), "install", "-q", *PACKAGES])
    os.execv(os.path.join(VENV, "bin", "python"), [os.path.join(VENV, "bin", "python"), *sys.argv])

import numpy as np  # noqa: E402
import tomllib  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402


def manifest(name):
    with open(os.path.join(ROOT, "models", name), "rb") as f:
        return tomllib.load(f)


# --- pictures -------------------------------------------------------------

def read_y4m_frame(path, index):
    with open(path, "rb") as f:
        header = f.readline().split()
        w = int(next(t[1:] for t in header if t.startswith(b"W")))
        h = int(next(t[1:] for t in header if t.startswith(b"H")))
        size = w * h * 3 // 2
        for _ in range(index + 1):
            f.readline()  # FRAME
            data = f.read(size)
    return w, h, np.frombuffer(data, np.uint8)


def rgb_to_i420(rgb):
    """BT.601 limited range, chroma averaged over 2x2 blocks."""
    r, g, b = [rgb[..., i].astype(np.float64) for i in range(3)]
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    half = lambda p: p.reshape(p.shape[0] // 2, 2, p.shape[1] // 2, 2).mean(axis=(1, 3))
    planes = [y, half(u), half(v)]
    return np.concatenate([np.clip(np.round(p), 0, 255).astype(np.uint8).ravel() for p in planes])


def sample(plane, x, y):
    """Bilinear sample at pixel coordinates with centres at +0.5 (edges clamped)."""
    h, w = plane.shape
    x = np.clip(x - 0.5, 0, w - 1)
    y = np.clip(y - 0.5, 0, h - 1)
    x0, y0 = x.astype(np.int64), y.astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = x - x0, y - y0
    p = plane.astype(np.float32)
    top = p[y0, x0] + (p[y0, x1] - p[y0, x0]) * fx
    bottom = p[y1, x0] + (p[y1, x1] - p[y1, x0]) * fx
    return top + (bottom - top) * fy


def i420_to_tensor(w, h, data, out_w, out_h, lo, hi):
    """The same preprocessing as appliance/src/detect/preprocess.rs."""
    yp = data[: w * h].reshape(h, w)
    up = data[w * h : w * h * 5 // 4].reshape(h // 2, w // 2)
    vp = data[w * h * 5 // 4 :].reshape(h // 2, w // 2)
    ys = ((np.arange(out_h, dtype=np.float32) + 0.5) * (h / out_h))[:, None].repeat(out_w, 1)
    xs = ((np.arange(out_w, dtype=np.float32) + 0.5) * (w / out_w))[None, :].repeat(out_h, 0)
    luma, u, v = sample(yp, xs, ys), sample(up, xs / 2, ys / 2), sample(vp, xs / 2, ys / 2)
    c = (luma - 16) * (255 / 219)
    d, e = (u - 128) * (255 / 224), (v - 128) * (255 / 224)
    rgb = np.stack([c + 1.402 * e, c - 0.344136 * d - 0.714136 * e, c + 1.772 * d], -1)
    rgb = np.clip(rgb, 0, 255)
    return (lo + rgb * ((hi - lo) / 255)).astype(np.float32)[None]


# --- decoding (the reference the Rust decoder is compared with) ----------

def ssd_anchors(spec):
    fms = spec["feature_maps"]
    scale = lambda l: spec["min_scale"] + (spec["max_scale"] - spec["min_scale"]) * l / (len(fms) - 1)
    out = []
    for layer, size in enumerate(fms):
        s = scale(layer)
        if layer == 0 and spec["reduce_boxes_in_lowest_layer"]:
            shapes = [(0.1, 1.0), (s, 2.0), (s, 0.5)]
        else:
            shapes = [(s, r) for r in spec["aspect_ratios"]]
            nxt = 1.0 if layer == len(fms) - 1 else scale(layer + 1)
            shapes.append((np.sqrt(s * nxt), spec["interpolated_scale_aspect_ratio"]))
        for row in range(size):
            for col in range(size):
                for s_, r in shapes:
                    out.append(((row + 0.5) / size, (col + 0.5) / size, s_ / np.sqrt(r), s_ * np.sqrt(r)))
    return np.array(out, np.float32)


def face_anchors(spec, w, h):
    out = []
    for stride, per_cell in zip(spec["strides"], spec["anchors_per_cell"]):
        rows, cols = -(-h // stride), -(-w // stride)
        for row in range(rows):
            for col in range(cols):
                out += [((row + 0.5) / rows, (col + 0.5) / cols)] * per_cell
    return np.array(out, np.float32)


def nms(boxes, scores, classes, iou_threshold, limit=16):
    order = np.argsort(-scores, kind="stable")
    kept = []
    for i in order:
        if len(kept) == limit:
            break
        ok = True
        for k in kept:
            if classes[k] != classes[i]:
                continue
            a, b = boxes[i], boxes[k]
            ih = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            iw = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            inter = ih * iw
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            if union > 0 and inter / union > iou_threshold:
                ok = False
                break
        if ok:
            kept.append(i)
    return [
        {"class_id": int(classes[i]), "score": float(scores[i]), "box": [float(v) for v in boxes[i]]}
        for i in kept
    ]


def decode_ssd(m, raw_boxes, logits):
    spec = m["decoder"]
    a = ssd_anchors(spec)
    sy, sx, sh, sw = spec["box_scale"]
    logits = logits.copy()
    logits[:, spec["background_class"]] = -np.inf
    classes = logits.argmax(1)
    scores = 1 / (1 + np.exp(-logits[np.arange(len(a)), classes]))
    yc = raw_boxes[:, 0] / sy * a[:, 2] + a[:, 0]
    xc = raw_boxes[:, 1] / sx * a[:, 3] + a[:, 1]
    h = np.exp(raw_boxes[:, 2] / sh) * a[:, 2]
    w = np.exp(raw_boxes[:, 3] / sw) * a[:, 3]
    boxes = np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], 1)
    keep = scores >= m["score_threshold"]
    return a, nms(boxes[keep], scores[keep], classes[keep], m["iou_threshold"])


def decode_face(m, regressors, logits):
    spec = m["decoder"]
    a = face_anchors(spec, m["input"]["width"], m["input"]["height"])
    s = spec["box_scale"]
    scores = 1 / (1 + np.exp(-np.clip(logits[:, 0].astype(np.float64), -100, 100)))
    xc, yc = a[:, 1] + regressors[:, 0] / s, a[:, 0] + regressors[:, 1] / s
    w, h = regressors[:, 2] / s, regressors[:, 3] / s
    boxes = np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], 1)
    keep = scores >= m["score_threshold"]
    return a, nms(boxes[keep], scores[keep], np.zeros(keep.sum(), int), m["iou_threshold"])


# --- running ---------------------------------------------------------------

def run(model_file, tensor, bench):
    interp = Interpreter(model_path=os.path.join(ROOT, "models", model_file), num_threads=THREADS)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], tensor)
    interp.invoke()
    outputs = [interp.get_tensor(d["index"])[0] for d in interp.get_output_details()]
    timing = None
    if bench:
        # Untimed warm-up runs, as many as the Rust benchmark does.
        for _ in range(max(2, bench // 20)):
            interp.invoke()
        times = []
        for _ in range(bench):
            t = time.perf_counter()
            interp.invoke()
            times.append((time.perf_counter() - t) * 1000)
        timing = (float(np.median(times)), min(times))
    return outputs, timing


def save(name, array, write):
    if write:
        array.astype("<f4").tofile(os.path.join(DATA, name))
        return
    # A timing run checks that this machine (or emulator) computes the stored outputs.
    diff = float(np.abs(array.ravel() - np.fromfile(os.path.join(DATA, name), "<f4")).max())
    print(f"{name}: largest difference from the stored output {diff:.2g}")
    if diff >= 0.05:
        sys.exit(f"{name} differs from the stored output by {diff}")


def main():
    bench = RUNS if "--bench" in sys.argv else 0
    write = not bench  # a timing run leaves the reference files alone
    os.makedirs(DATA, exist_ok=True)
    reference = {"threads": THREADS, "litert": PACKAGES[0]}
    if write and THREADS != 2:
        sys.exit("reference files are made with 2 threads")

    m = manifest("ssd_mobilenetv2_oidv4.toml")
    w, h, frame = read_y4m_frame(VTEST, VTEST_FRAME)
    tensor = i420_to_tensor(w, h, frame, m["input"]["width"], m["input"]["height"], *m["input"]["range"])
    outputs, ms = run(m["file"], tensor, bench)
    boxes = next(o for o in outputs if o.shape[-1] == 4)
    logits = next(o for o in outputs if o.shape[-1] != 4)
    save("ssd-vtest.boxes.f32", boxes, write)
    save("ssd-vtest.logits.f32", logits, write)
    anchors, dets = decode_ssd(m, boxes, logits)
    pick = [0, 1, 2, 1082, 1083, 1088, 1916]
    reference["ssd"] = {
        "input": f"vtest-768x576.y4m frame {VTEST_FRAME}",
        "output_order": ["boxes" if o.shape[-1] == 4 else "logits" for o in outputs],
        "anchor_count": len(anchors),
        "anchors": {str(i): [float(v) for v in anchors[i]] for i in pick},
        "detections": dets,
    }

    m = manifest("face_detection_short_range.toml")
    if write:
        from PIL import Image

        rgb = np.asarray(Image.open(ASTRONAUT).convert("RGB").resize((256, 256), Image.BILINEAR))
        i420 = rgb_to_i420(rgb)
        i420.tofile(os.path.join(DATA, "astronaut-256x256.i420"))
    else:
        i420 = np.fromfile(os.path.join(DATA, "astronaut-256x256.i420"), np.uint8)
    tensor = i420_to_tensor(256, 256, i420, m["input"]["width"], m["input"]["height"], *m["input"]["range"])
    outputs, face_ms = run(m["file"], tensor, bench)
    regressors = next(o for o in outputs if o.shape[-1] == 16)
    logits = next(o for o in outputs if o.shape[-1] == 1)
    save("face-astronaut.regressors.f32", regressors, write)
    save("face-astronaut.logits.f32", logits, write)
    anchors, dets = decode_face(m, regressors, logits)
    reference["face"] = {
        "input": "astronaut-256x256.i420",
        "anchor_count": len(anchors),
        "anchors": {str(i): [float(v) for v in anchors[i]] for i in [0, 1, 511, 512, 895]},
        "detections": dets,
    }
    if write:
        with open(os.path.join(DATA, "detect-reference.json"), "w") as f:
            json.dump(reference, f, indent=1)
            f.write("\n")
    print(json.dumps({k: reference[k].get("detections") for k in ("ssd", "face")})[:2000])
    if bench:
        print(f"median invoke ms over {bench} runs, {THREADS} threads: ssd {ms[0]:.2f}, face {face_ms[0]:.2f}")
        print(f"fastest invoke ms over {bench} runs, {THREADS} threads: ssd {ms[1]:.2f}, face {face_ms[1]:.2f}")


main()
