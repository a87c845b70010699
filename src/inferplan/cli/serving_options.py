"""The options of speculative decoding and disaggregated prefill/decode (issue 14), shared by
``fit``, ``predict``, ``plan`` and ``deploy``, and what they resolve into."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import typer

from inferplan.errors import InputError
from inferplan.limits import MAX_PARALLEL, check_range
from inferplan.specs.deployment import Choices, Deployment, resolve_deployment
from inferplan.specs.disaggregation import DEFAULT_KV_LINK, Disaggregated
from inferplan.specs.model import ModelSpec
from inferplan.specs.model_catalog import load_model
from inferplan.specs.parallelism import Parallelism
from inferplan.specs.speculation import Speculation, resolve_speculation

__all__ = [
    "DecodeReplicasOpt",
    "KvConnectorOpt",
    "KvLinkOpt",
    "KvOverlapOpt",
    "PrefillGpuOpt",
    "PrefillReplicasOpt",
    "PrefillTpOpt",
    "SpecAcceptanceOpt",
    "SpecDraftTpOpt",
    "SpecModelOpt",
    "SpecOpt",
    "SpecTokensOpt",
    "disaggregated_from",
    "speculation_from",
]

SpecOpt = Annotated[
    str | None, typer.Option("--spec", help="Speculative decoding: draft_model, eagle, eagle3, mtp or ngram.")
]
SpecTokensOpt = Annotated[
    int | None, typer.Option("--spec-tokens", help="Draft tokens per step, k (default: the published figure's).")
]
SpecAcceptanceOpt = Annotated[
    str | None,
    typer.Option(
        "--spec-acceptance",
        help="One acceptance rate (0.7) or one per draft position (0.8,0.6,0.5) (default: published, cited).",
    ),
]
SpecModelOpt = Annotated[
    str | None,
    typer.Option("--spec-model", help="The draft model (name, config.json, folder, hub id) or an EAGLE head's hub id."),
]
SpecDraftTpOpt = Annotated[int | None, typer.Option("--spec-draft-tp", help="The draft model's TP: 1 or the target's.")]
PrefillReplicasOpt = Annotated[
    int | None, typer.Option("--prefill-replicas", help="Disaggregated: prefill instances (the x of xPyD).")
]
DecodeReplicasOpt = Annotated[
    int | None, typer.Option("--decode-replicas", help="Disaggregated: decode instances (the y of xPyD).")
]
PrefillGpuOpt = Annotated[
    str | None, typer.Option("--prefill-gpu", help="Disaggregated: the prefill pool's GPU (default: --gpu).")
]
PrefillTpOpt = Annotated[int | None, typer.Option("--prefill-tp", help="Disaggregated: the prefill pool's TP.")]
KvLinkOpt = Annotated[
    str, typer.Option("--kv-link", help="Disaggregated: the link between the pools (ib-ndr, roce-400g, nvlink4, ...).")
]
KvOverlapOpt = Annotated[
    str | None,
    typer.Option("--kv-overlap", help="Disaggregated: none, chunk or layer (default: the engine's connector's)."),
]
KvConnectorOpt = Annotated[
    str | None,
    typer.Option("--kv-connector", help="Disaggregated: NixlConnector (vLLM), mooncake or nixl (SGLang)."),
]


def speculation_from(
    model: ModelSpec,
    method: str | None,
    tokens: int | None,
    acceptance: str | None,
    spec_model: str | None,
    draft_tp: int | None,
) -> Speculation | None:
    """The speculation the options ask for (draft models by name, path or hub id)."""
    words = {"method": method, "tokens": tokens, "acceptance": acceptance, "model": spec_model, "draft_tp": draft_tp}
    return resolve_speculation(model, words, load_model)


def disaggregated_from(
    dep: Deployment,
    replicas: tuple[int | None, int | None],
    prefill: tuple[str | None, int | None],
    kv_link: str = DEFAULT_KV_LINK,
    kv_overlap: str | None = None,
    kv_connector: str | None = None,
) -> Disaggregated | None:
    """The pools the options ask for: ``dep`` is the decode pool (its speculation too), the prefill
    pool the same unless ``prefill`` = (GPU, TP) says otherwise; None when no pool is asked for."""
    (x, y), (gpu, tp) = replicas, prefill
    if x is None and y is None:
        if gpu is not None or tp is not None or kv_overlap is not None or kv_connector is not None:
            raise InputError("--prefill-gpu, --prefill-tp, --kv-overlap and --kv-connector need --prefill-replicas")
        return None
    if dep.parallelism.dp > 1:
        raise InputError("--dp counts co-located replicas: with --prefill-replicas/--decode-replicas leave it out")
    for label, value in (("--prefill-replicas", x), ("--decode-replicas", y)):
        check_range(label, value or 1, 1, MAX_PARALLEL)
    if gpu is None:  # the decode pool's GPU as it is (calibrated, a MIG slice)
        p_dep = replace(dep, parallelism=Parallelism(tp=tp or dep.parallelism.tp, dp=x or 1), speculation=None)
    else:
        choices = Choices(gpu, dep.precision.name, dep.kv_dtype.name, tp=tp or dep.parallelism.tp, dp=x or 1)
        p_dep = resolve_deployment(dep.model, choices, dep.engine, dep.environment)
    return Disaggregated(p_dep, dep.with_replicas(y or 1), kv_link, kv_connector, kv_overlap)
