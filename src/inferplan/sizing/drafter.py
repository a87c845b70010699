"""The memory a speculative drafter takes on every GPU of the target: its weights and its KV cache.

* a draft model: all its weights, split over its own TP (``draft_tp``, default the target's; with
  1 every rank holds a whole copy), and its own KV for every token of every sequence;
* an EAGLE / EAGLE-3 head or an MTP module: one decoder layer in the target's shape plus its input
  projection (and EAGLE-3's own 32k-vocabulary LM head), sharing the target's embedding and (but
  for EAGLE-3) its LM head; one layer of KV per token;
* n-gram: nothing on the GPU.

The engine keeps the drafter's KV in the same paged cache as the target's (vLLM allocates both from
one budget), so each token's KV bytes grow by the drafter's share: :func:`drafter_kv_bytes_per_token`.
"""

from __future__ import annotations

from inferplan.sizing.memory import kv_bytes_per_token_layer
from inferplan.sizing.weights import weight_bytes_per_gpu
from inferplan.specs.deployment import Deployment
from inferplan.specs.model import ModelSpec, count_params
from inferplan.specs.parallelism import Parallelism
from inferplan.specs.speculation import head_model

__all__ = ["drafter_deployment", "drafter_kv_bytes_per_token", "drafter_weight_bytes_per_gpu"]


def drafter_deployment(dep: Deployment) -> Deployment | None:
    """The drafter as a deployment of its own (its model at the target's precision and KV dtype,
    on the target's GPU, at ``draft_tp``); None for n-gram and without speculation."""
    spec = dep.speculation
    if spec is None or spec.method == "ngram":
        return None
    model: ModelSpec = spec.draft if spec.draft is not None else head_model(dep.model, spec.method)
    tp = spec.draft_tp or dep.parallelism.tp
    return Deployment(model, dep.gpu, dep.precision, dep.kv_dtype, Parallelism(tp=tp), dep.engine, dep.environment)


def drafter_weight_bytes_per_gpu(dep: Deployment) -> float:
    """Drafter weight bytes on each GPU of the target replica. A head shares the target's embedding
    table (counted once by :func:`head_model`, which ties it to the head's LM head); EAGLE-1 and MTP
    heads also share the target's LM head, so that table is not theirs to hold."""
    drafter = drafter_deployment(dep)
    if drafter is None:
        return 0.0
    par = drafter.parallelism
    own = weight_bytes_per_gpu(drafter.model, drafter.precision, par)
    spec = dep.speculation
    if spec is not None and spec.method in ("eagle", "mtp"):
        own -= count_params(drafter.model).embedding / par.tp * 2.0
    return max(own, 0.0)


def drafter_kv_bytes_per_token(dep: Deployment) -> float:
    """KV bytes the drafter adds per token on each GPU: its layers' K/V at its TP."""
    drafter = drafter_deployment(dep)
    if drafter is None:
        return 0.0
    m = drafter.model
    return kv_bytes_per_token_layer(m.attention, drafter.kv_dtype, drafter.parallelism.tp) * m.num_layers
