"""What every zoo consumer gets: the in-graph instances of a package vs ``spoco-zoo segment``.

For one trained checkpoint, exported as a user exports it (``spoco-zoo export --variant full`` and
``--variant instances``, plus ``--variant embeddings`` for the network's own time), per image set:

* (a) ``segment``: ``spoco-zoo segment --checkpoint``'s steps (network + the checkpoint's
  recommended clustering) in eager PyTorch;
* (b) ``torchscript``: the package's TorchScript weights, output ``instances`` (what deepImageJ runs;
  timed on the third call, after TorchScript's profiling and optimising calls);
* (c) ``onnxruntime``: the package's ONNX weights in ONNX Runtime alone
  (``examples/onnxruntime_instances.py``'s normalisation and padding);
* (d) ``bioimageio.core tiled``: the ``instances`` package predicted block-wise by
  bioimageio.core (``predict_sample_with_fixed_blocking``, blocks of ``--tile`` plus the declared
  halo), as a tiling consumer runs it.

The ONNX routes are timed on their second call; the first (which also sizes ONNX Runtime's memory
arena) is reported beside it. The decoder's time is the whole graph's minus the network's (the
``embeddings`` package), the best of three turns of the two in one process, so that both see the same
machine load. Their peak memory is the first call's (one prediction), the peak after
the repeat beside it.

Each route runs in its own process (``--threads`` threads) so that its time (network + decoding,
after loading) and peak memory (the process's peak RSS) are its own. Scores: SBD, mAP, AP50 against
dense labels. For the tiled route also the share of objects of the whole-image in-graph labels that
touch no block border and come out identical (IoU >= 0.95) -- the whole-image pass as bioimageio.core
runs it (the image border padded, mirrored, by the halo, as its blocks pad it; TorchScript weights;
an image that fits one block is predicted in one unpadded pass, the reference then) and, beside it,
the unpadded pass of (b) -- and how many ids occur in two block
cores (each block writes its core only, so such an id was given by two blocks: a collision).

    python benchmarks/consumer_instances.py --checkpoint runs/quickstart/best.pt
    python benchmarks/consumer_instances.py --checkpoint runs/quickstart/best.pt --sizes 256 --no-tiled  # quick
    python benchmarks/consumer_instances.py --checkpoint runs/real_nuclei/spoco-1/best.pt --real
    python benchmarks/consumer_instances.py --checkpoint runs/model-3d/best.pt --volume --tile 64

``--real`` scores the bottom half of the shared real nuclei image (``benchmarks/real_nuclei.py``'s
split) instead of synthetic images, ``--volume`` 3D synthetic volumes (``spoco-zoo train --3d``'s
data). Prints one table; ``--json`` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROUTES = ("segment", "torchscript", "onnxruntime", "bioimageio.core tiled")


# ----------------------------------------------------------------------------- worker (one route, one image)
def _normalized(package: Path, image: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """The package's preprocessing and padding (``examples/onnxruntime_instances.py``): ``[1, C, *S']``."""
    sys.path.insert(0, str(HERE.parent / "examples"))
    from onnxruntime_instances import normalize, read_package, valid_shape

    rdf, _ = read_package(package)
    inp = rdf["inputs"][0]
    x = normalize(image[None], inp.get("preprocessing", []))
    target = valid_shape(x.shape[1:], inp["axes"])
    x = np.pad(x, [(0, 0)] + [(0, t - s) for s, t in zip(x.shape[1:], target)], mode="symmetric")
    return x[None].astype(np.float32), image.shape


def _halo(package: Path) -> list[int]:
    """The package's declared output halo per spatial axis (pixels per side)."""
    import zipfile

    import yaml

    with zipfile.ZipFile(package) as zf:
        rdf_name = next(n for n in zf.namelist() if n.endswith(("rdf.yaml", "bioimageio.yaml")))
        outputs = yaml.safe_load(zf.read(rdf_name))["outputs"]
    space = [a for a in outputs[0]["axes"] if a.get("type") == "space"]
    return [max(int(b.get("halo", 0)) for t in outputs for b in t["axes"] if b.get("id") == a["id"]) for a in space]


def _weights_file(package: Path, weight_format: str, out: Path) -> Path:
    """Extract the package's ``weight_format`` weights (the RDF's ``weights.<format>.source``) to ``out``."""
    import zipfile

    import yaml

    with zipfile.ZipFile(package) as zf:
        rdf_name = next(n for n in zf.namelist() if n.endswith(("rdf.yaml", "bioimageio.yaml")))
        source = yaml.safe_load(zf.read(rdf_name))["weights"][weight_format]["source"]
        out.write_bytes(zf.read(source))
    return out


def worker(args: argparse.Namespace) -> None:
    """Run one route on one image; save the labels, print ``{"seconds", "peak_mb"}``."""
    import torch

    torch.set_num_threads(args.threads)
    image = np.load(args.image)
    crop = tuple(slice(0, s) for s in image.shape)
    if args.route == "segment":
        from spoco_zoo.cluster import cluster_embeddings
        from spoco_zoo.data.normalize import normalize
        from spoco_zoo.inference import predict_embeddings
        from spoco_zoo.train.checkpoint import load_model

        model, config = load_model(Path(args.checkpoint))
        start = time.perf_counter()
        x = normalize(image[None].astype(np.float32), config.data.normalization)
        emb = predict_embeddings(model, x, None, 0, model.size_step, "cpu")
        labels = cluster_embeddings(emb, **config.recommended_clustering())
    elif args.route in ("torchscript", "torchscript-padded", "onnxruntime", "embeddings-onnx"):
        x, _ = _normalized(Path(args.package), image)
        if args.route == "torchscript-padded":  # bioimageio.core's whole-image pass: border padded by the halo
            halo = _halo(Path(args.package))
            x = np.pad(x, [(0, 0), (0, 0)] + [(h, h) for h in halo], mode="symmetric")
            crop = tuple(slice(h, h + s) for h, s in zip(halo, image.shape))
        if args.route.startswith("torchscript"):
            module = torch.jit.load(
                str(_weights_file(Path(args.package), "torchscript", Path(args.labels + ".pt")))
            ).eval()
            with torch.no_grad():
                for _ in range(2):  # the first calls profile and optimise (TorchScript's executor): not timed
                    module(torch.from_numpy(x))
                start = time.perf_counter()
                out = module(torch.from_numpy(x))
            labels = out[-1][0, 0].numpy()[crop]
        else:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = args.threads
            session = ort.InferenceSession(
                str(_weights_file(Path(args.package), "onnx", Path(args.labels + ".onnx"))),
                options,
                providers=["CPUExecutionProvider"],
            )
            feed = {session.get_inputs()[0].name: x}
            start = time.perf_counter()
            session.run(None, feed)  # the first call also sizes ONNX Runtime's memory arena: timed apart
            first = time.perf_counter() - start
            first_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # one prediction's peak
            start = time.perf_counter()
            values = session.run(None, feed)
            repeat = time.perf_counter() - start
            labels = values[-1][0, 0][crop] if args.route == "onnxruntime" else np.zeros(image.shape, np.int32)
            paired: tuple[float, float] | None = None
            if args.network_package:  # the network alone, timed in turns with the whole graph (same load)
                network = ort.InferenceSession(
                    str(_weights_file(Path(args.network_package), "onnx", Path(args.labels + ".network.onnx"))),
                    options,
                    providers=["CPUExecutionProvider"],
                )
                network.run(None, feed)
                whole_times, network_times = [], []
                for _ in range(3):
                    start = time.perf_counter()
                    session.run(None, feed)
                    whole_times.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    network.run(None, feed)
                    network_times.append(time.perf_counter() - start)
                paired = (min(whole_times), min(network_times))
    else:  # bioimageio.core, block-wise
        from spoco_zoo.zoo.predict import zoo_predict

        start = time.perf_counter()
        result = zoo_predict(
            args.package,
            image,
            weight_format="torchscript",
            devices=["cpu"],
            tile_shape=(args.tile,) * image.ndim,
        )
        labels = result.instances
    seconds = time.perf_counter() - start
    if args.route in ("onnxruntime", "embeddings-onnx"):
        seconds = repeat
    np.save(args.labels, np.asarray(labels, np.int64))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = {"seconds": seconds, "peak_mb": peak}
    if args.route in ("onnxruntime", "embeddings-onnx"):
        # peak_mb: one prediction (the first call); repeat_peak_mb: after the timed repeat, whose
        # allocations ONNX Runtime's arena may add to the first's
        figures.update(first_s=first, peak_mb=first_peak, repeat_peak_mb=peak)
        if paired is not None:
            figures.update(paired_whole_s=paired[0], paired_network_s=paired[1])
    print(json.dumps(figures))


# ----------------------------------------------------------------------------- orchestration
def export(checkpoint: Path, out: Path, variant: str) -> Path:
    package = out / f"{variant}.zip"
    if not package.exists():
        cmd = [sys.executable, "-m", "spoco_zoo.cli.main", "export", str(checkpoint), "--output", str(package)]
        cmd += ["--variant", variant, "--no-validate", "--formats", "pytorch_state_dict,torchscript,onnx"]
        print(f"export --variant {variant} ...", flush=True)
        subprocess.run(cmd, check=True, capture_output=True)
    return package


def datasets(args: argparse.Namespace) -> list[tuple[str, list[tuple[np.ndarray, np.ndarray]]]]:
    """``(name, [(image, labels)])`` per image set: ``spoco-zoo synthetic``'s images (the quickstart's density)."""
    from spoco_zoo.data.synthetic import make_synthetic_dataset

    if args.real:
        sys.path.insert(0, str(HERE))
        from real_nuclei import DATA, split_data

        _, _, image, truth = split_data(DATA, args.out / "real_data")
        return [("real nuclei, bottom half (256x256)", [(image.astype(np.float32), truth)])]
    sets = []
    if args.volume:  # spoco-zoo train --3d's synthetic volumes: 40 objects per 32x128x128
        sets.append(("2 x 3D 32x128x128", make_synthetic_dataset(2, [32, 128, 128], 40, 1234)))
        sets.append(("3D 64x256x256, 320 objects", make_synthetic_dataset(1, [64, 256, 256], 320, 1235)))
        return sets
    for size in args.sizes:
        if size == 256:  # spoco-zoo synthetic --n 3 --seed 1234: the quickstart's held-out images
            sets.append(("3 x 256x256 (quickstart held-out)", make_synthetic_dataset(3, [256, 256], 40, 1234)))
        else:
            n = 40 * (size // 256) ** 2
            sets.append((f"{size}x{size}, {n} objects", make_synthetic_dataset(1, [size, size], n, 77 + size)))
    return sets


def run_route(route: str, image: np.ndarray, args: argparse.Namespace, packages: dict[str, Path], tag: str) -> dict:
    path = args.out / f"{tag}.npy"
    np.save(path, image)
    labels = args.out / f"{tag}-{route.split()[0]}-labels.npy"
    package = packages["instances" if route.startswith("bioimageio") else "full"]
    if route == "embeddings-onnx":
        package = packages["embeddings"]
    cmd = [sys.executable, __file__, "--worker", route, "--image", str(path), "--labels", str(labels)]
    cmd += ["--package", str(package), "--checkpoint", str(args.checkpoint), "--threads", str(args.threads)]
    cmd += ["--tile", str(args.tile)]
    if route == "onnxruntime":
        cmd += ["--network-package", str(packages["embeddings"])]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{route} failed:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["labels"] = np.load(labels)
    return figures


def identical_share(whole: np.ndarray, tiled: np.ndarray, tile: int) -> tuple[float, int, int]:
    """Objects of ``whole`` inside one block core that ``tiled`` reproduces (IoU >= 0.95); their count;
    ids of ``tiled`` used by more than one connected object (collisions)."""
    from scipy import ndimage as ndi

    ids = np.unique(whole[whole > 0])
    inside = same = 0
    slices = ndi.find_objects((np.searchsorted(ids, whole) + 1) * (whole > 0))  # box of ids[k] at k
    for k, box in enumerate(slices):
        if box is None:
            continue
        if any((s.start // tile) != ((s.stop - 1) // tile) for s in box):
            continue  # crosses a block border
        inside += 1
        mask = whole[box] == ids[k]
        values, counts = np.unique(tiled[box][mask], return_counts=True)
        best = values[np.argmax(counts)]
        if best == 0:
            continue
        other = tiled == best
        iou = (counts.max()) / (mask.sum() + other.sum() - counts.max())
        same += iou >= 0.95
    # each block writes its core only, so an id found in two cores was given by two blocks
    cells = np.ravel_multi_index(
        np.meshgrid(*[np.arange(s) // tile for s in tiled.shape], indexing="ij"),
        [-(-s // tile) for s in tiled.shape],
    )
    pairs = np.unique(np.stack([tiled[tiled > 0], cells[tiled > 0]]), axis=1)
    shared = int((np.bincount(np.unique(pairs[0], return_inverse=True)[1]) > 1).sum())
    return (same / inside if inside else float("nan")), inside, shared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=Path("runs/quickstart/best.pt"))
    parser.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")], default=[256, 1024, 2048])
    parser.add_argument("--real", action="store_true", help="score the real nuclei image's bottom half instead")
    parser.add_argument("--volume", action="store_true", help="3D volumes instead (a checkpoint of a 3D model)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tile", type=int, default=256, help="block core of the tiled route (+ the halo)")
    parser.add_argument("--tiled", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--out", type=Path, default=Path("runs/consumer_instances"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--route", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--image", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--labels", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--package", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--network-package", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.route = args.worker
        worker(args)
        return
    from spoco_zoo.metrics import evaluate_instances

    args.out.mkdir(parents=True, exist_ok=True)
    packages = {v: export(args.checkpoint, args.out, v) for v in ("full", "instances", "embeddings")}
    routes = [r for r in ROUTES if args.tiled or not r.startswith("bioimageio")]
    rows: list[dict[str, Any]] = []
    for name, items in datasets(args):
        extra = ["embeddings-onnx"] + (["torchscript-padded"] if args.tiled else [])
        figures: dict[str, list[dict]] = {r: [] for r in [*routes, *extra]}
        for i, (image, truth) in enumerate(items):
            tag = f"{name.split()[0]}-{i}"
            for route in figures:
                result = run_route(route, image, args, packages, tag)
                if route not in extra:
                    result.update(evaluate_instances(result["labels"], truth))
                figures[route].append(result)
                print(f"  {name} #{i} {route}: {result['seconds']:.2f} s", flush=True)
            if "bioimageio.core tiled" in figures:
                tiled = figures["bioimageio.core tiled"][-1]
                # against bioimageio.core's whole-image pass (the border padded by the halo, as in its blocks)
                # (an image that fits one block is predicted in one unpadded pass: then that is the reference)
                one_block = all(s <= args.tile for s in image.shape)
                padded = figures["torchscript" if one_block else "torchscript-padded"][-1]["labels"]
                share, inside, shared = identical_share(padded, tiled["labels"], args.tile)
                # and against the unpadded pass of (b) and (c): differs near the image border only
                unpadded, _, _ = identical_share(figures["torchscript"][-1]["labels"], tiled["labels"], args.tile)
                tiled.update(identical=share, identical_unpadded=unpadded, inside=inside, shared_ids=shared)
        figures.pop("torchscript-padded", None)
        embeddings_runs = figures.pop("embeddings-onnx")
        network = float(np.mean([f["seconds"] for f in embeddings_runs]))
        for route, results in figures.items():
            row = {"images": name, "route": route}
            for key in ("sbd", "map", "ap50", "seconds", "peak_mb"):
                row[key] = float(np.mean([r[key] for r in results]))
            if route == "onnxruntime":
                # the decoder's time: the whole graph minus the network alone, timed in turns in one process
                whole = float(np.mean([r["paired_whole_s"] for r in results]))
                row["network_s"] = float(np.mean([r["paired_network_s"] for r in results]))
                row["decoder_s"] = whole - row["network_s"]
                row["network_alone_s"] = network
                row["first_s"] = float(np.mean([r["first_s"] for r in results]))
                row["network_first_s"] = float(np.mean([f["first_s"] for f in embeddings_runs]))
                row["repeat_peak_mb"] = float(np.mean([r["repeat_peak_mb"] for r in results]))
            if route.startswith("bioimageio"):
                row["identical"] = float(np.nanmean([r["identical"] for r in results]))
                row["identical_unpadded"] = float(np.nanmean([r["identical_unpadded"] for r in results]))
                row["shared_ids"] = int(sum(r["shared_ids"] for r in results))
            rows.append(row)
    print()
    print(f"checkpoint {args.checkpoint}; {args.threads} threads per route; tiles: core {args.tile} + halo")
    print("| images | route | SBD | mAP | AP50 | time s | peak MB | notes |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for row in rows:
        notes = ""
        if "decoder_s" in row:
            notes = (
                f"network alone {row['network_s']:.2f} s, decoder {row['decoder_s']:.2f} s (best of 3 turns); "
                f"first call {row['first_s']:.2f} s (network alone {row['network_first_s']:.2f} s); "
                f"peak after the repeat {row['repeat_peak_mb']:.0f} MB"
            )
        if "identical" in row:
            notes = (
                f"{100 * row['identical']:.0f} % of inner objects identical to bioimageio.core's whole-image pass "
                f"({100 * row['identical_unpadded']:.0f} % to the unpadded pass), {row['shared_ids']} ids shared"
            )
        print(
            f"| {row['images']} | {row['route']} | {row['sbd']:.3f} | {row['map']:.3f} | {row['ap50']:.3f} | "
            f"{row['seconds']:.2f} | {row['peak_mb']:.0f} | {notes} |"
        )
    best: dict[str, dict] = {}
    for row in rows:
        if row["images"] not in best or row["sbd"] > best[row["images"]]["sbd"]:
            best[row["images"]] = row
    print()
    for row in rows:
        if row["route"] in ("torchscript", "onnxruntime"):
            ref = best[row["images"]]
            ok = row["sbd"] >= ref["sbd"] - 0.02 and row["map"] >= ref["map"] - 0.03
            print(
                f"target in-graph within 0.02 SBD / 0.03 mAP of the best route ({row['images']}, {row['route']}): "
                f"{'met' if ok else 'MISSED'} ({row['sbd']:.3f}/{row['map']:.3f} vs {ref['sbd']:.3f}/{ref['map']:.3f})"
            )
        if "decoder_s" in row and "1024" in row["images"]:
            ok = row["decoder_s"] <= row["network_s"]
            print(f"target decoder time <= network time at 1024x1024 (ONNX Runtime): {'met' if ok else 'MISSED'}")
        if row["route"] == "onnxruntime" and "2048" in row["images"]:
            print(f"target ONNX peak memory at 2048x2048 < 3 GB: {'met' if row['peak_mb'] < 3072 else 'MISSED'}")
        if "identical" in row:
            ok = row["identical"] >= 0.95 and row["shared_ids"] == 0
            print(f"target tiles: >= 95 % identical, no shared ids ({row['images']}): {'met' if ok else 'MISSED'}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
