"""How one model replica is split over GPUs, and how many replicas serve the load.

Expert parallelism follows vLLM's semantics (``--enable-expert-parallel``): the MoE layers of
an EP group are not tensor-sharded; each of its ``ep`` GPUs holds ``E / ep`` whole experts and
tokens travel to their experts by all-to-all. The EP group is the tensor-parallel group
(``ep = tp``) or the TP groups of several data-parallel replicas together (``ep = tp x g``,
vLLM's ``--data-parallel-size`` with EP, TensorRT-LLM's attention DP): attention stays
tensor- (or data-) parallel, each replica keeps its own scheduler, and the ``g`` replicas of an
EP group share the experts.
"""

from __future__ import annotations

from dataclasses import dataclass

from inferplan.errors import InputError
from inferplan.limits import MAX_PARALLEL, check_range

__all__ = ["Parallelism"]


@dataclass(frozen=True, slots=True)
class Parallelism:
    """tp: tensor-parallel GPUs of one replica (inside a server); pp: pipeline stages
    (across servers); dp: independent replicas (schedulers); ep: the expert-parallel group
    size, 1 (experts tensor-sharded over TP) or a multiple of ``tp`` that spans ``ep / tp``
    replicas (see the module docstring)."""

    tp: int = 1
    pp: int = 1
    dp: int = 1
    ep: int = 1

    def __post_init__(self) -> None:
        for name in ("tp", "pp", "dp", "ep"):
            check_range(name, getattr(self, name), 1, MAX_PARALLEL)
        if self.ep > 1 and (self.ep % self.tp or self.dp % (self.ep // self.tp)):
            raise InputError(
                f"expert parallel {self.ep} must be tp x g with g dividing dp (tp {self.tp}, dp {self.dp}); "
                "use --ep equal to --tp, or to --tp x --dp for data-parallel attention"
            )

    @property
    def gpus_per_replica(self) -> int:
        return self.tp * self.pp

    @property
    def num_gpus(self) -> int:
        return self.tp * self.pp * self.dp

    @property
    def ep_replicas(self) -> int:
        """Replicas (schedulers) whose tokens share one EP group's experts: ``ep / tp`` (1 without EP)."""
        return max(self.ep // self.tp, 1) if self.ep > 1 else 1

    def with_replicas(self, dp: int) -> Parallelism:
        """The same split with ``dp`` replicas; an EP group spanning replicas keeps its size
        (``dp`` is rounded up to a whole number of EP groups)."""
        g = self.ep_replicas
        return Parallelism(self.tp, self.pp, -(-dp // g) * g, self.ep)
