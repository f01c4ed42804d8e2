"""SPOCO training loop: student network, EMA teacher, sparse labels.

One optimisation step:

1. draw the batch for this step (patches are a pure function of ``(seed, step)``,
   so a resumed run sees exactly the batches the killed run would have seen);
2. make two views of the batch, each with its own intensity augmentation and
   invertible geometric transform (flips / 90-degree rotations);
3. student(view 1) and teacher(view 2) are mapped back to the batch frame by
   inverting their geometric transforms;
4. :class:`~spoco_zoo.losses.spoco.SpocoLoss` = embedding + instance terms on
   annotated pixels + consistency term (student vs teacher) on unlabeled pixels;
   with ``data.patch_context`` the network sees the patch and its context and the
   losses the patch only (:mod:`spoco_zoo.train.patch_context`);
5. optimiser step on the student, EMA update of the teacher.

Checkpoints (``last.pt`` every ``checkpoint_every`` steps and at the end,
``best.pt`` on the best validation score) are written atomically; SIGINT and
SIGTERM save ``last.pt`` before the run stops, and ``fit(resume=True)``
continues from it with identical model, teacher, optimiser and RNG state.
"""

from __future__ import annotations

import copy
import math
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from spoco_zoo.atomic import atomic_write_bytes
from spoco_zoo.config import TrainConfig
from spoco_zoo.devices import resolve_device
from spoco_zoo.models.memory_order import to_channels_last
from spoco_zoo.progress import ProgressBar, format_values
from spoco_zoo.runlock import RunLock
from spoco_zoo.train.acceleration import autocast_dtype, compile_model, needs_grad_scaler
from spoco_zoo.train.checkpoint import build_model, load_checkpoint, save_checkpoint
from spoco_zoo.train.distributed import DistributedContext, rank_device, sync_buffers, wrap_model
from spoco_zoo.train.history import TrainingLog, checkpoint_score
from spoco_zoo.train.loader import step_indices, step_loader, to_device
from spoco_zoo.train.patch_context import crop_centre, shifted_patches, uses_context
from spoco_zoo.train.schedule import learning_rate
from spoco_zoo.train.tuning import TuningResult
from spoco_zoo.train.validation import predict_whole, store_tuning, validation_scores

__all__ = ["Trainer", "TrainResult", "update_teacher"]

LAST = "last.pt"
BEST = "best.pt"


@torch.no_grad()
def update_teacher(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """``teacher = momentum * teacher + (1 - momentum) * student``; buffers are copied."""
    for t_param, s_param in zip(teacher.parameters(), student.parameters()):
        t_param.mul_(momentum).add_(s_param.detach(), alpha=1.0 - momentum)
    for t_buf, s_buf in zip(teacher.buffers(), student.buffers()):
        t_buf.copy_(s_buf)


def _param_text(value: Any) -> str:
    """A tuned clustering parameter as the end-of-training note prints it: numbers ``:g``, lists of
    numbers joined by ``/`` (a per-axis ``spacing``), anything else as is.

    >>> _param_text(0.15), _param_text([1.796655, 0.746049, 0.746049]), _param_text("embedding")
    ('0.15', '1.797/0.746/0.746', 'embedding')
    """
    if isinstance(value, (bool, str)):
        return str(value)
    if isinstance(value, (int, float)):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "/".join(f"{float(v):.4g}" for v in value)
    return str(value)


@dataclass
class TrainResult:
    """What a finished (or stopped) run produced."""

    step: int
    last_checkpoint: Path
    best_checkpoint: Path | None
    history: list[dict[str, float]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False
    steps_per_second: float = math.nan


class _StopRequested(Exception):
    pass


class Trainer:
    """Train a SPOCO embedding network from a :class:`TrainConfig`.

    Parameters
    ----------
    config:
        Validated training configuration.
    progress:
        Show a rich progress bar with the loss terms.
    on_step:
        Optional callback ``(step, terms)`` after every optimisation step
        (progress reports, live previews; tests use it to simulate a kill).
        It runs in the training thread; :meth:`request_stop` may be called from it or from
        another thread.

    Examples
    --------
    >>> import tempfile
    >>> cfg = TrainConfig.model_validate({"steps": 2, "out_dir": tempfile.mkdtemp(),
    ...     "data": {"patch_shape": [32, 32], "batch_size": 1,
    ...              "synthetic": {"n_train": 1, "n_val": 1, "shape": [64, 64], "n_objects": 6}},
    ...     "model": {"depth": 2, "base_features": 4}})
    >>> Trainer(cfg, progress=False).fit().step
    2
    """

    def __init__(
        self,
        config: TrainConfig,
        progress: bool = True,
        on_step: Callable[[int, dict[str, float]], None] | None = None,
    ) -> None:
        self.config = config
        self.progress = progress
        self.on_step = on_step
        self.context = DistributedContext.from_env()
        self.device = rank_device(resolve_device(config.device), self.context)
        self.out_dir = Path(config.out_dir)
        self.amp_dtype = autocast_dtype(self.device, config.amp, cpu=config.amp_cpu)
        # validation and tuning predict as users will: float32 on the CPU whatever the steps use
        self.predict_dtype = autocast_dtype(self.device, config.amp)
        self.owns_process_group = False
        self.stop_event = threading.Event()

    @property
    def use_amp(self) -> bool:
        """Whether the training steps run under autocast (:attr:`amp_dtype` is not ``None``)."""
        return self.amp_dtype is not None

    def request_stop(self) -> None:
        """Ask a running :meth:`fit` to stop after the current step (thread-safe).

        The run ends as after SIGINT: ``last.pt`` is saved, the result is ``interrupted`` and
        ``fit(resume=True)`` continues it. A GUI calls this from its Stop button while ``fit`` runs
        in a worker thread (signals reach the main thread only).
        """
        self.stop_event.set()

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        """Build data, student, EMA teacher, optimiser and loss (``fit`` calls it; benchmarks may too)."""
        from spoco_zoo.data.dataset import build_datasets
        from spoco_zoo.data.voxel_size import first_voxel_size
        from spoco_zoo.losses.spoco import SpocoLoss

        # the voxel size (given, or read from the first training image that stores one) decides how the
        # network pools an anisotropic volume; the stored config keeps both, so the checkpoint rebuilds it
        data, dims = self.config.data, self.config.model.spatial_dims
        found = first_voxel_size(data.train_images, dims) if data.voxel_size is None else None
        self.config = cfg = self.config.with_voxel_size(found)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        self.train_set, self.val_samples = build_datasets(
            cfg.data,
            cfg.model.spatial_dims,
            cfg.seed,
            samples_per_epoch=cfg.steps * cfg.data.batch_size * self.context.world_size,
        )
        self._derive_min_size()
        if self.train_set.validation_note and self.context.is_main:
            print(self.train_set.validation_note, flush=True)
        if self.train_set.in_channels != cfg.model.in_channels:
            raise ValueError(
                f"training images have {self.train_set.in_channels} channels but model.in_channels "
                f"is {cfg.model.in_channels}; set --set model.in_channels={self.train_set.in_channels}"
            )
        self.owns_process_group = self.context.start(self.device) or self.owns_process_group
        self.student = build_model(cfg).to(self.device)
        if cfg.channels_last_cpu and self.device.type == "cpu":  # before the optimiser and the teacher copy
            to_channels_last(self.student, cfg.model.spatial_dims)
        self.teacher = copy.deepcopy(self.student)
        for param in self.teacher.parameters():
            param.requires_grad_(False)
        # what the steps call: DDP around the student with several processes, compiled on request
        self.train_model = compile_model(wrap_model(self.student, self.device, self.context), cfg.compile)
        self.teacher_model = compile_model(self.teacher, cfg.compile)
        self.optimizer = torch.optim.AdamW(self.student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scaler = torch.amp.GradScaler("cuda", enabled=needs_grad_scaler(self.amp_dtype))
        self.loss_fn = SpocoLoss(
            cfg.loss,
            ignore_label=cfg.data.ignore_label,
            foreground=cfg.model.foreground,
            unannotated=cfg.unannotated_pixels(),
        )
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.metrics: dict[str, float] = {}
        self.best_score = -math.inf
        self.best_saw_context = False  # best.pt was trained on patches with context (data.patch_context)

    def _derive_min_size(self) -> None:
        """Fill ``clustering.min_size`` from the annotated objects when it is not configured."""
        from spoco_zoo.cluster.settings import min_size_from_objects

        clustering = self.config.clustering
        if clustering.min_size is not None:
            return
        derived = min_size_from_objects(self.train_set.object_sizes())
        self.config = self.config.model_copy(update={"clustering": clustering.model_copy(update={"min_size": derived})})

    def _state(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "step": self.step,
            "model_state": self.student.state_dict(),
            "teacher_state": self.teacher.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "scaler_state": self.scaler.state_dict(),
            "rng_state": {"torch": torch.get_rng_state(), "numpy": np.random.get_state()},
            "metrics": dict(self.metrics),
            "best_score": self.best_score,
            "best_saw_context": self.best_saw_context,
            "history": list(self.history),
        }

    def restore(self, path: Path) -> None:
        """Load model, teacher, optimiser, scaler, RNG state and history from a checkpoint (after :meth:`setup`)."""
        state = load_checkpoint(path, map_location=self.device)
        stored: TrainConfig = state["config"]
        if stored.model != self.config.model:
            raise ValueError(
                f"{path}: cannot resume, the checkpoint's model config {stored.model} "
                f"differs from the requested {self.config.model}"
            )
        for key in ("optimizer_state", "teacher_state"):
            if key not in state:
                raise ValueError(f"{path}: cannot resume, checkpoint lacks {key}")
        self.student.load_state_dict(state["model_state"])
        self.teacher.load_state_dict(state["teacher_state"])
        self.optimizer.load_state_dict(state["optimizer_state"])
        if "scaler_state" in state and state["scaler_state"]:
            self.scaler.load_state_dict(state["scaler_state"])
        rng = state.get("rng_state") or {}
        if "torch" in rng:
            torch.set_rng_state(rng["torch"].cpu() if hasattr(rng["torch"], "cpu") else rng["torch"])
        if "numpy" in rng:
            np.random.set_state(rng["numpy"])
        self.step = int(state["step"])
        self.history = list(state.get("history", []))
        self.metrics = dict(state.get("metrics", {}))
        self.best_score = float(state.get("best_score", -math.inf))
        self.best_saw_context = bool(state.get("best_saw_context", False))

    # ------------------------------------------------------------------- data
    def batch(self, step: int) -> dict[str, torch.Tensor]:
        """This rank's batch of ``step`` on the trainer's device: a pure function of (seed, step).

        ``fit`` gets the same batches from DataLoader workers (:func:`spoco_zoo.train.loader.step_loader`).
        """
        ctx = self.context
        indices = step_indices(step, self.config.data.batch_size, len(self.train_set), ctx.rank, ctx.world_size)
        items = [self.train_set[i] for i in indices]
        return to_device({key: torch.stack([it[key] for it in items]) for key in ("image", "labels")}, self.device)

    def _step_generator(self, step: int) -> torch.Generator:
        gen = torch.Generator(device="cpu")
        gen.manual_seed(int(self.config.seed) * 1_000_003 + step + self.context.rank * 1_000_000_007)
        return gen

    # ------------------------------------------------------------------- step
    def train_step(self, step: int, batch: dict[str, torch.Tensor] | None = None) -> dict[str, float]:
        """One optimisation step (two views, student + EMA teacher, loss, update); returns the loss terms.

        ``batch``: the step's batch on the device (default: :meth:`batch`).
        """
        from spoco_zoo.data.augment import GeometricTransform, intensity_augment

        cfg = self.config
        batch = self.batch(step) if batch is None else batch
        gen = self._step_generator(step)
        image, labels = batch["image"], batch["labels"]
        context = cfg.data.context_margins()  # the items hold the patch and this much around it
        with_context = uses_context(step, cfg.steps, context, cfg.data.context_steps)
        item_image, shifted = image, None  # shifted: the teacher's patch, when it is not the student's
        if any(context) and not with_context:  # the bare patch
            if cfg.data.shifted_teacher:  # the teacher's patch elsewhere in the item
                shifted = shifted_patches(cfg.data.patch_shape, context, gen)
            image, labels = crop_centre(image, context), crop_centre(labels, context)
        elif with_context and cfg.data.context_batch_size is not None:
            image, labels = image[: cfg.data.context_batch_size], labels[: cfg.data.context_batch_size]
        teacher_image = image if shifted is None else item_image[(slice(None), slice(None)) + shifted.teacher]
        geo_student = GeometricTransform.random(cfg.model.spatial_dims, gen)
        geo_teacher = GeometricTransform.random(cfg.model.spatial_dims, gen)
        view_student = geo_student.apply(intensity_augment(image, gen))
        view_teacher = geo_teacher.apply(intensity_augment(teacher_image, gen))

        self.student.train()
        with torch.autocast(device_type=self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            student_emb = geo_student.invert(self.train_model(view_student))
            teacher_emb = None
            if cfg.loss.consistency_weight > 0:
                with torch.no_grad():
                    teacher_emb = geo_teacher.invert(self.teacher_model(view_teacher))
        if with_context:  # the losses see the patch only
            student_emb, labels = crop_centre(student_emb, context), crop_centre(labels, context)
            teacher_emb = None if teacher_emb is None else crop_centre(teacher_emb, context)
        if shifted is not None and teacher_emb is not None:  # the views compared where they overlap
            teacher_emb = teacher_emb[(slice(None), slice(None)) + shifted.in_teacher]
        window = None if shifted is None else shifted.in_student
        total, terms = self.loss_fn(student_emb.float(), labels, teacher_emb, generator=gen, teacher_window=window)
        if not torch.isfinite(total):
            raise FloatingPointError(f"step {step}: loss is {total.item()} (terms {terms}); lower the learning rate")
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(step, cfg.steps, cfg.lr, cfg.warmup_steps, cfg.lr_schedule, cfg.min_lr_fraction)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        sync_buffers(self.student, self.context)  # every rank's teacher follows the same student
        update_teacher(self.teacher, self.student, cfg.loss.ema_momentum)
        return terms

    # ------------------------------------------------------------- validation
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Instance metrics (SBD, mAP) of the student on the validation images.

        Falls back to the embedding loss when no dense validation labels exist
        (:func:`spoco_zoo.train.validation.validation_scores`).
        """
        if not self.val_samples:
            return {}
        self.student.eval()
        return validation_scores(self.val_samples, self.config, self._predict_full)

    @torch.no_grad()
    def tune_postprocessing(self, checkpoint: Path, also: Sequence[Path] = ()) -> TuningResult | None:
        """Choose the clustering (``bandwidth`` and ``min_size``, or the foreground's shape split) on the
        validation images and store it.

        The student weights of ``checkpoint`` embed the validation images; the combination with
        the best SBD + mAP (:func:`spoco_zoo.train.tuning.tune_clustering`) is written into the
        clustering config of ``checkpoint`` and of the checkpoints in ``also``. Dense validation
        labels are scored by SBD + mAP, sparse ones (objects set aside from the training annotations)
        by :func:`spoco_zoo.metrics.partial.partial_score`. Without validation images a model whose
        foreground channel masks the background is given method ``"graph"`` with ``split="shape"``
        (measured on the real nuclei image; nothing to choose on); otherwise, or for a method without
        a kernel width (other than ``"graph"``), nothing happens (``None``).
        """
        from spoco_zoo.cluster.settings import uses_kernel_width
        from spoco_zoo.models.receptive_field import package_halo
        from spoco_zoo.train.tuning import TUNE_MAX_VOXELS, centre_crop, tune_clustering

        cfg = self.config
        samples = self.val_samples
        recommended = cfg.clustering_setting()
        method = recommended.method
        if not samples and cfg.foreground_mode() == "mask" and method in ("graph", "mean_shift"):
            # nothing to measure on: the split that held on the real nuclei image with 4 annotated
            # nuclei (SBD 0.27 -> 0.80; docs/benchmarks.md, "Real images")
            shaped = cfg.clustering.model_copy(
                update={"method": "graph", "bandwidth": None, "params": {"split": "shape"}}
            )
            self.config = cfg.model_copy(update={"clustering": shaped})
            model = copy.deepcopy(self.student)
            model.load_state_dict(load_checkpoint(checkpoint, map_location=self.device)["model_state"])
            store_tuning(
                checkpoint,
                also,
                shaped,
                [],
                package_halo(model.eval().cpu(), cfg.model.spatial_dims, cfg.model.in_channels),
            )
            print(
                "no validation: the foreground is split into objects by shape (method graph, split shape); "
                "give --val-images or more annotated objects to let the run choose",
                flush=True,
            )
            return None
        if not samples or not (uses_kernel_width(method) or method == "graph"):
            return None
        state = load_checkpoint(checkpoint, map_location=self.device)
        model = copy.deepcopy(self.student)
        model.load_state_dict(state["model_state"])
        model.eval()
        embeddings = [self._predict_full(image, model).numpy() for image, _ in samples]
        # the grid decodes every image some 30 times: large validation volumes are tuned on their centre
        views = [centre_crop(labels.shape, TUNE_MAX_VOXELS) for _, labels in samples]
        result = tune_clustering(
            [emb[(slice(None),) + view] for emb, view in zip(embeddings, views)],
            [labels[view] for (_, labels), view in zip(samples, views)],
            recommended,
            ignore_label=cfg.data.ignore_label,
        )
        if result.method == "graph":
            update: dict[str, Any] = {"method": "graph", "min_size": result.min_size, "params": dict(result.params)}
        elif result.method == method:
            update = {"bandwidth": result.bandwidth, "min_size": result.min_size}
        else:  # the foreground split by shape won: its own parameters replace the method's
            params = {"min_distance": result.min_distance}
            update = {"method": result.method, "bandwidth": None, "min_size": result.min_size, "params": params}
        tuned = cfg.clustering.model_copy(update=update)
        self.config = cfg.model_copy(update={"clustering": tuned})
        # with the context a tile needs, measured once on these weights (segment / export read it back)
        halo = package_halo(model.cpu(), cfg.model.spatial_dims, cfg.model.in_channels)
        store_tuning(checkpoint, also, tuned, result.table, halo)
        if self.progress:
            if result.method == "graph":
                chosen = "method graph, " + ", ".join(f"{k} {_param_text(v)}" for k, v in result.params.items())
            elif result.method != "watershed":
                chosen = f"bandwidth {result.bandwidth:g}"
            else:
                chosen = f"method watershed, min_distance {result.min_distance}"
            print(
                f"post-processing tuned on {len(samples)} validation image(s): {chosen}, "
                f"min_size {result.min_size} (score {result.score:.3f})",
                flush=True,
            )
        return result

    def _predict_full(self, image: np.ndarray, model: nn.Module | None = None) -> torch.Tensor:
        """Embeddings ``[E, *S]`` (cpu) of a whole image with the student (or ``model``)."""
        network = self.student if model is None else model
        return predict_whole(network, image, self.device, self.predict_dtype)

    # ------------------------------------------------------------------- fit
    def fit(self, resume: bool = False, max_steps: int | None = None) -> TrainResult:
        """Train until ``config.steps`` (or ``max_steps`` more steps).

        Parameters
        ----------
        resume:
            Continue from ``out_dir/last.pt``; an error if it does not exist.
        max_steps:
            Stop after this many steps in this call (the run stays resumable).

        Raises
        ------
        LockError
            Another run uses ``out_dir`` (:class:`spoco_zoo.runlock.RunLock`, held by rank 0 while the run lasts).
        """
        if not self.context.is_main:  # the other ranks of a distributed run write nothing
            return self._fit(resume, max_steps)
        with RunLock(self.out_dir):
            return self._fit(resume, max_steps)

    def _fit(self, resume: bool, max_steps: int | None) -> TrainResult:
        self.setup()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        last_path, best_path = self.out_dir / LAST, self.out_dir / BEST
        if resume:
            if not last_path.is_file():
                raise FileNotFoundError(f"{last_path}: nothing to resume from")
            self.restore(last_path)
        elif last_path.exists():
            raise FileExistsError(f"{last_path} exists: pass --resume to continue that run or choose another --out")
        main = self.context.is_main  # rank 0 validates and writes; every rank trains
        log: TrainingLog | None = None
        if main:
            config_text = yaml.safe_dump(self.config.to_dict(), sort_keys=False)
            atomic_write_bytes(self.out_dir / "config.yaml", config_text.encode("utf-8"))
            log = TrainingLog(self.out_dir, resume=resume)  # metrics.csv, training_curves.png, TensorBoard

        cfg = self.config
        context = cfg.data.context_margins()
        end = cfg.steps if max_steps is None else min(cfg.steps, self.step + max_steps)
        interrupted = False
        started, first_step = time.perf_counter(), self.step
        ctx = self.context
        loader = step_loader(
            self.train_set, self.step, end, cfg.data.batch_size, cfg.data.num_workers, ctx.rank, ctx.world_size
        )
        batches = iter(loader)  # workers start here, before the signal handlers below
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

        def _request_stop(signum: int, frame: Any) -> None:
            raise _StopRequested(signal.Signals(signum).name)

        try:
            for sig in previous:
                signal.signal(sig, _request_stop)
        except ValueError:  # not in the main thread: no signal handling
            previous = {}
        try:
            with ProgressBar("train", cfg.steps, enabled=self.progress and main, completed=self.step) as bar:
                while self.step < end:
                    if self.stop_event.is_set():
                        raise _StopRequested("stop requested")
                    terms = self.train_step(self.step, to_device(next(batches), self.device))
                    self.step += 1
                    if self.step % cfg.log_every == 0 or self.step == end:
                        self.history.append({"step": float(self.step), **terms})
                        if log is not None:
                            log.log(self.step, terms)
                    bar.update(self.step, format_values(terms, self.metrics))
                    if self.on_step is not None:
                        self.on_step(self.step, terms)
                    if main and (self.step % cfg.val_every == 0 or self.step == cfg.steps):
                        self.metrics = self.validate()
                        if log is not None:
                            log.log(self.step, self.metrics)
                        bar.print(f"step {self.step}/{cfg.steps}: " + format_values(terms, self.metrics))
                        score = checkpoint_score(self.metrics)
                        # the validation images are too small to show what the context steps mend (the
                        # interior of large volumes): their first checkpoint replaces any from before them
                        saw_context = uses_context(self.step - 1, cfg.steps, context, cfg.data.context_steps)
                        if score > self.best_score or (saw_context and not self.best_saw_context):
                            self.best_score, self.best_saw_context = score, saw_context
                            save_checkpoint(best_path, self._state())
                        bar.update(self.step, format_values(terms, self.metrics))
                    if main and (self.step % cfg.checkpoint_every == 0 or self.step == end):
                        save_checkpoint(last_path, self._state())
        except (_StopRequested, KeyboardInterrupt):
            interrupted = True
            if main:
                save_checkpoint(last_path, self._state())
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if log is not None:
                log.close()
            del batches, loader  # stops the workers
        elapsed = time.perf_counter() - started
        if main and not best_path.exists():
            save_checkpoint(best_path, self._state())
        if main and not interrupted and self.step == cfg.steps and cfg.clustering.tune:
            self.tune_postprocessing(best_path, also=[last_path])
        if self.owns_process_group:
            self.context.stop()
            self.owns_process_group = False
        return TrainResult(
            step=self.step,
            last_checkpoint=last_path,
            best_checkpoint=best_path,
            history=list(self.history),
            metrics=dict(self.metrics),
            interrupted=interrupted,
            steps_per_second=(self.step - first_step) / elapsed if elapsed > 0 else math.nan,
        )
