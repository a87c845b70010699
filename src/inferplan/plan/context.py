"""What every step of planning shares: the resolved question (:class:`PlanSetup`) and a
memo of every evaluation, so that the explanation steps and the cost reuse what the search
already computed instead of pricing a configuration again."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace

from inferplan.errors import DoesNotFitError
from inferplan.plan.candidates import SearchSpace, candidates
from inferplan.plan.cost import Costing
from inferplan.plan.disagg_search import PoolSetup
from inferplan.plan.offload_plan import offload_variants
from inferplan.plan.question import Demand, Targets
from inferplan.plan.search import Evaluated, evaluate, rank
from inferplan.sizing.capacity import MemoryPlan, min_gpus
from inferplan.specs.calibration_profile import CalibrationProfile
from inferplan.specs.deployment import Deployment
from inferplan.specs.engines import EngineProfile
from inferplan.specs.environment import EnvironmentProfile
from inferplan.specs.model import ModelSpec
from inferplan.specs.precision import Precision
from inferplan.specs.prices import Offer

__all__ = ["PlanContext", "PlanSetup"]


@dataclass(frozen=True, slots=True)
class PlanSetup:
    """A plan question with every name resolved: the model, the load and targets, what may
    vary, the engine and environment, the prices, and how to rank, check and cost."""

    model: ModelSpec
    demand: Demand
    targets: Targets
    space: SearchSpace
    engine: EngineProfile
    env: EnvironmentProfile
    offers: list[Offer]
    rank_by: str = "cost"
    verify: int = 1
    costing: Costing = field(default_factory=Costing)
    margin: str = "none"  # the targets above are already tightened by it
    stated_targets: Targets | None = None  # the targets as asked, before the margin
    calibration: CalibrationProfile | None = None  # its residuals are the figures' error bands
    pools: PoolSetup | None = None  # search prefill/decode splits too (issue 14)


class PlanContext:
    """The setup and a memo of evaluations keyed by deployment."""

    def __init__(self, setup: PlanSetup) -> None:
        self.setup = setup
        self._evaluated: dict[tuple[object, ...], Evaluated | None] = {}
        self._floors: dict[tuple[object, ...], MemoryPlan | None] = {}

    @property
    def demand(self) -> Demand:
        return self.setup.demand

    @property
    def targets(self) -> Targets:
        return self.setup.targets

    def evaluate(self, dep: Deployment) -> Evaluated | None:
        key = dep.key()
        if key not in self._evaluated:
            self._evaluated[key] = evaluate(dep, self.demand, self.targets, self.setup.offers)
        return self._evaluated[key]

    def candidates(self, space: SearchSpace) -> list[Deployment]:
        s = self.setup
        found = candidates(s.model, space, s.engine, s.env)
        # issue 13 (--offload): smaller splits that hold the weights only with some in host memory
        if not space.offload:
            return found
        return found + offload_variants(s.model, space, s.engine, s.env, s.demand.context_tokens)

    def search(self, space: SearchSpace) -> list[Evaluated]:
        s = self.setup
        results = [e for c in self.candidates(space) if (e := self.evaluate(c))]
        return rank(results, s.demand, s.rank_by)

    def in_environment(self, dep: Deployment, env: EnvironmentProfile) -> Evaluated | None:
        """``dep`` evaluated in another environment (bare metal against a cloud VM)."""
        return self.evaluate(replace(dep, environment=env))

    def floor(self, dep: Deployment, precision: Precision) -> MemoryPlan | None:
        """The smallest split that holds one request of the demand at ``precision`` (None:
        nothing fits), memoised."""
        base = replace(dep, precision=precision)
        key = (*base.key(), "floor")
        if key not in self._floors:
            self._floors[key] = None
            with contextlib.suppress(DoesNotFitError):
                self._floors[key] = min_gpus(base, self.demand.context_tokens, 1)
        return self._floors[key]
