"""CPU offload (issue 13): weights kept in host memory and read over the host link every step
(vLLM's ``--cpu-offload-gb``, zero-copy through unified virtual addressing; SGLang's
``--cpu-offload-gb``), and a KV-cache tier in host memory (vLLM's ``--kv-offloading-size``
with the native offloading backend; SGLang's hierarchical cache, ``--hicache-size``).

The host link is the card's bus (PCIe 4/5/6, NVLink-C2C on Grace Hopper) at a measured share of
its line rate:

* zero-copy reads by the GPU's own kernels (offloaded weights): 35.2 GB/s on H100 over PCIe 5
  (63 GB/s line rate), ``host_to_device_memcpy_sm`` in nvbandwidth issue #24
  (https://github.com/NVIDIA/nvbandwidth/issues/24): 0.56;
* copies of whole blocks (KV blocks, adapters): 52.8 GB/s on the same H100s
  (``device_to_host_memcpy_sm``, same issue): 0.84.
"""

from __future__ import annotations

from dataclasses import dataclass

from inferplan.errors import InputError
from inferplan.specs.hardware import GpuSpec, LinkSpec, get_link, pcie_link
from inferplan.units import GIB

__all__ = [
    "COPY_EFFICIENCY",
    "LOCAL_DISK_READ_BYTES_PER_S",
    "ZERO_COPY_EFFICIENCY",
    "Offload",
    "host_copy_bytes_per_s",
    "host_link",
    "host_read_bytes_per_s",
]

ZERO_COPY_EFFICIENCY = 35.2 / 63.0
COPY_EFFICIENCY = 52.8 / 63.0
#: An adapter not in host memory is read from a local NVMe drive (one PCIe 4.0 x4 drive; the plan's
#: storage step assumes the same drive, plan/explain.py).
LOCAL_DISK_READ_BYTES_PER_S = 6.5e9
MAX_OFFLOAD_BYTES = 64 * 1024 * GIB


def host_link(gpu: GpuSpec) -> LinkSpec:
    """The link between host memory and ``gpu``: its bus from the catalog (PCIe 5 if unnamed)."""
    try:
        return get_link(gpu.pcie)
    except InputError:
        return pcie_link(gpu)


def host_read_bytes_per_s(gpu: GpuSpec) -> float:
    """Bytes/s the GPU's kernels read from pinned host memory (zero-copy)."""
    return host_link(gpu).bw_bytes_per_s * ZERO_COPY_EFFICIENCY


def host_copy_bytes_per_s(gpu: GpuSpec) -> float:
    """Bytes/s of block copies between host and GPU memory."""
    return host_link(gpu).bw_bytes_per_s * COPY_EFFICIENCY


@dataclass(frozen=True, slots=True)
class Offload:
    """``weights_bytes_per_gpu``: weights each GPU keeps in host memory (vLLM: ``--cpu-offload-gb``
    GiB, per GPU); ``kv_bytes``: the host-memory KV tier of one replica (vLLM:
    ``--kv-offloading-size`` GiB, summed over its TP ranks)."""

    weights_bytes_per_gpu: float = 0.0
    kv_bytes: float = 0.0

    def __post_init__(self) -> None:
        for name, value in (("--cpu-offload-gb", self.weights_bytes_per_gpu), ("--kv-offload-gb", self.kv_bytes)):
            if not 0.0 <= value <= MAX_OFFLOAD_BYTES:
                raise InputError(
                    f"{name} must be between 0 and {MAX_OFFLOAD_BYTES / GIB:,.0f} GiB, got {value / GIB:g}"
                )

    def __bool__(self) -> bool:
        return self.weights_bytes_per_gpu > 0 or self.kv_bytes > 0

    def label(self) -> str:
        parts = []
        if self.weights_bytes_per_gpu:
            parts.append(f"{self.weights_bytes_per_gpu / GIB:,.0f} GiB weights offloaded")
        if self.kv_bytes:
            parts.append(f"{self.kv_bytes / GIB:,.0f} GiB CPU KV")
        return ", ".join(parts)

    def key(self) -> tuple[float, float]:
        return (round(self.weights_bytes_per_gpu), round(self.kv_bytes))
