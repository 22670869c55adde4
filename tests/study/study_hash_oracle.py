"""Oracle for the study's content hash (src/study/stage_cache.c,
cbq_hash_path) against hashlib.sha256: a file's hash is the plain SHA-256 of
its bytes, across the block-boundary sizes of the padding.
"""
import hashlib
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from test_args import parse_test_args  # noqa: E402

args = parse_test_args(lambda ap: ap.add_argument("--probe", required=True))
failures = []
rng = np.random.default_rng(7)


def probe(what, values):
    text = " ".join(str(v) for v in values)
    out = subprocess.run([args.probe, what], input=text, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"probe {what} failed: {out.stderr}")
    return out.stdout.split()


# Content hashes: a file is plain SHA-256 of its bytes.
path = os.path.join(args.workdir, "blob.bin")
blob = rng.integers(0, 256, size=200_003, dtype=np.uint8).tobytes()
with open(path, "wb") as f:
    f.write(blob)
check_hash = probe("hash", [path])[0]
if check_hash != hashlib.sha256(blob).hexdigest():
    failures.append(f"sha256 of a file: {check_hash}")
for size in (0, 55, 56, 63, 64, 65, 119, 128):
    p = os.path.join(args.workdir, f"b{size}.bin")
    with open(p, "wb") as f:
        f.write(b"a" * size)
    if probe("hash", [p])[0] != hashlib.sha256(b"a" * size).hexdigest():
        failures.append(f"sha256 of {size} bytes")


if failures:
    print("\n".join(failures))
    sys.exit(1)
print("study hash oracle: all checks passed")
