"""Packages cannot carry code: no Python from a package runs unless --trust-package-code is given.

One small embeddings-only package is exported per session; the hostile variants are edits of it
(architecture source changed and its sha256 updated, a library callable, custom postprocessing, unsafe
zip members). Every edit writes a marker file when its code runs, so each test shows both that the
code would run (with --trust-package-code) and that spoco-zoo does not run it.
"""

from __future__ import annotations

import hashlib
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import yaml
from typer.testing import CliRunner

from spoco_zoo.cli.main import app
from spoco_zoo.errors import PackageError
from spoco_zoo.exporters.options import ExportOptions
from spoco_zoo.exporters.package import ExportResult, export_package
from spoco_zoo.zoo.trust import (
    check_package_file,
    installed_architecture,
    installed_architectures,
    package_code,
    safe_description,
)

runner = CliRunner()


@pytest.fixture(scope="session")
def plain_package(random_checkpoint_2d: Path, tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    out = tmp_path_factory.mktemp("trusted") / "plain.zip"
    return export_package(random_checkpoint_2d, out, ExportOptions(test_shape=(64, 64), variant="embeddings"))


def _edit(src: Path, dst: Path, change: Callable[[dict[str, Any], dict[str, bytes]], None]) -> Path:
    """Copy a package, letting ``change(rdf, files)`` edit the description and the member files."""
    with zipfile.ZipFile(src) as zf:
        files = {name: zf.read(name) for name in zf.namelist()}
    rdf = yaml.safe_load(files.pop("rdf.yaml"))
    change(rdf, files)
    with zipfile.ZipFile(dst, "w") as zf:
        zf.writestr("rdf.yaml", yaml.safe_dump(rdf, sort_keys=False))
        for name, data in files.items():
            zf.writestr(name, data)
    return dst


def _marker_code(marker: Path) -> str:
    return f"\nopen({str(marker)!r}, 'a').write('package code ran\\n')\n"


def _edited_architecture(src: Path, dst: Path, marker: Path) -> Path:
    def change(rdf: dict[str, Any], files: dict[str, bytes]) -> None:
        arch = rdf["weights"]["pytorch_state_dict"]["architecture"]
        code = files[arch["source"]] + _marker_code(marker).encode()
        files[arch["source"]] = code
        arch["sha256"] = hashlib.sha256(code).hexdigest()  # a consistent, valid package

    return _edit(src, dst, change)


def _image(path: Path) -> Path:
    tifffile.imwrite(path, np.random.default_rng(0).random((64, 64)).astype(np.float32))
    return path


def test_installed_architectures_are_what_the_exporter_ships() -> None:
    import torch

    from spoco_zoo.zoo.architecture import (
        embeddings_architecture,
        installed_instances_model,
        instances_architecture,
        load_architecture,
    )

    unet = {"in_channels": 1, "out_channels": 4, "depth": 2, "base_features": 4}
    known = {(a.sha256, a.callable): a for a in installed_architectures()}
    plain = embeddings_architecture(unet)
    combined = instances_architecture(unet, {"n_seeds": 16})
    labels = instances_architecture(unet, {"n_seeds": 16}, "SpocoUNetInstanceLabels")  # the 'instances' variant
    assert known[plain.sha256, "UNet"].import_from == "spoco_zoo.models.unet"
    assert known[combined.sha256, combined.callable].library_callable == "installed_instances_model"
    assert known[labels.sha256, labels.callable].library_callable == "installed_labels_model"
    # the installed instances network is the shipped one: same state dict, same outputs
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        shipped = load_architecture(combined, Path(tmp))(**combined.kwargs).eval()
    ours = installed_instances_model(**combined.kwargs).eval()
    ours.load_state_dict(shipped.state_dict())
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        (emb_a, lab_a), (emb_b, lab_b) = shipped(x), ours(x)
    assert torch.equal(emb_a, emb_b) and torch.equal(lab_a, lab_b)


def test_our_package_runs_with_the_installed_architecture(
    plain_package: ExportResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bioimageio.spec import load_description
    from bioimageio.spec.model import v0_5

    from spoco_zoo.zoo.predict import zoo_predict

    descr = load_description(plain_package.path, perform_io_checks=False)
    assert package_code(descr) == {}
    safe, chosen = safe_description(descr, plain_package.path)
    arch = safe.weights.pytorch_state_dict.architecture
    assert chosen == "pytorch_state_dict" and isinstance(arch, v0_5.ArchitectureFromLibraryDescr)
    assert (arch.import_from, arch.callable) == ("spoco_zoo.models.unet", "UNet")
    assert isinstance(descr.weights.pytorch_state_dict.architecture, v0_5.ArchitectureFromFileDescr)  # untouched

    for name in [m for m in sys.modules if m.startswith("unet_")]:  # imported by earlier tests that trust packages
        monkeypatch.delitem(sys.modules, name)
    image = np.random.default_rng(1).random((1, 64, 64)).astype(np.float32)
    state_dict = zoo_predict(plain_package.path, image, weight_format="pytorch_state_dict", devices=["cpu"])
    onnx = zoo_predict(plain_package.path, image, weight_format="onnx", devices=["cpu"])
    assert np.abs(state_dict.embeddings - onnx.embeddings).max() < 1e-4
    assert not [m for m in sys.modules if m.startswith("unet_")], "a package module was imported"


def test_edited_architecture_never_runs_without_trust(plain_package: ExportResult, tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    edited = _edited_architecture(plain_package.path, tmp_path / "edited.zip", marker)
    image = _image(tmp_path / "image.tif")

    checked = runner.invoke(app, ["validate", str(edited), "--device", "cpu"], terminal_width=200)
    assert checked.exit_code == 1, checked.output
    assert "validation FAILED for: pytorch_state_dict" in checked.stderr  # torchscript and onnx pass
    assert "not run:" in checked.stdout  # the pytorch_state_dict row says why (the table folds the text)
    refused = runner.invoke(app, ["segment", str(image), "--model", str(edited), "-o", str(tmp_path / "a")])
    assert refused.exit_code == 1 and isinstance(refused.exception, SystemExit)
    assert str(edited) in refused.stderr and "--trust-package-code" in refused.stderr
    assert "--weight-format torchscript or onnx" in refused.stderr
    assert not (tmp_path / "a").exists()
    onnx = runner.invoke(
        app, ["segment", str(image), "--model", str(edited), "-o", str(tmp_path / "b"), "--weight-format", "onnx"]
    )
    assert onnx.exit_code == 0, onnx.output
    assert (tmp_path / "b" / "image_instances.tif").is_file()
    assert not marker.exists()

    # the edit is real: trusting the package runs it
    trusted = runner.invoke(
        app, ["segment", str(image), "--model", str(edited), "-o", str(tmp_path / "c"), "--trust-package-code"]
    )
    assert trusted.exit_code == 0, trusted.output
    assert marker.read_text() == "package code ran\n"


def test_validate_runs_package_code_only_when_trusted(plain_package: ExportResult, tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    edited = _edited_architecture(plain_package.path, tmp_path / "edited2.zip", marker)
    args = ["validate", str(edited), "--device", "cpu", "--formats", "pytorch_state_dict"]
    assert runner.invoke(app, args).exit_code == 1
    assert not marker.exists()
    trusted = runner.invoke(app, [*args, "--trust-package-code"])
    assert trusted.exit_code == 0, trusted.output
    assert marker.exists()


def test_library_callables_and_custom_processing_are_refused(plain_package: ExportResult, tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"

    def library(rdf: dict[str, Any], files: dict[str, bytes]) -> None:
        # bioimageio.core would call subprocess.run(args=[...]) to "build the network"
        arch = {"callable": "run", "import_from": "subprocess", "kwargs": {"args": ["touch", str(marker)]}}
        files.pop(rdf["weights"]["pytorch_state_dict"]["architecture"]["source"])
        rdf["weights"]["pytorch_state_dict"]["architecture"] = arch

    def custom(rdf: dict[str, Any], files: dict[str, bytes]) -> None:
        code = ("def post(**kwargs):\n    return lambda *arrays: arrays[0]\n" + _marker_code(marker)).encode()
        files["post.py"] = code
        step = {"id": "custom", "callable": "post", "source": "post.py", "sha256": hashlib.sha256(code).hexdigest()}
        rdf["outputs"][0].setdefault("postprocessing", []).append(step)

    from bioimageio.spec import load_description

    image = _image(tmp_path / "image.tif")
    for name, change, format_ in (("library", library, "pytorch_state_dict"), ("custom", custom, "onnx")):
        package = _edit(plain_package.path, tmp_path / f"{name}.zip", change)
        descr = load_description(package, perform_io_checks=False)
        assert installed_architecture(descr) is None or name == "custom"
        with pytest.raises(PackageError, match="refused"):
            safe_description(descr, package, format_)
        args = ["segment", str(image), "--model", str(package), "-o", str(tmp_path / name)]
        result = runner.invoke(app, [*args, "--weight-format", format_])
        assert result.exit_code == 1 and str(package) in result.stderr and "refused" in result.stderr, result.output
        assert not marker.exists()
    checked = runner.invoke(app, ["validate", str(tmp_path / "custom.zip"), "--formats", "onnx", "--device", "cpu"])
    assert checked.exit_code == 1 and "not run:" in checked.stdout, checked.output
    assert not marker.exists()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_text("not a zip"), "not a zip file"),
        (lambda p: zipfile.ZipFile(p, "w").writestr("README.md", "hi"), "no rdf.yaml in the zip"),
        (lambda p: zipfile.ZipFile(p, "w").writestr("../evil.py", "x = 1"), "refused: zip members with absolute paths"),
        (lambda p: zipfile.ZipFile(p, "w").writestr("/abs/evil.py", "x = 1"), "'/abs/evil.py'"),
        (lambda p: p.mkdir(), "is a folder"),
    ],
    ids=["not-a-zip", "no-rdf", "dotdot", "absolute", "folder"],
)
def test_not_a_package_is_named_as_such(tmp_path: Path, make: Callable[[Path], Any], message: str) -> None:
    package = tmp_path / "model.zip"
    make(package)
    with pytest.raises(PackageError, match=message):
        check_package_file(package)
    checked = runner.invoke(app, ["validate", str(package)])
    assert checked.exit_code == 1 and isinstance(checked.exception, SystemExit)
    assert checked.stderr.startswith(f"error: {package}: ") and message in checked.stderr
    assert checked.stderr.count("\n") == 1
    image = _image(tmp_path / "image.tif")
    segmented = runner.invoke(app, ["segment", str(image), "--model", str(package), "-o", str(tmp_path / "out")])
    assert segmented.exit_code == 1 and segmented.stderr.startswith(f"error: {package}: "), segmented.output
    assert "image.tif" not in segmented.stderr  # blames the package, not the image
