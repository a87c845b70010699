"""LoRA adapters served beside one base model (issue 13): how many adapters the traffic spreads
over, their rank and adapted modules, and the engine's adapter slots.

vLLM 0.32 (``vllm/config/lora.py``): ``--max-loras`` adapters can run in one batch, each GPU slot
sized for ``--max-lora-rank`` (one of 1, 8, 16, 32, 64, 128, 256, 320, 512); ``--max-cpu-loras``
adapters are kept in host memory (at least ``--max-loras``; default ``--max-loras``). SGLang:
``--max-loras-per-batch``, ``--max-lora-rank``, ``--max-loaded-loras``.
"""

from __future__ import annotations

from dataclasses import dataclass

from inferplan.errors import InputError

__all__ = ["ATTENTION_TARGETS", "LORA_RANKS", "MLP_TARGETS", "LoraSpec", "parse_targets"]

#: The ranks vLLM's adapter slots accept (``MaxLoRARanks``).
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
ATTENTION_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_TARGETS = ("gate_proj", "up_proj", "down_proj")
#: Adapters beyond this many in one batch are not planned (vLLM preallocates a slot for each).
MAX_LORAS = 256
MAX_ADAPTERS = 100_000


def parse_targets(text: str) -> tuple[str, ...]:
    """``all``, ``attention``, ``mlp`` or module names (``q_proj,v_proj``) as one tuple."""
    names: list[str] = []
    for word in (w.strip() for w in text.split(",")):
        if word == "all":
            names += [*ATTENTION_TARGETS, *MLP_TARGETS]
        elif word == "attention":
            names += ATTENTION_TARGETS
        elif word == "mlp":
            names += MLP_TARGETS
        elif word in ATTENTION_TARGETS or word in MLP_TARGETS:
            names.append(word)
        else:
            raise InputError(
                f"--lora-targets '{word}': use all, attention, mlp or module names "
                f"({', '.join(ATTENTION_TARGETS + MLP_TARGETS)})"
            )
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True, slots=True)
class LoraSpec:
    """``adapters`` distinct adapters of rank ``rank`` adapting ``targets``; the engine runs up to
    ``max_loras`` of them in one batch (slots of rank ``max_lora_rank``) and keeps ``max_cpu_loras``
    in host memory. Defaults: ``max_loras`` = min(adapters, 16), ``max_cpu_loras`` = adapters,
    ``max_lora_rank`` = the smallest slot rank vLLM accepts that holds ``rank``."""

    adapters: int
    rank: int = 16
    targets: tuple[str, ...] = ATTENTION_TARGETS + MLP_TARGETS
    max_loras: int | None = None
    max_cpu_loras: int | None = None
    max_lora_rank: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.adapters <= MAX_ADAPTERS:
            raise InputError(f"--lora-adapters must be between 1 and {MAX_ADAPTERS:,}, got {self.adapters}")
        if not 1 <= self.rank <= LORA_RANKS[-1]:
            raise InputError(f"--lora-rank must be between 1 and {LORA_RANKS[-1]}, got {self.rank}")
        if not self.targets or any(t not in ATTENTION_TARGETS + MLP_TARGETS for t in self.targets):
            raise InputError("--lora-targets must name at least one of the attention or MLP projections")
        if self.max_loras is not None and not 1 <= self.max_loras <= MAX_LORAS:
            raise InputError(f"--max-loras must be between 1 and {MAX_LORAS}, got {self.max_loras}")
        if self.max_lora_rank is not None and (self.max_lora_rank not in LORA_RANKS or self.max_lora_rank < self.rank):
            raise InputError(
                f"--max-lora-rank {self.max_lora_rank}: use one of {', '.join(map(str, LORA_RANKS))}, "
                f"at least the adapters' rank {self.rank}"
            )
        if self.max_cpu_loras is not None and not self.slots <= self.max_cpu_loras <= MAX_ADAPTERS:
            raise InputError(f"--max-cpu-loras must be at least --max-loras ({self.slots}), got {self.max_cpu_loras}")

    @property
    def slots(self) -> int:
        """Adapters that can run in one batch (GPU slots)."""
        return self.max_loras if self.max_loras is not None else min(self.adapters, 16)

    @property
    def cpu_slots(self) -> int:
        """Adapters kept in host memory."""
        return self.max_cpu_loras if self.max_cpu_loras is not None else max(self.adapters, self.slots)

    @property
    def slot_rank(self) -> int:
        """The rank each GPU slot is sized for."""
        if self.max_lora_rank is not None:
            return self.max_lora_rank
        return next(r for r in LORA_RANKS if r >= self.rank)

    def label(self) -> str:
        return f"LoRA {self.adapters}xr{self.rank}"

    def key(self) -> tuple[object, ...]:
        return (self.adapters, self.rank, self.targets, self.slots, self.cpu_slots, self.slot_rank)
