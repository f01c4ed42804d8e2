"""Write model_cards/examples/<variant>.md: the model card each package variant ships, from a real export.

    python scripts/model_card_examples.py                       # export runs/quickstart/best.pt (no validation)
    python scripts/model_card_examples.py --packages runs/consumer_instances   # reuse full/instances/embeddings.zip

The cards are the packages' README.md, byte for byte, so that a reader sees what bioimage.io shows
for a spoco-zoo model without exporting one.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("full", "instances", "embeddings")


def card_of(package: Path) -> str:
    """The model card (``README.md``) inside a package."""
    with zipfile.ZipFile(package) as zf:
        return zf.read("README.md").decode("utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "runs" / "quickstart" / "best.pt")
    parser.add_argument(
        "--packages", type=Path, default=None, help="folder with full.zip, instances.zip, embeddings.zip"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "model_cards" / "examples")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for variant in VARIANTS:
            package = (args.packages or Path(tmp)) / f"{variant}.zip"
            if not package.exists():
                cmd = [sys.executable, "-m", "spoco_zoo.cli.main", "export", str(args.checkpoint)]
                cmd += ["--output", str(package), "--variant", variant, "--no-validate"]
                subprocess.run(cmd, check=True)
            target = args.out / f"{variant}.md"
            target.write_text(card_of(package), encoding="utf-8")
            print(f"wrote {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")


if __name__ == "__main__":
    main()
