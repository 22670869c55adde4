#!/usr/bin/python3
"""libcbctiq.so exports exactly the public API.

Its defined dynamic symbols (nm -D --defined-only) must equal the names
declared in include/cbctiq/*.h as scripts/public_symbols.py reads them:
nothing private leaks out (a layer's internals such as conv2d_forward, the
C++ runtime of the DICOM adapter), and nothing declared is missing (a
prototype without a definition). The reader itself is checked on names
whose answer is known: declared functions and an extern table are in,
static inline helpers and function-pointer types are out. Also: the
library's soname is versioned (libcbctiq.so.MAJOR.MINOR) and its file
carries the full version."""
import argparse
import os
import re
import subprocess
import sys

ap = argparse.ArgumentParser()
ap.add_argument("--root", required=True)
ap.add_argument("--library", required=True)
ap.add_argument("--nm", default="nm")
a = ap.parse_args()
sys.path.insert(0, os.path.join(a.root, "scripts"))
from public_symbols import declared_names, public_symbols  # noqa: E402

failures = []


def check(name, ok, detail=""):
    print(f"{'ok' if ok else 'FAIL':4} {name} {detail}")
    if not ok:
        failures.append(name)


declared = set(public_symbols(os.path.join(a.root, "include", "cbctiq")))
for name in ("cbq_model_load", "cbq_spearman", "cbq_error_set", "cbq_preset_names",
             "cbq_model_input_from_volume", "cbq_attrib_volume"):
    check(f"reader lists {name}", name in declared)
for name in ("cbq_volume_count", "cbq_ratings_score", "cbq_volume_at"):
    check(f"reader leaves out the static inline {name}", name not in declared)
sample = """
typedef void (*cbq_progress_fn)(void *user, size_t done);
/* int cbq_commented_out(void); */
static inline int cbq_inline_helper(int x) { if (x) { return 1; } return 0; }
#define CBQ_MACRO(x) cbq_macro_call(x)
extern const char *const cbq_table[];
int cbq_real(const char *path,
             int (*cb)(int), cbq_error *err) __attribute__((nonnull(1)));
"""
check("reader on a sample header", declared_names(sample) == ["cbq_table", "cbq_real"],
      str(declared_names(sample)))

nm = subprocess.run([a.nm, "-D", "--defined-only", a.library], capture_output=True, text=True, check=True)
exported = set()
for line in nm.stdout.splitlines():
    parts = line.split()
    if len(parts) == 3 and parts[1] in "TDRBVWtdrbvw":
        exported.add(parts[2].split("@")[0])
extra, missing = sorted(exported - declared), sorted(declared - exported)
check("nothing exported beyond the public headers", not extra, " ".join(extra[:20]))
check("every declared function is exported", not missing, " ".join(missing[:20]))
check("the public API is all there is", exported == declared, f"{len(exported)} exported, {len(declared)} declared")

dyn = subprocess.run(["objdump", "-p", a.library], capture_output=True, text=True, check=True).stdout
soname = re.search(r"SONAME\s+(\S+)", dyn)
check("versioned soname", bool(soname and re.fullmatch(r"libcbctiq\.so\.\d+\.\d+", soname.group(1))),
      soname.group(1) if soname else "none")
check("library file carries the full version", re.fullmatch(r"libcbctiq\.so\.\d+\.\d+\.\d+",
                                                             os.path.basename(a.library)) is not None,
      os.path.basename(a.library))
sys.exit(1 if failures else 0)
