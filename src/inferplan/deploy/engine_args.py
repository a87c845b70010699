"""Launch commands and manifests for vLLM and SGLang whose memory settings match the plan.

The memory fraction is chosen so that the engine's own KV-cache budget holds the planned
concurrency at the planned context (vLLM: KV = total x gpu_memory_utilization - weights -
activations - runtime; SGLang's mem_fraction_static covers weights + KV), with a 5% margin.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from inferplan.errors import DoesNotFitError, InputError
from inferplan.sizing.capacity import plan_memory
from inferplan.specs.deployment import Deployment
from inferplan.specs.hardware import gpus_per_server
from inferplan.specs.precision import Precision

__all__ = ["IMAGES", "DeploySpec", "ServeTarget", "engine_command", "settings_for"]

KV_MARGIN = 1.05
MAX_UTILIZATION = 0.95
#: The container image of each engine the manifests launch.
IMAGES = {"vllm": "vllm/vllm-openai:latest", "sglang": "lmsysorg/sglang:latest"}


@dataclass(frozen=True, slots=True)
class ServeTarget:
    """What the engine serves and how much it must hold: the model id it loads, the longest
    context (max_model_len), the sequences its KV cache must hold at once, and the port."""

    model_id: str
    context_tokens: int = 8192
    concurrency: int = 64
    port: int = 8000

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= 100_000 or not 16 <= self.context_tokens <= 10_000_000:
            raise InputError("concurrency must be 1-100,000 and context 16-10,000,000 tokens")
        if not 1 <= self.port <= 65535:
            raise InputError(f"--port must be between 1 and 65535, got {self.port}")


@dataclass(frozen=True, slots=True)
class DeploySpec:
    """A deployment with the engine settings that hold the planned KV cache."""

    deployment: Deployment
    target: ServeTarget
    memory_fraction: float
    kv_tokens_per_replica: int

    @property
    def engine(self) -> str:
        return self.deployment.engine.name

    @property
    def model_id(self) -> str:
        return self.target.model_id

    @property
    def served_name(self) -> str:
        return self.deployment.model.name

    @property
    def port(self) -> int:
        return self.target.port

    @property
    def tp(self) -> int:
        return self.deployment.parallelism.tp

    @property
    def pp(self) -> int:
        return self.deployment.parallelism.pp

    @property
    def replicas(self) -> int:
        return self.deployment.parallelism.dp

    @property
    def gpus_per_replica(self) -> int:
        return self.deployment.gpus_per_replica

    @property
    def nodes_per_replica(self) -> int:
        return max(-(-self.gpus_per_replica // gpus_per_server(self.deployment.gpu)), 1)

    @property
    def max_num_seqs(self) -> int:
        return self.target.concurrency

    @property
    def max_model_len(self) -> int:
        return self.target.context_tokens

    @property
    def max_num_batched_tokens(self) -> int:
        return self.deployment.engine.max_num_batched_tokens

    @property
    def image(self) -> str:
        return IMAGES[self.engine]


def settings_for(dep: Deployment, target: ServeTarget) -> DeploySpec:
    """The smallest memory fraction whose KV cache holds ``target.concurrency`` x
    ``target.context_tokens`` tokens (with a 5% margin)."""
    if dep.engine.name not in IMAGES:
        raise InputError("--engine must be vllm or sglang")
    model = dep.model
    if target.context_tokens > model.max_position_embeddings:
        raise InputError(
            f"context {target.context_tokens} exceeds {model.name}'s {model.max_position_embeddings} positions"
        )
    sized = replace(dep, engine=replace(dep.engine, max_num_seqs=target.concurrency))
    base = plan_memory(sized)
    need = base.sequence_bytes(target.context_tokens) * target.concurrency * KV_MARGIN
    fraction = (base.used_bytes + need) / base.visible_bytes
    if fraction > MAX_UTILIZATION:
        par = dep.parallelism
        raise DoesNotFitError(
            f"{target.concurrency} x {target.context_tokens} tokens need a memory fraction of {fraction:.2f} on "
            f"{dep.gpu.id} (TP {par.tp}, PP {par.pp}); lower the concurrency or context, or add GPUs (inferplan fit)"
        )
    fraction = max(round(fraction + 0.005, 2), 0.5)
    final = plan_memory(replace(sized, engine=replace(sized.engine, gpu_memory_utilization=fraction)))
    return DeploySpec(sized, target, fraction, final.kv_tokens)


def _dtype(p: Precision) -> str:
    return "float16" if p.name == "fp16" else "bfloat16"


def _quantization(spec: DeploySpec) -> str | None:
    """Online quantisation the engine can do itself; pre-quantised checkpoints are detected."""
    if spec.deployment.model.quantization is not None or spec.deployment.precision.name in ("bf16", "fp16"):
        return None
    if spec.deployment.precision.name == "fp8":
        return "fp8"
    raise InputError(
        f"{spec.deployment.precision.name} needs a pre-quantised checkpoint (AWQ/GPTQ/compressed-tensors); "
        "pass its repository or folder as the model"
    )


def engine_command(spec: DeploySpec, python: str | None = None) -> list[str]:
    """The engine's launch command (``python -m ...`` when ``python`` is given)."""
    quant = _quantization(spec)
    if spec.engine == "vllm":
        head = (
            [python, "-m", "vllm.entrypoints.openai.api_server", "--model", spec.model_id]
            if python
            else ["vllm", "serve", spec.model_id]
        )
        args = [
            "--served-model-name",
            spec.served_name,
            "--host",
            "0.0.0.0",
            "--port",
            str(spec.port),
            "--tensor-parallel-size",
            str(spec.tp),
            "--pipeline-parallel-size",
            str(spec.pp),
            "--max-model-len",
            str(spec.max_model_len),
            "--gpu-memory-utilization",
            f"{spec.memory_fraction}",
            "--max-num-seqs",
            str(spec.max_num_seqs),
            "--max-num-batched-tokens",
            str(spec.max_num_batched_tokens),
            "--kv-cache-dtype",
            "fp8" if spec.deployment.kv_dtype.name == "fp8" else "auto",
            "--dtype",
            _dtype(spec.deployment.precision),
        ]
        expert = ["--enable-expert-parallel"] if spec.deployment.parallelism.ep > 1 else []
        return [*head, *args, *expert, *(["--quantization", quant] if quant else [])]
    head = [python or "python3", "-m", "sglang.launch_server"]
    args = [
        "--model-path",
        spec.model_id,
        "--served-model-name",
        spec.served_name,
        "--host",
        "0.0.0.0",
        "--port",
        str(spec.port),
        "--tp-size",
        str(spec.tp),
        "--pp-size",
        str(spec.pp),
        "--context-length",
        str(spec.max_model_len),
        "--mem-fraction-static",
        f"{spec.memory_fraction}",
        "--max-running-requests",
        str(spec.max_num_seqs),
        "--chunked-prefill-size",
        str(spec.max_num_batched_tokens),
        "--kv-cache-dtype",
        "fp8_e4m3" if spec.deployment.kv_dtype.name == "fp8" else "auto",
        "--dtype",
        _dtype(spec.deployment.precision),
    ]
    ep = spec.deployment.parallelism.ep
    return [*head, *args, *(["--ep-size", str(ep)] if ep > 1 else []), *(["--quantization", quant] if quant else [])]
