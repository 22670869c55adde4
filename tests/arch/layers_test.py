#!/usr/bin/env python3
"""Checks that every source file of src/<layer>/ includes only headers of the
layers it may use, by the table in cmake/layers.cmake (the one place the
allowed dependencies are written; CMake enforces links and private headers
from the same table, this test covers the public headers in include/cbctiq/,
which every target sees).

A public header belongs to the layer whose sources define its functions
(derived here, so a new header needs no entry; one with no functions, such
as an X-macro .def table, is named in OWNERS_WITHOUT_FUNCTIONS); a private
header "<layer>/name.h" belongs to its folder. Exit 0 when clean, 1 with one line
per violation (file:line: what is wrong), 2 on a usage or table error.

  layers_test.py --root SOURCE_DIR
"""
import argparse
import os
import re
import sys

SOURCE_SUFFIXES = (".c", ".cpp", ".h")
INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
RULE_RE = re.compile(r"^cbq_layer_rule\s*\(([^)]*)\)", re.M)
DECLARED_FUNCTION_RE = re.compile(r"\b(cbq_\w+)\s*\(")

# Public files that declare no function, so that their owner cannot be
# derived: X-macro tables and type-only headers. A name absent from
# include/cbctiq/ is ignored.
OWNERS_WITHOUT_FUNCTIONS = {
    "layer_kinds.def": "core",   # the network layer kinds, read by model_spec and nn
    "cam_methods.def": "attrib",  # the CAM methods, read by attrib and the CLI's help
    "study_stages.def": "study",  # the study's stages, read by study.h and config.c
}


def read_text(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def read_layer_table(root):
    """{layer: set of layers it may use}, in table order, from cmake/layers.cmake."""
    path = os.path.join(root, "cmake", "layers.cmake")
    text = "\n".join(line.split("#", 1)[0] for line in read_text(path).splitlines())
    table = {}
    for match in RULE_RE.finditer(text):
        words = match.group(1).split()
        if not words:
            raise ValueError(f"{path}: cbq_layer_rule() without a layer name")
        name, rest = words[0], words[1:]
        uses = rest[rest.index("USES") + 1:] if "USES" in rest else []
        for used in uses:
            if used not in table:
                raise ValueError(f"{path}: layer {name} uses {used}, which is not declared above it")
        table[name] = set(uses)
    if not table:
        raise ValueError(f"{path}: no cbq_layer_rule() lines")
    return table


def layer_sources(root, layer):
    folder = os.path.join(root, "src", layer)
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                  if name.endswith(SOURCE_SUFFIXES))


def strip_comments(text):
    """Blanks C comments and string literals, keeping line breaks."""
    def blank(match):
        return re.sub(r"[^\n]", " ", match.group(0))
    return re.sub(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"', blank, text, flags=re.S)


def defined_functions(text):
    """Names of the cbq_ functions this C file defines: a name at the top
    level (the line starts in column 0) whose parameter list is followed by
    a body, not by ';'."""
    code = strip_comments(text)
    names = set()
    for match in DECLARED_FUNCTION_RE.finditer(code):
        line_start = code.rfind("\n", 0, match.start()) + 1
        if code[line_start] in " \t#":
            continue
        depth, i = 0, match.end() - 1
        while i < len(code):
            depth += {"(": 1, ")": -1}.get(code[i], 0)
            if depth == 0:
                break
            i += 1
        rest = code[i + 1:].lstrip()
        if rest.startswith("{"):
            names.add(match.group(1))
    return names


def header_owners(root, layers):
    """{public file name: owning layer}: the layer that defines the file's
    functions, or its entry in OWNERS_WITHOUT_FUNCTIONS. Raises ValueError
    when a file's functions are defined in two layers or, with no entry, in
    none (then it cannot say which layer it belongs to)."""
    definitions = {}
    for layer in layers:
        for path in layer_sources(root, layer):
            if path.endswith((".c", ".cpp")):
                for name in defined_functions(read_text(path)):
                    definitions.setdefault(name, set()).add(layer)
    include_dir = os.path.join(root, "include", "cbctiq")
    owners, problems = {}, []
    for header in sorted(os.listdir(include_dir)):
        text = strip_comments(read_text(os.path.join(include_dir, header)))
        declared = {m.group(1) for m in DECLARED_FUNCTION_RE.finditer(text)
                    if not re.match(r"\s*#\s*define", text[text.rfind("\n", 0, m.start()) + 1:m.start()])}
        found = set()
        for name in declared:
            found |= definitions.get(name, set())
        if header in OWNERS_WITHOUT_FUNCTIONS:
            owners[header] = OWNERS_WITHOUT_FUNCTIONS[header]
        elif len(found) == 1:
            owners[header] = found.pop()
        elif len(found) > 1:
            defined = [name for name in sorted(declared) if definitions.get(name)]
            usual = max(sorted(found), key=lambda layer: sum(definitions[n] == {layer} for n in defined))
            spread = ", ".join(f"{name} in {'/'.join(sorted(definitions[name]))}"
                               for name in defined if definitions[name] != {usual})
            problems.append(f"include/cbctiq/{header}: its functions are defined in more than one layer "
                            f"({', '.join(sorted(found))}): {spread}")
        else:
            problems.append(f"include/cbctiq/{header}: declares no function defined under src/<layer>/; "
                            "name its owning layer in OWNERS_WITHOUT_FUNCTIONS (tests/arch/layers_test.py)")
    if problems:
        raise ValueError("\n".join(problems))
    return owners


def include_violations(root, table, owners):
    violations = []
    for layer, uses in table.items():
        allowed = uses | {layer}
        for path in layer_sources(root, layer):
            relative = os.path.relpath(path, root)
            for number, line in enumerate(read_text(path).splitlines(), 1):
                match = INCLUDE_RE.match(line)
                if not match:
                    continue
                included = match.group(1)
                folder, _, name = included.rpartition("/")
                if folder == "cbctiq":
                    owner = owners.get(name)
                    if owner is None:
                        violations.append(f"{relative}:{number}: includes {included}, "
                                          "which is not a header in include/cbctiq/")
                    elif owner not in allowed:
                        violations.append(f"{relative}:{number}: layer {layer} includes {included} of layer "
                                          f"{owner}; {layer} may use only {', '.join(sorted(allowed))} "
                                          "(cmake/layers.cmake)")
                elif folder and folder not in allowed:
                    violations.append(f"{relative}:{number}: layer {layer} includes the private header "
                                      f"{included} of {folder}; {layer} may use only "
                                      f"{', '.join(sorted(allowed))} (cmake/layers.cmake)")
    return violations


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="the source tree")
    args = parser.parse_args()
    try:
        table = read_layer_table(args.root)
        owners = header_owners(args.root, table)
    except (OSError, ValueError) as error:
        print(f"layers_test: {error}", file=sys.stderr)
        return 2
    missing = [name for name in os.listdir(os.path.join(args.root, "src"))
               if os.path.isdir(os.path.join(args.root, "src", name)) and name not in table]
    violations = include_violations(args.root, table, owners)
    violations += [f"src/{name}/: a folder with no row in cmake/layers.cmake" for name in sorted(missing)]
    for violation in violations:
        print(violation, file=sys.stderr)
    present = [name for name in table if os.path.isdir(os.path.join(args.root, "src", name))]
    print(f"layers_test: {len(present)} layers, {len(owners)} public files, {len(violations)} violations")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
