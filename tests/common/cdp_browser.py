"""cdp_browser.py - headless Chromium driven over the DevTools protocol
(websocket-client, Debian's python3-websocket), for the tests that use a
page as a person would: open it, click, scroll, read the canvas back.

    with CdpBrowser(workdir) as b:
        b.open("file:///.../report.html")
        b.evaluate("document.title")
        b.wheel(x, y, delta_y=100)
        problems = b.page_problems()   # console errors, exceptions, failed
                                       # or non-file requests, so far

Chromium starts with --remote-debugging-port=0 (it picks a free port and
writes it to DevToolsActivePort in its profile folder) and one page target
is attached in flat mode, so every command goes over the browser's socket.
"""
import json
import os
import shutil
import subprocess
import tempfile
import time

import websocket


class CdpError(RuntimeError):
    pass


class CdpBrowser:
    def __init__(self, workdir, chromium="/usr/bin/chromium", timeout=60.0, width=1280, height=1000):
        if not os.access(chromium, os.X_OK):
            raise CdpError(f"{chromium} not found (Debian package chromium)")
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.profile = tempfile.mkdtemp(prefix="cbq-chromium-")
        self.stderr = open(os.path.join(workdir, "chromium_stderr.txt"), "wb")
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-extensions", "--remote-debugging-port=0", "--remote-allow-origins=*",
                 f"--user-data-dir={self.profile}", "about:blank"]
        self.proc = subprocess.Popen([chromium] + flags, stdout=subprocess.DEVNULL, stderr=self.stderr,
                                     start_new_session=True)
        self.ws = None
        self.events, self.next_id, self.session = [], 1, None
        try:
            self.ws = websocket.create_connection(self._browser_url(), timeout=timeout,
                                                  suppress_origin=True)
            target = self.send("Target.createTarget", {"url": "about:blank"}, browser=True)["targetId"]
            self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                     browser=True)["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.send(f"{domain}.enable")
            self.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        except Exception:
            self.close()
            raise

    def _browser_url(self):
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        while time.monotonic() < self.deadline:
            if self.proc.poll() is not None:
                raise CdpError(f"Chromium exited ({self.proc.returncode}) before it listened")
            try:
                with open(port_file) as f:
                    lines = f.read().split("\n")
                if len(lines) >= 2 and lines[0].strip() and lines[1].strip():
                    return f"ws://127.0.0.1:{lines[0].strip()}{lines[1].strip()}"
            except FileNotFoundError:
                pass
            time.sleep(0.05)
        raise CdpError("Chromium did not write DevToolsActivePort in time")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _receive(self):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no answer from Chromium within {self.timeout:.0f} s")
        self.ws.settimeout(left)
        return json.loads(self.ws.recv())

    def send(self, method, params=None, browser=False):
        mid = self.next_id
        self.next_id += 1
        msg = {"id": mid, "method": method, "params": params or {}}
        if not browser:
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        while True:
            reply = self._receive()
            if reply.get("id") == mid:
                if "error" in reply:
                    raise CdpError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method):
        for i, ev in enumerate(self.events):
            if ev.get("method") == method:
                return self.events.pop(i)
        while True:
            ev = self._receive()
            if ev.get("method") == method:
                return ev
            self.events.append(ev)

    def open(self, url):
        self.send("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression, await_promise=False):
        """The value of a JavaScript expression (JSON-serialisable); a
        thrown exception raises CdpError with its text."""
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                           "awaitPromise": await_promise})
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            text = d.get("exception", {}).get("description") or d.get("text")
            raise CdpError(f"{expression[:80]!r} threw: {text}")
        return r["result"].get("value")

    def mouse(self, kind, x, y, **extra):
        self.send("Input.dispatchMouseEvent", dict({"type": kind, "x": x, "y": y}, **extra))

    def click(self, x, y):
        self.mouse("mousePressed", x, y, button="left", clickCount=1)
        self.mouse("mouseReleased", x, y, button="left", clickCount=1)

    def wheel(self, x, y, delta_y):
        self.mouse("mouseWheel", x, y, deltaX=0, deltaY=delta_y)

    def page_problems(self):
        """Console errors, exceptions, failed loads and requests for anything
        but file: and data: URLs among the events received so far."""
        self.evaluate("1")  # drains the events sent before this point
        out = []
        for ev in self.events:
            m, p = ev.get("method"), ev.get("params", {})
            if m == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                out.append(f"exception: {d.get('exception', {}).get('description') or d.get('text')}")
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(f"console.{p['type']}: {[a.get('value') for a in p.get('args', [])]}")
            elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(f"log error: {p['entry'].get('text')} ({p['entry'].get('url', '')[:80]})")
            elif m == "Network.loadingFailed":
                out.append(f"load failed: {p.get('errorText')}")
            elif m == "Network.requestWillBeSent":
                url = p["request"]["url"]
                if not (url.startswith("file:") or url.startswith("data:")):
                    out.append(f"external request: {url[:100]}")
        return out

    def close(self):
        if self.ws is not None:
            try:
                self.send("Browser.close", browser=True)
            except Exception:
                pass
            try:
                self.ws.close()
            except Exception:
                pass
            self.ws = None
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        self.stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)
