#!/usr/bin/python3
"""onnx_bad_test.py - `cbctiq model import` on broken and unsupported ONNX
files, built here with ONNX's own helper (onnx.helper) from one good graph.

Each case must exit with exactly 1, name the file, print the expected
message fragment, and leave no output folder behind. A good file and the
same dynamic-shape file with --input-size must import (so the cases fail for
the reason they name, not because the base graph is wrong)."""
import argparse
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ap = argparse.ArgumentParser()
ap.add_argument("--cbctiq", required=True)
ap.add_argument("--workdir", required=True)
args = ap.parse_args()
shutil.rmtree(args.workdir, ignore_errors=True)
os.makedirs(args.workdir)
W = args.workdir
rng = np.random.default_rng(1)
failures = []


def init(name, *shape, dtype=np.float32):
    return numpy_helper.from_array(rng.standard_normal(shape).astype(dtype), name)


def graph(nodes=None, inits=None, inputs=None, outputs=None, in_shape=(1, 1, 8, 8), n_out=3):
    """conv(1->4, 3x3, pad 1) -> relu -> global pool -> flatten -> gemm(4->n_out)."""
    if nodes is None:
        nodes = [
            helper.make_node("Conv", ["x", "c.weight", "c.bias"], ["c"], name="/c/Conv", kernel_shape=[3, 3],
                             pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["r"], name="/r/Relu"),
            helper.make_node("GlobalAveragePool", ["r"], ["g"], name="/g/GlobalAveragePool"),
            helper.make_node("Flatten", ["g"], ["f"], name="/Flatten", axis=1),
            helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["y"], name="/fc/Gemm", transB=1),
        ]
    if inits is None:
        inits = [init("c.weight", 4, 1, 3, 3), init("c.bias", 4), init("fc.weight", n_out, 4), init("fc.bias", n_out)]
    if inputs is None:
        inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))]
    if outputs is None:
        outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n_out])]
    return helper.make_graph(nodes, "g", inputs, outputs, inits)


def save(name, g=None, opset=13, raw=None):
    path = os.path.join(W, name + ".onnx")
    if raw is not None:
        with open(path, "wb") as f:
            f.write(raw)
    else:
        m = helper.make_model(g if g is not None else graph(), opset_imports=[helper.make_opsetid("", opset)])
        m.ir_version = 7
        onnx.save(m, path)
    return path


def expect(name, path, fragment, extra=(), code=1):
    out = os.path.join(W, "out_" + name)
    r = subprocess.run([args.cbctiq, "model", "import", path, "--out", out, "--quiet", *extra],
                       capture_output=True, text=True, timeout=120)
    problems = []
    if r.returncode != code:
        problems.append(f"exit {r.returncode}, expected {code}")
    if code != 0 and os.path.basename(path) not in r.stderr:
        problems.append("the file is not named")
    if fragment not in r.stderr:
        problems.append(f"no '{fragment}' in the message")
    if code != 0 and os.path.exists(out):
        problems.append("output folder left behind")
    if code == 0 and not os.path.exists(os.path.join(out, "model.json")):
        problems.append("no model.json written")
    print(f"{'FAIL' if problems else 'ok':4} {name}: {r.stderr.strip() or 'imported'}")
    if problems:
        failures.append(f"{name} ({'; '.join(problems)})")


good = save("good")
expect("good", good, "", code=0)
good_bytes = open(good, "rb").read()
expect("truncated", save("truncated", raw=good_bytes[: len(good_bytes) // 2]),
       "not a valid ONNX protobuf (truncated or garbled)")
expect("garbage", save("garbage", raw=b"\xff\xfe not a protobuf at all \x00\x01" * 7),
       "not a valid ONNX protobuf")
expect("empty", save("empty", raw=b""), "no opset_import for the default ONNX domain")
expect("missing", os.path.join(W, "no_such.onnx"), "cannot open")

# Unsupported operators: every one listed in one message, with node names.
nodes = graph().node
extra_nodes = [
    helper.make_node("Softmax", ["c"], ["s"], name="/head/Softmax", axis=1),
    helper.make_node("Tanh", ["s"], ["t"], name="/head/Tanh"),
    helper.make_node("Relu", ["t"], ["r"], name="/r/Relu"),
]
g = graph(nodes=[nodes[0], *extra_nodes, *nodes[2:]])
expect("unknown_ops", save("unknown_ops", g),
       "2 nodes with operators cbctiq does not support: '/head/Softmax' (Softmax), '/head/Tanh' (Tanh)")

n = graph().node
# x.view(x.size(0), -1) exported with a dynamic batch: Shape, Gather, Unsqueeze (the Concat and
# Reshape that read them are not listed again), and a hint.
view = [n[0], n[1], n[2],
        helper.make_node("Shape", ["g"], ["shp"], name="/Shape"),
        helper.make_node("Constant", [], ["zero"], name="/Constant",
                         value=numpy_helper.from_array(np.array(0, np.int64))),
        helper.make_node("Gather", ["shp", "zero"], ["n0"], name="/Gather", axis=0),
        helper.make_node("Unsqueeze", ["n0", "axes"], ["n1"], name="/Unsqueeze"),
        helper.make_node("Concat", ["n1", "minus1"], ["newshape"], name="/Concat", axis=0),
        helper.make_node("Reshape", ["g", "newshape"], ["f"], name="/Reshape"), n[4]]
view_inits = [*graph().initializer, numpy_helper.from_array(np.array([0], np.int64), "axes"),
              numpy_helper.from_array(np.array([-1], np.int64), "minus1")]
expect("dynamic_view", save("dynamic_view", graph(nodes=view, inits=view_inits)),
       "3 nodes with operators cbctiq does not support: '/Shape' (Shape), '/Gather' (Gather), '/Unsqueeze' "
       "(Unsqueeze) (x.view(x.size(0), -1) with a dynamic batch writes Shape and Gather: use torch.flatten(x, 1))")

# Dynamic height/width: refused, unless --input-size gives them.
dyn = save("dynamic", graph(in_shape=("N", 1, "H", "W")))
expect("dynamic_shape", dyn, "the height dimension is dynamic ('H'); cbctiq needs a fixed size (give one with "
       "--input-size)")
expect("dynamic_with_size", dyn, "", extra=("--input-size", "16"), code=0)
expect("dynamic_channels", save("dyn_channels", graph(in_shape=(1, "C", 8, 8))), "the channels dimension is "
       "dynamic ('C')")

# Several input channels: C from the graph input, 1 to 16; --mean/--std one
# value per channel, std > 0; adjacent slices need an odd C. Usage errors: exit 2.
def channels_graph(c):
    inits = [init("c.weight", 4, c, 3, 3), init("c.bias", 4), init("fc.weight", 3, 4), init("fc.bias", 3)]
    return graph(inits=inits, in_shape=(1, c, 8, 8))


rgb = save("rgb", channels_graph(3))
expect("three_channels", rgb, "", extra=("--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225"), code=0)
expect("mean_count", rgb, "--mean has 2 values, expected 3 (the graph input's channels)",
       extra=("--mean", "0.5,0.5"), code=2)
expect("std_zero", rgb, "--std value 2 is 0; a standard deviation must be > 0", extra=("--std", "1,0,1"), code=2)
expect("adjacent_even", save("two_channels", channels_graph(2)), "--slices adjacent centres the channels on the "
       "slice, so it needs an odd channel count; the graph input has 2", extra=("--slices", "adjacent"), code=2)
expect("seventeen_channels", save("c17", channels_graph(17)), "has 17 channels; cbctiq fills 1 to 16 channels")

# A cycle: Relu reads the pool's output, which is computed after it.
n = graph().node
cyc = [n[0], helper.make_node("Relu", ["g"], ["r"], name="/r/Relu"), n[2], n[3], n[4]]
expect("cycle", save("cycle", graph(nodes=cyc)), "reads 'g', which no earlier node, input or initializer "
       "defines (a cycle, or a tensor defined later or never)")
dangling = [helper.make_node("Relu", ["nowhere"], ["q"], name="/q/Relu"), *graph().node]
expect("dangling", save("dangling", graph(nodes=dangling)), "reads 'nowhere'")

two = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8]),
       helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 1, 8, 8])]
expect("two_inputs", save("two_inputs", graph(inputs=two)), "the graph has 2 inputs")

# Shapes that do not chain: the linear layer expects 6 features, the pool gives 4.
bad_fc = [init("c.weight", 4, 1, 3, 3), init("c.bias", 4), init("fc.weight", 3, 6), init("fc.bias", 3)]
expect("shapes_do_not_chain", save("no_chain", graph(inits=bad_fc)), "in_features")

asym = list(graph().node)
asym[0] = helper.make_node("Conv", ["x", "c.weight", "c.bias"], ["c"], name="/c/Conv", kernel_shape=[3, 3],
                           pads=[1, 1, 0, 0])
expect("asymmetric_pads", save("asym", graph(nodes=asym)), "asymmetric pads [1, 1, 0, 0]")
expect("opset_18", save("opset18", opset=18), "opset 18; cbctiq reads opsets 9 to 17")
int_w = [init("c.weight", 4, 1, 3, 3, dtype=np.int64), init("c.bias", 4), init("fc.weight", 3, 4),
         init("fc.bias", 3)]
expect("int_weights", save("int_weights", graph(inits=int_w)), "has ONNX data type 7, expected float32")
expect("outputs_count", good, "the model gives 3 scores but 2 output names were given",
       extra=("--outputs", "a,b"))

if failures:
    sys.exit(f"{len(failures)} failures:\n  " + "\n  ".join(failures))
print("all bad ONNX cases refused as expected")
