"""What the MPI tests share: their arguments (a fresh work folder), a
runner of cbctiq as one process (ranks 0) or under mpirun, and killing one
rank of a running job."""
import argparse
import os
import shutil
import subprocess
import sys
import time


def parse_args():
    """--cbctiq BIN --mpirun MPIRUN --workdir DIR [--data DIR]; the work folder
    is emptied. --data: the repository's test data (tests/data)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--cbctiq", required=True)
    ap.add_argument("--mpirun", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--data")
    args = ap.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    return args


def runner(args):
    """run(ranks, *cmd, expect_ok=True): cbctiq cmd as one process (ranks 0)
    or on that many ranks; a result other than expected ends the test."""
    mpi = [args.mpirun, "--allow-run-as-root", "--oversubscribe", "--bind-to", "none"]

    def run(ranks, *cmd, expect_ok=True):
        line = ([*mpi, "-np", str(ranks)] if ranks else []) + [args.cbctiq, *cmd]
        p = subprocess.run(line, capture_output=True, text=True, timeout=300)
        if (p.returncode == 0) != expect_ok:
            sys.exit(f"{' '.join(line)}: exit {p.returncode}\n{p.stdout}{p.stderr}")
        return p
    return run


def rank_pid(launcher_pid, rank):
    """The pid of the process an Open MPI launcher started as `rank` (found
    by its parent and its environment), or None."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid != launcher_pid:
                continue
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if f"OMPI_COMM_WORLD_RANK={rank}".encode() in env:
            return int(entry)
    return None


def kill_rank_and_wait(job, victim, rank, failures):
    """Kills pid victim (the job's rank `rank`) and waits up to 60 s for the
    mpirun job to end (killing it then, as a failure); prints and returns the
    seconds the job took to end after the kill."""
    os.kill(victim, 9)
    t0 = time.monotonic()
    try:
        job.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        job.kill()
        job.communicate()
        failures.append(f"killed rank: the job still ran 60 s after rank {rank} was killed")
    took = time.monotonic() - t0
    print(f"killed rank: job ended with exit {job.returncode} {took:.1f} s after rank {rank} was killed")
    return took
