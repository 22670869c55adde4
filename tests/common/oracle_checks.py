"""What the PyTorch oracle scripts share: named checks that print one line
each and collect the names of those that failed in `failures` (the script
exits non-zero when it is not empty)."""
import numpy as np

failures = []


def check(name, ok, detail=""):
    print(f"{'ok' if ok else 'FAIL':4} {name} {detail}")
    if not ok:
        failures.append(name)


def close(name, got, want, rel):
    """got equals want in shape, and to rel of want's largest magnitude."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        check(name, False, f"shape {got.shape} != {want.shape}")
        return
    err = np.abs(got - want).max() / max(np.abs(want).max(), 1e-12)
    check(name, err <= rel, f"rel err {err:.2e}")
