"""The C structures the binding mirrors in ctypes (cbctiq._lib.STRUCTS)
have the compiler's layout: every field's offset and every size, from a
program compiled here against include/cbctiq. A field added to one of
them in C fails this test until the mirror follows."""
import ctypes
import os
import subprocess

import cbctiq._lib as L

HEADERS = ["error.h", "volume.h", "volume_io.h", "nifti.h", "dicom.h", "orient.h", "structures.h",
           "slices.h", "model_input.h", "model_spec.h", "study.h", "attrib.h", "ae_table.h", "csv.h",
           "atomic_file.h", "stats.h", "ratings.h"]


def layout_program(structs):
    lines = ["#include <stddef.h>", "#include <stdio.h>"]
    lines += [f'#include "cbctiq/{h}"' for h in HEADERS]
    lines.append("int main(void) {")
    for s in structs:
        name = s.__name__
        lines.append(f'    printf("{name} size %zu\\n", sizeof({name}));')
        for field, *_ in s._fields_:
            lines.append(f'    printf("{name} {field} %zu\\n", offsetof({name}, {field}));')
    lines += ["    return 0;", "}"]
    return "\n".join(lines) + "\n"


def test_mirrors_match_the_compiler(tmp_path):
    src = tmp_path / "layout.c"
    src.write_text(layout_program(L.STRUCTS))
    exe = tmp_path / "layout"
    include = os.path.join(os.environ["CBQ_SOURCE_DIR"], "include")
    subprocess.run([os.environ.get("CBQ_CC", "cc"), "-std=c11", "-I", include, str(src), "-o", str(exe)],
                   check=True)
    compiled = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines()
    mirrored = []
    for s in L.STRUCTS:
        mirrored.append(f"{s.__name__} size {ctypes.sizeof(s)}")
        mirrored += [f"{s.__name__} {f} {getattr(s, f).offset}" for f, *_ in s._fields_]
    assert mirrored == compiled
