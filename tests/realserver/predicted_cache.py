"""The simulator's prefix-cache hit rate for the traffic ``bench serve`` sends (issue 13), with the
KV block size the server runs with (vLLM-CPU takes only multiples of 32; vLLM on GPUs defaults to 16)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from inferplan.perf.predict import predict
from inferplan.perf.sessions import TrafficShape
from inferplan.perf.workload import LengthDist, Load, Workload
from inferplan.present.payload import to_json_dict
from inferplan.present.payload_perf import predict_payload
from inferplan.specs.deployment import Choices, resolve_deployment
from inferplan.specs.engines import get_engine
from inferplan.specs.model_catalog import load_model


def predicted_cache(
    config: Path, shape: TrafficShape, lengths: tuple[int, int], run: tuple[int, int, int], block_size: int
) -> dict[str, float]:
    """``predict``'s prefix-cache figures (hit_rate, structural_hit_rate, ...) for ``shape`` with
    messages and replies of ``lengths`` tokens; ``run`` = (concurrency, requests, seed)."""
    concurrency, n, seed = run
    engine = replace(get_engine("vllm"), block_size=block_size)
    dep = resolve_deployment(load_model(str(config), allow_hub=False), Choices("l4"), engine)
    wl = Workload(
        LengthDist(lengths[0]), LengthDist(lengths[1]), Load(concurrency=concurrency).arrivals(), n, seed, None, shape
    )
    payload = to_json_dict(predict_payload(predict(dep, wl), wl))
    cache: dict[str, float] = payload["workload_features"]["prefix_cache"]
    return cache
