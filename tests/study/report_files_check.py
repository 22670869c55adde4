#!/usr/bin/python3
"""Checks a sample report's files with independent parsers (Python stdlib).

Runs the sample-report program with its figure files at 300 dpi, then:
report.html parses, has no script, no external resource and no raw markup
from the data; every inlined image is a PNG whose IHDR size matches the img
tag; every figure links a PNG, an SVG and a PDF beside the report; the PNG
file has twice the inlined image's pixels each way (300 dpi against the
page's 150), and one of them, decoded here (zlib + the PNG filters) and
averaged over 2x2 blocks, is the inlined picture; every SVG is well-formed
XML with an <svg> root of the figure's size; every PDF is one page whose
MediaBox is the figure's size at 150 px per inch, in points; every table's
CSV (read with the csv module) holds exactly the cells shown in the HTML
table, a wide table's blocks joined again."""
import argparse
import base64
import csv
import html.parser
import os
import re
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib

ap = argparse.ArgumentParser()
ap.add_argument("--sample", required=True)
ap.add_argument("--workdir", required=True)
args = ap.parse_args()

out = os.path.join(args.workdir, "report")
shutil.rmtree(out, ignore_errors=True)
os.makedirs(args.workdir, exist_ok=True)
DPI, PAGE_DPI = 300, 150
subprocess.run([args.sample, out, str(DPI)], check=True)

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)


def png_size(data):
    check(data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature")
    check(data[12:16] == b"IHDR", "PNG without IHDR first")
    return struct.unpack(">II", data[16:24])


def png_pixels(data):
    """8-bit RGB, non-interlaced PNG (what cairo writes) -> rows of bytes."""
    w, h = png_size(data)
    check(data[24:29] == bytes([8, 2, 0, 0, 0]), "PNG not 8-bit RGB non-interlaced")
    pos, idat = 8, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    raw, stride, rows, prev = zlib.decompress(idat), 3 * w, [], bytearray(3 * w)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - 3] if i >= 3 else 0
            b, c = prev[i], prev[i - 3] if i >= 3 else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return w, h, rows


def compare_2x(big, small, name):
    """Mean |2x2 average of the 300-dpi image - the 150-dpi one|, 0..255."""
    (bw, bh, brows), (sw, sh, srows) = big, small
    check((bw, bh) == (2 * sw, 2 * sh), f"{name}: {bw}x{bh} is not twice {sw}x{sh}")
    total = 0
    for y in range(sh):
        r0, r1, s = brows[2 * y], brows[2 * y + 1], srows[y]
        for i in range(3 * sw):
            x, ch = divmod(i, 3)
            j = 6 * x + ch
            total += abs((r0[j] + r0[j + 3] + r1[j] + r1[j + 3]) / 4 - s[i])
    mean = total / (3 * sw * sh)
    check(mean < 4, f"{name}: the 300-dpi PNG differs from the page's image by {mean:.2f} on average")
    return mean


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
check(len(figure_links) == 3 * len(p.imgs), "each figure should link its PNG, SVG and PDF")
inline = {}
for img, png_link in zip(p.imgs, [l for l in figure_links if l.endswith(".png")]):
    inline[png_link[:-4]] = (int(img["width"]), int(img["height"]), img["src"])
for link in figure_links:
    path = os.path.join(out, link)
    check(os.path.isfile(path), f"missing {link}")
    stem, ext = os.path.splitext(link)
    w, h, _ = inline.get(stem, (0, 0, ""))
    if ext == ".png":
        pw, ph = png_size(open(path, "rb").read())
        check((pw, ph) == (w * DPI // PAGE_DPI, h * DPI // PAGE_DPI),
              f"{link}: {pw}x{ph} px at {DPI} dpi, page image {w}x{h}")
    if ext == ".svg":
        root = ET.parse(path).getroot()  # raises on malformed XML
        check(root.tag == "{http://www.w3.org/2000/svg}svg", f"{link}: root is {root.tag}")
        check(root.get("viewBox") == f"0 0 {w} {h}", f"{link}: viewBox {root.get('viewBox')} vs page {w}x{h}")
    if ext == ".pdf":
        pdf = open(path, "rb").read()
        check(pdf.startswith(b"%PDF-1.") and pdf.rstrip().endswith(b"%%EOF"), f"{link}: not a PDF file")
        check(len(re.findall(rb"/Type\s*/Page\b", pdf)) == 1, f"{link}: not one page")
        box = re.search(rb"/MediaBox\s*\[\s*([-\d. ]+)\]", pdf)
        got = [float(v) for v in box.group(1).split()] if box else []
        want = [0, 0, w * 72 / PAGE_DPI, h * 72 / PAGE_DPI]
        check(len(got) == 4 and all(abs(a - b) < 0.01 for a, b in zip(got, want)),
              f"{link}: MediaBox {got}, expected {want}")
first = next(l for l in figure_links if l.endswith(".png"))
page_png = base64.b64decode(inline[first[:-4]][2].split(",", 1)[1])
difference = compare_2x(png_pixels(open(os.path.join(out, first), "rb").read()), png_pixels(page_png), first)

# A table wider than the page wraps into blocks (table-STEM, table-STEM-part2,
# ...), each after the first repeating the first column: joined back here.
tables = {}
for table in p.tables:
    m = re.fullmatch(r"table-(.+?)(?:-part(\d+))?", table["id"])
    stem, part = m.group(1), int(m.group(2) or 1)
    if part == 1:
        tables[stem] = {"id": table["id"], "rows": [list(r) for r in table["rows"]]}
        continue
    base = tables.get(stem)
    check(base is not None and len(base["rows"]) == len(table["rows"]), f"{table['id']}: no matching first part")
    for row, more in zip(base["rows"] if base else [], table["rows"]):
        check(more[0] == row[0], f"{table['id']}: row {more[0]!r} does not repeat {row[0]!r}")
        row += more[1:]
wrapped = len(p.tables) - len(tables)
table_links = [l for l in p.links if l.startswith("tables/")]
check(len(table_links) == len(tables) >= 4, f"{len(tables)} tables, {len(table_links)} CSV links")
check(wrapped >= 1, "no table of the sample is wide enough to wrap")
for table in tables.values():
    stem = table["id"][len("table-"):]
    with open(os.path.join(out, "tables", stem + ".csv"), newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    check(rows == table["rows"], f"table {stem}: CSV {rows[:2]}... differs from HTML {table['rows'][:2]}...")

for f in failures:
    print("FAIL:", f)
print(f"{len(p.imgs)} images, {len(figure_links)} figure files, {len(tables)} tables "
      f"({wrapped} continued blocks) checked; "
      f"{first} at {DPI} dpi differs from the page's image by {difference:.2f}/255 on average")
sys.exit(1 if failures else 0)
