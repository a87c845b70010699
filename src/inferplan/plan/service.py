"""The one plan path: ``plan``, ``report``, ``cost`` and the web API all call :func:`answer`
with a :class:`~inferplan.plan.question.PlanQuestion`.

``files`` says whether the question may name files: the command line may (a model path or
folder, a hub id, a calibration profile path); the web may not (catalog names, pasted text and
saved profile names only).
"""

from __future__ import annotations

from pathlib import Path

from inferplan.errors import InputError
from inferplan.perf.datasets import read_dataset
from inferplan.plan.candidates import SearchSpace
from inferplan.plan.context import PlanSetup
from inferplan.plan.cost import CostAssumptions, Costing
from inferplan.plan.disagg_search import PoolSetup
from inferplan.plan.planner import Plan, make_plan
from inferplan.plan.question import Demand, PlanQuestion
from inferplan.plan.workload_question import Traffic
from inferplan.specs.calibration_profile import apply_profile, load_profile
from inferplan.specs.cost_assumptions import with_edits
from inferplan.specs.cpus import MEASURED_PREFIX
from inferplan.specs.engine_defaults import engine_for
from inferplan.specs.engines import get_engine
from inferplan.specs.environment import get_environment
from inferplan.specs.features import resolve_features
from inferplan.specs.hardware import get_gpu, gpu_catalog
from inferplan.specs.model import ModelSpec
from inferplan.specs.model_catalog import load_catalog_model, load_model, model_from_config_text
from inferplan.specs.precision import Precision, get_precision, resolve_precision
from inferplan.specs.prices import PriceBook, default_prices, parse_price_text
from inferplan.specs.speculation import resolve_speculation

__all__ = ["answer", "cost_assumptions_from", "default_precisions", "resolve_question"]


def default_precisions(model: ModelSpec) -> list[Precision]:
    """What a plan considers without --dtypes: the checkpoint's own precision, and FP8 when
    that is 16-bit."""
    native = get_precision(model.quantization.precision if model.quantization else model.native_dtype)
    out = [native]
    if native.name in ("bf16", "fp16"):
        out.append(get_precision("fp8"))
    return out


def cost_assumptions_from(values: dict[str, float], base: CostAssumptions | None = None) -> CostAssumptions:
    """``base`` (the defaults) with NAME=VALUE edits applied; unknown names and values out of
    range are refused in one line."""
    return with_edits(base or CostAssumptions(), values)


def _model(q: PlanQuestion, files: bool) -> ModelSpec:
    if q.config_json is not None:
        return model_from_config_text(q.config_json, q.model_name)
    assert q.model is not None
    name = q.model.strip()
    return load_model(name) if files else load_catalog_model(name)


def _demand(q: PlanQuestion, files: bool) -> Demand:
    """The question's demand; with a dataset (a file: the command line only) its lengths' means are the
    isl and osl, and the verification draws the dataset's joint lengths."""
    demand, w = q.demand(), q.workload
    if w.dataset is None:
        return demand
    if not files:
        raise InputError("workload.dataset is a file on the server; give --dataset on the command line instead")
    sample = read_dataset(Path(w.dataset), w.tokens_per_word).lengths()
    isl, osl = round(sample.input_tokens.mean()), round(sample.output_tokens.mean())
    traffic = Traffic(demand.traffic.shape, sample)
    return Demand(max(isl, 1), max(osl, 1), demand.rate_per_s, demand.concurrency, traffic)


def resolve_question(q: PlanQuestion, *, files: bool) -> PlanSetup:
    """Every name of the question resolved against the catalogs, the calibration profile
    applied to the engine and the GPUs, the price file added to the price catalog."""
    model = _model(q, files)
    profile = load_profile(q.calibration, allow_paths=files) if q.calibration else None
    if not files and any(g.startswith(MEASURED_PREFIX) for g in q.gpus):
        raise InputError("a measured device is a file: name catalog GPUs or CPUs here (files are read by the CLI only)")
    pool = [get_gpu(g) for g in q.gpus] or list(gpu_catalog().values())
    engine = get_engine(q.engine)
    if all(g.is_cpu for g in pool):  # vLLM on CPUs is vLLM-CPU (its KV cache, its limits)
        engine = engine_for(engine, pool[0])[0]
    gpus = [apply_profile(engine, g, profile)[1] for g in pool]
    engine = apply_profile(engine, pool[0], profile)[0]
    user = parse_price_text(q.prices_yaml, q.prices_origin) if q.prices_yaml is not None else PriceBook()
    prices = default_prices().merged(user)
    assumptions = cost_assumptions_from(q.cost_set, user.apply_to(CostAssumptions()))
    speculation = resolve_speculation(model, q.speculation_words(), load_model if files else load_catalog_model)
    space = SearchSpace(
        gpus=tuple(gpus),
        precisions=tuple(resolve_precision(model, p) for p in q.dtypes) or tuple(default_precisions(model)),
        kv_dtypes=tuple(q.kv_dtypes),
        tp=q.tp,
        pp=q.pp,
        speculation=speculation,
        features=resolve_features(q.workload.feature_words()),
        offload=q.workload.cpu_offload,
    )
    return PlanSetup(
        model=model,
        demand=_demand(q, files),
        targets=q.targets().with_margin(q.margin),
        space=space,
        engine=engine,
        env=get_environment(q.environment, q.env_set),
        offers=list(prices.offers),
        rank_by=q.rank,
        verify=q.verify,
        costing=Costing(q.hours_fraction, q.peak_to_mean, assumptions, prices.api),
        margin=q.margin,
        stated_targets=q.targets(),
        calibration=profile,
        pools=PoolSetup(q.kv_link, q.kv_overlap) if q.disaggregation else None,
    )


def answer(q: PlanQuestion, *, files: bool) -> Plan:
    """The plan for ``q``; the same question gives the same plan from every entry point."""
    return make_plan(resolve_question(q, files=files))
