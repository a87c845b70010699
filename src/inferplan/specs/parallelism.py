"""How one model replica is split over GPUs, and how many replicas serve the load."""

from __future__ import annotations

from dataclasses import dataclass

from inferplan.limits import MAX_PARALLEL, check_range

__all__ = ["Parallelism"]


@dataclass(frozen=True, slots=True)
class Parallelism:
    """tp: tensor-parallel GPUs of one replica (inside a server); pp: pipeline stages
    (across servers); dp: independent replicas; ep: experts spread over the TP group
    (expert parallelism) instead of every expert being split over it."""

    tp: int = 1
    pp: int = 1
    dp: int = 1
    ep: bool = False

    def __post_init__(self) -> None:
        for name in ("tp", "pp", "dp"):
            check_range(name, getattr(self, name), 1, MAX_PARALLEL)

    @property
    def gpus_per_replica(self) -> int:
        return self.tp * self.pp

    @property
    def num_gpus(self) -> int:
        return self.tp * self.pp * self.dp
