"""CorridorKey benchmarks: one command, one table.

    python benchmarks/run.py            # the full run (S = 512, 1024, 2048; ~45 min on 2 CPU cores)
    python benchmarks/run.py --quick    # small sizes, few repeats (~3 min): a smoke run of every section
    python benchmarks/run.py --device cuda --json figures.json   # on a GPU (adds fp16 rows)

Sections (each measured in a fresh subprocess, so peak RSS belongs to that work alone):

1. export: the whole ``export-torchscript --random-init --img-size S --validate`` command,
   wall time and peak RSS, and each step's time and the process's peak RSS at its end;
2. network speed at S = 512 and 1024 (and 2048 with ``--network-2048``), same ``[1, 4, S, S]``
   input, interleaved runs: upstream's eager network (``upstream_twin.py``: upstream's code
   style, our weights), our eager GreenFormer, our traced network alone, the loaded ``.pt`` on
   an S x S plate, and in bfloat16 (issue #29): our eager network under CPU autocast (what
   ``corridorkey run --precision bf16`` runs) and the ``.pt`` with ``cpu_bf16 = 1``; ratio of
   medians to upstream's (target <= 0.80 for the ``.pt``) and bf16 speed-up over the ``.pt`` in
   fp32 (target >= 1.8 on a CPU with bfloat16 units);
2b. where the time goes: per operator class (attention, convolution, matmul, norms, the rest),
   FLOPs counted by torch's own counter (``torch.utils.flop_counter``), time by the profiler,
   achieved GFLOP/s against the machine's peak for that precision (measured: a large GEMM in
   fp32 and in bfloat16), for our eager network in fp32 and in bf16;
3. full-frame cost: the ``.pt`` on 1920x1080 and 4096x2160 plates and on an S x S plate
   (no resize), fp32, and fp16 on CUDA; peak CUDA memory per S and precision;
4. memory of inference: peak RSS of one call at S in a fresh process: upstream's eager
   network, ours (what ``corridorkey run`` runs), the ``.pt``'s first call (TorchScript's
   profiling run) with glibc's default malloc and with buffers >= 1 MiB mmapped;
5. reference pipeline throughput on a synthetic 1080p clip: threaded runner vs sequential
   loop, with the real network and with a fast stand-in model (the I/O ceiling);
6. despeckle (the ``despeckle_size`` knob) on 1080p and 4K mattes, sizes 0 (off) and 400:
   eager, TorchScript and upstream's OpenCV despeckle (``bench_despeckle.py``);
7. frame I/O: read and write frames per second of 1080p and 4K 16-bit PNG and half EXR, the
   OpenCV I/O of before issue #20 against OpenImageIO, same files (``bench_frame_io.py``);
8. the quality knob (issue #27): the ``.pt`` at quality 0 and 1 on 1080p and 4K plates, the
   file size with and without the preview path, the preview's alpha difference (``bench_preview.py``).

Random-init weights are used throughout (the speed of a network does not depend on its
weights). Figures are medians with min/max over the runs; the machine is described first,
with the CPU flags the bfloat16 decision uses (``corridorkey_model.devices.cpu_bf16_support``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

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


#: Issue #29's targets: the .pt's time at most this fraction of upstream's eager network (fp32, same
#: numerics), and bfloat16 at least this many times the fp32 speed on a CPU with bfloat16 units.
PT_TARGET = 0.80
BF16_SPEEDUP_TARGET = 1.8


def verdict(ratio: float, target: float = 1.0) -> str:
    """`` (meets <= T)`` or `` (MISSES <= T)`` for a ratio to upstream's (``target`` 1.00: no worse)."""
    return f" (meets <= {target:.2f})" if ratio <= target else f" (MISSES <= {target:.2f})"


def opclass_lines(r: Dict[str, Any]) -> List[str]:
    """Section 2b's rows of one profile: seconds, GFLOP and GFLOP/s per class, share of the peak."""
    peak = r["peak_gflops"]
    lines = [f"S={r['img_size']:<5} {r['precision']}: forward {r['wall_s']:.1f} s (profiled); peak "
             f"{peak:.0f} GFLOP/s"]
    for cls in [c for c, _ in OP_CLASSES] + ["other"]:
        sec, gflop = r["seconds"].get(cls, 0.0), r["flops"].get(cls, 0.0) / 1e9
        rate = gflop / sec if sec > 0 and gflop > 0 else None
        lines.append(f"        {cls:<12} {sec:7.2f} s  {gflop:9.1f} GFLOP  "
                     + (f"{rate:6.0f} GFLOP/s = {rate / peak:4.0%} of peak" if rate else "(no FLOPs counted)"))
    return lines


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

    from corridorkey_model.devices import cpu_bf16_support, cpu_flags

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    flags = cpu_flags()
    simd = sorted(f for f in flags if f.startswith(("avx", "amx", "fma")))
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "memory": mem,
            "python": platform.python_version(), "torch": torch.__version__, "timm": timm.__version__, "gpu": gpu,
            "cpu_flags": simd, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_bf16": cpu_bf16_support().describe(), "cpu_bf16_supported": cpu_bf16_support().supported}


# --------------------------------------------------------------------------- workers (run in subprocesses)


def _cli_steps(log_text: str) -> Dict[str, Dict[str, float]]:
    """Step times and peak RSS from the export's log lines ("trace    done in 12.3 s (peak RSS so far 1.8 GiB)")."""
    steps = {}
    for name, sec, rss in re.findall(r"(\w+)\s+done in ([\d.]+) s(?: \(peak RSS so far ([\d.]+) GiB\))?", log_text):
        steps[name] = {"s": float(sec), "peak_rss_mb": float(rss) * 1024 if rss else None}
    return steps


def measure_export_command(img_size: int, out_dir: str, device: str) -> Dict[str, Any]:
    """Section 1: ``export-torchscript --random-init --img-size S --validate`` as a user runs it."""
    output = Path(out_dir) / f"CorridorKey_{img_size}.pt"
    cmd = [sys.executable, "-W", "ignore::FutureWarning", "-c",
           "import sys; from corridorkey_export.cli import main; sys.exit(main())",
           "--random-init", "--img-size", str(img_size), "--validate", "--device", device, "-o", str(output)]
    run = run_measured(cmd)
    if run["returncode"] != 0:
        sys.stderr.write(run["stderr"][-4000:])
        raise SystemExit(f"export at S={img_size} failed with exit code {run['returncode']}")
    manifest = json.loads(output.with_suffix(".manifest.json").read_text())
    validation = manifest["validation"]
    return {"img_size": img_size, "wall_s": run["wall_s"], "peak_rss_mb": run["peak_rss_mb"],
            "steps": _cli_steps(run["stderr"]), "pt": str(output), "pt_mb": output.stat().st_size / 2**20,
            "validate_max_abs": validation["max_abs_fp32"], "validate_passed": validation["passed"],
            "validate_pt_forwards": validation["calls"], "validate_eager_forwards": validation["reference_forwards"],
            "validate_stage_checks": validation["stage_calls"]}


def _sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize()


def worker_network(img_size: int, pt: str, runs: int, device: str, bf16: bool = True) -> Dict[str, Any]:
    """Section 2: upstream's eager network vs ours (eager, traced, .pt) on the same input, interleaved."""
    import torch

    sys.path.insert(0, str(HERE))
    from upstream_twin import twin_of

    from corridorkey_export.export import trace_network
    from corridorkey_model.keying.frame import preprocess
    from corridorkey_model.testing import green_screen_plate, make_random_model, plate_tensor

    torch.set_grad_enabled(False)
    dev = torch.device(device)
    model = make_random_model(img_size, seed=0).to(dev)
    twin = twin_of(model).to(dev)
    plate = plate_tensor(green_screen_plate(img_size, img_size, seed=1)).to(dev)
    x = preprocess(plate, img_size, 0)
    traced = trace_network(model, img_size, dev, example=x)
    module = torch.jit.load(pt, map_location=dev)
    ref = twin(x)
    alpha = module(plate)[:, 3:4]
    parity = float((alpha - ref["alpha"]).abs().max())  # .pt (refiner 1, no despill) vs upstream's alpha
    calls = {"upstream": lambda: twin(x), "eager": lambda: model(x), "traced": lambda: traced(x),
             "pt": lambda: module(plate)}
    bf16_error = None
    if dev.type == "cpu" and bf16:  # issue #29: the bfloat16 routes, interleaved with the rest
        module_bf16 = torch.jit.load(pt, map_location=dev)
        module_bf16.cpu_bf16 = 1

        def eager_bf16():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return model(x)

        calls["eager-bf16"] = eager_bf16
        if int(getattr(module_bf16, "has_cpu_bf16", 0)) == 1:  # else cpu_bf16 = 1 would time the fp32 graph
            calls["pt-bf16"] = lambda: module_bf16(plate)
            bf16_error = float((module_bf16(plate) - module(plate)).abs().max())
    for fn in calls.values():  # warm-up: TorchScript profiles its first call, optimises at the second
        for _ in range(2 if img_size < 2048 else 1):  # at 2048 one call is ~1 min; the timed runs follow
            fn()
    _sync(dev)
    times: Dict[str, List[float]] = {k: [] for k in calls}
    for _ in range(runs):  # interleaved, so drift hits all alike
        for name, fn in calls.items():
            t = time.perf_counter()
            fn()
            _sync(dev)
            times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    speedup = {k: med[k.replace("-bf16", "")] / med[k] for k in calls if k.endswith("-bf16")}
    return {"img_size": img_size, "times": {k: summary(v) for k, v in times.items()},
            "ratio_to_upstream": {k: med[k] / med["upstream"] for k in calls}, "pt_vs_upstream_alpha": parity,
            "bf16_speedup": speedup, "pt_bf16_vs_fp32_max_abs": bf16_error}


#: Operator classes of the profile (issue #29): aten op name substrings, first match wins.
OP_CLASSES = (
    ("attention", ("scaled_dot_product", "_flash_attention", "softmax", "bmm", "baddbmm")),
    ("convolution", ("conv", "mkldnn_convolution")),
    ("matmul", ("addmm", "aten::mm", "matmul", "linear")),
    ("norms", ("group_norm", "layer_norm", "batch_norm")),
)


#: The refiner's GroupNorm statistics (``greenformer.group_norm_``) take the diagonal of a Gram matrix with
#: ``aten::baddbmm`` over ``[N, 64, H*W] x [N, H*W, 64]`` (``aten::bmm`` before the GEMM took the 1 / (H*W)
#: scaling): counted as norms, not attention.
REFINER_CHANNELS = 64
#: Batched GEMM op -> the position of its first batch matrix among the op's inputs (baddbmm's first is ``self``).
_BATCH1_INPUT = {"aten::bmm": 0, "aten::baddbmm": 1}


def op_class(name: str, shapes: Optional[Sequence[Sequence[int]]] = None) -> str:
    """The class of an aten op name (and its input shapes) for the per-class table (``other`` when none matches)."""
    index = _BATCH1_INPUT.get(name)
    batch1 = shapes[index] if index is not None and shapes and len(shapes) > index else ()
    if len(batch1) == 3 and batch1[1] == REFINER_CHANNELS and batch1[2] > REFINER_CHANNELS:
        return "norms"
    for cls, keys in OP_CLASSES:
        if any(k in name for k in keys):
            return cls
    return "other"


def peak_gemm_gflops(dtype_name: str, n: int = 2048, runs: int = 5) -> float:
    """The machine's achieved peak for a precision: GFLOP/s of an n x n x n GEMM (median of ``runs``)."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    times = timed_runs(lambda: torch.mm(a, b), runs)
    return 2 * n ** 3 / statistics.median(times) / 1e9


def worker_opclass(img_size: int, precision: str) -> Dict[str, Any]:
    """Section 2b: FLOPs (torch's FlopCounterMode) and self CPU time (torch.profiler) per operator class
    of one eager forward at S, in fp32 or under CPU bfloat16 autocast; GFLOP/s against the GEMM peak."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.flop_counter import FlopCounterMode

    from corridorkey_model.keying.frame import preprocess
    from corridorkey_model.testing import green_screen_plate, make_random_model, plate_tensor

    torch.set_grad_enabled(False)
    model = make_random_model(img_size, seed=0)
    x = preprocess(plate_tensor(green_screen_plate(img_size, img_size, seed=1)), img_size, 0)
    amp = (torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext())
    with amp:
        model(x)  # warm-up (oneDNN primitive creation)
        counter = FlopCounterMode(display=False)
        with counter:
            model(x)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            t = time.perf_counter()
            model(x)
            wall = time.perf_counter() - t
    counts = counter.get_flop_counts()
    flops: Dict[str, float] = {}
    for op, n in counts.get("Global", {}).items():
        flops[op_class(str(op))] = flops.get(op_class(str(op)), 0.0) + float(n)
    # the refiner's bmm FLOPs are its GroupNorms' statistics (the network has no other bmm there)
    refiner_bmm = sum(float(n) for module, ops in counts.items() if module.endswith(".refiner")
                      for op, n in ops.items() if "bmm" in str(op))
    if refiner_bmm:
        flops["attention"] = flops.get("attention", 0.0) - refiner_bmm
        flops["norms"] = flops.get("norms", 0.0) + refiner_bmm
    seconds: Dict[str, float] = {}
    for ev in prof.key_averages(group_by_input_shape=True):
        if ev.key.startswith("aten::") and ev.self_cpu_time_total > 0:
            cls = op_class(ev.key, ev.input_shapes)
            seconds[cls] = seconds.get(cls, 0.0) + ev.self_cpu_time_total / 1e6
    return {"img_size": img_size, "precision": precision, "wall_s": wall, "flops": flops, "seconds": seconds,
            "peak_gflops": peak_gemm_gflops(precision)}


def worker_frames(img_size: int, pt: str, runs: int, device: str, plates: List[List[int]],
                  half: bool = False) -> Dict[str, Any]:
    """Section 3: ms/frame of the .pt on plates of several sizes; peak CUDA memory."""
    import torch

    from corridorkey_model.testing import green_screen_plate, plate_tensor

    torch.set_grad_enabled(False)
    dev = torch.device(device)
    module = torch.jit.load(pt, map_location=dev)
    if half:
        module = module.half()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rows = []
    for h, w in plates:
        plate = plate_tensor(green_screen_plate(h, w, seed=1)).to(dev)
        plate = plate.half() if half else plate

        def call(plate=plate):
            module(plate)
            _sync(dev)

        rows.append({"plate": f"{w}x{h}", "time": summary(timed_runs(call, runs, warmup=1 if runs > 1 else 0))})
    cuda_peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None
    return {"img_size": img_size, "rows": rows, "peak_rss_mb": peak_rss_mb(), "cuda_peak_mb": cuda_peak,
            "precision": "fp16" if half else "fp32"}


MEMORY_KINDS = {
    "upstream": "upstream eager",
    "eager": "our eager (pipeline)",
    "pt": ".pt, first call",
    "pt-mmap": ".pt, first call, mmap",
}
#: The memory figure issue #29 judges: the .pt's first call as this toolkit's tools run it (validate, the parity
#: kit: buffers of 1 MiB and more mmapped). "pt" is the same call in a process with glibc's default heap (a host
#: such as Nuke): TorchScript's profiling run there leaves 1.4-4 GiB of freed heap resident (docs/DESIGN.md 4.5),
#: which nothing in the file controls; it is reported, not judged.
MEMORY_TARGET_KINDS = ("eager", "pt-mmap")


def worker_memory(img_size: int, kind: str, pt: str, device: str) -> Dict[str, Any]:
    """Section 4: peak RSS (and CUDA memory) of one inference call at S in a fresh process.

    ``kind``: ``"upstream"`` (upstream's eager network, ``upstream_twin.py``), ``"eager"``
    (our GreenFormer, what ``corridorkey run`` runs), ``"pt"`` (the loaded ``.pt``: its first
    call is TorchScript's profiling run) or ``"pt-mmap"`` (the same call with glibc serving
    buffers of 1 MiB and more with mmap, ``returning_freed_memory``: close to the live tensors).
    """
    import torch

    from corridorkey_model.keying.frame import preprocess
    from corridorkey_model.testing import green_screen_plate, plate_tensor, randomize_

    torch.set_grad_enabled(False)
    dev = torch.device(device)
    plate = plate_tensor(green_screen_plate(img_size, img_size, seed=1)).to(dev)
    block = contextlib.nullcontext()
    if kind == "upstream":
        sys.path.insert(0, str(HERE))
        from upstream_twin import UpstreamTwin

        torch.manual_seed(0)  # its own random weights: building ours too would count 400 MB more
        net = randomize_(UpstreamTwin(img_size), seed=0).eval().to(dev)
        x = preprocess(plate, img_size, 0)
        call = lambda: net(x)  # noqa: E731
    elif kind == "eager":
        from corridorkey_model.testing import make_random_model

        model = make_random_model(img_size, seed=0).to(dev)
        x = preprocess(plate, img_size, 0)
        call = lambda: model.predict(x)  # noqa: E731
    elif kind in ("pt", "pt-mmap"):
        from corridorkey_export.export import returning_freed_memory

        module = torch.jit.load(pt, map_location=dev)
        call = lambda: module(plate)  # noqa: E731
        if kind == "pt-mmap":
            block = returning_freed_memory()
    else:
        raise ValueError(f"unknown memory kind {kind!r}; one of {', '.join(MEMORY_KINDS)}")
    before = peak_rss_mb()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    with block:
        call()
        _sync(dev)
    return {"img_size": img_size, "kind": kind, "s": time.perf_counter() - t, "rss_before_mb": before,
            "peak_rss_mb": peak_rss_mb(),
            "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None}


def worker_pipeline(frames: int, img_size: int, real_frames: int) -> Dict[str, Any]:
    """Section 4: the reference pipeline's threaded runner vs a sequential loop (see bench_pipeline.py)."""
    sys.path.insert(0, str(HERE))
    import bench_pipeline

    return bench_pipeline.measure(frames=frames, img_size=img_size, real_frames=real_frames)


def worker_despeckle(runs: int, device: str) -> Dict[str, Any]:
    """Section 6: the despeckle knob's cost at plate sizes (see bench_despeckle.py)."""
    sys.path.insert(0, str(HERE))
    import bench_despeckle

    rows = bench_despeckle.measure(list(bench_despeckle.FRAMES), list(bench_despeckle.SIZES), runs, device)
    return {"rows": rows, "table": bench_despeckle.table(rows)}


def worker_frame_io(sizes: List[str], runs: int) -> Dict[str, Any]:
    """Section 7: frame read/write speed, the old OpenCV I/O against OpenImageIO (see bench_frame_io.py)."""
    sys.path.insert(0, str(HERE))
    import bench_frame_io

    rows = bench_frame_io.measure(sizes, frames=4, runs=runs)
    return {"rows": rows, "table": bench_frame_io.table(rows)}


WORKERS = {"network": worker_network, "opclass": worker_opclass, "frames": worker_frames, "memory": worker_memory,
           "pipeline": worker_pipeline, "despeckle": worker_despeckle, "frame_io": worker_frame_io}


def run_measured(cmd: List[str]) -> Dict[str, Any]:
    """Run ``cmd``; its stdout, stderr, exit code, wall time and peak RSS (of that child alone, via wait4)."""
    t = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return {"stdout": out.read(), "stderr": err.read(), "returncode": proc.returncode, "wall_s": wall,
                "peak_rss_mb": usage.ru_maxrss / 1024.0}


def run_worker(name: str, **kwargs) -> Dict[str, Any]:
    """Run ``WORKERS[name](**kwargs)`` in a fresh Python process; returns its JSON result."""
    cmd = [sys.executable, "-W", "ignore::FutureWarning", str(Path(__file__).resolve()), "--worker", name,
           "--kwargs", json.dumps(kwargs)]
    run = run_measured(cmd)
    if run["returncode"] != 0:
        sys.stderr.write(run["stderr"][-4000:])
        raise SystemExit(f"benchmark worker {name} {kwargs} failed with exit code {run['returncode']}")
    result = json.loads(run["stdout"].strip().splitlines()[-1])
    result["wall_s"] = run["wall_s"]
    result["process_peak_rss_mb"] = run["peak_rss_mb"]
    return result


def target_rows(report: Dict[str, Any], device: str) -> List[str]:
    """A markdown table of the measured figures against their targets (from ``report``)."""
    rows = ["| figure | target | measured | met |", "| --- | --- | --- | --- |"]

    def row(what: str, target: str, measured: str, ok: Optional[bool]) -> None:
        rows.append(f"| {what} | {target} | {measured} | {'-' if ok is None else 'yes' if ok else 'NO'} |")

    for s, r in sorted(report.get("network", {}).items()):
        for name, label in (("traced", "traced network"), ("pt", "`.pt`")):
            ratio = r["ratio_to_upstream"][name]
            row(f"{label} / upstream eager, S={s} ({device})", f"<= {PT_TARGET:.2f}", f"{ratio:.3f}",
                ratio <= PT_TARGET)
        for name, label in (("pt-bf16", "`.pt` with cpu_bf16 = 1"), ("eager-bf16", "`--precision bf16` network")):
            if name in r.get("bf16_speedup", {}):
                up = r["bf16_speedup"][name]
                row(f"{label}: speed-up over fp32, S={s}", f">= {BF16_SPEEDUP_TARGET}", f"{up:.2f}",
                    up >= BF16_SPEEDUP_TARGET)
    exports = report.get("export", {})
    if 2048 in exports:
        e = exports[2048]
        row("`export-torchscript --validate`, S=2048: wall", "<= 10 min", f"{e['wall_s'] / 60:.1f} min",
            e["wall_s"] <= 600)
        row("`export-torchscript --validate`, S=2048: peak RSS", "<= 7 GiB", f"{e['peak_rss_mb'] / 1024:.2f} GiB",
            e["peak_rss_mb"] <= 7 * 1024)
    memory = report.get("memory", {})
    sizes = sorted({int(k.split("-", 1)[0]) for k in memory})
    if sizes:
        s = sizes[-1]
        up = memory[f"{s}-upstream"]["process_peak_rss_mb"]
        for kind in ("eager", "pt", "pt-mmap"):
            if f"{s}-{kind}" in memory:
                mine = memory[f"{s}-{kind}"]["process_peak_rss_mb"]
                runs = memory[f"{s}-{kind}"].get("runs_peak_mb", [mine])
                judged = kind in MEMORY_TARGET_KINDS
                row(f"inference peak RSS, S={s}: {MEMORY_KINDS[kind]} (worst of {len(runs)} runs)"
                    + ("" if judged else "; glibc's default heap, reported only"),
                    f"<= upstream's {up / 1024:.2f} GiB", f"{mine / 1024:.2f} GiB",
                    mine <= up if judged else None)
    for r in report.get("frame_io", {}).get("rows", []):
        for op in ("read", "write"):
            ratio = r[f"{op}_ratio"]
            row(f"{op} fps, OpenImageIO / OpenCV, {r['size']} {r['format'].upper()}", ">= 1.00 (noise: 0.9)",
                f"{ratio:.2f}", ratio >= 0.9)
    return rows


# --------------------------------------------------------------------------- the table


def run_preview_section(args: argparse.Namespace, preview_size: int, report: Dict[str, Any],
                        say: Callable[[str], None]) -> None:
    """Section 8 (issue #27): the quality knob, through benchmarks/bench_preview.py in its own process."""
    say(f"\n## 8. Quality knob: the .pt at quality 0 (S = {preview_size}) and 1 (preview at S / 2), 1080p and 4K "
        f"plates (benchmarks/bench_preview.py)")
    cmd = [sys.executable, "-W", "ignore::FutureWarning", str(HERE / "bench_preview.py"), "--device", args.device]
    cmd += ["--quick"] if args.quick else ["--size", str(preview_size), "--runs", "1" if preview_size >= 2048 else "2"]
    r = run_measured(cmd)
    if r["returncode"] != 0:
        sys.stderr.write(r["stderr"][-4000:])
        raise SystemExit(f"benchmarks/bench_preview.py failed with exit code {r['returncode']}")
    report["preview"] = {"table": r["stdout"], "wall_s": r["wall_s"], "process_peak_rss_mb": r["peak_rss_mb"]}
    say(r["stdout"].rstrip())


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats (~3 min)")
    parser.add_argument("--device", default="cpu", help="torch device for every section (default: cpu)")
    parser.add_argument("--sizes", default=None, help="model resolutions, comma separated "
                        "(default 512,1024,2048; quick: 256,512)")
    parser.add_argument("--json", type=Path, default=None, help="also write all figures to this JSON file")
    parser.add_argument("--network-2048", action="store_true", help="section 2 at S = 2048 too (~25 min more "
                        "on 2 CPU cores)")
    parser.add_argument("--memory-runs", type=int, default=3, help="fresh processes per memory figure of "
                        "section 4 (the first call's peak RSS varies from run to run; default 3)")
    parser.add_argument("--only", default=None, help="comma separated sections to run (export is always run "
                        "when a later section needs its .pt): export,network,opclass,frames,memory,pipeline,"
                        "despeckle,frame_io,preview")
    parser.add_argument("--reuse-pt", type=Path, default=None, metavar="DIR",
                        help="take CorridorKey_<S>.pt from DIR (a random-init export of an earlier run) instead of "
                             "exporting again, unless the export section is asked for")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--kwargs", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        result = WORKERS[args.worker](**json.loads(args.kwargs))
        print(json.dumps(result))
        return 0

    sizes = [int(s) for s in (args.sizes or ("128,256" if args.quick else "512,1024,2048")).split(",")]
    network_sizes = [s for s in sizes if s <= 1024 or args.network_2048] or sizes[:1]
    runs_small = 3 if args.quick else 7
    cuda = args.device.startswith("cuda")
    started = time.perf_counter()
    report: Dict[str, Any] = {"machine": machine(), "quick": args.quick, "device": args.device}
    say = lambda text="": print(text, flush=True)  # noqa: E731 - the table goes to stdout
    only = set(args.only.split(",")) if args.only else None
    want = lambda section: only is None or section in only  # noqa: E731

    m = report["machine"]
    say(f"# CorridorKey benchmarks ({'quick' if args.quick else 'full'} run, device {args.device})")
    say(f"machine: {m['cpu']}, {m['cores']} cores ({m['torch_threads']} torch threads), {m['memory']} RAM, "
        f"GPU {m['gpu']}; Python {m['python']}, torch {m['torch']}, timm {m['timm']}")
    say(f"CPU flags: {' '.join(m['cpu_flags']) or 'none read'}; ATen kernels {m['cpu_capability']}; "
        f"bfloat16: {m['cpu_bf16']}")
    say(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    say("random-init weights; times are median [min-max] over n runs; RSS = peak resident set of the process")

    with tempfile.TemporaryDirectory(prefix="ck-bench-") as tmp:
        say("\n## 1. export-torchscript --random-init --img-size S --validate: whole command, then per step "
            "(wall / peak RSS of the process at the end of the step)")
        exports = {}
        for s in (sizes if any(want(x) for x in ("export", "network", "frames", "memory")) else ()):
            reused = args.reuse_pt / f"CorridorKey_{s}.pt" if args.reuse_pt else None
            if reused is not None and reused.is_file() and not want("export"):
                exports[s] = {"pt": str(reused)}
                say(f"S={s:<5} not exported: --reuse-pt {reused} ({reused.stat().st_size / 2**20:.0f} MB)")
                continue
            exports[s] = r = measure_export_command(s, tmp, args.device)
            parts = [f"{name} {v['s']:.1f} s" + (f" / {v['peak_rss_mb'] / 1024:.2f} GiB" if v["peak_rss_mb"] else "")
                     for name, v in r["steps"].items()]
            say(f"S={s:<5} whole command {r['wall_s']:.0f} s ({r['wall_s'] / 60:.1f} min), peak RSS "
                f"{r['peak_rss_mb'] / 1024:.2f} GiB, .pt {r['pt_mb']:.0f} MB; validation "
                f"{'passed' if r['validate_passed'] else 'FAILED'}, max abs err {r['validate_max_abs']:.1e}, "
                f"{r['validate_pt_forwards']} .pt + {r['validate_eager_forwards']} eager forwards, "
                f"{r['validate_stage_checks']} stage checks")
            say("        " + "; ".join(parts))
        report["export"] = {k: v for k, v in exports.items() if "wall_s" in v}

        say("\n## 2. Network speed, same [1,4,S,S] input, interleaved runs: upstream's eager network "
            "(benchmarks/upstream_twin.py) vs ours")
        report["network"] = {}
        for s in (network_sizes if want("network") else ()):
            r = run_worker("network", img_size=s, pt=exports[s]["pt"], runs=runs_small if s < 2048 else 3,
                           device=args.device, bf16=not cuda)
            report["network"][s] = r
            ratio = r["ratio_to_upstream"]
            for name, label in (("upstream", "upstream eager"), ("eager", "our eager"), ("traced", "our traced"),
                                ("pt", ".pt (S x S plate)"), ("eager-bf16", "our eager, bf16"),
                                ("pt-bf16", ".pt, cpu_bf16 = 1")):
                if name not in r["times"]:
                    continue
                target = verdict(ratio[name], PT_TARGET) if name == "pt" else ""
                if name in r["bf16_speedup"]:
                    up = r["bf16_speedup"][name]
                    target = f"; x{up:.2f} its fp32" + (f" (meets >= {BF16_SPEEDUP_TARGET})" if up >= BF16_SPEEDUP_TARGET
                                                       else f" (MISSES >= {BF16_SPEEDUP_TARGET})")
                say(f"S={s:<5} {label:<18} {fmt(r['times'][name])}; / upstream {ratio[name]:.3f}{target}")
            say(f"S={s:<5} .pt alpha vs upstream's: max abs diff {r['pt_vs_upstream_alpha']:.1e}"
                + ("" if r["pt_bf16_vs_fp32_max_abs"] is None else
                   f"; .pt cpu_bf16 = 1 vs fp32: {r['pt_bf16_vs_fp32_max_abs']:.1e} (random weights: not a quality "
                   f"figure)"))
            if "eager-bf16" in r["times"] and "pt-bf16" not in r["times"]:
                say(f"S={s:<5} .pt, cpu_bf16 = 1: not timed, the file has no CPU bfloat16 copy (--no-cpu-bf16)")

        if not cuda and want("opclass"):
            say("\n## 2b. Where the time goes: one eager forward per operator class; FLOPs by torch.utils.flop_counter, "
                "self CPU time by torch.profiler; peak = a 2048^3 GEMM in that precision")
            report["opclass"] = {}
            for s in network_sizes:
                for precision in (("fp32", "bf16") if m.get("cpu_bf16_supported") else ("fp32",)):
                    r = run_worker("opclass", img_size=s, precision=precision)
                    report["opclass"][f"{s}-{precision}"] = r
                    for line in opclass_lines(r):
                        say(line)

        say("\n## 3. Full-frame cost of the .pt (ms/frame)" + (", peak CUDA memory" if cuda else ""))
        frame_sizes = [s for s in sizes if s >= 1024] or sizes
        report["frames"] = {}
        for s in (frame_sizes if want("frames") else ()):
            runs = 1 if s >= 2048 and not args.quick and not cuda else (2 if args.quick else 3)
            plates = [[1080, 1920], [2160, 4096], [s, s]] if not args.quick else [[1080, 1920], [s, s]]
            for half in ((False, True) if cuda else (False,)):
                r = run_worker("frames", img_size=s, pt=exports[s]["pt"], runs=runs, device=args.device,
                               plates=plates, half=half)
                report["frames"][f"{s}-{r['precision']}"] = r
                for row in r["rows"]:
                    note = " (no resize: the network and knob math alone)" if row["plate"] == f"{s}x{s}" else ""
                    say(f"S={s:<5} {r['precision']} {row['plate']:>10}: {fmt(row['time'])}{note}")
                if r["cuda_peak_mb"] is not None:
                    say(f"S={s:<5} {r['precision']} peak CUDA memory (torch.cuda.max_memory_allocated) "
                        f"{r['cuda_peak_mb'] / 1024:.2f} GiB")

        say("\n## 4. Memory of inference: one call at S x S, peak RSS of the process"
            + (" and peak CUDA memory" if cuda else ""))
        report["memory"] = {}
        for s in (frame_sizes if want("memory") else ()):
            peaks: Dict[str, List[float]] = {kind: [] for kind in MEMORY_KINDS}
            for i in range(args.memory_runs):  # interleaved rounds of fresh processes
                for kind, label in MEMORY_KINDS.items():
                    r = run_worker("memory", img_size=s, kind=kind, pt=exports[s]["pt"], device=args.device)
                    peaks[kind].append(r["process_peak_rss_mb"])
                    report["memory"].setdefault(f"{s}-{kind}", r)
                    extra = f", CUDA {r['cuda_peak_mb'] / 1024:.2f} GiB" if r["cuda_peak_mb"] is not None else ""
                    say(f"S={s:<5} run {i + 1} {label:<22} peak RSS {r['process_peak_rss_mb'] / 1024:.2f} GiB "
                        f"(before the call {r['rss_before_mb'] / 1024:.2f} GiB), call {r['s']:.1f} s{extra}")
            up = statistics.median(peaks["upstream"])
            for kind, label in MEMORY_KINDS.items():
                worst = max(peaks[kind])
                entry = report["memory"][f"{s}-{kind}"]
                entry["runs_peak_mb"] = peaks[kind]
                entry["process_peak_rss_mb"] = worst if kind != "upstream" else up
                if kind != "upstream":
                    say(f"S={s:<5} {label:<22} worst of {len(peaks[kind])} runs {worst / 1024:.2f} GiB; / upstream's "
                        f"median {worst / up:.2f}{verdict(worst / up)}")

    if want("pipeline"):
        say("\n## 5. Reference pipeline throughput, synthetic 1080p PNG clip")
        r = run_worker("pipeline", frames=12 if args.quick else 100, img_size=256 if args.quick else 512,
                       real_frames=4 if args.quick else 12)
        report["pipeline"] = r
        for line in r.get("lines", []):
            say(line)

    if want("despeckle"):
        say("\n## 6. Despeckle (despeckle_size knob) on a speckled matte, ms per frame: median [min-max]")
        r = run_worker("despeckle", runs=2 if args.quick else 5, device=args.device)
        report["despeckle"] = r
        say(r["table"])

    if want("frame_io"):
        say("\n## 7. Frame I/O: read and write frames per second, OpenCV (before issue #20) vs OpenImageIO, "
            "same files")
        r = run_worker("frame_io", sizes=["1080p"] if args.quick else ["1080p", "4K"], runs=2 if args.quick else 3)
        report["frame_io"] = r
        say(r["table"])

    # ---- issue #27: the quality knob (benchmarks/bench_preview.py) ----
    preview_size = max(sizes)
    if want("preview"):
        run_preview_section(args, preview_size, report, say)
    # ---- end issue #27 ----

    say("\n## Summary against the speed and memory targets")
    for line in target_rows(report, args.device):
        say(line)

    report["total_s"] = time.perf_counter() - started
    say(f"\ntotal benchmark time {report['total_s'] / 60:.1f} min")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
