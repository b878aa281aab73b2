"""Jobs of the tiny workflow submitted through profiles/slurm to a real single-node SLURM on localhost.

tests/slurm/cluster.sh installs Debian's slurm-wlm and munge if needed, starts munged,
slurmctld and slurmd with all state in a temporary directory, and stops exactly those
daemons afterwards. Skipped, with the reason, where that cannot work (not root, no
apt-get, a real SLURM configured, GRADCHECK_SKIP_SLURM set).
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, snakemake

pytestmark = [pytest.mark.slurm, pytest.mark.e2e]
CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"


def _cannot_run() -> str | None:
    if os.environ.get("GRADCHECK_SKIP_SLURM"):
        return "GRADCHECK_SKIP_SLURM is set"
    if os.geteuid() != 0:
        return "starting SLURM daemons needs root"
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        return "SLURM is not installed and there is no apt-get to install it"
    conf = Path("/etc/slurm/slurm.conf")
    if conf.exists() and not conf.is_symlink():
        return "this machine has a real SLURM configuration; the test cluster would clash with it"
    return None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if reason := _cannot_run():
        pytest.skip(reason)
    state = tmp_path_factory.mktemp("slurm_state")
    started = subprocess.run(["bash", str(CLUSTER), "start", str(state)], capture_output=True, text=True,
                             timeout=900)
    if started.returncode != 0:
        if not shutil.which("slurmctld"):
            pytest.skip(f"could not install slurm-wlm and munge: {started.stderr[-500:]}")
        pytest.fail(f"the test cluster did not start:\n{started.stderr[-3000:]}")
    try:
        yield {"SLURM_CONF": str(state / "slurm.conf")}
    finally:
        subprocess.run(["bash", str(CLUSTER), "stop", str(state)], capture_output=True, timeout=300)


# One path through every kind of job (data, the DDPM, every classifier, a guided cell and its evaluation) and
# two torch-free aggregates: each job kind's cluster path is tested without rerunning the whole tiny grid
# (the whole run took 5 of the suite's 19 minutes).
CELL = "nonrobust/x0-true_adam_s-5"
TARGETS = ["results/classifiers.csv", f"results/metrics/{CELL}.json", "results/figures/grids/nonrobust_x0-true_adam_s-5.png"]


def test_a_cell_through_slurm_equals_the_local_run(cluster, run, tmp_path):
    workdir = tmp_path / "slurm_run"
    proc = snakemake(
        workdir, "--profile", str(REPO / "profiles/slurm"),
        # profiles/default (local) would otherwise be layered on top, with its global gpu=1 cap
        "--workflow-profile", "none",
        "--default-resources", "slurm_partition=debug", "slurm_account=gradcheck-test", "mem_mb=2000",
        "runtime=30", "cpus_per_task=1",
        # the test cluster keeps no accounting, so job states come from squeue, not sacct
        "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
        "--", *TARGETS, env=cluster, timeout=1500)
    log = proc.stdout + proc.stderr
    submitted = set(re.findall(r"submitted with SLURM jobid (\d+)", log))
    started = re.findall(r"^(local)?rule (\w+):", log, re.MULTILINE)
    local_rules = {rule for local, rule in started if local}
    cluster_rules = sorted(rule for local, rule in started if not local)
    assert cluster_rules == sorted(["make_data", "train_ddpm", "sample_cell", "evaluate_cell"]
                                   + ["train_classifier"] * 4), cluster_rules
    assert len(submitted) == len(cluster_rules), f"{len(submitted)} sbatch submissions for {len(cluster_rules)} jobs"
    # only the torch-free tables and figures ran on the submitting host
    assert local_rules == {"classifier_summary", "sample_grid"}, local_rules

    # the trained models and the samples say which SLURM job made them
    for name in ("robust", "nonrobust", "judge", "features"):
        assert json.loads((workdir / f"results/models/{name}.json").read_text())["device"]["slurm_job_id"] in submitted
    with np.load(workdir / f"results/samples/{CELL}.npz") as remote, np.load(run / f"results/samples/{CELL}.npz") as local:
        assert json.loads(str(remote["record"]))["device"]["slurm_job_id"] in submitted
        for key in ("images", "cosine", "staleness", "spread"):
            np.testing.assert_array_equal(remote[key], local[key])
    assert (workdir / "results/classifiers.csv").read_text() == (run / "results/classifiers.csv").read_text()
    remote_metrics, local_metrics = (json.loads((d / f"results/metrics/{CELL}.json").read_text()) for d in (workdir, run))
    assert remote_metrics["per_sample"] == local_metrics["per_sample"]
    assert remote_metrics["judge_accuracy"] == local_metrics["judge_accuracy"]
