"""``pytorch_state_dict`` weights: the model's state dict, reloaded into a fresh instance built from
the package's architecture file and compared with the eager model (must be identical)."""

from __future__ import annotations

from spoco_zoo.exporters.parity import compare_outputs
from spoco_zoo.exporters.tensors import model_outputs
from spoco_zoo.exporters.weight_record import WeightJob, WrittenWeight

__all__ = ["write_state_dict"]


def write_state_dict(job: WeightJob) -> WrittenWeight:
    """Save ``job.model``'s state dict to ``weights_pytorch_state_dict.pt`` and check it.

    Raises
    ------
    spoco_zoo.errors.ExportError
        The reloaded model's outputs differ from the eager ones.
    """
    import torch

    options = job.plan.options
    path = job.stage / "weights_pytorch_state_dict.pt"
    torch.save({k: v.detach().cpu().contiguous() for k, v in job.model.state_dict().items()}, path)
    reloaded = job.cls(**job.arch.kwargs).eval()
    reloaded.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    candidate = [model_outputs(reloaded, job.tensors.inputs[0])]
    parity = compare_outputs(
        "pytorch_state_dict", job.tensors.reference[:1], candidate, options.tolerance, options.label_mismatch_ppm
    )
    parity.raise_if_failed()
    return WrittenWeight(
        "pytorch_state_dict",
        path,
        parity,
        comment=f"spoco-zoo {job.plan.weights} weights after {job.plan.state.get('step', '?')} steps",
        summary=(
            f"pytorch_state_dict: {path.stat().st_size / 1e6:.2f} MB, "
            f"architecture {job.arch.filename}:{job.arch.callable}"
        ),
    )
