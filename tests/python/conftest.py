"""Fixtures of the Python package's tests: the command line, the fixture
data, and what both the package and the CLI read (a small model, a small
simulated cohort), made once per run with the CLI itself.

Environment (set by tests/python/CMakeLists.txt): PYTHONPATH = the folder
the package was installed into by python_install, CBQ_CLI = the cbctiq
binary, CBQ_TEST_DATA = tests/data, CBQ_SOURCE_DIR, CBQ_CC = the C
compiler."""
import os
import subprocess

import pytest


def env(name):
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: run these tests through ctest (tests/python/CMakeLists.txt)", 2)
    return value


@pytest.fixture(scope="session")
def cli():
    path = env("CBQ_CLI")

    def run(*args, expect=0):
        proc = subprocess.run([path, *map(str, args)], capture_output=True, text=True)
        assert proc.returncode == expect, f"cbctiq {' '.join(map(str, args))}: exit {proc.returncode}\n{proc.stderr}"
        return proc
    return run


@pytest.fixture(scope="session")
def data():
    return env("CBQ_TEST_DATA")


@pytest.fixture(scope="session")
def source_dir():
    return env("CBQ_SOURCE_DIR")


@pytest.fixture(scope="session")
def nifti(data):
    return os.path.join(data, "openkbp_hn_ct", "openkbp_test_pt_245", "ct.nii.gz")


@pytest.fixture(scope="session")
def dicom(data):
    return os.path.join(data, "hn_phantom_ct", "dicom_mandible_3")


@pytest.fixture(scope="session")
def model_dir(cli, tmp_path_factory):
    """An untrained iqnet-s (4 channels, 3 blocks, 64 x 64 input): small and
    quick, and every number still goes through the whole engine."""
    path = tmp_path_factory.mktemp("model") / "model"
    cli("model", "init", "--arch", "iqnet-s", "--width", 4, "--depth", 3, "--input", 64,
        "--out", path, "--quiet")
    return str(path)


@pytest.fixture(scope="session")
def model(model_dir):
    import cbctiq
    return cbctiq.Model.load(model_dir)


@pytest.fixture(scope="session")
def sim(cli, tmp_path_factory):
    """A simulated cohort of 8 small volumes with ratings and raters."""
    path = tmp_path_factory.mktemp("sim") / "sim"
    cli("simulate", "--out", path, "--volumes", 8, "--size", 48, "--slices", 16, "--spacing", 5,
        "--test", 8, "--quiet")
    return str(path)
