"""`nasrl train` against a real trainer: progress, --json, clear errors and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

REFERENCE = "C(32,3,1) P(2,2) C(64,3,1) GAP SM(10)"


def nasrl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nasrl.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_train_json(trainer: str) -> None:
    r = nasrl(
        "train", REFERENCE, "--trainer", trainer, "--dataset", "digits", "--epochs", "2", "--json"
    )
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    for key in ("accuracy", "test_accuracy", "params", "flops", "seconds"):
        assert key in result
    assert result["params"] == 19562 and result["accuracy"] > 0.5
    assert "epoch 2/2" in r.stderr


def test_train_table(trainer: str) -> None:
    r = nasrl("train", "C(8,3,1) GAP", "--trainer", trainer, "--epochs", "1")
    assert r.returncode == 0, r.stderr
    assert "validation accuracy (best)" in r.stdout and "parameters" in r.stdout


def test_malformed_architecture_is_one_line_exit_2(trainer: str) -> None:
    r = nasrl("train", "C(32,3,1) P(2,2", "--trainer", trainer)
    assert r.returncode == 2
    assert r.stderr.startswith("nasrl: error: malformed P layer")
    assert "position 10" in r.stderr and "Traceback" not in r.stderr


def test_server_rejection_is_one_line_exit_1(trainer: str) -> None:
    r = nasrl("train", "C(1000000000,3,1)", "--trainer", trainer)
    assert r.returncode == 1
    assert "INVALID_ARGUMENT" in r.stderr and "filters must be between" in r.stderr
    assert "Traceback" not in r.stderr


def test_unknown_dataset_and_unreachable_trainer(trainer: str) -> None:
    r = nasrl("train", REFERENCE, "--trainer", trainer, "--dataset", "nope")
    assert r.returncode == 1 and "unknown dataset 'nope'" in r.stderr
    r = nasrl("train", REFERENCE, "--trainer", "127.0.0.1:1", "--timeout", "5")
    assert r.returncode == 1 and "cannot reach 127.0.0.1:1" in r.stderr


def test_bad_hyperparameter_exit_2(trainer: str) -> None:
    r = nasrl("train", REFERENCE, "--trainer", trainer, "--epochs", "0")
    assert r.returncode == 2 and "epochs must be between 1 and 1000" in r.stderr
