#!/usr/bin/python3
"""Renders the sample report in headless Chromium and checks it truly works.

Talks to the browser over the DevTools protocol on --remote-debugging-pipe
(fd 3: commands in, fd 4: replies out, NUL-terminated JSON; stdlib only).
Fails when any <img> did not decode (naturalWidth 0 or not its tag size),
when the page logs a console error, throws, or fails a load, when it asks
for anything but file: and data: URLs, when it has a script (the sample) or
an external script (any report; a study's has the viewer's inline one), when
it overflows a 1280 px window horizontally, when a table is wider than its box
(cut off behind a scroll bar instead of wrapping), when a sentence cell of a
table is squeezed narrower than
300 px, or when text from the data rendered as markup. With
--screenshot PATH it also saves a full-page screenshot for people to look
at (CBQ_BROWSER_TIMING=1 prints how long each step took). --report PATH
checks an existing report (e.g. a real study's) instead of the sample."""
import argparse
import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

ap = argparse.ArgumentParser()
ap.add_argument("--sample", help="report_sample binary: build the sample report and check it")
ap.add_argument("--report", help="check this report.html instead (e.g. a real study's)")
ap.add_argument("--workdir", required=True)
ap.add_argument("--chromium", default="/usr/bin/chromium")
ap.add_argument("--timeout", type=float, default=90.0)
ap.add_argument("--screenshot", help="also save a full-page PNG screenshot here (takes ~10 s more)")
args = ap.parse_args()

if not os.access(args.chromium, os.X_OK):
    print(f"FAIL: {args.chromium} not found (Debian package chromium)")
    sys.exit(1)

os.makedirs(args.workdir, exist_ok=True)
if args.report:
    report_path = args.report
elif args.sample:
    out = os.path.join(args.workdir, "report")
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([args.sample, out], check=True)
    report_path = os.path.join(out, "report.html")
else:
    sys.exit("one of --sample, --report is required")
report_url = "file://" + os.path.abspath(report_path)


class Browser:
    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="cbq-chromium-")
        to_r, self.to_w = os.pipe()
        self.from_r, from_w = os.pipe()
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-extensions", "--remote-debugging-pipe", f"--user-data-dir={self.profile}",
                 "about:blank"]
        self.stderr = open(os.path.join(args.workdir, "chromium_stderr.txt"), "wb")
        # Chromium expects its ends of the pipes on fds 3 and 4: move them out
        # of the way first (fds >= 10), then place them in the child.
        child_r = fcntl.fcntl(to_r, fcntl.F_DUPFD, 10)
        child_w = fcntl.fcntl(from_w, fcntl.F_DUPFD, 10)
        os.close(to_r)
        os.close(from_w)

        def place_fds():
            os.dup2(child_r, 3)
            os.dup2(child_w, 4)

        self.proc = subprocess.Popen([args.chromium] + flags, pass_fds=(3, 4), preexec_fn=place_fds,
                                     stdout=subprocess.DEVNULL, stderr=self.stderr, start_new_session=True)
        os.close(child_r)
        os.close(child_w)
        self.buf, self.next_id, self.events = b"", 1, []
        self.deadline = time.monotonic() + args.timeout

    def _read_message(self):
        while b"\0" not in self.buf:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from Chromium in time")
            ready, _, _ = select.select([self.from_r], [], [], left)
            if ready:
                chunk = os.read(self.from_r, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe")
                self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method, params=None, session=None):
        mid = self.next_id
        self.next_id += 1
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_w, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read_message()
            if reply.get("id") == mid:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method):
        for i, ev in enumerate(self.events):
            if ev.get("method") == method:
                return self.events.pop(i)
        while True:
            ev = self._read_message()
            if ev.get("method") == method:
                return ev
            self.events.append(ev)

    def close(self):
        try:
            self.send("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()
        os.close(self.to_w)
        os.close(self.from_r)
        self.stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)


PROBE = """JSON.stringify({
  images: Array.from(document.images).map(i => ({complete: i.complete, nw: i.naturalWidth,
           nh: i.naturalHeight, w: +i.getAttribute('width'), h: +i.getAttribute('height'),
           alt: i.alt})),
  scripts: document.scripts.length,
  externalScripts: Array.from(document.scripts).filter(s => s.src).length,
  sections: document.querySelectorAll('section > h2').length,
  toc: document.querySelectorAll('nav.toc a').length,
  tables: document.querySelectorAll('table').length,
  textCells: Array.from(document.querySelectorAll('td.text')).map(td => ({
           w: td.getBoundingClientRect().width, text: td.innerText.slice(0, 40)})),
  cutTables: Array.from(document.querySelectorAll('.table-wrap')).filter(
           d => d.scrollWidth > d.clientWidth + 1).map(d => d.querySelector('table').id),
  scrollWidth: document.documentElement.scrollWidth,
  clientWidth: document.documentElement.clientWidth,
  text: document.body.innerText,
  title: document.title
})"""

failures = []
T0 = time.monotonic()


def mark(what):
    if os.environ.get("CBQ_BROWSER_TIMING"):
        print(f"{time.monotonic() - T0:6.2f} s  {what}")


b = Browser()
try:
    mark("launched")
    target = b.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    mark("target")
    session = b.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        b.send(f"{domain}.enable", session=session)
    b.send("Emulation.setDeviceMetricsOverride",
           {"width": 1280, "height": 1000, "deviceScaleFactor": 1, "mobile": False}, session=session)
    mark("enabled")
    b.send("Page.navigate", {"url": report_url}, session=session)
    b.wait_event("Page.loadEventFired")
    mark("loaded")
    probe = json.loads(b.send("Runtime.evaluate", {"expression": PROBE, "returnByValue": True},
                              session=session)["result"]["value"])
    height = int(b.send("Page.getLayoutMetrics", session=session)["cssContentSize"]["height"])
    mark("probed")
    if args.screenshot:
        b.send("Emulation.setDeviceMetricsOverride",
               {"width": 1280, "height": min(height, 16000), "deviceScaleFactor": 1, "mobile": False},
               session=session)
        shot = b.send("Page.captureScreenshot", {"format": "png"}, session=session)
        with open(args.screenshot, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        mark("screenshot")
    b.send("Runtime.evaluate", {"expression": "1"}, session=session)  # drain pending events
finally:
    b.close()
    mark("closed")

for ev in b.events:
    m, p = ev.get("method"), ev.get("params", {})
    if m == "Runtime.exceptionThrown":
        failures.append(f"exception: {p['exceptionDetails'].get('text')}")
    elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
        failures.append(f"console.{p['type']}: {p.get('args')}")
    elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
        failures.append(f"log error: {p['entry'].get('text')} ({p['entry'].get('url', '')[:80]})")
    elif m == "Network.loadingFailed":
        failures.append(f"load failed: {p.get('errorText')}")
    elif m == "Network.requestWillBeSent":
        url = p["request"]["url"]
        if not (url.startswith("file:") or url.startswith("data:")):
            failures.append(f"external request: {url[:100]}")

images = probe["images"]
if len(images) < 10:
    failures.append(f"only {len(images)} images rendered")
for i, img in enumerate(images):
    if not img["complete"] or img["nw"] == 0:
        failures.append(f"image {i} ({img['alt']}) did not load")
    elif (img["nw"], img["nh"]) != (img["w"], img["h"]):
        failures.append(f"image {i}: decoded {img['nw']}x{img['nh']}, tag says {img['w']}x{img['h']}")
# The sample has no viewer, so no script; a study's report has the viewer's
# inline script, and no report loads one from a file or URL.
if args.sample and probe["scripts"]:
    failures.append(f"{probe['scripts']} script elements in a report that needs none")
if probe["externalScripts"]:
    failures.append(f"{probe['externalScripts']} script elements load a file or URL")
if probe["sections"] < 6 or probe["toc"] != probe["sections"]:
    failures.append(f"{probe['sections']} sections, {probe['toc']} contents entries")
if probe["scrollWidth"] > probe["clientWidth"]:
    failures.append(f"page wider ({probe['scrollWidth']} px) than the 1280 px window")
# A wide table wraps into blocks that fit instead of hiding columns behind
# a scroll bar (cut off in print and in screenshots).
for table_id in probe["cutTables"]:
    failures.append(f"{table_id} is wider than the page: cut off behind a scroll bar")
# Sentence cells (e.g. the atypical table's reason) keep a readable width
# beside many numeric columns instead of wrapping word by word.
if args.sample and not probe["textCells"]:
    failures.append("the sample has no long text cell (td.text) to check")
for cell in probe["textCells"]:
    if cell["w"] < 300:
        failures.append(f"text cell {cell['text']!r} squeezed to {cell['w']:.0f} px")
if args.sample and "<script>alert('x')</script>" not in probe["text"]:
    failures.append("escaped sample text did not render as text")
if args.sample and not probe["title"].startswith("cbctiq study report"):
    failures.append(f"title {probe['title']!r}")

for f in failures:
    print("FAIL:", f)
print(f"{len(images)} images checked, {probe['tables']} tables, {probe['sections']} sections, page "
      f"{probe['scrollWidth']} x {height} px" + (f"; screenshot in {args.screenshot}" if args.screenshot else ""))
sys.exit(1 if failures else 0)
