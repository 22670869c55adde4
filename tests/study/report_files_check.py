#!/usr/bin/python3
"""Checks a sample report's files with independent parsers (Python stdlib).

Runs the sample-report program, then: report.html parses, has no script,
no external resource and no raw markup from the data; every inlined image is
a PNG whose IHDR size matches the img tag; every figure link points at a PNG
and an SVG beside the report; every SVG is well-formed XML with an <svg> root
of the figure's size; every table's CSV (read with the csv module) holds
exactly the cells shown in the HTML table."""
import argparse
import base64
import csv
import html.parser
import os
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET

ap = argparse.ArgumentParser()
ap.add_argument("--sample", required=True)
ap.add_argument("--workdir", required=True)
args = ap.parse_args()

out = os.path.join(args.workdir, "report")
shutil.rmtree(out, ignore_errors=True)
os.makedirs(args.workdir, exist_ok=True)
subprocess.run([args.sample, out], check=True)

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)


def png_size(data):
    check(data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature")
    check(data[12:16] == b"IHDR", "PNG without IHDR first")
    return struct.unpack(">II", data[16:24])


class Report(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.imgs, self.links, self.tags = [], [], []
        self.tables, self._cell, self._row, self._table = [], None, None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(a)
        if tag == "a":
            self.links.append(a.get("href", ""))
        if tag in ("link", "script", "iframe", "object", "embed"):
            failures.append(f"forbidden <{tag}> in the report")
        if tag == "table":
            self._table = {"id": a.get("id", ""), "rows": []}
        if tag == "tr":
            self._row = []
        if tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._row.append(self._cell)
            self._cell = None
        if tag == "tr":
            self._table["rows"].append(self._row)
        if tag == "table":
            self.tables.append(self._table)

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


text = open(os.path.join(out, "report.html"), encoding="utf-8").read()
p = Report()
p.feed(text)
p.close()
check(text.startswith("<!DOCTYPE html>"), "no doctype")
check("http://" not in text and "https://" not in text, "an external URL in the report")
check("<script>alert" not in text, "raw markup from the data reached the page")
check("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in text, "escaped sample text missing")

check(len(p.imgs) >= 10, f"only {len(p.imgs)} images")
for img in p.imgs:
    src = img.get("src", "")
    if not src.startswith("data:image/png;base64,"):
        failures.append(f"image not inlined: {src[:40]}")
        continue
    w, h = png_size(base64.b64decode(src.split(",", 1)[1], validate=True))
    check((w, h) == (int(img["width"]), int(img["height"])), f"img tag {img['width']}x{img['height']} vs PNG {w}x{h}")

figure_links = [l for l in p.links if l.startswith("figures/")]
check(len(figure_links) == 2 * len(p.imgs), "each figure should link its PNG and SVG")
for link in figure_links:
    path = os.path.join(out, link)
    check(os.path.isfile(path), f"missing {link}")
    if link.endswith(".svg"):
        root = ET.parse(path).getroot()  # raises on malformed XML
        check(root.tag == "{http://www.w3.org/2000/svg}svg", f"{link}: root is {root.tag}")
        png = open(path[:-4] + ".png", "rb").read()
        w, h = png_size(png)
        check(root.get("viewBox") == f"0 0 {w} {h}", f"{link}: viewBox {root.get('viewBox')} vs PNG {w}x{h}")

table_links = [l for l in p.links if l.startswith("tables/")]
check(len(table_links) == len(p.tables) >= 4, f"{len(p.tables)} tables, {len(table_links)} CSV links")
for table in p.tables:
    stem = table["id"][len("table-"):]
    with open(os.path.join(out, "tables", stem + ".csv"), newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    check(rows == table["rows"], f"table {stem}: CSV {rows[:2]}... differs from HTML {table['rows'][:2]}...")

for f in failures:
    print("FAIL:", f)
print(f"{len(p.imgs)} images, {len(figure_links)} figure files, {len(p.tables)} tables checked")
sys.exit(1 if failures else 0)
