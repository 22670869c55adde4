#!/usr/bin/python3
"""make_bad.py MODEL GEN VOL SIM - inputs for gradcam/ae/predict bad cases:
volumes with NaN or Inf voxels, a model whose target layer comes after the
global pool, cohorts whose ids or files do not match."""
import csv
import json
import os
import shutil
import sys

import nibabel as nib
import numpy as np

model, gen, vol, sim = sys.argv[1:5]
img = nib.load(vol)
data = np.asarray(img.dataobj, dtype=np.float32)
for name, value in (("nan_voxels", np.nan), ("inf_voxels", np.inf)):
    bad = data.copy()
    bad[data.shape[0] // 2, data.shape[1] // 2, data.shape[2] // 2] = value
    out = nib.Nifti1Image(bad, img.affine)
    out.header.set_data_dtype(np.float32)
    nib.save(out, os.path.join(gen, f"{name}.nii.gz"))

# A model whose target_layer is the global pool's output or the classifier.
spec = json.load(open(os.path.join(model, "model.json")))
names = [l["name"] for l in spec["layers"]]
kinds = [l["type"] for l in spec["layers"]]
after = names[kinds.index("global_avgpool")]
d = os.path.join(gen, "target_after_pool")
shutil.copytree(model, d)
spec["target_layer"] = after
json.dump(spec, open(os.path.join(d, "model.json"), "w"))
open(os.path.join(gen, "after_pool_layer.txt"), "w").write(after)

# The same model with its outputs renamed: no label-permuted control for it.
d = os.path.join(gen, "other_outputs")
shutil.copytree(model, d)
spec["target_layer"] = json.load(open(os.path.join(model, "model.json")))["target_layer"]
spec["outputs"] = ["x" + o for o in spec["outputs"]]
json.dump(spec, open(os.path.join(d, "model.json"), "w"))

# The same model normalising its input channel: the same outputs, another input.
d = os.path.join(gen, "other_input_norm")
shutil.copytree(model, d)
spec = json.load(open(os.path.join(model, "model.json")))
spec["input"].update({"mean": [0.5], "std": [0.25]})
json.dump(spec, open(os.path.join(d, "model.json"), "w"))


def cohort(name, rows, header=("volume_id", "path")):
    with open(os.path.join(gen, name), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


vp = os.path.relpath(vol, gen)
cohort("duplicate_ids.csv", [("a", vp), ("a", vp)])
cohort("missing_volume.csv", [("a", "no_such_volume.nii.gz")])
cohort("no_path_column.csv", [("a",)], header=("volume_id",))
cohort("nan_volume.csv", [("n", "nan_voxels.nii.gz")])
cohort("mask_other_grid.csv", [("a", vp, "other_grid_labels.nii.gz")], header=("volume_id", "path", "mask"))
# Ids that would lead out of a folder once they are part of a file name.
for name, bad_id in (("id_parent", "../x"), ("id_slash", "a/b"), ("id_backslash", "a\\b"), ("id_dot", "."),
                     ("id_dotdot", ".."), ("id_control", "a\x01b")):
    cohort(f"{name}.csv", [("ok", vp, "test"), (bad_id, vp, "test")], header=("volume_id", "path", "split"))
# A FIFO as a mask: refused at once instead of waiting for a writer.
os.mkfifo(os.path.join(gen, "fifo_labels.nii.gz"))
cohort("mask_fifo.csv", [("a", vp, "fifo_labels.nii.gz")], header=("volume_id", "path", "mask"))
labels = np.zeros((7, 5, 3), dtype=np.int16)
nib.save(nib.Nifti1Image(labels, np.eye(4)), os.path.join(gen, "other_grid_labels.nii.gz"))
shutil.copy(os.path.join(sim, "labels.json"), os.path.join(gen, "labels.json"))
