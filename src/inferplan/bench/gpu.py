"""Micro-benchmarks of one machine (``inferplan bench gpu``, needs the ``torch`` extra):
dense GEMM FLOP/s per dtype and shape, device memory bandwidth, host-to-device bandwidth
(pinned and pageable), all-reduce bus bandwidth by message size, disk read throughput.

On a machine without a GPU the same code runs on the CPU and every result says so.
All-reduce uses ``torch.distributed`` (NCCL on GPUs, gloo on the CPU); under ``torchrun``
it measures the launched world (all GPUs of a server, or several servers), otherwise it
spawns ``world_size`` local processes.
"""

from __future__ import annotations

import functools
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inferplan.errors import BenchmarkError

__all__ = ["Measurement", "device_description", "run_gpu_benchmarks", "set_threads"]


@dataclass(frozen=True, slots=True)
class Measurement:
    name: str  # gemm_tflops, memory_bandwidth_gb_s, h2d_gb_s, allreduce_busbw_gb_s, disk_read_gb_s
    value: float
    unit: str
    params: dict[str, Any] = field(default_factory=dict)


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise BenchmarkError("bench gpu needs PyTorch: pip install 'inferplan[gpu]' (torch==2.13.0)") from exc
    return torch


def set_threads(threads: int) -> None:
    """Compute threads for torch on the CPU (e.g. the one thread vLLM-CPU gives a rank on a
    2-core machine: it reserves one core per rank)."""
    _torch().set_num_threads(threads)


def device_description() -> dict[str, Any]:
    torch = _torch()
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return {
            "device": "cuda",
            "name": props.name,
            "memory_bytes": props.total_memory,
            "count": torch.cuda.device_count(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
        }
    return {
        "device": "cpu",
        "name": "CPU (no GPU found)",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def _timeit(fn: Callable[[], Any], sync: Callable[[], None], min_time_s: float) -> float:
    """Best of several timed calls after one warm-up, repeated until ``min_time_s`` has passed
    (at least 3): the best call is the one other processes on the machine disturbed least."""
    fn()
    sync()
    best, n, start = float("inf"), 0, time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        sync()
        now = time.perf_counter()
        best = min(best, now - t0)
        n += 1
        if now - start >= min_time_s and n >= 3:
            return best


def _time_collective(dist: Any, x: Any, sync: Callable[[], None], warmup: int = 2, iters: int = 10) -> float:
    """Seconds per all-reduce. Every rank must run the same number of collectives, so the
    count is fixed (a time-based loop would let loaded ranks disagree and deadlock)."""
    for _ in range(warmup):
        dist.all_reduce(x)
    sync()
    dist.barrier()
    start = time.perf_counter()
    for _ in range(iters):
        dist.all_reduce(x)
    sync()
    return (time.perf_counter() - start) / iters


def _syncer(torch: Any, backend: str) -> Callable[[], None]:
    def sync() -> None:
        if backend == "nccl":
            torch.cuda.synchronize()

    return sync


def _gemms(torch: Any, device: str, sizes: list[int], sync: Callable[[], None], t: float) -> list[Measurement]:
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    out = []
    slow_bf16 = device == "cpu" and not (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    for label, dtype in dtypes.items():
        if device == "cpu" and label == "fp16":
            continue  # CPU half-precision matmul is an emulation, not a hardware rate
        # without AVX512_BF16/AMX, bf16 takes a ~70x slower path: small sizes keep it to seconds
        for n in _small(sizes) if label == "bf16" and slow_bf16 else sizes:
            a = torch.randn(n, n, device=device, dtype=dtype)
            b = torch.randn(n, n, device=device, dtype=dtype)
            sec = _timeit(functools.partial(torch.matmul, a, b), sync, t)
            out.append(
                Measurement(
                    "gemm_tflops",
                    2 * n**3 / sec / 1e12,
                    "TFLOPS",
                    {"dtype": label, "m": n, "n": n, "k": n, "device": device},
                )
            )
    if device == "cuda" and hasattr(torch, "_scaled_mm") and torch.cuda.get_device_capability(0) >= (8, 9):
        n = sizes[-1]
        a = torch.randn(n, n, device=device).to(torch.float8_e4m3fn)
        b = torch.randn(n, n, device=device).to(torch.float8_e4m3fn).t()
        one = torch.tensor(1.0, device=device)
        sec = _timeit(lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16), sync, t)
        out.append(
            Measurement("gemm_tflops", 2 * n**3 / sec / 1e12, "TFLOPS", {"dtype": "fp8", "m": n, "device": device})
        )
    return out


def _small(sizes: list[int]) -> list[int]:
    return [n for n in sizes if n <= 512] or sizes[:1]


def _memory(torch: Any, device: str, mbytes: int, sync: Callable[[], None], t: float) -> list[Measurement]:
    src = torch.empty(mbytes * 2**20, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    sec = _timeit(lambda: dst.copy_(src), sync, t)
    out = [
        Measurement(
            "memory_bandwidth_gb_s",
            2 * src.numel() / sec / 1e9,
            "GB/s",
            {"bytes": src.numel(), "method": "copy (read + write)", "device": device},
        )
    ]
    if device == "cuda":
        for pinned in (True, False):
            host = torch.empty(src.numel(), dtype=torch.uint8, pin_memory=pinned)
            sec = _timeit(functools.partial(src.copy_, host, non_blocking=pinned), sync, t)
            out.append(
                Measurement("h2d_gb_s", src.numel() / sec / 1e9, "GB/s", {"pinned": pinned, "bytes": src.numel()})
            )
    return out


def _disk(mbytes: int, path: Path | None) -> list[Measurement]:
    """Sequential read of ``path`` (or of a fresh temporary file, whose pages are dropped from
    the cache first where the OS allows it, else the figure is the page cache's)."""
    made = path is None
    if path is None:
        fd, name = tempfile.mkstemp(prefix="inferplan-disk-")
        path = Path(name)
        with os.fdopen(fd, "wb") as fh:
            block = os.urandom(1 << 20)
            for _ in range(mbytes):
                fh.write(block)
            fh.flush()
            os.fsync(fh.fileno())
    try:
        size = path.stat().st_size
        dropped = False
        with path.open("rb") as fh:
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
                dropped = True
            start = time.perf_counter()
            while fh.read(8 << 20):
                pass
            sec = time.perf_counter() - start
    except OSError as exc:
        raise BenchmarkError(f"cannot read {path}: {exc.strerror}") from exc
    finally:
        if made:
            path.unlink(missing_ok=True)
    return [
        Measurement(
            "disk_read_gb_s",
            size / sec / 1e9,
            "GB/s",
            {"bytes": size, "file": "temporary" if made else str(path), "cache_dropped": dropped},
        )
    ]


def _allreduce_worker(rank: int, world: int, store_file: str, sizes: list[int], results: Any) -> None:
    torch = _torch()
    import torch.distributed as dist

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    # a file rendezvous has no port to race for; gloo stays on the loopback interface
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group(backend, init_method=f"file://{store_file}", rank=rank, world_size=world)
    device = f"cuda:{rank}" if backend == "nccl" else "cpu"
    if backend == "nccl":
        torch.cuda.set_device(rank)
    for size in sizes:
        x = torch.ones(size // 4, dtype=torch.float32, device=device)

        sec = _time_collective(dist, x, _syncer(torch, backend))
        if rank == 0:
            algbw = size / sec
            results.append((size, algbw * 2 * (world - 1) / world / 1e9, backend))
    dist.destroy_process_group()


def _allreduce_torchrun(sizes: list[int]) -> list[Measurement]:
    """Under torchrun (RANK, WORLD_SIZE, MASTER_ADDR set): every rank measures, rank 0 reports."""
    torch = _torch()
    import torch.distributed as dist

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, init_method="env://")
    rank, world = dist.get_rank(), dist.get_world_size()
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    device = "cuda" if backend == "nccl" else "cpu"
    out = []
    for size in sizes:
        x = torch.ones(size // 4, dtype=torch.float32, device=device)
        sec = _time_collective(dist, x, _syncer(torch, backend))
        out.append(
            Measurement(
                "allreduce_busbw_gb_s",
                size / sec * 2 * (world - 1) / world / 1e9,
                "GB/s",
                {"bytes": size, "world_size": world, "backend": backend, "launcher": "torchrun"},
            )
        )
    dist.destroy_process_group()
    return out if rank == 0 else []


def _allreduce(world: int, sizes: list[int]) -> list[Measurement]:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return _allreduce_torchrun(sizes)
    if world < 2:
        return []
    from torch import multiprocessing as tmp

    last: Exception | None = None
    for _ in range(2):  # one retry: a loaded machine can time a rendezvous out
        with tempfile.TemporaryDirectory(prefix="inferplan-ar-") as folder:
            manager = tmp.Manager()
            results = manager.list()
            try:
                tmp.spawn(_allreduce_worker, args=(world, f"{folder}/store", sizes, results), nprocs=world, join=True)
                collected = list(results)
            except Exception as exc:  # torch raises ProcessExitedException / ProcessRaisedException
                last = exc
                continue
            finally:
                manager.shutdown()
            return [
                Measurement(
                    "allreduce_busbw_gb_s", bw, "GB/s", {"bytes": size, "world_size": world, "backend": backend}
                )
                for size, bw, backend in collected
            ]
    raise BenchmarkError(f"the all-reduce benchmark failed twice: {last}")


def run_gpu_benchmarks(
    quick: bool = False,
    disk_file: Path | None = None,
    world_size: int | None = None,
    progress: Callable[[str], None] | None = None,
    device_only: bool = False,
) -> tuple[dict[str, Any], list[Measurement]]:
    """Every micro-benchmark; ``quick`` uses small sizes (for tests and CPUs); ``device_only``:
    GEMM and memory bandwidth only (what a device description needs)."""
    torch = _torch()
    device = "cuda" if torch.cuda.is_available() else "cpu"

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    t = 0.05 if quick else 0.5
    sizes = [256, 512] if quick else ([2048, 4096, 8192] if device == "cuda" else [512, 1024, 2048])
    steps: list[tuple[str, Callable[[], list[Measurement]]]] = [
        ("GEMM", lambda: _gemms(torch, device, sizes, sync, t)),
        ("memory", lambda: _memory(torch, device, 16 if quick else (1024 if device == "cuda" else 256), sync, t)),
        ("disk", lambda: _disk(16 if quick else 1024, disk_file)),
    ]
    world = world_size if world_size is not None else (torch.cuda.device_count() if device == "cuda" else 2)
    msg_sizes = [1 << 16, 1 << 20] if quick else [1 << 16, 1 << 20, 1 << 24, 1 << 28]
    steps.append(("all-reduce", lambda: _allreduce(world, msg_sizes)))
    if device_only:
        steps = steps[:2]
    out: list[Measurement] = []
    for label, step in steps:
        if progress:
            progress(label)
        try:
            out.extend(step())
        except BenchmarkError as exc:  # keep what the other steps measured
            if progress:
                progress(f"{label} failed: {exc}")
            out.append(Measurement("failed", 0.0, "-", {"step": label, "error": str(exc)[:200]}))
    return device_description(), out
