"""`cbctiq study`'s output folder and cache, as a user can break them
(a tiny cohort and net, about a second per run):

- a folder cbctiq did not make is never emptied: a non-empty --out without
  cbctiq-study.lock (and not made only of stamped stage folders, as an older
  cbctiq left them) is refused naming it, and so is a stage folder
  (OUT/train) without a stage.done inside a study folder; the user's files
  survive byte for byte and nothing runs;
- one run at a time: a second run on a folder held by another process
  (a run in progress, or a flock taken here) fails with "in use by process
  N"; a killed run leaves no lock behind;
- paths through symbolic links: --out through a link to a folder at another
  depth, and a cohort.csv reached as LINK/../cohort/cohort.csv, give a study
  whose cohort.csv opens the right volumes;
- the cache key covers what stages read indirectly, and cached outputs are
  checked: editing the labels.json beside the label volumes reruns attrib
  (its AE inside structures changes) and what depends on it; replacing a
  volume reruns every stage that reads volumes; deleting or editing
  attrib/ae.csv reruns attrib, which writes the same bytes again, so
  nothing downstream reruns.
"""
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from test_args import parse_test_args  # noqa: E402

args = parse_test_args()
failures = []
work = os.path.abspath(args.workdir)
STAGES = ["cohort", "consensus", "train", "evaluate", "attrib", "stats", "atypical", "sanity", "report"]


def make_cohort(out, *extra):
    subprocess.run([sys.executable, os.path.join(HERE, "make_cohort.py"), "--out", out, "--n", "8",
                    "--size", "32", "--slices", "8", "--test", "3", "--val", "1", *extra], check=True)


def write_config(name, csv, **train):
    t = {"width": 4, "depth": 2, "input_size": 16, "epochs": 1, "batch": 8}
    t.update(train)
    path = os.path.join(work, name)
    with open(path, "w") as f:
        json.dump({"cohort": {"csv": csv}, "train": t, "stats": {"bootstrap": 50, "permutations": 50},
                   "sanity": {"max_slices": 2}}, f)
    return path


def study(config, out):
    cmd = [args.cbctiq, "study", "--config", config, "--out", out, "--threads", "1"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=work)
    r.ran = re.findall(r"\] (\w+)\s+running", r.stderr)
    return r


def expect_ok(name, r):
    if r.returncode != 0:
        failures.append(f"{name}: exit {r.returncode}: {r.stderr.strip()[-600:]}")
        return False
    return True


def expect_refused(name, r, *needles):
    if r.returncode != 1:
        failures.append(f"{name}: exit {r.returncode}, want 1; stderr: {r.stderr.strip()[-600:]}")
    for n in needles:
        if n not in r.stderr:
            failures.append(f"{name}: stderr lacks {n!r}: {r.stderr.strip()[-600:]}")
    if r.ran:
        failures.append(f"{name}: ran {r.ran} before refusing")


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def tree(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


make_cohort(os.path.join(work, "cohort"))
cfg = write_config("s.json", "cohort/cohort.csv")
s1 = os.path.join(work, "s1")

# ---- 1. folders cbctiq did not make ------------------------------------------------------------
def not_ours():
    user = os.path.join(work, "user")
    os.makedirs(os.path.join(user, "train"))
    with open(os.path.join(user, "train", "patient1.nii.gz"), "wb") as f:
        f.write(b"the user's volume")
    r = study(cfg, "user")
    expect_refused("--out with a user's train/", r, "user: is not empty and is not a cbctiq study folder")
    if tree(user) != ["train/patient1.nii.gz"] or \
            open(os.path.join(user, "train", "patient1.nii.gz"), "rb").read() != b"the user's volume":
        failures.append(f"a refused run changed the user's folder: {tree(user)[:4]}...")

    notes = os.path.join(work, "notes")
    os.makedirs(notes)
    open(os.path.join(notes, "todo.txt"), "w").write("x")
    expect_refused("--out a non-empty non-study folder", study(cfg, "notes"), "notes: is not empty")
    if tree(notes) != ["todo.txt"]:
        failures.append(f"a refused run wrote into a non-study folder: {tree(notes)[:4]}...")

    # An empty folder is fine, and becomes a study folder.
    os.makedirs(s1)
    if expect_ok("first run into an empty folder", study(cfg, "s1")):
        lock_path = os.path.join(s1, "cbctiq-study.lock")
        lock = open(lock_path).read() if os.path.exists(lock_path) else "(no such file)"
        if not re.fullmatch(r"cbctiq-study 1\npid \d+\n", lock):
            failures.append(f"cbctiq-study.lock holds {lock!r}")
        # A stage folder replaced by the user's: refused before anything runs.
        shutil.rmtree(os.path.join(s1, "train"))
        os.makedirs(os.path.join(s1, "train"))
        open(os.path.join(s1, "train", "mine.txt"), "w").write("keep me")
        r = study(cfg, "s1")
        expect_refused("a user's s1/train", r, "s1/train: this folder was not made by cbctiq study")
        if os.listdir(os.path.join(s1, "train")) != ["mine.txt"]:
            failures.append(f"s1/train now holds {os.listdir(os.path.join(s1, 'train'))}")
        shutil.rmtree(os.path.join(s1, "train"))
        r = study(cfg, "s1")
        if expect_ok("after the user's train/ is gone", r) and r.ran[:1] != ["train"]:
            failures.append(f"after removing train/ the rerun ran {r.ran}")
        # A study folder from before the lock file (only stamped stage
        # folders) is still cbctiq's; with one file of the user's it is not.
        legacy = os.path.join(work, "legacy")
        shutil.copytree(s1, legacy, symlinks=True)
        os.remove(os.path.join(legacy, "cbctiq-study.lock"))
        r = study(cfg, "legacy")
        if expect_ok("a study folder without cbctiq-study.lock", r) and r.ran:
            failures.append(f"a study folder without its lock file reran {r.ran}")
        os.remove(os.path.join(legacy, "cbctiq-study.lock"))
        open(os.path.join(legacy, "notes.txt"), "w").write("mine")
        expect_refused("stage folders and a user's file", study(cfg, "legacy"),
                       "legacy: is not empty and is not a cbctiq study folder")


# ---- 4. one run at a time --------------------------------------------------------------------------
def one_at_a_time():
    with open(os.path.join(s1, "cbctiq-study.lock"), "r+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.seek(0)
        held.truncate()
        held.write("cbctiq-study 1\npid 4242\n")
        held.flush()
        expect_refused("a folder locked by process 4242", study(cfg, "s1"), "s1: in use by process 4242")

    slow = write_config("slow.json", "cohort/cohort.csv", epochs=20000, patience=0)
    log_path = os.path.join(work, "first.log")
    with open(log_path, "w+") as log:
        first = subprocess.Popen([args.cbctiq, "study", "--config", slow, "--out", "busy", "--threads", "1"],
                                 cwd=work, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.time() + 120
        while time.time() < deadline and first.poll() is None and "train     running" not in open(log_path).read():
            time.sleep(0.02)
        if first.poll() is not None:
            failures.append(f"the first run ended (exit {first.returncode}) before the second started")
        else:
            r = study(cfg, "busy")
            expect_refused("a second run while the first trains", r, f"busy: in use by process {first.pid}")
            first.send_signal(signal.SIGKILL)
        first.wait()
    # The kill released the lock: the next run resumes (train reruns, cohort is cached).
    r = study(cfg, "busy")
    if expect_ok("a run after the holder was killed", r) and r.ran[:1] != ["train"]:
        failures.append(f"after a kill during train the rerun ran {r.ran}")


# ---- 5. symbolic links ----------------------------------------------------------------------------
def symbolic_links():
    os.makedirs(os.path.join(work, "elsewhere", "deeper"))
    os.symlink(os.path.join(work, "elsewhere", "deeper"), os.path.join(work, "linked"))
    r = study(cfg, "linked/out")
    if expect_ok("--out through a symbolic link", r):
        real_cohort = os.path.join(work, "elsewhere", "deeper", "out", "cohort")
        for line in open(os.path.join(real_cohort, "cohort.csv")).read().splitlines()[1:]:
            vid, path = line.split(",")[:2]
            want = os.path.join(work, "cohort", "volumes", vid + ".nii.gz")
            if not os.path.exists(os.path.join(real_cohort, path)) or \
                    not os.path.samefile(os.path.join(real_cohort, path), want):
                failures.append(f"linked/out/cohort/cohort.csv: {vid} -> {path} is not {want}")
        if study(cfg, "linked/out").ran:
            failures.append("a rerun through the link was not fully cached")

    # A cohort.csv reached as LINK/../cohort/cohort.csv, LINK pointing two folders down elsewhere.
    make_cohort(os.path.join(work, "data", "cohort"))
    os.makedirs(os.path.join(work, "data", "a", "b"))
    os.symlink(os.path.join(work, "data", "a"), os.path.join(work, "dl"))
    dotdot = write_config("dotdot.json", "dl/../cohort/cohort.csv")
    r = study(dotdot, "dotdot")
    if expect_ok("cohort.csv through LINK/..", r):
        rows = open(os.path.join(work, "dotdot", "cohort", "cohort.csv")).read().splitlines()[1:]
        vid, path = rows[0].split(",")[:2]
        if not os.path.samefile(os.path.join(work, "dotdot", "cohort", path),
                                os.path.join(work, "data", "cohort", "volumes", vid + ".nii.gz")):
            failures.append(f"dotdot/cohort/cohort.csv: {vid} -> {path}")


# ---- 9. what the cache covers ----------------------------------------------------------------------
def cache_key_and_outputs():
    make_cohort(os.path.join(work, "side"), "--labels-beside-masks")
    side_cfg = write_config("side.json", "side/cohort.csv")
    c = os.path.join(work, "c")
    if expect_ok("labels.json beside the masks", study(side_cfg, "c")):
        ae = os.path.join(c, "attrib", "ae.csv")
        before = digest(ae)
        labels = os.path.join(work, "side", "labels", "labels.json")
        names = json.load(open(labels))
        names["5"], names["6"] = names["6"], names["5"]  # larynx <-> mandible
        json.dump(names, open(labels, "w"))
        r = study(side_cfg, "c")
        if expect_ok("after editing labels.json", r):
            if r.ran[:1] != ["attrib"] or "report" not in r.ran or "train" in r.ran:
                failures.append(f"editing the labels.json beside the masks reran {r.ran}, want attrib .. report")
            if digest(ae) == before:
                failures.append("attrib/ae.csv did not change with the structure names")

        ae_bytes = open(ae, "rb").read()
        os.remove(ae)
        r = study(side_cfg, "c")
        if expect_ok("after deleting ae.csv", r):
            if r.ran != ["attrib"]:
                failures.append(f"deleting attrib/ae.csv reran {r.ran}, want ['attrib']")
            if "attrib    outputs changed since it ran: ae.csv is missing" not in r.stderr:
                failures.append(f"the rerun does not say ae.csv is missing: {r.stderr[-400:]}")
            if not os.path.exists(ae) or open(ae, "rb").read() != ae_bytes:
                failures.append("the rerun attrib stage wrote another ae.csv")

        edited = bytearray(ae_bytes)
        at = edited.index(b"\n", edited.index(b"\n") + 1) - 1  # a digit at the end of the first row
        while not chr(edited[at]).isdigit():
            at -= 1
        edited[at] = ord("9") if edited[at] != ord("9") else ord("8")
        open(ae, "wb").write(bytes(edited))
        r = study(side_cfg, "c")
        if expect_ok("after editing ae.csv", r):
            if r.ran != ["attrib"] or "ae.csv was changed after the stage wrote it" not in r.stderr:
                failures.append(f"editing attrib/ae.csv in place reran {r.ran}: {r.stderr[-400:]}")
            if open(ae, "rb").read() != ae_bytes:
                failures.append("after an edit, ae.csv was not written again")

        # A volume replaced by another one: every stage that reads volumes reruns.
        vols = os.path.join(work, "side", "volumes")
        shutil.copyfile(os.path.join(vols, "v01.nii.gz"), os.path.join(vols, "v00.nii.gz"))
        r = study(side_cfg, "c")
        if expect_ok("after replacing a volume", r):
            for s in ("train", "evaluate", "attrib", "sanity", "report"):
                if s not in r.ran:
                    failures.append(f"replacing volume v00 did not rerun {s} (ran {r.ran})")
            if "cohort" in r.ran or "consensus" in r.ran:
                failures.append(f"replacing a volume reran {r.ran}, the cohort tables did not change")
        if study(side_cfg, "c").ran:
            failures.append("a rerun after all that was not fully cached")


for check in (not_ours, one_at_a_time, symbolic_links, cache_key_and_outputs):
    try:
        check()
    except Exception as e:  # a crash of one check must not hide the others' results
        failures.append(f"{check.__name__}: {type(e).__name__}: {e}")

if failures:
    print("\n".join(failures))
    sys.exit(1)
print("study folder test: all checks passed")
