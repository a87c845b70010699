"""``fit``'s answer for a model that does not fit (issue 13): the fewest GiB of weights to offload
per GPU to host memory, and the decode time per token with them against every weight in HBM
(the time physics: perf/offload.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inferplan.perf.replica import build_replica
from inferplan.sizing.capacity import MemoryPlan
from inferplan.sizing.offload import offload_to_fit, with_offloaded_weights
from inferplan.specs.deployment import Deployment
from inferplan.specs.offload import host_link, host_read_bytes_per_s
from inferplan.units import GIB

__all__ = ["OffloadAnswer", "offload_answer"]


@dataclass(frozen=True, slots=True)
class OffloadAnswer:
    """``plan`` fits with ``offloaded_bytes`` per GPU in host memory; one decode step of the
    request mix takes ``step_s`` with them and ``in_hbm_step_s`` were every weight in HBM."""

    plan: MemoryPlan
    offloaded_bytes: float
    step_s: float
    in_hbm_step_s: float
    link: str
    link_bytes_per_s: float

    @property
    def slowdown(self) -> float:
        return self.step_s / self.in_hbm_step_s

    def sentence(self) -> str:
        gib = self.offloaded_bytes / GIB
        return (
            f"It does not fit, but with {gib:,.0f} GiB of weights per GPU offloaded to host memory (vLLM "
            f"--cpu-offload-gb {gib:,.0f}) it runs at {self.step_s * 1e3:,.0f} ms per token instead of "
            f"{self.in_hbm_step_s * 1e3:,.1f} ms with every weight in GPU memory ({self.slowdown:,.1f} times slower: "
            f"every step reads {gib:,.0f} GiB over {self.link} at {self.link_bytes_per_s / 1e9:,.1f} GB/s)."
        )


def offload_answer(dep: Deployment, context_tokens: int, concurrency: int) -> OffloadAnswer | None:
    """How much to offload for ``concurrency`` sequences of ``context_tokens`` to fit, and what it
    costs per token (a decode step at that batch and context); None if even that does not fit."""
    plan = offload_to_fit(dep, context_tokens, concurrency)
    if plan is None:
        return None
    contexts = np.full(concurrency, float(context_tokens))
    with_it = build_replica(plan.deployment).decode_step_time_s(contexts)
    without = build_replica(with_offloaded_weights(dep, 0.0)).decode_step_time_s(contexts)
    link = host_link(dep.gpu)
    return OffloadAnswer(
        plan, plan.offloaded_weights_bytes, with_it, without, link.name, host_read_bytes_per_s(dep.gpu)
    )
