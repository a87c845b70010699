"""One error hierarchy for inferplan.

The library raises these; the CLI and the web layer catch :class:`InferplanError`,
print its one-line message (which says what is wrong and what to do) and exit
with :attr:`InferplanError.exit_code`.

::

    InferplanError                  exit 1
    ├── InputError                  exit 2   bad numbers, bad options
    │   └── ConfigError             exit 2   malformed config.json / YAML / CSV
    ├── UnknownNameError            exit 3   unknown model, GPU, price ...
    │   ├── UnknownModelError
    │   ├── UnknownGpuError
    │   └── AmbiguousNameError       a name that could mean several (lists them)
    ├── UnsupportedModelError       exit 4   model_type we cannot describe
    ├── DoesNotFitError             exit 5   memory does not suffice
    ├── InfeasibleError             exit 6   no configuration meets the targets
    ├── OfflineError                exit 7   a hub id was given without network
    └── BenchmarkError              exit 8   a measurement could not be made
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "AmbiguousNameError",
    "BenchmarkError",
    "ConfigError",
    "DoesNotFitError",
    "InfeasibleError",
    "InferplanError",
    "InputError",
    "OfflineError",
    "UnknownGpuError",
    "UnknownModelError",
    "UnknownNameError",
    "UnsupportedModelError",
    "closest_names",
]


class InferplanError(Exception):
    """Base class: a user-facing problem with a one-line message."""

    exit_code = 1


class InputError(InferplanError):
    """A number or option outside its valid range."""

    exit_code = 2


class ConfigError(InputError):
    """A configuration or data file is malformed; the message names file and field."""


class UnknownNameError(InferplanError):
    """A catalog name that does not exist; the message suggests close ones."""

    exit_code = 3

    def __init__(self, kind: str, name: str, known: Iterable[str], hint: str = "") -> None:
        self.name = name
        self.suggestions = closest_names(name, known)
        suggestion = f" Did you mean: {', '.join(self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"unknown {kind} '{name}'.{suggestion}{hint}")


class UnknownModelError(UnknownNameError):
    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(
            "model",
            name,
            known,
            " Run 'inferplan models' for the catalog, or pass a config.json path or model folder.",
        )


class UnknownGpuError(UnknownNameError):
    def __init__(self, name: str, known: Iterable[str], detail: str = "") -> None:
        super().__init__("GPU", name, known, f"{' ' + detail if detail else ''} Run 'inferplan gpus' for the catalog.")


class AmbiguousNameError(UnknownNameError):
    """A name that could mean several catalog entries and has no stated default."""

    def __init__(self, kind: str, name: str, candidates: Iterable[str]) -> None:
        self.name = name
        self.suggestions = list(candidates)
        InferplanError.__init__(self, f"{kind} '{name}' could mean {', '.join(self.suggestions)}; give one of them")


class UnsupportedModelError(InferplanError):
    exit_code = 4


class DoesNotFitError(InferplanError):
    exit_code = 5


class InfeasibleError(InferplanError):
    exit_code = 6


class OfflineError(InferplanError):
    exit_code = 7


class BenchmarkError(InferplanError):
    exit_code = 8


def closest_names(name: str, known: Iterable[str], limit: int = 3) -> list[str]:
    """Catalog names closest to ``name`` (substring matches first, then fuzzy)."""
    pool = list(known)
    low = name.lower()
    contains = [k for k in pool if low and low in k.lower()]
    fuzzy = difflib.get_close_matches(low, [k.lower() for k in pool], n=limit, cutoff=0.5)
    by_lower = {k.lower(): k for k in pool}
    out: list[str] = []
    for k in contains + [by_lower[f] for f in fuzzy]:
        if k not in out:
            out.append(k)
    return out[:limit]
