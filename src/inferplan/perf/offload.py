"""CPU offload in time (issue 13).

* Weights (vLLM's ``--cpu-offload-gb``, zero-copy): every step's kernels read the offloaded bytes
  from host memory instead of HBM, so each step gains ``B_off (1 / BW_host - 1 / BW_hbm)`` per
  pipeline stage, with ``BW_host`` the host link's zero-copy read rate (specs/offload.py). At small
  batches a decode step then takes at least ``B_off / BW_host``.
* KV blocks found in host memory are copied back before the request is scheduled:
  ``blocks x bytes per block / BW_copy``.
"""

from __future__ import annotations

from inferplan.specs.deployment import Deployment
from inferplan.specs.offload import host_copy_bytes_per_s, host_read_bytes_per_s

__all__ = ["kv_load_s", "weight_stream_s"]


def weight_stream_s(dep: Deployment, offloaded_bytes_per_gpu: float) -> float:
    """Extra time of every step: ``pp x B_off x (1 / BW_host - 1 / BW_hbm)``."""
    if offloaded_bytes_per_gpu <= 0:
        return 0.0
    hbm = dep.gpu.mem_bw_bytes_per_s * dep.engine.kernels.mem_efficiency
    per_byte = 1.0 / host_read_bytes_per_s(dep.gpu) - 1.0 / hbm
    return dep.parallelism.pp * offloaded_bytes_per_gpu * max(per_byte, 0.0)


def kv_load_s(dep: Deployment, blocks: int, block_bytes_per_gpu: float) -> float:
    """Copying ``blocks`` KV blocks back from host memory."""
    return blocks * block_bytes_per_gpu / host_copy_bytes_per_s(dep.gpu)
