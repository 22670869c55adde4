#!/usr/bin/python3
"""report_viewer_browser_test.py - the report's interactive viewer, used in
headless Chromium over the DevTools protocol (tests/common/cdp_browser.py)
on the report of a small study (make_cohort.py: 8 volumes of 129x129x8
stored in RAS order, 4 in the test split, so the viewer downsamples by 2
with a cut last block; a 1-epoch model, no sanity stage; seconds), with
report.viewer = all, then picks (the default) and off (the report stage
alone reruns).

Against independent computations (nibabel, numpy, matplotlib, the study's
CSVs):
- the viewer's data (the JSON block): every test volume of cohort.csv in
  every category (with report.viewer = picks only the three picks of each
  category, with off no viewer), AE as in attrib/ae.csv, the highest/median/lowest roles
  as ae.csv ranks them, the profiles as in attrib/profiles.csv;
- it opens on the first category's highest-AE volume at its peak-AE slice;
- moving the slider (input events), the mouse wheel over the image and a
  click on the profile (real CDP mouse events) change the shown slice,
  its label and the canvas pixels;
- with opacity 0 and the full CT window every canvas pixel is the CT
  volume (nibabel, canonical LPS, 2x2 block means) quantised to 8 bits
  over the stored range; at full opacity, where the map is above a tenth of
  the category's scale, the pixel is matplotlib's viridis of the map value
  on that scale (min and max over the category's maps, nibabel);
- the structure outline (vermillion) shows when on and not when off; the
  volume and category selectors and the pick buttons switch what is shown;
- no console error, exception, failed load or non-file request.
"""
import csv
import json
import math
import os
import re
import subprocess
import sys
import time

import matplotlib
import nibabel as nib
import numpy as np
from nibabel import orientations

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "common"))
from cdp_browser import CdpBrowser  # noqa: E402
from test_args import parse_test_args  # noqa: E402

args = parse_test_args()
work = args.workdir
failures = []
T0 = time.monotonic()
SIZE, SLICES, FACTOR = 129, 8, 2
VERMILLION = (213, 94, 0)


def fail(msg):
    failures.append(msg)


def mark(what):
    if os.environ.get("CBQ_BROWSER_TIMING"):
        print(f"{time.monotonic() - T0:6.2f} s  {what}")


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---- the study ---------------------------------------------------------------
cohort = os.path.join(work, "cohort")
subprocess.run([sys.executable, os.path.join(HERE, "make_cohort.py"), "--out", cohort, "--n", "8",
                "--size", str(SIZE), "--slices", str(SLICES), "--test", "4", "--val", "1", "--ras"],
               check=True)
out = os.path.join(work, "out")
report = os.path.join(out, "report", "report.html")


def run_study(viewer):
    """The study with report.viewer = viewer (None: the default); the viewer's data."""
    config = {"cohort": {"csv": "cohort/cohort.csv"},
              "train": {"width": 4, "depth": 2, "input_size": 16, "epochs": 1, "batch": 8,
                        "hu_min": -400, "hu_max": 600},
              "stats": {"bootstrap": 10, "permutations": 10},
              "sanity": {"enabled": False}}
    if viewer:
        config["report"] = {"viewer": viewer}
    with open(os.path.join(work, "study.json"), "w") as f:
        json.dump(config, f)
    r = subprocess.run([args.cbctiq, "study", "--config", os.path.join(work, "study.json"), "--out", out,
                        "--threads", "2", "--quiet"], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        sys.exit(f"study failed ({r.returncode}): {r.stderr}")
    html = open(report, encoding="utf-8").read()
    print(f"report.viewer = {viewer or 'default'}: report.html {os.path.getsize(report)} bytes")
    m = re.search(r'<script type="application/json" id="cbq-viewer-data">(.*?)</script>', html, re.S)
    return json.loads(m.group(1)) if m else None


# ---- the data block against the study's tables --------------------------------
data = run_study("all")
mark("study")
if data is None:
    sys.exit("FAIL: no viewer data in report.html")
tests = [row["volume_id"] for row in read_csv(os.path.join(cohort, "cohort.csv")) if row["split"] == "test"]
ae = {(row["volume_id"], row["category"]): float(row["ae"])
      for row in read_csv(os.path.join(out, "attrib", "ae.csv"))}
profiles = {}
for row in read_csv(os.path.join(out, "attrib", "profiles.csv")):
    profiles.setdefault((row["volume_id"], row["category"]), []).append((int(row["slice"]), float(row["ae"])))
cats = [c["name"] for c in data["categories"]]
if cats != ["parotid", "submandibular", "larynx", "mandible", "overall"]:
    fail(f"categories {cats}")
vol_ids = [v["id"] for v in data["volumes"]]
if sorted(vol_ids) != sorted(tests):
    fail(f"viewer volumes {vol_ids}, test split {tests}")
for v in data["volumes"]:
    want = ((SIZE + FACTOR - 1) // FACTOR, (SIZE + FACTOR - 1) // FACTOR, SLICES, FACTOR)
    if (v["w"], v["h"], v["nz"], v["factor"]) != want or len(v["ct"]) != SLICES:
        fail(f"{v['id']}: grid {(v['w'], v['h'], v['nz'], v['factor'])}, want {want}")


def ranked_roles(cat):
    """highest/median/lowest as report_maps.c defines them, from ae.csv."""
    ids = sorted(tests, key=lambda i: -ae[(i, cat)])
    return {"highest": ids[0], "median": ids[(len(ids) - 1) // 2], "lowest": ids[-1]}


ROLES = {c: ranked_roles(c) for c in cats}
for c in data["categories"]:
    got_ids = [vol_ids[e["volume"]] for e in c["entries"]]
    if sorted(got_ids) != sorted(tests):
        fail(f"{c['name']}: entries {got_ids}")
    for e in c["entries"]:
        vid = vol_ids[e["volume"]]
        if not math.isclose(e["ae"], ae[(vid, c["name"])], rel_tol=1e-8):
            fail(f"{c['name']} {vid}: AE {e['ae']} != ae.csv {ae[(vid, c['name'])]}")
        want_role = next((r for r, i in ROLES[c["name"]].items() if i == vid), None)
        if e["role"] != want_role:
            fail(f"{c['name']} {vid}: role {e['role']}, want {want_role}")
        want_prof = profiles[(vid, c["name"])]
        if [p[0] for p in e["profile"]] != [p[0] for p in want_prof] or not np.allclose(
                [p[1] for p in e["profile"]], [p[1] for p in want_prof], rtol=1e-8):
            fail(f"{c['name']} {vid}: profile differs from profiles.csv")


# ---- independent expectations (nibabel, numpy) ---------------------------------
def canonical(path):
    """The volume in cbctiq's canonical LPS voxel order, as float64 (x, y, z)."""
    img = nib.load(path)
    xf = orientations.ornt_transform(orientations.io_orientation(img.affine),
                                     orientations.axcodes2ornt(("L", "P", "S")))
    return orientations.apply_orientation(np.asarray(img.dataobj, dtype=np.float64), xf)


def block_means(plane):
    """plane (x, y) -> image (rows y, columns x) of FACTOR x FACTOR means."""
    img = plane.T
    h, w = (img.shape[0] + FACTOR - 1) // FACTOR, (img.shape[1] + FACTOR - 1) // FACTOR
    padded = np.full((h * FACTOR, w * FACTOR), np.nan)
    padded[:img.shape[0], :img.shape[1]] = img
    return np.nanmean(padded.reshape(h, FACTOR, w, FACTOR), axis=(1, 3))


def quantise(v, lo, hi):
    t = np.clip((v - lo) / (hi - lo), 0, 1)
    return np.floor(255 * t + 0.5)


ct_vol = {i: canonical(os.path.join(cohort, "volumes", i + ".nii.gz")) for i in tests}
labels = {i: canonical(os.path.join(cohort, "labels", i + ".nii.gz")) for i in tests}
maps = {(i, c): canonical(os.path.join(out, "attrib", "maps", f"{i}_{c}.nii.gz")) for i in tests for c in cats}
scale = {c: (min(maps[(i, c)].min() for i in tests), max(maps[(i, c)].max() for i in tests)) for c in cats}
viridis = matplotlib.colormaps["viridis"]
PAROTID = (1, 2)

# The map check's (category, volume, slice): the most pixels at full opacity.
best = None
for c in cats:
    lo, hi = scale[c]
    for i in tests:
        for k in range(SLICES):
            n = int((block_means(maps[(i, c)][:, :, k]) >= lo + 0.12 * (hi - lo)).sum()) if hi > lo else 0
            if best is None or n > best[0]:
                best = (n, c, i, k)
if best[0] < 20:
    fail(f"the study's maps have only {best[0]} pixels above a tenth of their scale")

# ---- the browser -----------------------------------------------------------------
WAIT = """(function (key) {
  var root = document.getElementById('cbq-viewer'), t0 = performance.now();
  return new Promise(function (resolve, reject) {
    (function poll() {
      if (root.getAttribute('data-rendered') === key) resolve(key);
      else if (performance.now() - t0 > 10000)
        reject(new Error('viewer shows ' + root.getAttribute('data-rendered') + ', not ' + key));
      else setTimeout(poll, 5);
    })();
  });
})(%s)"""

# Canvas pixels at the centres of the stored slice's pixels (rows, columns, RGB).
SAMPLE = """(function (w, h) {
  var c = document.getElementById('cbqv-image'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  var out = [];
  for (var y = 0; y < h; y++) for (var x = 0; x < w; x++) {
    var cx = Math.floor((x + 0.5) * c.width / w), cy = Math.floor((y + 0.5) * c.height / h), p = 4 * (cy * c.width + cx);
    out.push(d[p], d[p + 1], d[p + 2]);
  }
  return out;
})(%d, %d)"""

DIGEST = """(function () {
  var c = document.getElementById('cbqv-image'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  var h = 0, orange = 0;
  for (var i = 0; i < d.length; i += 4) {
    h = (h * 31 + d[i] * 7 + d[i + 1] * 3 + d[i + 2]) %% 1000000007;
    if (Math.abs(d[i] - %d) < 40 && Math.abs(d[i + 1] - %d) < 40 && d[i + 2] < 40) orange++;
  }
  return [h, orange, c.width, c.height];
})()""" % VERMILLION[:2]


def state(b):
    return b.evaluate("""(function () { var r = document.getElementById('cbq-viewer');
      return {cat: r.getAttribute('data-category'), vol: r.getAttribute('data-volume'),
              slice: +r.getAttribute('data-slice'), text: document.getElementById('cbqv-slice-text').textContent,
              volumes: Array.from(document.getElementById('cbqv-volume').options).map(o => o.text)}; })()""")


def wait_shown(b, cat, vid, k):
    b.evaluate(WAIT % json.dumps(f"{cat}|{vid}|{k}"), await_promise=True)


def set_input(b, ident, value, event):
    b.evaluate(f"""(function () {{ var e = document.getElementById({json.dumps(ident)});
      e.value = {json.dumps(str(value))}; e.dispatchEvent(new Event({json.dumps(event)}, {{bubbles: true}})); }})()""")


def set_checkbox(b, ident, on):
    b.evaluate(f"""(function () {{ var e = document.getElementById({json.dumps(ident)});
      if (e.checked !== {json.dumps(on)}) e.click(); }})()""")


def center_of(b, ident):
    b.evaluate(f"document.getElementById({json.dumps(ident)}).scrollIntoView({{block: 'center'}})")
    return b.evaluate(f"""(function () {{ var r = document.getElementById({json.dumps(ident)}).getBoundingClientRect();
      return [r.left, r.top, r.width, r.height]; }})()""")


def digest(b):
    return b.evaluate(DIGEST)


def show(b, cat, vid, k):
    """Selects category, volume and slice through the controls and waits."""
    set_input(b, "cbqv-category", cats.index(cat), "change")
    c = data["categories"][cats.index(cat)]
    j = next(n for n, e in enumerate(c["entries"]) if vol_ids[e["volume"]] == vid)
    set_input(b, "cbqv-volume", j, "change")
    set_input(b, "cbqv-slice", k, "input")
    wait_shown(b, cat, vid, k)


def check_pixels(b, cat, vid, k):
    """Opacity 0, full window: the CT; full opacity: viridis where the map is high."""
    v = data["volumes"][vol_ids.index(vid)]
    set_checkbox(b, "cbqv-outline", False)
    set_input(b, "cbqv-wlo", data["ct"]["lo"], "change")
    set_input(b, "cbqv-whi", data["ct"]["hi"], "change")
    set_input(b, "cbqv-opacity", 0, "input")
    show(b, cat, vid, k)
    got = np.array(b.evaluate(SAMPLE % (v["w"], v["h"]))).reshape(v["h"], v["w"], 3)
    want = quantise(block_means(ct_vol[vid][:, :, k]), data["ct"]["lo"], data["ct"]["hi"])
    worst = np.abs(got - want[:, :, None]).max()
    if worst > 1:
        fail(f"{vid} slice {k}: CT pixels differ from nibabel's by up to {worst}")
    set_input(b, "cbqv-opacity", 100, "input")
    wait_shown(b, cat, vid, k)
    got = np.array(b.evaluate(SAMPLE % (v["w"], v["h"]))).reshape(v["h"], v["w"], 3)
    lo, hi = scale[cat]
    t = (block_means(maps[(vid, cat)][:, :, k]) - lo) / (hi - lo)
    high = t >= 0.12
    colour = np.round(255 * viridis(np.clip(t, 0, 1))[:, :, :3])
    worst = np.abs(got[high] - colour[high]).max() if high.any() else 0
    if worst > 5:
        fail(f"{cat} {vid} slice {k}: map pixels differ from viridis by up to {worst}")
    zero = t <= 0
    if zero.any() and np.abs(got[zero] - want[zero][:, None]).max() > 1:
        fail(f"{cat} {vid} slice {k}: where the map is 0 the CT does not show through")
    return int(high.sum())


with CdpBrowser(work, timeout=120) as b:
    mark("browser")
    b.open("file://" + os.path.abspath(report))
    mark("loaded")
    cat0 = cats[0]
    hi0 = ROLES[cat0]["highest"]
    peak = max(profiles[(hi0, cat0)], key=lambda p: p[1])[0]
    try:
        wait_shown(b, cat0, hi0, peak)
    except Exception as e:
        fail(f"first view: {e}")
    s = state(b)
    if (s["cat"], s["vol"], s["slice"]) != (cat0, hi0, peak):
        fail(f"opens on {s}, want {cat0} {hi0} slice {peak}")
    if len(s["volumes"]) != len(tests) or "(highest AE)" not in s["volumes"][0]:
        fail(f"volume choices {s['volumes']}")

    # The slider: label and pixels follow.
    seen = {digest(b)[0]}
    for k in [(peak + 1) % SLICES, (peak + 3) % SLICES]:
        set_input(b, "cbqv-slice", k, "input")
        wait_shown(b, cat0, hi0, k)
        s, d = state(b), digest(b)
        if s["text"] != f"{k} / {SLICES - 1}":
            fail(f"slider at {k}: label {s['text']!r}")
        if d[0] in seen:
            fail(f"slider at {k}: the canvas did not change")
        seen.add(d[0])
    mark("slider")

    # The mouse wheel over the image: one slice per notch.
    k = s["slice"]
    x, y, w, h = center_of(b, "cbqv-image")
    step = 1 if k + 1 < SLICES else -1
    b.wheel(x + w / 2, y + h / 2, 100 * step)
    try:
        wait_shown(b, cat0, hi0, k + step)
    except Exception as e:
        fail(f"mouse wheel: {e}")

    # A click on the profile goes to the slice nearest that z.
    v0 = data["volumes"][vol_ids.index(hi0)]
    x, y, w, h = center_of(b, "cbqv-profile")
    target = 1 if k + step != 1 else 2
    zlo, zhi = min(v0["z"]), max(v0["z"])
    px = 52 + (v0["z"][target] - zlo) / (zhi - zlo) * (w - 52 - 10)  # the chart's padding
    b.click(x + px, y + h / 2)
    try:
        wait_shown(b, cat0, hi0, target)
    except Exception as e:
        fail(f"profile click: {e}")
    mark("wheel and profile")

    # Pick buttons, the volume list and the category list.
    for role in ("lowest", "median", "highest"):
        b.evaluate(f"document.getElementById('cbqv-pick-{role}').click()")
        want = ROLES[cat0][role]
        try:
            wait_shown(b, cat0, want, target)
        except Exception as e:
            fail(f"{role} button: {e}")
    d_before = digest(b)[0]
    other = ROLES[cat0]["lowest"]
    show(b, cat0, other, target)
    if digest(b)[0] == d_before:
        fail("another volume, same pixels")
    set_input(b, "cbqv-category", 2, "change")
    try:
        wait_shown(b, cats[2], other, target)  # the volume stays when the category changes
    except Exception as e:
        fail(f"category switch: {e}")
    mark("selectors")

    # The outline: the parotid's largest slice in its highest-AE volume.
    pv = ROLES["parotid"]["highest"]
    areas = [np.isin(labels[pv][:, :, k], PAROTID).sum() for k in range(SLICES)]
    ks = int(np.argmax(areas))
    set_input(b, "cbqv-opacity", 0, "input")
    set_checkbox(b, "cbqv-outline", True)
    show(b, "parotid", pv, ks)
    on = digest(b)
    set_checkbox(b, "cbqv-outline", False)
    wait_shown(b, "parotid", pv, ks)
    off = digest(b)
    if on[1] < 20 or off[1] != 0:
        fail(f"outline: {on[1]} vermillion pixels when on, {off[1]} when off")
    mark("outline")

    # Pixels against nibabel and matplotlib.
    n_high = check_pixels(b, best[1], best[2], best[3])
    print(f"pixels: CT {data['volumes'][0]['w']}x{data['volumes'][0]['h']} checked, "
          f"{n_high} map pixels at full opacity ({best[1]} {best[2]} slice {best[3]})")
    mark("pixels")
    failures += b.page_problems()

# The default (report.viewer = picks): only each category's three picks.
picks = run_study(None)
if picks is None:
    fail("report.viewer = picks: no viewer")
else:
    ids = [v["id"] for v in picks["volumes"]]
    if sorted(ids) != sorted({i for c in cats for i in ROLES[c].values()}):
        fail(f"report.viewer = picks: volumes {ids}")
    for c in picks["categories"]:
        got = {e["role"]: ids[e["volume"]] for e in c["entries"]}
        if got != ROLES[c["name"]] or len(c["entries"]) != 3:
            fail(f"report.viewer = picks, {c['name']}: {got}, want {ROLES[c['name']]}")
if run_study("off") is not None:
    fail("report.viewer = off: the viewer is still there")
mark("picks and off")

for f in failures:
    print("FAIL:", f)
print(f"{len(failures)} failures in {time.monotonic() - T0:.1f} s")
sys.exit(1 if failures else 0)
