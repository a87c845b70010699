"""A device described by measurement: ``bench gpu --save-device FILE`` writes the machine's
measured GEMM rates and memory bandwidth as a device file that ``--gpu measured:FILE``
reads (specs/cpus.py), for a CPU (or any machine) the catalog does not hold."""

from __future__ import annotations

import os
import platform
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from inferplan.bench.gpu import Measurement
from inferplan.errors import BenchmarkError, InputError
from inferplan.specs.cpus import load_measured_device
from inferplan.units import GIB

__all__ = ["cpu_model_name", "device_entry", "save_device"]


def cpu_model_name() -> str:
    """The CPU's model name as /proc/cpuinfo prints it (else the platform's processor)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")[:100_000]
    except OSError:
        text = ""
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return (match.group(1).strip() if match else platform.processor() or platform.machine())[:200]


def _host_memory_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    except (ValueError, OSError, AttributeError):
        return 1.0


def device_entry(device: dict[str, Any], measurements: list[Measurement]) -> dict[str, Any]:
    """The device file's fields: best GEMM TFLOPS per dtype and best copy bandwidth."""
    matmul: dict[str, float] = {}
    for m in measurements:
        if m.name == "gemm_tflops" and m.value > 0:
            dtype = str(m.params.get("dtype"))
            matmul[dtype] = max(matmul.get(dtype, 0.0), round(m.value, 6))
    bandwidth = max((m.value for m in measurements if m.name == "memory_bandwidth_gb_s"), default=0.0)
    if "fp32" not in matmul or bandwidth <= 0:
        raise BenchmarkError("the GEMM or memory benchmark failed: no device file written")
    threads = int(device.get("threads") or 1)
    name = cpu_model_name() if device.get("device") == "cpu" else str(device.get("name", "device"))
    when = datetime.now(UTC).isoformat(timespec="seconds")
    return {
        "id": "measured-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60],
        "name": f"{name} ({threads} threads, measured)",
        "threads": threads,
        "memory_gib": round(_host_memory_gib(), 2),
        "mem_bw_gb_s": round(bandwidth, 3),
        "matmul_tflops": matmul,
        "sources": f"inferplan bench gpu on {platform.node()} at {when}, torch {device.get('torch')}, "
        f"{threads} threads: best square GEMM per dtype, copy bandwidth (read + write)",
    }


def save_device(path: Path, entry: dict[str, Any]) -> Path:
    """Write the device file and read it back (what ``measured:FILE`` will see)."""
    try:
        path.write_text(yaml.safe_dump(entry, sort_keys=False), encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write --save-device {path}: {exc.strerror}") from exc
    load_measured_device(path)
    return path
