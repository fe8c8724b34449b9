"""CorridorKey benchmarks: one command, one table.

    python benchmarks/run.py            # the full run (S = 512, 1024, 2048; ~20 min on 2 CPU cores)
    python benchmarks/run.py --quick    # small sizes, few repeats (~3 min): a smoke run of every section

Sections (each measured in a fresh subprocess, so peak RSS belongs to that work alone):

1. export: wall time and peak RSS of the process at the end of each step
   (load = build the random-init model, trace, script, save, check, validate);
2. wrapper overhead: the loaded ``.pt`` vs the eager GreenFormer forward on the same
   ``[1, 4, S, S]`` input, ratio of medians over interleaved runs (target <= 1.03 at S = 512);
3. full-frame cost: the ``.pt`` on 1920x1080 and 4096x2160 plates, and on an S x S plate
   (no resize) to show what the pre/post resize adds;
4. reference pipeline throughput on a synthetic 1080p clip: threaded runner vs sequential
   loop, with the real network and with a fast stand-in model (the I/O ceiling);
5. memory: peak RSS of inference at each S (CPU), peak CUDA memory when a GPU is used.

Random-init weights are used throughout (the speed of a network does not depend on its
weights). Figures are medians with min/max over the runs; the machine is described first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

HERE = Path(__file__).resolve().parent


# --------------------------------------------------------------------------- measuring helpers


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed_runs(fn: Callable[[], Any], runs: int, warmup: int = 1) -> List[float]:
    """Wall times (s) of ``runs`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def summary(times: List[float], scale: float = 1000.0) -> Dict[str, float]:
    """Median, min and max of ``times`` (seconds), scaled (default: to ms)."""
    return {"median": statistics.median(times) * scale, "min": min(times) * scale,
            "max": max(times) * scale, "runs": len(times)}


def fmt(s: Dict[str, float], unit: str = "ms") -> str:
    return f"{s['median']:.0f} {unit} [{s['min']:.0f}-{s['max']:.0f}] (n={s['runs']})"


def machine() -> Dict[str, Any]:
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    import timm

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "memory": mem,
            "python": platform.python_version(), "torch": torch.__version__, "timm": timm.__version__, "gpu": gpu}


# --------------------------------------------------------------------------- workers (run in subprocesses)


def worker_export(img_size: int, out_dir: str, device: str) -> Dict[str, Any]:
    """Section 1: export at ``img_size`` step by step; returns timings and peak RSS after each step."""
    import logging

    from corridorkey_export.export import export_torchscript
    from corridorkey_export.validate import PlateSpec
    from corridorkey_model.knobs import KNOBS
    from corridorkey_model.synthetic import make_random_model

    logging.basicConfig(level=logging.WARNING)
    t = time.perf_counter()
    model = make_random_model(img_size, seed=0)
    steps = {"load": {"s": time.perf_counter() - t, "peak_rss_mb": peak_rss_mb()}}
    output = Path(out_dir) / f"CorridorKey_{img_size}.pt"
    default_knobs = {k.name: k.typed_default for k in KNOBS}
    # The validate step with one plate and one knob setting: at large S every call of the
    # .pt is a whole forward, and the knob sweep's cost is that times its number of calls.
    plate = PlateSpec("bench-1080p-ish", max(64, img_size // 2), max(64, img_size // 2 + img_size // 4), seed=1)
    result = export_torchscript(model, output, device=device, validate=True, random_init_seed=0,
                                validate_kwargs={"plates": (plate,), "settings": [default_knobs], "fp16": False,
                                                 "progress": False})
    for name, seconds in result.timings.items():
        steps[name] = {"s": seconds, "peak_rss_mb": result.peak_rss_mb.get(name)}
    return {"img_size": img_size, "steps": steps, "pt": str(output), "pt_mb": output.stat().st_size / 2**20,
            "validate_max_abs": result.validation.max_abs_fp32 if result.validation else None,
            "peak_rss_mb": peak_rss_mb()}


def worker_overhead(img_size: int, pt: str, runs: int, device: str) -> Dict[str, Any]:
    """Section 2: .pt vs eager GreenFormer on the same [1, 4, S, S] input, interleaved runs."""
    import torch

    from corridorkey_model.frame import preprocess
    from corridorkey_model.synthetic import green_screen_plate, make_random_model, plate_tensor

    torch.set_grad_enabled(False)
    dev = torch.device(device)
    model = make_random_model(img_size, seed=0).to(dev)
    module = torch.jit.load(pt, map_location=dev)
    plate = plate_tensor(green_screen_plate(img_size, img_size, seed=1)).to(dev)
    x = preprocess(plate, img_size, 0)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def eager():
        model(x)
        sync()

    def scripted():
        module(plate)
        sync()

    eager()
    scripted()  # warm-up (TorchScript profiles its first calls)
    scripted()
    t_eager, t_pt = [], []
    for _ in range(runs):  # interleaved, so drift hits both alike
        t_eager += timed_runs(eager, 1, warmup=0)
        t_pt += timed_runs(scripted, 1, warmup=0)
    return {"img_size": img_size, "eager": summary(t_eager), "pt": summary(t_pt),
            "ratio": statistics.median(t_pt) / statistics.median(t_eager), "peak_rss_mb": peak_rss_mb()}


def worker_frames(img_size: int, pt: str, runs: int, device: str, plates: List[List[int]]) -> Dict[str, Any]:
    """Sections 3 and 5: ms/frame of the .pt on plates of several sizes; peak RSS / CUDA memory."""
    import torch

    from corridorkey_model.synthetic import green_screen_plate, plate_tensor

    torch.set_grad_enabled(False)
    dev = torch.device(device)
    module = torch.jit.load(pt, map_location=dev)
    rss_loaded = peak_rss_mb()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rows = []
    for h, w in plates:
        plate = plate_tensor(green_screen_plate(h, w, seed=1)).to(dev)

        def call():
            module(plate)
            if dev.type == "cuda":
                torch.cuda.synchronize()

        rows.append({"plate": f"{w}x{h}", "time": summary(timed_runs(call, runs, warmup=1 if runs > 1 else 0))})
    cuda_peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None
    return {"img_size": img_size, "rows": rows, "rss_after_load_mb": rss_loaded, "peak_rss_mb": peak_rss_mb(),
            "cuda_peak_mb": cuda_peak}


def worker_pipeline(frames: int, img_size: int, real_frames: int) -> Dict[str, Any]:
    """Section 4: the reference pipeline's threaded runner vs a sequential loop (see bench_pipeline.py)."""
    sys.path.insert(0, str(HERE))
    import bench_pipeline

    return bench_pipeline.measure(frames=frames, img_size=img_size, real_frames=real_frames)


WORKERS = {"export": worker_export, "overhead": worker_overhead, "frames": worker_frames,
           "pipeline": worker_pipeline}


def run_worker(name: str, **kwargs) -> Dict[str, Any]:
    """Run ``WORKERS[name](**kwargs)`` in a fresh Python process; returns its JSON result."""
    cmd = [sys.executable, "-W", "ignore::FutureWarning", str(Path(__file__).resolve()), "--worker", name,
           "--kwargs", json.dumps(kwargs)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark worker {name} {kwargs} failed with exit code {proc.returncode}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - t
    return result


# --------------------------------------------------------------------------- the table


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats (~3 min)")
    parser.add_argument("--device", default="cpu", help="torch device for every section (default: cpu)")
    parser.add_argument("--sizes", default=None, help="model resolutions, comma separated "
                        "(default 512,1024,2048; quick: 256,512)")
    parser.add_argument("--json", type=Path, default=None, help="also write all figures to this JSON file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--kwargs", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        result = WORKERS[args.worker](**json.loads(args.kwargs))
        print(json.dumps(result))
        return 0

    sizes = [int(s) for s in (args.sizes or ("256,512" if args.quick else "512,1024,2048")).split(",")]
    overhead_size = 512 if 512 in sizes else sizes[0]
    runs_small = 3 if args.quick else 7
    started = time.perf_counter()
    report: Dict[str, Any] = {"machine": machine(), "quick": args.quick, "device": args.device}
    say = lambda text="": print(text, flush=True)  # noqa: E731 - the table goes to stdout

    m = report["machine"]
    say(f"# CorridorKey benchmarks ({'quick' if args.quick else 'full'} run, device {args.device})")
    say(f"machine: {m['cpu']}, {m['cores']} cores ({m['torch_threads']} torch threads), {m['memory']} RAM, "
        f"GPU {m['gpu']}; Python {m['python']}, torch {m['torch']}, timm {m['timm']}")
    say("random-init weights; times are median [min-max] over n runs; RSS = peak resident set of the process")

    with tempfile.TemporaryDirectory(prefix="ck-bench-") as tmp:
        say("\n## 1. Export (random init), per step: wall time / peak RSS of the process at the end of the step")
        exports = {}
        for s in sizes:
            exports[s] = r = run_worker("export", img_size=s, out_dir=tmp, device=args.device)
            parts = [f"{name} {v['s']:.1f} s / {v['peak_rss_mb'] / 1024:.2f} GiB" for name, v in r["steps"].items()
                     if v.get("peak_rss_mb") is not None]
            say(f"S={s:<5} total {r['wall_s']:.0f} s, peak {r['peak_rss_mb'] / 1024:.2f} GiB, "
                f".pt {r['pt_mb']:.0f} MB, validate max abs err {r['validate_max_abs']:.1e}: " + "; ".join(parts))
        report["export"] = exports

        say(f"\n## 2. Wrapper overhead at S={overhead_size}: loaded .pt vs eager GreenFormer, same [1,4,S,S] input")
        r = run_worker("overhead", img_size=overhead_size, pt=exports[overhead_size]["pt"], runs=runs_small,
                       device=args.device)
        report["overhead"] = r
        verdict = "meets" if r["ratio"] <= 1.03 else "MISSES"
        say(f"eager {fmt(r['eager'])}; .pt {fmt(r['pt'])}; ratio of medians {r['ratio']:.3f} "
            f"({verdict} the <= 1.03 target)")

        say("\n## 3. Full-frame cost of the .pt (ms/frame), and 5. memory of inference")
        frame_sizes = [s for s in sizes if s >= 1024] or sizes
        report["frames"] = {}
        for s in frame_sizes:
            runs = 1 if s >= 2048 and not args.quick else (2 if args.quick else 3)
            plates = [[1080, 1920], [2160, 4096], [s, s]] if not args.quick else [[1080, 1920], [s, s]]
            r = run_worker("frames", img_size=s, pt=exports[s]["pt"], runs=runs, device=args.device, plates=plates)
            report["frames"][s] = r
            for row in r["rows"]:
                note = " (no resize: the network and knob math alone)" if row["plate"] == f"{s}x{s}" else ""
                say(f"S={s:<5} {row['plate']:>10}: {fmt(row['time'])}{note}")
            cuda = f", peak CUDA memory {r['cuda_peak_mb']:.0f} MiB" if r["cuda_peak_mb"] is not None else ""
            say(f"S={s:<5} memory: peak RSS {r['peak_rss_mb'] / 1024:.2f} GiB "
                f"(after loading the .pt: {r['rss_after_load_mb'] / 1024:.2f} GiB){cuda}")

    say("\n## 4. Reference pipeline throughput, synthetic 1080p PNG clip")
    r = run_worker("pipeline", frames=12 if args.quick else 100, img_size=256 if args.quick else 512,
                   real_frames=4 if args.quick else 12)
    report["pipeline"] = r
    for line in r.get("lines", []):
        say(line)

    report["total_s"] = time.perf_counter() - started
    say(f"\ntotal benchmark time {report['total_s'] / 60:.1f} min")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
