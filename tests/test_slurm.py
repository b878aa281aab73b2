"""The tiny workflow submitted through profiles/slurm to a real single-node SLURM on localhost.

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

from conftest import REPO, TINY, snakemake

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


def test_tiny_workflow_through_slurm_equals_local_run(cluster, run, tmp_path):
    workdir = tmp_path / "slurm_run"
    # without the sensitivity study: its jobs run the same commands as the grid's, and about a third of
    # the run's jobs (and of this test's time) would be theirs
    no_study = tmp_path / "no_study.yaml"
    no_study.write_text("sensitivity: null\n")
    proc = snakemake(
        workdir, "--profile", str(REPO / "profiles/slurm"),
        # profiles/default (local) would otherwise be layered on top, with its global gpu=1 cap
        "--workflow-profile", "none",
        "--default-resources", "slurm_partition=debug", "slurm_account=gradcheck-test", "mem_mb=2000",
        "runtime=30", "cpus_per_task=1",
        # the test cluster keeps no accounting, so job states come from squeue, not sacct
        "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
        configfile=[TINY, no_study], env=cluster, timeout=1500)
    log = proc.stdout + proc.stderr
    submitted = set(re.findall(r"submitted with SLURM jobid (\d+)", log))
    started = re.findall(r"^(local)?rule (\w+):", log, re.MULTILINE)
    local_rules = {rule for local, rule in started if local}
    job_logs = [p for p in (run / "results/logs").rglob("*.log")  # one per job of the local run, `all` has none
                if not p.relative_to(run / "results/logs").parts[0].startswith(("sensitivity", "train_ddpm_T",
                                                                                "train_classifier_robust_T"))]
    assert len(started) == len(job_logs) + 1, f"{len(started)} jobs started for {len(job_logs)} local-run jobs"
    cluster_jobs = sum(not local for local, _ in started)
    assert len(submitted) == cluster_jobs, f"{len(submitted)} sbatch submissions for {cluster_jobs} cluster jobs"
    # only the torch-free tables, figures and record ran on the submitting host
    assert local_rules and not local_rules & {"train_ddpm", "train_classifier", "sample_cell", "evaluate_cell",
                                              "ddpm_quality", "make_data"}, local_rules

    record = json.loads((workdir / "results/run_record.json").read_text())
    job_ids = {job["slurm_job_id"] for job in record["jobs"].values()}
    assert None not in job_ids and job_ids <= submitted  # every training/sampling job ran inside SLURM

    assert not (workdir / "results/sensitivity.csv").exists()
    for name in ("table1.csv", "classifiers.csv", "scale_ablation.csv"):
        assert (workdir / "results" / name).read_text() == (run / "results" / name).read_text(), name
    local_samples = sorted((run / "results/samples").rglob("*.npz"))
    assert len(local_samples) == 13
    for local in local_samples:
        remote = workdir / local.relative_to(run)
        with np.load(local) as a, np.load(remote) as b:
            np.testing.assert_array_equal(a["images"], b["images"])
            np.testing.assert_array_equal(a["cosine"], b["cosine"])
