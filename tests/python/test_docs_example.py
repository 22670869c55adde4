"""docs/python.md's worked example runs as written, on a small simulated
cohort and a small model, and computes what it claims: the AE of every
volume equals `cbctiq ae` on that cohort, the correlation equals SciPy's,
and the figure is written."""
import os
import re

import numpy as np
import scipy.stats

import cbctiq


def example_code(source_dir):
    text = open(os.path.join(source_dir, "docs", "python.md"), encoding="utf-8").read()
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)
    assert blocks, "docs/python.md has no python block"
    return "\n".join(blocks)


def test_worked_example_runs(source_dir, sim, model_dir, cli, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COHORT", sim)
    monkeypatch.setenv("MODEL", model_dir)
    scope = {"__name__": "__example__"}
    exec(compile(example_code(source_dir), "docs/python.md", "exec"), scope)
    assert "parotid: rho = " in capsys.readouterr().out
    png = tmp_path / "ae_vs_consensus.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    want = scipy.stats.spearmanr(scope["x"], scope["y"])
    assert abs(scope["rho"] - want.correlation) <= 1e-12 and abs(scope["p"] - want.pvalue) <= 1e-12
    # The example's AE are the CLI's (every slice; the cohort's masks only
    # add structure columns, not the AE).
    cli("ae", "--model", model_dir, "--cohort", os.path.join(sim, "cohort.csv"), "--out", tmp_path / "ae.csv",
        "--quiet")
    table = cbctiq.read_table(tmp_path / "ae.csv")
    parotid = table[table["category"] == "parotid"]
    assert dict(zip(parotid["volume_id"], parotid["ae_selected"])) == scope["ae"]
    assert len(scope["x"]) == 8 and np.all(np.isfinite(scope["x"]))
