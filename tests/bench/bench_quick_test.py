"""bench_quick: `scripts/bench.sh --quick` runs every benchmark under bench/
(programs and scripts) to its end: each verifies cbctiq against its peer and
prints its table. Fails when one is missing from the run, fails, or prints
no figures."""
import argparse
import pathlib
import re
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True)
    ap.add_argument("--build", required=True)
    a = ap.parse_args()
    src = pathlib.Path(a.source)
    run = subprocess.run(["bash", str(src / "scripts/bench.sh"), "--quick", a.build],
                         capture_output=True, text=True, timeout=900)
    sys.stdout.write(run.stdout)
    sys.stderr.write(run.stderr)
    assert run.returncode == 0, f"scripts/bench.sh --quick exited {run.returncode}"
    sections = dict(re.findall(r"^== (\S+)\n(.*?)(?=^== |\Z)", run.stdout, re.M | re.S))
    expected = {p.stem for p in src.glob("bench/bench_*.c")} | {p.name for p in src.glob("bench/bench_*.sh")}
    missing = expected - set(sections)
    assert not missing, f"benchmarks that did not run: {sorted(missing)}"
    # Each table row carries numbers; a benchmark that printed only its header
    # did not measure anything.
    for name, text in sections.items():
        assert re.search(r"\d+\.\d+", text), f"{name}: no figures in its output"
    # The peers' checks, where the benchmark prints one.
    assert "MISMATCH" not in run.stdout
    assert re.search(r"^verified: ", sections["bench_io.sh"], re.M)
    assert re.search(r"^verify: .*\(ok\)$", sections["bench_sim"], re.M)
    assert re.search(r"AE agrees to", sections["bench_gradcam"])
    assert re.search(r"^verify: AE agrees to", sections["bench_ae.sh"], re.M)
    assert re.search(r"^ae.csv: 2 ranks x 1 thread = 1 rank x 1 thread", sections["bench_mpi.sh"], re.M)
    assert re.search(r"^verify \d+x\d+: outputs equal torchvision's resnet18", sections["bench_resnet"], re.M)
    assert re.search(r"^resnet18 convolutions: ", sections["bench_layers"], re.M)
    print(f"bench_quick: {len(sections)} benchmarks ran to their end")


if __name__ == "__main__":
    main()
