"""GPU placement: concurrent jobs that see several cards claim different ones."""

import os
import subprocess
import sys

import pytest

from gradcheck import device
from gradcheck.device import claim_gpu, visible_gpu_ids


@pytest.fixture(autouse=True)
def _release_locks():
    yield
    for handle in device._held_locks:
        handle.close()
    device._held_locks.clear()


def test_one_visible_card_needs_no_lock(tmp_path):
    assert claim_gpu(["3"], tmp_path) == 0
    assert list(tmp_path.iterdir()) == []


def test_claims_in_one_process_get_distinct_cards(tmp_path):
    assert [claim_gpu(["0", "1", "2"], tmp_path) for _ in range(3)] == [0, 1, 2]


def test_claims_from_concurrent_processes_get_distinct_cards(tmp_path):
    holder = ("import sys, time; from gradcheck.device import claim_gpu; "
              f"print(claim_gpu(['5', '7'], {str(tmp_path)!r}), flush=True); time.sleep(30)")
    first = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        taken = int(first.stdout.readline())
        assert claim_gpu(["5", "7"], tmp_path) == 1 - taken
    finally:
        first.kill()
        first.wait()


def test_a_released_card_can_be_claimed_again(tmp_path):
    assert claim_gpu(["0", "1"], tmp_path) == 0
    device._held_locks.pop().close()
    assert claim_gpu(["0", "1"], tmp_path) == 0


def test_visible_ids_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert visible_gpu_ids(2) == ["2", "5"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert visible_gpu_ids(3) == ["0", "1", "2"]


def test_cpu_request_and_missing_cuda(monkeypatch):
    assert str(device.pick_device("cpu")) == "cpu"
    monkeypatch.setattr(device.torch.cuda, "is_available", lambda: False)
    assert str(device.pick_device("auto")) == "cpu"
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        device.pick_device("cuda")


def test_a_job_holds_a_gpu_token_only_where_it_runs_on_a_gpu(tmp_path, monkeypatch):
    from gradcheck.hardware import job_gpus, job_threads

    cards = tmp_path / "gpus"
    cards.mkdir()
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert job_gpus("auto", cards) == 0 and job_gpus("cuda:1", cards) == 1  # no card listed; cuda asked for
    (cards / "0000:01:00.0").mkdir()
    assert job_gpus("auto", cards) == 1 and job_gpus("cpu", cards) == 0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert job_gpus("auto", cards) == 0  # every card hidden
    assert job_threads(3, 2) == 3  # Snakemake caps it at --cores
    assert job_threads(0, 1) == 1 and job_threads(0, 10**6) == len(os.sched_getaffinity(0))
