"""Where the engine runs: bare metal, a cloud VM with GPU passthrough, vGPU or a MIG slice.

Virtualisation costs are explicit, editable assumptions, printed with every result that
uses them. Their ranges come from the project's seed analysis (hypervisor CPU overhead
5-15%, GPU virtualisation 3-8%, scheduler jitter cutting continuous-batching efficiency
15-30%); the defaults are the low-to-middle of each range.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from inferplan.errors import InputError

__all__ = ["BARE_METAL", "ENVIRONMENTS", "EnvironmentProfile", "get_environment", "with_mig"]

SOURCE = "inferplan seed analysis: hypervisor CPU 5-15%, GPU virtualisation 3-8%, jitter 15-30%"


@dataclass(frozen=True, slots=True)
class EnvironmentProfile:
    """cpu_overhead: extra fraction on the engine's CPU-side step time (hypervisor);
    gpu_overhead: extra fraction on GPU kernel time (mediated vGPU time slicing);
    jitter_loss: fraction of continuous-batching efficiency lost to vCPU scheduling jitter
    (step time is divided by 1 - jitter_loss); mig_profile: a MIG slice, e.g. '3g.40gb'."""

    name: str
    cpu_overhead: float = 0.0
    gpu_overhead: float = 0.0
    jitter_loss: float = 0.0
    mig_profile: str | None = None
    source: str = ""

    def __post_init__(self) -> None:
        for label in ("cpu_overhead", "gpu_overhead"):
            value = getattr(self, label)
            if not 0.0 <= value <= 2.0:
                raise InputError(f"{label} must be between 0 and 2 (a fraction), got {value}")
        if not 0.0 <= self.jitter_loss < 0.9:
            raise InputError(f"jitter_loss must be in [0, 0.9), got {self.jitter_loss}")

    def step_time_s(self, total_s: float, overhead_s: float) -> float:
        """Adjust one step: GPU part x (1 + gpu), CPU part x (1 + cpu), then / (1 - jitter)."""
        gpu_part = max(total_s - overhead_s, 0.0)
        adjusted = gpu_part * (1 + self.gpu_overhead) + overhead_s * (1 + self.cpu_overhead)
        return adjusted / (1.0 - self.jitter_loss)

    def assumptions(self) -> dict[str, float | str | None]:
        return {
            "environment": self.name,
            "cpu_overhead": self.cpu_overhead,
            "gpu_overhead": self.gpu_overhead,
            "jitter_loss": self.jitter_loss,
            "mig_profile": self.mig_profile,
            "source": self.source or "none (bare metal)",
        }


BARE_METAL = EnvironmentProfile("bare-metal")
MIG_SOURCE = "MIG slice: compute g/7, memory and bandwidth by slices"
ENVIRONMENTS: dict[str, EnvironmentProfile] = {
    "bare-metal": BARE_METAL,
    "vm": EnvironmentProfile("vm", cpu_overhead=0.10, gpu_overhead=0.0, jitter_loss=0.15, source=SOURCE),
    "vgpu": EnvironmentProfile("vgpu", cpu_overhead=0.10, gpu_overhead=0.05, jitter_loss=0.15, source=SOURCE),
}


def get_environment(spec: str, overrides: dict[str, float] | None = None) -> EnvironmentProfile:
    """'bare-metal', 'vm', 'vgpu' or 'mig:3g.40gb', with optional field overrides."""
    name, _, profile = spec.partition(":")
    if name == "mig":
        if not profile:
            raise InputError("--env mig needs a profile, e.g. mig:3g.40gb")
        env = EnvironmentProfile(
            f"mig:{profile}",
            mig_profile=profile,
            source=MIG_SOURCE,
        )
    elif name in ENVIRONMENTS and not profile:
        env = ENVIRONMENTS[name]
    else:
        raise InputError(f"unknown environment '{spec}'; use bare-metal, vm, vgpu or mig:PROFILE")
    if overrides:
        unknown = set(overrides) - {"cpu_overhead", "gpu_overhead", "jitter_loss"}
        if unknown:
            raise InputError(
                f"unknown environment setting(s) {sorted(unknown)}; use cpu_overhead, gpu_overhead, jitter_loss"
            )
        env = replace(
            env,
            cpu_overhead=overrides.get("cpu_overhead", env.cpu_overhead),
            gpu_overhead=overrides.get("gpu_overhead", env.gpu_overhead),
            jitter_loss=overrides.get("jitter_loss", env.jitter_loss),
        )
    return env


def with_mig(env: EnvironmentProfile, profile: str) -> EnvironmentProfile:
    """``env`` on a MIG slice (a GPU given as 'h100-sxm:3g.40gb' implies one)."""
    if env.mig_profile == profile:
        return env
    name = f"mig:{profile}" if env.name == "bare-metal" else f"{env.name}+mig:{profile}"
    return replace(env, name=name, mig_profile=profile, source=env.source or MIG_SOURCE)
