"""Speculative decoding as a deployment carries it (:class:`Speculation`): the method, the draft
length k, the conditional acceptance of each draft position, and the drafter.

Methods (vLLM 0.33 ``--speculative-config`` names): ``draft_model`` (a smaller model of the same
tokenizer), ``eagle`` / ``eagle3`` (a one-layer head on the target's hidden states), ``mtp`` (the
model's own multi-token-prediction layer) and ``ngram`` (prompt lookup on the CPU).

Acceptance defaults come from ``data/speculation.yaml``: published figures, each cited and marked
verified or not (:func:`published_acceptance`); :func:`resolve_speculation` turns the words people
type (a method, a k, one rate or one rate per position, a draft model name) into a Speculation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from itertools import pairwise
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inferplan.errors import ConfigError, InputError
from inferplan.limits import MAX_SPECULATIVE_TOKENS
from inferplan.specs.model import LayerSpec, ModelSpec
from inferplan.specs.model_catalog import catalog_models

__all__ = [
    "EAGLE3_DRAFT_VOCAB",
    "METHODS",
    "Published",
    "Speculation",
    "expected_tokens_per_step",
    "head_model",
    "mtp_layers",
    "published_acceptance",
    "rate_for_acceptance_length",
    "resolve_speculation",
]

#: The methods inferplan prices, by vLLM's ``method`` name.
METHODS = ("draft_model", "eagle", "eagle3", "mtp", "ngram")
_ALIASES = {"draft": "draft_model", "eagle1": "eagle", "eagle-3": "eagle3", "nextn": "mtp", "ngram_gpu": "ngram"}
#: EAGLE-3 heads predict over a reduced draft vocabulary (32,000 tokens in the published heads).
EAGLE3_DRAFT_VOCAB = 32_000


def expected_tokens_per_step(acceptance: Sequence[float]) -> float:
    """Tokens one verification step emits per sequence: ``E = 1 + sum_i prod_{j<=i} a_j`` for
    conditional per-position acceptance ``a_i`` (Leviathan et al. 2023, arXiv:2211.17192; with one
    rate ``a`` it is ``(1 - a^(k+1)) / (1 - a)``). The 1 is the token the target samples itself."""
    total, run = 1.0, 1.0
    for a in acceptance:
        run *= a
        total += run
    return total


def rate_for_acceptance_length(length: float, k: int) -> float:
    """The one rate ``a`` with ``a + a^2 + ... + a^k = length - 1`` (bisection; the sum rises with a)."""
    if not 1.0 <= length <= k + 1:
        raise ConfigError(f"acceptance length {length} must lie between 1 and k + 1 = {k + 1}")
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if expected_tokens_per_step([mid] * k) < length:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@dataclass(frozen=True, slots=True)
class Speculation:
    """Speculative decoding of one deployment. ``acceptance[i]`` is the chance that draft position
    i+1 is accepted given that every earlier one was; ``source`` says where it comes from.
    ``draft`` is the draft model (``draft_model`` only); ``draft_id`` what the engine loads (a draft
    model or an EAGLE head); ``draft_tp`` the drafter's tensor parallelism (None: the target's)."""

    method: str
    num_tokens: int
    acceptance: tuple[float, ...]
    source: str = "given"
    draft: ModelSpec | None = None
    draft_id: str | None = None
    draft_tp: int | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InputError(f"--spec '{self.method}': use one of {', '.join(METHODS)}")
        if not 1 <= self.num_tokens <= MAX_SPECULATIVE_TOKENS:
            raise InputError(f"--spec-tokens must be between 1 and {MAX_SPECULATIVE_TOKENS}, got {self.num_tokens}")
        if len(self.acceptance) != self.num_tokens or not all(0.0 <= a <= 1.0 for a in self.acceptance):
            raise InputError(
                f"--spec-acceptance needs one rate or {self.num_tokens} rates (one per draft token), each in [0, 1]"
            )
        if (self.method == "draft_model") != (self.draft is not None):
            raise InputError("a draft_model speculation needs its draft model (--spec-model NAME), and only it has one")

    @property
    def expected_tokens(self) -> float:
        """Tokens per verification step per sequence (see :func:`expected_tokens_per_step`)."""
        return expected_tokens_per_step(self.acceptance)

    def label(self) -> str:
        """e.g. 'eagle3 k3'."""
        return f"{self.method} k{self.num_tokens}"

    def key(self) -> tuple[object, ...]:
        return (
            self.method,
            self.num_tokens,
            self.acceptance,
            self.draft.name if self.draft else None,
            self.draft_tp,
        )

    def describe(self) -> str:
        """One sentence with the figures and their source, as every output prints it."""
        rates = ", ".join(f"{a:.2f}" for a in self.acceptance)
        drafter = f" drafted by {self.draft.name}" if self.draft else ""
        return (
            f"speculative decoding {self.method}{drafter}, k={self.num_tokens}, acceptance per position {rates} "
            f"(conditional) = {self.expected_tokens:.2f} tokens per verification step; source: {self.source}"
        )


def head_model(target: ModelSpec, method: str) -> ModelSpec:
    """The drafter of a head method as a one-layer model in the target's shape: EAGLE / EAGLE-3
    heads are one dense decoder layer (EAGLE-3's LM head covers a 32k draft vocabulary), an MTP
    module is one layer like the target's last. ``extra_params`` is the input projection: 2d x d
    (EAGLE, MTP's eh_proj) or 3d x d (EAGLE-3 fuses three hidden states)."""
    d = target.hidden_size
    last = target.layers[-1]
    if method == "mtp":
        layer, vocab, fuse = LayerSpec(moe=last.moe), target.vocab_size, 2
    else:
        layer = LayerSpec()
        vocab = min(EAGLE3_DRAFT_VOCAB, target.vocab_size) if method == "eagle3" else target.vocab_size
        fuse = 3 if method == "eagle3" else 2
    return replace(
        target,
        name=f"{target.name}-{method}-head",
        layers=(layer,),
        vocab_size=vocab,
        tie_word_embeddings=True,
        extra_params=fuse * d * d,
        quantization=None,
        notes=(),
    )


def mtp_layers(model: ModelSpec) -> int:
    """MTP layers a catalog model ships (``num_nextn_predict_layers`` of its config.json); 0 when
    it ships none or is not in the catalog."""
    entry = catalog_models().get(model.name)
    value = entry.config.get("num_nextn_predict_layers", 0) if entry else 0
    return value if isinstance(value, int) else 0


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: str
    models: list[str] = Field(min_length=1)
    num_tokens: int = Field(ge=1, le=MAX_SPECULATIVE_TOKENS)
    measured_tokens: int = Field(ge=1, le=MAX_SPECULATIVE_TOKENS)
    acceptance_length: float | None = Field(None, ge=1.0)
    per_position: list[float] | None = None
    head: str | None = None
    source: str = Field(min_length=10)
    conditions: str
    verified: bool
    note: str = ""


@dataclass(frozen=True, slots=True)
class Published:
    """One published figure: conditional rates at the measured positions, its default k, the
    drafter it was measured with (when known) and the citation."""

    method: str
    models: tuple[str, ...]
    num_tokens: int
    rates: tuple[float, ...]
    head: str | None
    source: str
    conditions: str
    verified: bool
    note: str

    def acceptance(self, k: int) -> tuple[float, ...]:
        """Rates for k positions: the measured ones, the last repeated beyond them."""
        return tuple(self.rates[min(i, len(self.rates) - 1)] for i in range(k))

    def citation(self) -> str:
        status = "" if self.verified else " (not verified first-hand)"
        return f"{self.source}; {self.conditions}{status}"


def _rates(e: _Entry) -> tuple[float, ...]:
    if e.per_position is not None:
        p = e.per_position
        if len(p) != e.measured_tokens or any(not 0 < x <= 1 for x in p) or any(b > a for a, b in pairwise(p)):
            raise ConfigError(f"speculation.yaml, {e.method}: per_position must hold {e.measured_tokens} falling rates")
        return tuple(b / a for a, b in zip((1.0, *p), p, strict=False))
    if e.acceptance_length is None:
        raise ConfigError(f"speculation.yaml, {e.method}: give acceptance_length or per_position")
    return (rate_for_acceptance_length(e.acceptance_length, e.measured_tokens),)


@cache
def _published() -> tuple[Published, ...]:
    path = resources.files("inferplan") / "data" / "speculation.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        entries = [_Entry.model_validate(x) for x in raw]
    except (OSError, yaml.YAMLError, ValidationError, TypeError) as exc:
        raise ConfigError(f"speculation.yaml: {str(exc).splitlines()[0]}") from exc
    return tuple(
        Published(
            e.method, tuple(e.models), e.num_tokens, _rates(e), e.head, e.source, e.conditions, e.verified, e.note
        )
        for e in entries
    )


def published_acceptance(method: str, model: ModelSpec) -> Published:
    """The published figure for ``method`` on ``model``, else the method's default ('*')."""
    rows = [p for p in _published() if p.method == method]
    for p in rows:
        if model.name in p.models:
            return p
    for p in rows:
        if "*" in p.models:
            return p
    raise ConfigError(f"speculation.yaml has no default for method '{method}'")


def _method(text: str) -> str:
    key = text.strip().lower().replace("-", "_")
    key = _ALIASES.get(text.strip().lower(), _ALIASES.get(key, key))
    if key not in METHODS:
        raise InputError(f"--spec '{text}': use one of {', '.join(METHODS)}")
    return key


def _acceptance(text: str | None, k: int | None, default: Published) -> tuple[int, tuple[float, ...], str]:
    """(k, conditional rates, source) from '0.7' (one rate) or '0.8,0.6,0.5' (one per position)."""
    if text is None or not text.strip():
        k = k or default.num_tokens
        return k, default.acceptance(k), default.citation()
    try:
        rates = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise InputError(f"--spec-acceptance '{text}': give one rate (0.7) or one per position (0.8,0.6,0.5)") from None
    if len(rates) == 1:
        k = k or default.num_tokens
        return k, rates * k, "given (one rate for every position)"
    if k is not None and k != len(rates):
        raise InputError(f"--spec-acceptance gives {len(rates)} rates but --spec-tokens is {k}")
    return len(rates), rates, "given (per position)"


def resolve_speculation(
    target: ModelSpec,
    words: dict[str, Any],
    load_draft: Callable[[str], ModelSpec],
) -> Speculation | None:
    """A Speculation from the options people give: ``method`` (None: none), ``tokens`` (k),
    ``acceptance`` ('0.7' or '0.8,0.6,0.5'), ``model`` (a draft model's name, config or hub id for
    draft_model, an EAGLE head's hub id otherwise) and ``draft_tp``. ``load_draft`` resolves a
    draft model name (the command line reads paths and hub ids, the web only the catalog)."""
    if not words.get("method"):
        if any(words.get(k) is not None for k in ("tokens", "acceptance", "model", "draft_tp")):
            raise InputError("--spec-tokens, --spec-acceptance, --spec-model and --spec-draft-tp need --spec METHOD")
        return None
    method = _method(str(words["method"]))
    published = published_acceptance(method, target)
    k, rates, source = _acceptance(words.get("acceptance"), words.get("tokens"), published)
    model_id = words.get("model")
    draft = None
    if method == "draft_model":
        if not model_id:
            raise InputError("--spec draft_model needs the draft model: --spec-model NAME (e.g. llama-3.2-1b)")
        draft = load_draft(str(model_id))
        if draft.vocab_size != target.vocab_size:
            raise InputError(
                f"draft model {draft.name} has a vocabulary of {draft.vocab_size:,} tokens and {target.name} of "
                f"{target.vocab_size:,}: a draft model must share the target's tokenizer"
            )
    if method == "mtp" and not mtp_layers(target):
        raise InputError(
            f"{target.name} ships no multi-token-prediction layer (num_nextn_predict_layers in its config.json); "
            "use --spec eagle3, draft_model or ngram"
        )
    head = model_id or (published.head if target.name in published.models else None)
    return Speculation(method, k, rates, source, draft, head, words.get("draft_tp"))
