"""One MoE layer on one GPU: routing, token permutation, the grouped expert GEMMs at the tokens
each expert actually gets, and expert parallelism's all-to-all.

With ``M`` tokens on this replica and ``g`` replicas sharing the EP group (``ep / tp``, see
:class:`~inferplan.specs.parallelism.Parallelism`), the group routes ``T = M g`` tokens:

* experts on this GPU: ``E`` tensor-sharded ``1/tp`` each (no EP), or ``E / ep`` whole experts;
* routed token copies it computes: ``R = M k`` (no EP) or ``T k / ep`` (EP, balanced routing);
* distinct experts it touches: ``E_gpu (1 - (1 - k/E)^T)``: the weights it streams;
* tokens per expert ``m = R / distinct``: a grouped GEMM's row count, hence its efficiency
  (few tokens per expert fill few rows of each tensor-core tile);
* routing and permutation (top-k, sorting by expert, gathering copies and scattering results
  back with the router weights) touch every copy's hidden vector ``moe_permute_passes`` times,
  on every tensor-parallel rank (they are not sharded), plus a fixed kernel time per layer;
* EP all-to-all: dispatch and combine send ``M k (ep-1)/ep`` hidden vectors each way.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MoeLayerCost", "MoeShape", "expected_distinct_experts", "moe_shape"]


def expected_distinct_experts(num_experts: float, top_k: int, num_tokens: float, total_experts: int = 0) -> float:
    """Experts among ``num_experts`` touched by ``num_tokens`` tokens routed top-k uniformly over
    ``total_experts`` (default: the same): ``E (1 - (1 - k/E_total)^T)``."""
    if num_tokens <= 0 or num_experts <= 0:
        return 0.0
    total = total_experts or num_experts
    return float(num_experts * (1.0 - (1.0 - min(top_k / total, 1.0)) ** num_tokens))


@dataclass(frozen=True, slots=True)
class MoeShape:
    """What one GPU does in one MoE layer for ``tokens`` tokens of its replica."""

    routed: float  # token copies this GPU's experts compute
    distinct: float  # experts whose weights it streams
    per_expert: float  # tokens per touched expert (the grouped GEMM's M)
    permuted: float  # token copies it routes and permutes
    dispatched: float  # token copies it sends to other GPUs (and receives back)


@dataclass(frozen=True, slots=True)
class MoeLayerCost:
    """Per-GPU constants of the MoE layers of one deployment."""

    num_experts: int
    top_k: int
    tp: int
    ep: int
    replicas_sharing: int

    @property
    def experts_here(self) -> float:
        return self.num_experts / self.ep if self.ep > 1 else float(self.num_experts)


def moe_shape(c: MoeLayerCost, tokens: float) -> MoeShape:
    """The routed copies, distinct experts and tokens per expert of one GPU (module docstring)."""
    if tokens <= 0:
        return MoeShape(0.0, 0.0, 0.0, 0.0, 0.0)
    group_tokens = tokens * c.replicas_sharing
    if c.ep > 1:
        routed = group_tokens * c.top_k / c.ep
        dispatched = tokens * c.top_k * (c.ep - 1) / c.ep
    else:
        routed = tokens * c.top_k
        dispatched = 0.0
    distinct = expected_distinct_experts(c.experts_here, c.top_k, group_tokens, c.num_experts)
    per_expert = routed / distinct if distinct else 0.0
    return MoeShape(routed, distinct, per_expert, tokens * c.top_k, dispatched)
