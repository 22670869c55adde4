"""Builds a PyTorch network from a cbctiq model directory (model.json +
weights.safetensors) with nothing but json, numpy and torch, for the
attribution oracles. Layers run in model.json order, each on the outputs it
names in "inputs" (graphs) or the previous layer's; `forward_layers` returns
the output and any one layer's, so that tests can hook any target layer."""
import json
import struct

import numpy as np
import torch
import torch.nn.functional as F

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "F16": np.float16}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        arr = np.frombuffer(raw[base + b:base + e], dtype=DTYPES[info["dtype"]])
        out[name] = arr.reshape(info["shape"]).copy()
    return out


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        arr = np.asarray(arr)  # ascontiguousarray would turn a 0-d scalar into shape [1]
        dt = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}[arr.dtype]
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + arr.nbytes]}
        blobs.append(arr.tobytes())
        off += arr.nbytes
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


class Net:
    def __init__(self, model_dir):
        with open(f"{model_dir}/model.json") as f:
            self.spec = json.load(f)
        w = read_safetensors(f"{model_dir}/weights.safetensors")
        self.t = {k: torch.from_numpy(v.astype(np.float32)) for k, v in w.items()
                  if not k.endswith("num_batches_tracked")}
        self.layers = self.spec["layers"]
        self.names = [l["name"] for l in self.layers]

    def index(self, name):
        return self.names.index(name)

    def _layer(self, l, x):
        n, t = l["name"], l["type"]
        if t == "conv2d":
            return F.conv2d(x, self.t[n + ".weight"], self.t.get(n + ".bias") if l.get("bias") else None,
                            stride=tuple(l["stride"]), padding=tuple(l["padding"]),
                            dilation=tuple(l.get("dilation", [1, 1])), groups=l.get("groups", 1))
        if t == "batchnorm2d":
            return F.batch_norm(x, self.t[n + ".running_mean"], self.t[n + ".running_var"],
                                self.t[n + ".weight"], self.t[n + ".bias"], training=False,
                                eps=l.get("eps", 1e-5))
        if t == "relu":
            return F.relu(x)
        if t == "leaky_relu":
            return F.leaky_relu(x, l.get("negative_slope", 0.01))
        if t == "maxpool2d":
            return F.max_pool2d(x, tuple(l["kernel_size"]), tuple(l["stride"]), tuple(l["padding"]),
                                ceil_mode=l.get("ceil_mode", False))
        if t == "avgpool2d":
            return F.avg_pool2d(x, tuple(l["kernel_size"]), tuple(l["stride"]), tuple(l["padding"]),
                                ceil_mode=l.get("ceil_mode", False))
        if t in ("global_avgpool", "adaptive_avgpool2d"):
            return x.mean(dim=(2, 3), keepdim=True)
        if t == "identity":
            return x
        if t == "flatten":
            return x.flatten(1)[:, :, None, None]  # cbctiq's [C*H*W, 1, 1]
        if t == "sigmoid":
            return torch.sigmoid(x)
        if t == "silu":
            return F.silu(x)
        if t == "dropout":
            return x  # eval mode
        if t == "linear":  # [n, out, 1, 1] as cbctiq holds it, so that a mul can scale by it
            y = F.linear(x.flatten(1), self.t[n + ".weight"], self.t.get(n + ".bias") if l.get("bias") else None)
            return y[:, :, None, None]
        raise ValueError(f"layer type {t}")

    def _graph_layer(self, l, xs):
        """The kinds that read several inputs (model.json "inputs")."""
        t = l["type"]
        if t == "add":
            y = xs[0]
            for other in xs[1:]:
                y = y + other
            return y
        if t == "concat":
            return torch.cat(xs, dim=1)
        if t == "mul":
            return xs[0] * xs[1]
        (x,) = xs
        return self._layer(l, x)

    def forward_layers(self, x, keep=None):
        """Returns (output [n, outputs], activation of layer `keep`). A layer
        reads its "inputs" ("input": the network's), else the previous layer."""
        kept = None
        outs = {"input": x}
        for i, l in enumerate(self.layers):
            names = l.get("inputs", [self.names[i - 1] if i else "input"])
            x = self._graph_layer(l, [outs[name] for name in names])
            outs[l["name"]] = x
            if i == keep:
                kept = x
        return x.flatten(1), kept

    def gradcam_feature_maps(self, x, sign=1):
        """Grad-CAM of every output (of sign * y) at the model's target layer,
        before the ReLU: (maps [n_out, n, h, w] as tensors, outputs y [n, n_out])."""
        x = torch.from_numpy(x).requires_grad_(True)
        y, A = self.forward_layers(x, keep=self.index(self.spec["target_layer"]))
        cams = []
        for c in range(y.shape[1]):
            (G,) = torch.autograd.grad(sign * y[:, c].sum(), A, retain_graph=True)
            cams.append((G.mean((2, 3))[:, :, None, None] * A.detach()).sum(1))
        return cams, y.detach().numpy()
