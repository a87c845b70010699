"""The engine settings of speculative decoding (issue 14): vLLM's ``--speculative-config`` JSON and
SGLang's ``--speculative-*`` flags, from the deployment's :class:`~inferplan.specs.speculation.Speculation`.

vLLM 0.33 (``vllm/config/speculative.py``, ``extra="forbid"``): ``method`` (draft_model, eagle,
eagle3, mtp, ngram), ``num_speculative_tokens``, ``model`` (the draft model or head; MTP uses the
target's own checkpoint), ``draft_tensor_parallel_size`` (1 or the target's TP), and for n-gram
``prompt_lookup_min`` / ``prompt_lookup_max``. SGLang 0.5 (``--speculative-algorithm`` EAGLE,
EAGLE3, NEXTN (MTP), STANDALONE (a draft model), NGRAM): chain drafting of k steps is
``--speculative-num-steps k --speculative-eagle-topk 1 --speculative-num-draft-tokens k+1``.
"""

from __future__ import annotations

import json

from inferplan.errors import InputError
from inferplan.specs.deployment import Deployment
from inferplan.specs.model_catalog import catalog_models
from inferplan.specs.speculation import Speculation

__all__ = ["NGRAM_LOOKUP", "SGLANG_ALGORITHMS", "sglang_speculative_settings", "vllm_speculative_config"]

#: n-gram lookup window (min, max): the one the published n-gram figure was measured with
#: (vLLM pull request #24344; data/speculation.yaml).
NGRAM_LOOKUP = (2, 5)
SGLANG_ALGORITHMS = {
    "eagle": "EAGLE",
    "eagle3": "EAGLE3",
    "mtp": "NEXTN",
    "draft_model": "STANDALONE",
    "ngram": "NGRAM",
}


def _drafter(spec: Speculation) -> str | None:
    """What the engine loads as the drafter: a catalog draft model's hub id, else the id given;
    an EAGLE head must be named (there is no default head for most models)."""
    if spec.method in ("mtp", "ngram"):
        return None
    if spec.draft is not None:
        entry = catalog_models().get(spec.draft.name)
        if entry is not None and (spec.draft_id is None or spec.draft_id == spec.draft.name):
            return entry.hf_id
    if not spec.draft_id:
        raise InputError(
            f"--spec {spec.method} needs its head's hub id: --spec-model ORG/NAME "
            "(e.g. yuhuili/EAGLE3-LLaMA3.1-Instruct-8B for Llama-3.1-8B-Instruct)"
        )
    return spec.draft_id


def _draft_tp(dep: Deployment) -> int | None:
    spec = dep.speculation
    assert spec is not None
    tp = spec.draft_tp
    if tp is not None and tp not in (1, dep.parallelism.tp):
        raise InputError(f"--spec-draft-tp must be 1 or the target's TP ({dep.parallelism.tp}); vLLM refuses {tp}")
    return tp


def vllm_speculative_config(dep: Deployment) -> str | None:
    """``--speculative-config`` as JSON text (None without speculation)."""
    spec = dep.speculation
    if spec is None:
        return None
    config: dict[str, object] = {"method": spec.method, "num_speculative_tokens": spec.num_tokens}
    drafter = _drafter(spec)
    if drafter:
        config["model"] = drafter
    if spec.method == "ngram":
        config["prompt_lookup_min"], config["prompt_lookup_max"] = NGRAM_LOOKUP
    tp = _draft_tp(dep)
    if tp is not None:
        config["draft_tensor_parallel_size"] = tp
    return json.dumps(config, separators=(",", ":"))


def sglang_speculative_settings(dep: Deployment) -> dict[str, int | str]:
    """SGLang's speculative server arguments by their ``ServerArgs`` names (empty without)."""
    spec = dep.speculation
    if spec is None:
        return {}
    settings: dict[str, int | str] = {"speculative_algorithm": SGLANG_ALGORITHMS[spec.method]}
    if spec.method != "ngram":
        settings |= {"speculative_num_steps": spec.num_tokens, "speculative_eagle_topk": 1}
    settings["speculative_num_draft_tokens"] = spec.num_tokens + 1
    drafter = _drafter(spec)
    if drafter:
        settings["speculative_draft_model_path"] = drafter
    return settings
