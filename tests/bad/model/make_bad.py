#!/usr/bin/python3
"""make_bad.py GOOD_MODEL GEN - writes one broken copy of a good model folder
(model.json + weights.safetensors) per case in cases.txt under GEN/<case>.
The safetensors files are rebuilt here from the format's definition (8-byte
little-endian header length, JSON header, raw data), not by cbctiq."""
import array
import json
import os
import shutil
import struct
import sys

good, gen = sys.argv[1], sys.argv[2]


def read_st(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    return header, raw[8 + n:]


def write_st(path, header, data):
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    open(path, "wb").write(struct.pack("<Q", len(text)) + text + data)


def first_weight(header):
    return next(k for k in header if k != "__metadata__" and k.endswith(".weight") and len(header[k]["shape"]) == 4)


def case(name):
    d = os.path.join(gen, name)
    shutil.copytree(good, d)
    return os.path.join(d, "model.json"), os.path.join(d, "weights.safetensors")


def edit_json(name, change):
    mj, _ = case(name)
    spec = json.load(open(mj))
    change(spec)
    json.dump(spec, open(mj, "w"))


def edit_st(name, change):
    _, st = case(name)
    header, data = read_st(st)
    header, data = change(header, data)
    write_st(st, header, data)


def raw_st(name, change):
    _, st = case(name)
    raw = open(st, "rb").read()
    open(st, "wb").write(change(raw))


os.makedirs(gen, exist_ok=True)

# weights.safetensors
raw_st("truncated_weights", lambda b: b[:len(b) // 2])
raw_st("weights_too_short", lambda b: b[:5])
raw_st("header_beyond_file", lambda b: struct.pack("<Q", len(b) + 1000) + b[8:])
raw_st("header_huge", lambda b: struct.pack("<Q", 1 << 40) + b[8:])


def header_not_json(b):
    (n,) = struct.unpack("<Q", b[:8])
    return b[:8] + b"{" + b"\x00" * (n - 1) + b[8 + n:]


raw_st("header_not_json", header_not_json)


def wrong_dtype(h, d):
    h[first_weight(h)]["dtype"] = "I32"   # same size: only the dtype check can see it
    return h, d


def unknown_dtype(h, d):
    h[first_weight(h)]["dtype"] = "F128"
    return h, d


def wrong_shape(h, d):
    s = h[first_weight(h)]["shape"]
    s[0], s[1] = s[1], s[0]
    if s[0] == s[1]:
        s[2], s[3] = s[2] * s[3], 1
    return h, d


def missing_tensor(h, d):
    victim = first_weight(h)
    lo, hi = h[victim]["data_offsets"]
    del h[victim]
    for k, v in h.items():
        if k != "__metadata__" and v["data_offsets"][0] >= hi:
            v["data_offsets"] = [v["data_offsets"][0] - (hi - lo), v["data_offsets"][1] - (hi - lo)]
    return h, d[:lo] + d[hi:]


def extra_tensor(h, d):
    h["extra.weight"] = {"dtype": "F32", "shape": [2], "data_offsets": [len(d), len(d) + 8]}
    return h, d + b"\x00" * 8


def offsets_beyond(h, d):
    v = h[first_weight(h)]
    v["data_offsets"] = [v["data_offsets"][0], len(d) + 64]
    return h, d


def set_floats(h, d, name, change):
    """Rewrites tensor `name` (F32) element by element with change(i, value)."""
    lo, hi = h[name]["data_offsets"]
    vals = array.array("f", d[lo:hi])
    for i in range(len(vals)):
        vals[i] = change(i, vals[i])
    return d[:lo] + vals.tobytes() + d[hi:]


def first_running_var(header):
    return next(k for k in header if k.endswith(".running_var"))


def nan_weight(h, d):
    return h, set_floats(h, d, first_weight(h), lambda i, v: float("nan") if i == 3 else v)


def inf_weight(h, d):
    return h, set_floats(h, d, first_weight(h), lambda i, v: float("-inf") if i == 5 else v)


def negative_running_var(h, d):
    return h, set_floats(h, d, first_running_var(h), lambda i, v: -0.5 if i == 1 else v)


def huge_weights(h, d):
    """Every weight and bias 1e30: finite, loads, but each layer multiplies
    the activations by about 1e30, so the output overflows float32."""
    for k in h:
        if k != "__metadata__" and (k.endswith(".weight") or k.endswith(".bias")):
            d = set_floats(h, d, k, lambda i, v: 1e30)
    return h, d


edit_st("nan_weight", nan_weight)
edit_st("inf_weight", inf_weight)
edit_st("negative_running_var", negative_running_var)
edit_st("huge_weights", huge_weights)
edit_st("wrong_dtype", wrong_dtype)
edit_st("unknown_dtype", unknown_dtype)
edit_st("wrong_shape", wrong_shape)
edit_st("missing_tensor", missing_tensor)
edit_st("extra_tensor", extra_tensor)
edit_st("offsets_beyond_data", offsets_beyond)
_, st = case("no_weights")
os.remove(st)

# model.json


def unknown_type(s):
    s["layers"][0]["type"] = "conv3d"


def no_target(s):
    s["target_layer"] = "no_such_layer"


def outputs_mismatch(s):
    s["outputs"] = s["outputs"][:-1]


def newer_version(s):
    s["format_version"] = 99


def bad_input(s):
    s["input"]["height"] = 0


def hu_order(s):
    s["input"]["hu_min"], s["input"]["hu_max"] = s["input"]["hu_max"], s["input"]["hu_min"]


def huge_channels(s):
    conv = next(l for l in s["layers"] if l["type"] == "conv2d")
    conv["out_channels"] = 1 << 30


def duplicate_output(s):
    s["outputs"][1] = s["outputs"][0]


def input_channels(**keys):
    def change(s):
        s["input"].update(keys)
    return change


def conv_groups(s):
    convs = [l for l in s["layers"] if l["type"] == "conv2d" and l["in_channels"] > 1]
    # 4 channels in the test model (cases.txt names them); the fuzz seeds' tiny model has 2
    conv = next((l for l in convs if l["in_channels"] == 4), convs[0])
    conv["groups"] = 3


def conv_dilation_zero(s):
    s["layers"][0]["dilation"] = 0


def adaptive_output_2(s):
    pool = next(l for l in s["layers"] if l["type"] == "global_avgpool")
    pool["type"] = "adaptive_avgpool2d"
    pool["output_size"] = 2


edit_json("conv_groups_not_dividing", conv_groups)
edit_json("conv_dilation_zero", conv_dilation_zero)
edit_json("adaptive_output_size_2", adaptive_output_2)
edit_json("unknown_layer_type", unknown_type)
edit_json("no_target_layer", no_target)
edit_json("outputs_mismatch", outputs_mismatch)
edit_json("newer_format_version", newer_version)
edit_json("zero_input_height", bad_input)
edit_json("hu_min_above_max", hu_order)
edit_json("huge_channels", huge_channels)
edit_json("duplicate_output", duplicate_output)
edit_json("zero_input_channels", input_channels(channels=0))
edit_json("input_mean_length", input_channels(mean=[0.5, 0.5]))
edit_json("input_std_zero", input_channels(std=[0]))
edit_json("adjacent_even_channels", input_channels(channels=2, slices="adjacent"))
edit_json("unknown_input_slices", input_channels(slices="stack"))
# 3 channels for a first conv that takes 1
edit_json("channels_vs_first_conv", input_channels(channels=3))


# model.json "inputs" (layers naming what they read)


def layer(s, name):
    """The named layer of the test's good model; a smaller model (the fuzz
    seeds' iqnet_tiny) gets its fourth layer edited instead."""
    return next((l for l in s["layers"] if l["name"] == name), s["layers"][min(3, len(s["layers"]) - 1)])


def set_inputs(name, inputs):
    def change(s):
        layer(s, name)["inputs"] = inputs
    return change


def add_twice(s):
    relu = layer(s, "block1.relu1")
    relu["type"], relu["inputs"] = "add", ["block1.bn1", "block1.bn1"]


def add_mismatch(s):
    relu = layer(s, "block2.relu1")
    relu["type"], relu["inputs"] = "add", ["block2.bn1", "pool1"]


def named_input(s):
    layer(s, "block1.relu1")["name"] = "input"


edit_json("inputs_unknown_layer", set_inputs("block1.conv2", ["block1.relu9"]))
edit_json("inputs_later_layer", set_inputs("block1.conv2", ["pool1"]))
edit_json("inputs_own_output", set_inputs("block1.conv2", ["block1.conv2"]))
edit_json("inputs_not_a_list", set_inputs("block1.conv2", "block1.relu1"))
edit_json("relu_two_inputs", set_inputs("block1.relu1", ["block1.bn1", "block1.conv1"]))
edit_json("add_same_input_twice", add_twice)
edit_json("add_shape_mismatch", add_mismatch)
edit_json("layer_named_input", named_input)
mj, _ = case("model_json_truncated")
text = open(mj).read()
open(mj, "w").write(text[:len(text) // 2])
mj, _ = case("model_json_empty")
open(mj, "w").close()
mj, _ = case("no_model_json")
os.remove(mj)
