"""Jobs import only what they use: start-up (about 6 s, mostly imports) is most of a small job's time."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def loaded_after(imports: str) -> set[str]:
    """The top-level packages a fresh interpreter has loaded after ``imports``."""
    code = f"{imports}; import sys; print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


def test_a_sampling_job_loads_no_torchmetrics_and_an_evaluation_no_diffusers():
    sampling = loaded_after("import gradcheck.cell, gradcheck.samples, gradcheck.metrics")
    assert "diffusers" in sampling and "torchmetrics" not in sampling
    evaluation = loaded_after("import gradcheck.evaluate, gradcheck.classifier, gradcheck.data, gradcheck.metrics, "
                              "gradcheck.samples")
    assert "torch" in evaluation and "diffusers" not in evaluation
