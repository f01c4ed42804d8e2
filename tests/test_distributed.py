"""Input pipeline and multi-process training: batches are pure functions of (seed, step), DDP ranks agree."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from spoco_zoo.config import TrainConfig
from spoco_zoo.train.checkpoint import load_checkpoint
from spoco_zoo.train.distributed import launch_command
from spoco_zoo.train.loader import step_indices, step_loader
from spoco_zoo.train.trainer import Trainer

RUN_FILES = ["best.pt", "config.yaml", "last.pt", "metrics.csv", "training_curves.png"]  # what a finished run leaves


def tiny_config(out_dir: Path, steps: int = 6, workers: int = 0) -> TrainConfig:
    return TrainConfig.model_validate(
        {
            "steps": steps,
            "lr": 3e-3,
            "out_dir": str(out_dir),
            "checkpoint_every": 2,
            "val_every": 1000,
            "log_every": 1,
            "device": "cpu",
            "model": {"depth": 2, "base_features": 4, "embedding_dim": 4},
            "clustering": {"tune": False},
            "data": {
                "patch_shape": [32, 32],
                "batch_size": 2,
                "num_workers": workers,
                "object_fraction": 0.5,
                "synthetic": {"n_train": 3, "n_val": 1, "shape": [48, 48], "n_objects": 6},
            },
        }
    )


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name, tensor in a.items():
        assert torch.equal(tensor, b[name]), name


def test_ranks_draw_different_items_and_batches_do_not_depend_on_workers(tmp_path: Path) -> None:
    assert step_indices(5, 2, 1000) == [10, 11]
    assert set(step_indices(5, 2, 1000, 0, 2)).isdisjoint(step_indices(5, 2, 1000, 1, 2))
    trainer = Trainer(tiny_config(tmp_path / "run", workers=2), progress=False)
    trainer.setup()
    loaded = list(step_loader(trainer.train_set, 2, 5, 2, num_workers=2))
    assert len(loaded) == 3
    for step, batch in zip(range(2, 5), loaded):
        direct = trainer.batch(step)
        assert torch.equal(batch["image"], direct["image"]) and torch.equal(batch["labels"], direct["labels"])
    assert not torch.equal(loaded[0]["image"], loaded[1]["image"])


def test_resume_with_dataloader_workers_is_exact(tmp_path: Path) -> None:
    """A run with 2 workers, stopped and resumed, ends with the weights of an uninterrupted run without workers."""
    full = Trainer(tiny_config(tmp_path / "full", workers=0), progress=False)
    full.fit()
    Trainer(tiny_config(tmp_path / "part", workers=2), progress=False).fit(max_steps=3)
    assert load_checkpoint(tmp_path / "part" / "last.pt")["step"] == 3
    resumed = Trainer(tiny_config(tmp_path / "part", workers=2), progress=False)
    resumed.fit(resume=True)
    assert resumed.step == 6
    assert_same_weights(full.student.state_dict(), resumed.student.state_dict())
    assert_same_weights(full.teacher.state_dict(), resumed.teacher.state_dict())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ddp_worker(rank: int, world: int, port: int, out_dir: str, results: str, stop_at: int | None) -> None:
    """One rank: train (or train, stop and resume), record the checkpoints it wrote and its weights."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    import spoco_zoo.train.trainer as trainer_module

    written: list[str] = []
    save = trainer_module.save_checkpoint

    def recording_save(path: Path, state: dict[str, Any]) -> None:
        written.append(Path(path).name)
        save(path, state)

    trainer_module.save_checkpoint = recording_save  # type: ignore[assignment]
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        cfg = tiny_config(Path(out_dir))
        if stop_at is not None:
            Trainer(cfg, progress=False).fit(max_steps=stop_at)
            dist.barrier()
        trainer = Trainer(cfg, progress=False)
        trainer.fit(resume=stop_at is not None)
        state = {"student": trainer.student.state_dict(), "teacher": trainer.teacher.state_dict(), "written": written}
        torch.save(state, Path(results) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def run_ranks(tmp_path: Path, name: str, stop_at: int | None) -> list[dict[str, Any]]:
    results = tmp_path / f"{name}_results"
    results.mkdir()
    mp.spawn(ddp_worker, args=(2, free_port(), str(tmp_path / name), str(results), stop_at), nprocs=2, join=True)
    return [torch.load(results / f"rank{r}.pt", weights_only=False) for r in range(2)]


@pytest.mark.slow
def test_two_gloo_ranks_stay_identical_rank0_writes_and_resume_is_exact(tmp_path: Path) -> None:
    ranks = run_ranks(tmp_path, "full", stop_at=None)
    for key in ("student", "teacher"):
        assert_same_weights(ranks[0][key], ranks[1][key])
    assert ranks[1]["written"] == [] and "last.pt" in ranks[0]["written"]
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == RUN_FILES
    # the two ranks train on different patches: not the weights of one process on rank 0's batches
    single = Trainer(tiny_config(tmp_path / "single"), progress=False)
    single.fit()
    assert not torch.equal(single.student.state_dict()["head.weight"], ranks[0]["student"]["head.weight"])
    # stopped after 3 steps and resumed: the weights of the uninterrupted run
    resumed = run_ranks(tmp_path, "resumed", stop_at=3)
    assert_same_weights(resumed[0]["student"], ranks[0]["student"])
    assert_same_weights(resumed[1]["teacher"], ranks[0]["teacher"])


def test_gpus_option_launches_torchrun() -> None:
    command = launch_command(4, ["train", "--steps", "10"])
    assert command[1:3] == ["-m", "torch.distributed.run"]
    assert command[command.index("--nproc-per-node") + 1] == "4"
    assert command[-3:] == ["train", "--steps", "10"]


@pytest.mark.slow
def test_train_gpus_option_runs_two_cpu_processes(tmp_path: Path) -> None:
    """``spoco-zoo train --gpus 2 --device cpu`` trains in 2 gloo processes; rank 0 writes one run folder."""
    import subprocess
    import sys

    out = tmp_path / "run"
    settings = [
        "model.depth=2", "model.base_features=4", "model.embedding_dim=4", "data.patch_shape=[32,32]",
        "data.synthetic.n_train=2", "data.synthetic.n_val=1", "data.synthetic.shape=[48,48]",
        "data.synthetic.n_objects=6", "clustering.tune=false", "val_every=1000",
    ]  # fmt: skip
    command = [sys.executable, "-m", "spoco_zoo.cli.main", "train", "--gpus", "2", "--device", "cpu", "--no-progress"]
    command += ["--out", str(out), "--steps", "3", *[arg for item in settings for arg in ("--set", item)]]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in out.iterdir()) == RUN_FILES
    assert load_checkpoint(out / "last.pt")["step"] == 3
    assert result.stdout.count("last checkpoint:") == 2  # both ranks ran the command
