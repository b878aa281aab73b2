# Load and check the config, and build its plan: every decision of the rules lives in gradcheck/plan.py.
import json
import subprocess
import sys

from snakemake.utils import validate

sys.path.insert(0, workflow.basedir)  # gradcheck's planner checks the config before any job
from gradcheck.config_checks import check_config
from gradcheck.hardware import job_gpus, job_threads
from gradcheck.settings import STABILISER_PATTERN
from gradcheck.plan import (CELL, CELL_NAME, CELL_REP, DIGITS_FOLDER, FEATURES, JUDGE, METRICS, NEVER, SAMPLES,
                            TRACE_QUANTITIES, Plan, cli_flags, relevant_settings, rep_index, rep_suffix,
                            replicate_seeds)


check_config(config, f"{workflow.basedir}/configs/schema.yaml")  # --config strings typed; a short error naming the key
validate(config, "../configs/schema.yaml")  # Snakemake's own check, which also fills in the schema's defaults
if workflow.resource_settings.resources.get("gpu") == 0:  # --resources gpu=0: no GPU for any job, so the CPU
    config["device"] = "cpu"
plan = Plan(config)  # the cross-key checks: a bad config stops here, naming the keys

ENV = "../envs/gradcheck.yaml"
CAPTIONS = "captions/"
# A torch job's threads are the cores Snakemake grants it (`--threads {threads}`), never more: a job
# that takes more cores than are free slows several-fold beside any other busy process. Independent
# jobs run side by side as --cores allows; a job holds a `gpu` token only where it runs on a GPU.
# (workflow.cores is read only for threads_per_job: 0; a cluster run sets no --cores)
JOB_THREADS = job_threads(config["threads_per_job"], workflow.cores if config["threads_per_job"] == 0 else None)
JOB_GPUS = job_gpus(config["device"])
RUNTIME = cli_flags(device=config["device"])
GIT_COMMIT = subprocess.run(
    ["git", "-C", workflow.basedir, "rev-parse", "HEAD"], capture_output=True, text=True
).stdout.strip()


wildcard_constraints:
    classifier="robust|nonrobust",
    model=r"(robust(_T[0-9]+)?|nonrobust)(_r[1-9][0-9]*)?|judge|features",
    ddpm=r"ddpm(_T[0-9]+)?(_r[1-9][0-9]*)?",
    rep=r"(_r[1-9][0-9]*)?",
    variant="[A-Za-z][A-Za-z0-9_.-]*",
    x0="true|false",
    stabiliser=STABILISER_PATTERN,
    quantity="|".join(TRACE_QUANTITIES),
    scale=r"[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?",
