"""cbctiq.stats against SciPy (1e-12) and against `cbctiq correlate`,
`consensus` and `agreement` on the same inputs (exactly: the same library
functions); cbctiq.read_table against Python's csv and json modules."""
import csv
import json
import math

import numpy as np
import pytest
import scipy.stats

import cbctiq

RNG = np.random.default_rng(7)
X = RNG.normal(size=14)
Y = X + RNG.normal(size=14)
Y[3] = Y[5]  # a tie


def test_spearman_equals_scipy():
    for x, y in ((X, Y), (X[:5], Y[:5]), (np.arange(10), np.arange(10) % 4)):
        rho, p = cbctiq.stats.spearman(x, y)
        want = scipy.stats.spearmanr(x, y)
        assert abs(rho - want.correlation) <= 1e-12 and abs(p - want.pvalue) <= 1e-12


def test_spearman_undefined_is_nan():
    rho, p = cbctiq.stats.spearman([1, 1, 1, 1], [1, 2, 3, 4])
    assert math.isnan(rho) and math.isnan(p)


def test_loo_equals_scipy_on_each_subset():
    loo = cbctiq.stats.loo_spearman(X, Y)
    rho_all = scipy.stats.spearmanr(X, Y).correlation
    for i in range(len(X)):
        keep = np.arange(len(X)) != i
        want = scipy.stats.spearmanr(X[keep], Y[keep])
        assert abs(loo["rho"][i] - want.correlation) <= 1e-12
        assert abs(loo["p"][i] - want.pvalue) <= 1e-12
        assert abs(loo["influence"][i] - (rho_all - want.correlation)) <= 1e-12
    assert abs(loo["median_rho"] - np.median(loo["rho"])) <= 1e-12
    n = len(X)
    se = math.sqrt((n - 1) / n * ((loo["rho"] - loo["rho"].mean()) ** 2).sum())
    assert abs(loo["jackknife_se"] - se) <= 1e-12


def test_exact_permutation_p_equals_scipy():
    x, y = X[:7], Y[:7]
    got = cbctiq.stats.permutation_p(x, y)
    want = scipy.stats.permutation_test(
        (x,), lambda xs: scipy.stats.spearmanr(xs, y).correlation,
        permutation_type="pairings", n_resamples=math.inf, alternative="two-sided")
    assert got["exact"] and got["n_perm"] == math.factorial(7)
    assert abs(got["p"] - want.pvalue) <= 1e-12


def write_pairs(path, values):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["volume_id", "value"])
        for i, v in enumerate(values):
            w.writerow([f"v{i:02d}", repr(float(v))])


def printed(got, want):
    """got equals the CLI's JSON number: cJSON prints 15 significant digits
    when they read back within DBL_EPSILON of the value, so a printed
    number is the value to within 2 DBL_EPSILON, not always to its last bit."""
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64),
                               rtol=4.5e-16, atol=0)


def test_bootstrap_and_permutation_equal_cli(cli, tmp_path):
    """The same seeds and counts as `cbctiq correlate` give its stats.json
    values exactly; SciPy's percentile interval of the same resamples is
    not reachable (other random draws), so the CLI is the reference."""
    write_pairs(tmp_path / "x.csv", X)
    write_pairs(tmp_path / "y.csv", Y)
    out = tmp_path / "stats.json"
    cli("correlate", "--x", f"{tmp_path / 'x.csv'}:value", "--y", f"{tmp_path / 'y.csv'}:value",
        "--by", "none", "--n-boot", 2000, "--n-perm", 5000, "--seed", 3, "--out", out, "--quiet")
    want = json.load(open(out))["categories"]["all"]
    boot = cbctiq.stats.bootstrap_ci(X, Y, n_boot=2000, seed=3)
    printed(boot["percentile"], want["ci95_bootstrap"]["percentile"])
    printed(boot["bca"], want["ci95_bootstrap"]["bca"])
    assert boot["n_valid"] == want["ci95_bootstrap"]["n_valid"] == 2000
    perm = cbctiq.stats.permutation_p(X, Y, n_perm=5000, seed=3)
    printed(perm["p"], want["p_perm"])
    assert perm["n_perm"] == want["n_perm"] and not perm["exact"]
    rho, p = cbctiq.stats.spearman(X, Y)
    printed([rho, p], [want["rho"], want["p"]])
    printed(cbctiq.stats.loo_spearman(X, Y)["rho"], want["loo"]["rho"])
    # read_table flattens stats.json one row per category.
    table = cbctiq.read_table(out)
    assert table.loc["all", "rho"] == want["rho"] and table.loc["all", "n"] == len(X)
    assert table.loc["all", "loo.median_rho"] == want["loo"]["median_rho"]


def test_consensus_equals_cli_and_numpy(cli, sim, tmp_path):
    ratings, raters = f"{sim}/ratings.csv", f"{sim}/raters.csv"
    out = tmp_path / "consensus.csv"
    cli("consensus", "--ratings", ratings, "--raters", raters, "--out", out)
    got = cbctiq.stats.consensus(ratings, raters)
    want = cbctiq.read_table(out)
    assert list(got.columns) == list(want.columns)
    for column in want.columns:
        np.testing.assert_array_equal(got[column].to_numpy(), want[column].to_numpy(), err_msg=column)
    weight = {r["rater"]: float(r["weight"]) for r in csv.DictReader(open(raters))}
    scores = {}
    for r in csv.DictReader(open(ratings)):
        scores.setdefault((r["volume_id"], r["category"]), []).append((weight[r["rater"]], float(r["score"])))
    for vid, cat, mean in zip(got["volume_id"], got["category"], got["consensus"]):
        w, s = np.array(scores[(vid, cat)]).T
        assert abs(mean - (w * s).sum() / w.sum()) <= 1e-12


def test_agreement_equals_cli(cli, sim, tmp_path):
    ratings, raters = f"{sim}/ratings.csv", f"{sim}/raters.csv"
    out = tmp_path / "agreement.json"
    cli("agreement", "--ratings", ratings, "--raters", raters, "--out", tmp_path / "a.csv", "--json", out)
    # Both documents went through the same printer: equal to the last digit.
    assert cbctiq.stats.agreement(ratings, raters) == json.load(open(out))["agreement"]


def test_stats_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="differ in length"):
        cbctiq.stats.spearman([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="one-dimensional"):
        cbctiq.stats.spearman(np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(TypeError, match="real numbers"):
        cbctiq.stats.spearman(["a", "b", "c"], [1, 2, 3])
    with pytest.raises(TypeError, match="real numbers"):
        cbctiq.stats.spearman(np.ones(3, np.complex128), [1, 2, 3])
    with pytest.raises(ValueError, match="conf"):
        cbctiq.stats.bootstrap_ci(X, Y, conf=1.5)
    with pytest.raises(TypeError, match="n_boot"):
        cbctiq.stats.bootstrap_ci(X, Y, n_boot=10.5)
    bad = tmp_path / "ratings.csv"
    bad.write_text("volume_id,rater,category,score\nv1,r1,parotid,9\n")
    with pytest.raises(cbctiq.Error, match=r"ratings.csv:2"):
        cbctiq.stats.consensus(bad)
    with pytest.raises(cbctiq.Error, match="missing.csv"):
        cbctiq.stats.agreement(tmp_path / "missing.csv")


def test_read_table_by_header(tmp_path):
    """Any column a table has comes through under its header name, typed
    as numbers when every cell is one (an empty cell: NaN)."""
    path = tmp_path / "ae.csv"
    rows = [["volume_id", "category", "ae", "new_column", "note"],
            ["a", "parotid", "1.5", "", "x"], ["b", "parotid", "2.25e-3", "7", ""]]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    t = cbctiq.read_table(path)
    assert list(t.columns) == rows[0]
    assert list(t["ae"]) == [1.5, 2.25e-3]
    assert math.isnan(t["new_column"][0]) and t["new_column"][1] == 7
    assert list(t["note"]) == ["x", ""]
    path.write_text("volume_id,ae\na,1\nb\n")
    with pytest.raises(cbctiq.Error, match="ae.csv:3"):
        cbctiq.read_table(path)


def test_read_table_cohort(sim):
    t = cbctiq.read_table(f"{sim}/cohort.csv")
    want = list(csv.DictReader(open(f"{sim}/cohort.csv")))
    assert list(t["volume_id"]) == [r["volume_id"] for r in want]
    assert list(t["path"]) == [r["path"] for r in want]
