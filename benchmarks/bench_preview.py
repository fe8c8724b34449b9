"""Issue #27: what the ``quality`` knob saves. One ``.pt`` with a final (S) and a preview (P) path.

    python benchmarks/bench_preview.py                      # S = 2048, P = 1024, CPU, 1080p and 4K plates
    python benchmarks/bench_preview.py --size 1024 --preview-size 512 --runs 2
    python benchmarks/bench_preview.py --device cuda        # adds fp16 (module and input .half())
    python benchmarks/bench_preview.py --quick              # S = 256, P = 128: a smoke run

Prints, for each plate and precision, the ``.pt``'s ms/frame at quality 0 (final) and 1
(preview) and their ratio, the file sizes with and without the preview path, and the
preview's difference from the final output (max and mean abs alpha) on the synthetic
green-screen plates. The weights are random (``--random-init``): the speed of a network
does not depend on its weights, but the difference figures say nothing about the preview's
quality with the real weights, only how far one random network's output moves between the two
resolutions.

Each call is timed after one untimed call of the same quality (TorchScript's profiling run).
Figures are medians with min/max over ``--runs``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

PLATES = {"1080p": (1080, 1920), "4K": (2160, 4096)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def export_pair(size: int, preview_size: int, folder: Path) -> Dict[str, Path]:
    """The random-init network exported with and without a preview path (no validation)."""
    from corridorkey_export.export import export_torchscript, make_preview_model
    from corridorkey_model.testing import make_random_model

    model = make_random_model(size, seed=0)
    both = export_torchscript(model, folder / "both" / "CorridorKey.pt", random_init_seed=0,
                              preview_model=make_preview_model(model, preview_size)).output
    plain = export_torchscript(model, folder / "plain" / "CorridorKey.pt", random_init_seed=0).output
    return {"both": both, "plain": plain}


def measure(pt: Path, device: str, runs: int, plates: List[str], half: bool) -> Dict[str, Any]:
    """ms/frame at quality 0 and 1 per plate, and the preview's alpha difference from the final output."""
    from corridorkey_export.wrapper import set_knobs
    from corridorkey_model.testing import green_screen_plate, plate_tensor

    dev = torch.device(device)
    module = torch.jit.load(str(pt), map_location=dev).eval()
    if half:
        module = module.half()
    rows = []
    with torch.no_grad():
        for name in plates:
            h, w = PLATES[name]
            x = plate_tensor(green_screen_plate(h, w, seed=1)).to(dev)
            x = x.half() if half else x
            times: Dict[int, List[float]] = {0: [], 1: []}
            outs = {}
            for quality in (0, 1):
                set_knobs(module, quality=quality)
                outs[quality] = module(x)[:, 3].float()  # untimed: the profiling run
                _sync(dev)
            for _ in range(runs):  # interleaved, so a load change on a shared machine hits both alike
                for quality in (0, 1):
                    set_knobs(module, quality=quality)
                    t = time.perf_counter()
                    module(x)
                    _sync(dev)
                    times[quality].append(time.perf_counter() - t)
            diff = (outs[1] - outs[0]).abs()
            med = {q: statistics.median(v) * 1000 for q, v in times.items()}
            rows.append({"plate": name, "final_ms": med[0], "preview_ms": med[1],
                         "final_range_ms": [min(times[0]) * 1000, max(times[0]) * 1000],
                         "preview_range_ms": [min(times[1]) * 1000, max(times[1]) * 1000],
                         "ratio": med[0] / med[1], "alpha_max_abs": float(diff.max()),
                         "alpha_mean_abs": float(diff.mean())})
    return {"precision": "fp16" if half else "fp32", "rows": rows}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=2048, help="final model resolution S (default 2048)")
    parser.add_argument("--preview-size", type=int, default=None, help="preview resolution P (default S / 2)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu); cuda adds fp16 rows")
    parser.add_argument("--runs", type=int, default=3, help="timed calls per quality and plate (default 3)")
    parser.add_argument("--plates", default="1080p,4K", help="plates, comma separated (default 1080p,4K)")
    parser.add_argument("--quick", action="store_true", help="S = 256, P = 128, one run: a smoke run")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    size = 256 if args.quick else args.size
    preview = 128 if args.quick else (args.preview_size or size // 2)
    runs = 1 if args.quick else args.runs
    plates = [p.strip() for p in args.plates.split(",") if p.strip()]
    unknown = [p for p in plates if p not in PLATES]
    if unknown:
        parser.error(f"unknown plate(s) {', '.join(unknown)}; choose from {', '.join(PLATES)}")

    say = lambda text="": print(text, flush=True)  # noqa: E731 - the table goes to stdout
    report: Dict[str, Any] = {"size": size, "preview_size": preview, "device": args.device, "runs": runs}
    with tempfile.TemporaryDirectory(prefix="ck-preview-") as tmp:
        t = time.perf_counter()
        files = export_pair(size, preview, Path(tmp))
        sizes = {k: p.stat().st_size / 2**20 for k, p in files.items()}
        report["file_mb"] = sizes
        say(f"## Quality knob (issue #27): S = {size}, preview P = {preview}, device {args.device}, random-init "
            f"weights, median [min-max] of {runs} run(s)")
        say(f".pt with the preview path {sizes['both']:.1f} MB, without {sizes['plain']:.1f} MB (+"
            f"{sizes['both'] - sizes['plain']:.1f} MB: the preview's position embedding and code; the weights are "
            f"stored once); exports {time.perf_counter() - t:.0f} s")
        precisions = (False, True) if args.device.startswith("cuda") else (False,)
        report["results"] = [measure(files["both"], args.device, runs, plates, half) for half in precisions]
    say("| precision | plate | quality 0 (final, S) ms | quality 1 (preview, P) ms | final / preview | "
        "alpha max abs diff | alpha mean abs diff |")
    say("| --- | --- | --- | --- | --- | --- | --- |")
    for result in report["results"]:
        for r in result["rows"]:
            say(f"| {result['precision']} | {r['plate']} | {r['final_ms']:.0f} [{r['final_range_ms'][0]:.0f}-"
                f"{r['final_range_ms'][1]:.0f}] | {r['preview_ms']:.0f} [{r['preview_range_ms'][0]:.0f}-"
                f"{r['preview_range_ms'][1]:.0f}] | {r['ratio']:.1f}x | {r['alpha_max_abs']:.3f} | "
                f"{r['alpha_mean_abs']:.4f} |")
    say("alpha differences: random weights, so NOT a quality figure: how far one random network's output moves when "
        "it runs at P instead of S")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
