"""What each zoo consumer gets: ilastik (single output, its stated rules), deepImageJ (ONNX IR/opset,
TorchScript format), publishable metadata (bioimageio.core's test without warnings)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from spoco_zoo.errors import ExportError
from spoco_zoo.exporters.options import ExportOptions
from spoco_zoo.exporters.package import ExportResult, export_package
from spoco_zoo.zoo.consumers import ilastik_problems, onnx_problems

FAST_INGRAPH = {"n_iter": 2, "min_size": 0}  # random weights: every fragment an object


@pytest.fixture(scope="module")
def ilastik_package(random_checkpoint_2d: Path, tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    out = tmp_path_factory.mktemp("ilastik") / "spoco_instances.zip"
    return export_package(
        random_checkpoint_2d, out, ExportOptions(variant="instances", test_shape=(64, 64), ingraph=FAST_INGRAPH)
    )


def _load(package: Path) -> Any:
    from bioimageio.spec import load_description

    return load_description(package, perform_io_checks=False, format_version="latest")


def test_instances_variant_passes_ilastiks_model_checks(ilastik_package: ExportResult) -> None:
    """ilastik's rules (modelStateControl._check_model_compatible, BIOModelData, ModelSession), restated here."""
    descr = _load(ilastik_package.path)
    assert len(descr.inputs) == 1 and len(descr.outputs) == 1  # "only models with one input/output tensor"
    (out,) = descr.outputs
    assert str(out.id) == "instances"
    channel = [a for a in out.axes if str(a.id) == "channel"]
    assert len(channel) == 1 and channel[0].size == 1  # a channel axis; ilastik's numClasses = 1
    assert sum(a.type == "space" for a in out.axes) >= 2
    assert [str(a.id) for a in out.axes] == [str(a.id) for a in descr.inputs[0].axes]  # read with the input's axes
    assert descr.weights.torchscript is not None and descr.weights.pytorch_state_dict is not None
    assert ilastik_problems(descr) == []
    assert "loads it" in ilastik_package.consumers["ilastik"]


def test_ilastik_route_runs_the_repackaged_torchscript(ilastik_package: ExportResult, tmp_path: Path) -> None:
    """As ilastik does: repackage keeping torchscript first, run it with bioimageio.core on a block of its shape."""
    from bioimageio.core import Sample, Tensor, create_prediction_pipeline
    from bioimageio.core.common import MemberId
    from bioimageio.spec import save_bioimageio_package_to_stream

    stream = io.BytesIO()
    with zipfile.ZipFile(ilastik_package.path) as zf:
        save_bioimageio_package_to_stream(zf, output_stream=stream, weights_priority_order=("torchscript",))
    repacked = tmp_path / "ilastik.zip"
    repacked.write_bytes(stream.getvalue())
    descr = _load(repacked)
    assert descr.weights.torchscript is not None and descr.weights.onnx is None
    with zipfile.ZipFile(repacked) as zf:
        raw = np.load(io.BytesIO(zf.read(yaml.safe_load(zf.read("rdf.yaml"))["inputs"][0]["test_tensor"]["source"])))
        expected = np.load(io.BytesIO(zf.read("test_output_instances.npy")))
    tensor = Tensor.from_numpy(raw, dims=("batch", "channel", "y", "x"))
    sample = Sample(members={MemberId("raw"): tensor}, stat={}, id=0)
    with create_prediction_pipeline(descr, devices=["cpu"]) as pp:  # tiktorch's call
        out = pp.predict_sample_without_blocking(sample, skip_input_padding=True, skip_output_cropping=True)
    labels = out.members[MemberId("instances")].data.to_numpy()
    assert labels.shape == expected.shape == (1, 1, 64, 64)
    assert np.array_equal(labels, expected) and len(np.unique(labels)) > 2
    as_ilastik = labels.astype(np.float32)  # ilastik's prediction maps are float32: ids stay exact
    assert np.array_equal(as_ilastik.astype(np.int64), labels)


def test_two_output_package_is_flagged_for_ilastik(tmp_path: Path, random_checkpoint_2d: Path) -> None:
    result = export_package(
        random_checkpoint_2d,
        tmp_path / "full.zip",
        ExportOptions(formats="pytorch_state_dict", test_shape=(64, 64), ingraph=FAST_INGRAPH),
    )
    problems = ilastik_problems(_load(result.path))
    assert problems == ["ilastik supports only models with one output tensor, this one has 2"]
    assert "does not load this package" in result.consumers["ilastik"]
    assert "--variant instances" in result.consumers["ilastik"]


def test_onnx_within_onnxruntime_113_limits(ilastik_package: ExportResult, tmp_path: Path) -> None:
    """IR version <= 8 and opset <= 17, read from the file itself; labels match eager PyTorch."""
    import onnx

    with zipfile.ZipFile(ilastik_package.path) as zf:
        rdf = yaml.safe_load(zf.read("rdf.yaml"))
        (tmp_path / "w.onnx").write_bytes(zf.read(rdf["weights"]["onnx"]["source"]))
    proto = onnx.load(str(tmp_path / "w.onnx"))
    assert proto.ir_version <= 8
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 17)]
    assert rdf["weights"]["onnx"]["opset_version"] == 17
    assert onnx_problems(tmp_path / "w.onnx") == []
    assert ilastik_package.parity["onnx"].max_label_ppm == 0.0


class _FakeNetwork:
    """Answers the validator's look-ups of one GitHub user and one repository URL with 200; refuses the rest."""

    def __init__(self, user: str, repo: str) -> None:
        self.user, self.repo = user, repo
        self.asked: list[str] = []

    def respond(self, method: str, url: Any, **_: Any) -> Any:
        import httpx

        url = str(url)
        self.asked.append(url)
        ok = url in (f"https://api.github.com/users/{self.user}", self.repo)
        if not ok:
            raise httpx.ConnectError(f"network disabled in test ({url})")
        return httpx.Response(200, request=httpx.Request(method, url))


def test_publishable_metadata_passes_bioimageio_test_without_warnings(
    random_checkpoint_2d: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx
    from bioimageio.core import test_model

    net = _FakeNetwork("spoco-tester", "https://github.com/spoco-tester/spoco-model")
    monkeypatch.setattr(httpx, "get", lambda url, **kw: net.respond("GET", url, **kw))
    monkeypatch.setattr(httpx, "request", lambda method, url, **kw: net.respond(method, url, **kw))
    result = export_package(
        random_checkpoint_2d,
        tmp_path / "published.zip",
        ExportOptions(
            variant="embeddings",
            formats="pytorch_state_dict,torchscript",
            test_shape=(64, 64),
            name="SPOCO nuclei test model",
            description="A test of the publishing fields.",
            authors=["Ada Tester;affiliation=Test Lab;orcid=0000-0002-1825-0097"],
            maintainers=["Ada Tester;github_user=spoco-tester"],
            license="CC-BY-4.0",
            git_repo="https://github.com/spoco-tester/spoco-model",
            version="1.2.0",
        ),
    )
    assert result.notes == []  # nothing missing for bioimage.io
    with zipfile.ZipFile(result.path) as zf:
        rdf = yaml.safe_load(zf.read("rdf.yaml"))
    assert rdf["license"] == "CC-BY-4.0" and rdf["version"] == "1.2.0"
    assert rdf["git_repo"] == "https://github.com/spoco-tester/spoco-model"
    assert rdf["maintainers"] == [{"name": "Ada Tester", "github_user": "spoco-tester"}]
    assert rdf["authors"][0]["orcid"] == "0000-0002-1825-0097"
    summary = test_model(result.path, devices=["cpu"])
    assert summary.status == "passed"
    warnings = [(d.name, w.msg) for d in summary.details for w in (d.warnings or []) if w.severity > 20]
    assert warnings == []
    assert "https://api.github.com/users/spoco-tester" in net.asked  # the checks ran, against the fake network


def test_default_export_says_what_bioimageio_still_needs(tmp_path: Path, random_checkpoint_2d: Path) -> None:
    result = export_package(
        random_checkpoint_2d,
        tmp_path / "m.zip",
        ExportOptions(variant="embeddings", formats="pytorch_state_dict", test_shape=(64, 64)),
    )
    assert any("--maintainer" in n for n in result.notes) and any("--author" in n for n in result.notes)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"license": "MIT-ish"}, "--license 'MIT-ish': not an SPDX"),
        ({"maintainers": ["Ada"]}, "a maintainer needs github_user"),
        ({"authors": ["Ada;twitter=x"]}, "--author 'Ada;twitter=x'"),
        ({"git_repo": "github.com/x"}, "--git-repo 'github.com/x'"),
        ({"variant": "ilastik"}, "--variant 'ilastik': choose one of full, instances, embeddings"),
    ],
)
def test_bad_publishing_options_name_the_option(
    random_checkpoint_2d: Path, tmp_path: Path, kwargs: dict, message: str
) -> None:
    with pytest.raises(ExportError, match=message.replace("(", r"\(").replace("?", r"\?")):
        export_package(random_checkpoint_2d, tmp_path / "m.zip", ExportOptions(**kwargs))
    assert not (tmp_path / "m.zip").exists()
