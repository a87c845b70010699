"""Launch commands and manifests for vLLM and SGLang whose memory settings match the plan.

The memory fraction is chosen so that the engine's own KV-cache budget holds the planned
concurrency at the planned context (vLLM: KV = total x gpu_memory_utilization - weights -
activations - runtime; SGLang's mem_fraction_static covers weights + KV), with a 5% margin.
The planned settings are named once (:func:`vllm_settings`, :func:`sglang_settings`); every
format writes them from there, as flags or as keyword arguments.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from inferplan.deploy.speculative_args import sglang_speculative_settings, vllm_speculative_config
from inferplan.deploy.workload_args import Setting, sglang_feature_settings, vllm_feature_settings
from inferplan.errors import DoesNotFitError, InputError
from inferplan.sizing.capacity import plan_memory
from inferplan.sizing.weights import weight_bytes
from inferplan.specs.deployment import Deployment
from inferplan.specs.hardware import gpus_per_server
from inferplan.specs.model import count_params
from inferplan.specs.precision import Precision
from inferplan.units import GIB

__all__ = [
    "IMAGES",
    "JSON_SETTINGS",
    "DeploySpec",
    "ServeTarget",
    "as_flags",
    "checkpoint_bytes",
    "engine_command",
    "engine_env",
    "require_vllm",
    "settings_for",
    "sglang_settings",
    "vllm_settings",
]

KV_MARGIN = 1.05
MAX_UTILIZATION = 0.95
#: The container image of each engine the manifests launch.
IMAGES = {"vllm": "vllm/vllm-openai:latest", "sglang": "lmsysorg/sglang:latest"}
#: vLLM's CPU build (its docs: docker/Dockerfile.cpu; release images on AWS ECR).
CPU_IMAGE = "public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo:latest"
#: vLLM settings whose value is JSON text on the command line (an object as keyword arguments).
JSON_SETTINGS = ("speculative_config", "kv_transfer_config")


@dataclass(frozen=True, slots=True)
class ServeTarget:
    """What the engine serves and how much it must hold: the model id it loads, the longest
    context (max_model_len), the sequences its KV cache must hold at once, and the port."""

    model_id: str
    context_tokens: int = 8192
    concurrency: int = 64
    port: int = 8000
    lora_modules: tuple[str, ...] = ()  # issue 13: NAME=PATH adapters the engine loads at start

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
        """The program launched: vLLM's CPU backend is vLLM too."""
        name = self.deployment.engine.name
        return "vllm" if name == "vllm-cpu" else name

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
        return CPU_IMAGE if self.deployment.gpu.is_cpu else IMAGES[self.engine]

    @property
    def checkpoint_bytes(self) -> float:
        return checkpoint_bytes(self.deployment)


def checkpoint_bytes(dep: Deployment) -> float:
    """Bytes of the checkpoint the engine downloads and reads: a pre-quantised checkpoint holds
    the weights at the deployment's precision (``weight_bytes``); any other is published in 16-bit,
    2 bytes x parameters, and quantised online after loading (FP8)."""
    if dep.model.quantization is not None:
        return weight_bytes(dep.model, dep.precision).total
    return 2.0 * count_params(dep.model).total


def settings_for(dep: Deployment, target: ServeTarget) -> DeploySpec:
    """The smallest memory fraction whose KV cache holds ``target.concurrency`` x
    ``target.context_tokens`` tokens (with a 5% margin)."""
    if dep.engine.name not in (*IMAGES, "vllm-cpu"):
        raise InputError("--engine must be vllm or sglang")
    model = dep.model
    if target.context_tokens > model.max_position_embeddings:
        raise InputError(
            f"context {target.context_tokens} exceeds {model.name}'s {model.max_position_embeddings} positions"
        )
    sized = replace(dep, engine=replace(dep.engine, max_num_seqs=target.concurrency))
    base = plan_memory(sized)
    need = base.sequence_bytes(target.context_tokens) * target.concurrency * KV_MARGIN
    if dep.engine.memory_mode == "vllm-cpu":
        return _cpu_settings(sized, target, base.used_bytes, need)
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


def _cpu_settings(dep: Deployment, target: ServeTarget, used_bytes: float, need_bytes: float) -> DeploySpec:
    """vLLM-CPU: the KV cache is VLLM_CPU_KVCACHE_SPACE whole GiB (rounded up from the need),
    beside the weights and runtime within the engine's share of the socket's memory."""
    space = max(math.ceil(need_bytes / GIB), 1)
    room = dep.gpu.visible_memory_bytes * dep.engine.gpu_memory_utilization - used_bytes
    if space * GIB > room:
        raise DoesNotFitError(
            f"{target.concurrency} x {target.context_tokens} tokens need {space} GiB of KV cache on {dep.gpu.id}, "
            f"{room / GIB:.1f} GiB is left beside the weights; lower the concurrency or context (inferplan fit)"
        )
    sized = replace(dep, engine=replace(dep.engine, kv_cache_space_gib=space))
    return DeploySpec(sized, target, dep.engine.gpu_memory_utilization, plan_memory(sized).kv_tokens)


def _dtype(p: Precision) -> str:
    return {"fp16": "float16", "fp32": "float32"}.get(p.name, "bfloat16")


def _quantization(spec: DeploySpec) -> str | None:
    """Online quantisation the engine can do itself; pre-quantised checkpoints are detected."""
    if spec.deployment.model.quantization is not None or spec.deployment.precision.name in ("bf16", "fp16", "fp32"):
        return None
    if spec.deployment.precision.name == "fp8":
        return "fp8"
    raise InputError(
        f"{spec.deployment.precision.name} needs a pre-quantised checkpoint (AWQ/GPTQ/compressed-tensors); "
        "pass its repository or folder as the model"
    )


def vllm_settings(spec: DeploySpec) -> dict[str, Setting]:
    """The vLLM engine arguments that carry the plan, by their ``EngineArgs`` field names (the
    command-line flag is the name with dashes): parallelism, context, memory fraction, sequences,
    batched tokens, KV-cache dtype, weight dtype and online quantisation. Every format (command
    line, KServe's ``VLLM_ADDITIONAL_ARGS``, llm-d's args, Ray Serve's ``engine_kwargs``) reads
    them from here."""
    settings: dict[str, Setting] = {
        "tensor_parallel_size": spec.tp,
        "pipeline_parallel_size": spec.pp,
        "max_model_len": spec.max_model_len,
        "gpu_memory_utilization": spec.memory_fraction,
        "max_num_seqs": spec.max_num_seqs,
        "max_num_batched_tokens": spec.max_num_batched_tokens,
        "kv_cache_dtype": "fp8" if spec.deployment.kv_dtype.name == "fp8" else "auto",
        "dtype": _dtype(spec.deployment.precision),
    }
    quant = _quantization(spec)
    speculative = vllm_speculative_config(spec.deployment)  # issue 14
    return (
        settings
        | ({"enable_expert_parallel": True} if spec.deployment.parallelism.ep > 1 else {})  # EP = TP x DP
        | ({"quantization": quant} if quant else {})
        | ({"speculative_config": speculative} if speculative else {})
        | vllm_feature_settings(spec.deployment, spec.target.lora_modules)  # issue 13
    )


def sglang_settings(spec: DeploySpec) -> dict[str, Setting]:
    """SGLang's server arguments that carry the plan, by their ``ServerArgs`` field names."""
    settings: dict[str, Setting] = {
        "tp_size": spec.tp,
        "pp_size": spec.pp,
        "context_length": spec.max_model_len,
        "mem_fraction_static": spec.memory_fraction,
        "max_running_requests": spec.max_num_seqs,
        "chunked_prefill_size": spec.max_num_batched_tokens,
        "kv_cache_dtype": "fp8_e4m3" if spec.deployment.kv_dtype.name == "fp8" else "auto",
        "dtype": _dtype(spec.deployment.precision),
    }
    quant = _quantization(spec)
    ep = spec.deployment.parallelism.ep
    return (
        settings
        | ({"ep_size": ep} if ep > 1 else {})
        | ({"quantization": quant} if quant else {})
        | sglang_speculative_settings(spec.deployment)
        | sglang_feature_settings(spec.deployment, spec.target.lora_modules)  # issue 13
    )


def require_vllm(spec: DeploySpec, fmt: str) -> None:
    """KServe's templates, llm-d's chart and Ray Serve LLM start vLLM; refuse SGLang in one line."""
    if spec.engine != "vllm":
        raise InputError(
            f"--format {fmt} runs vLLM only; use --engine vllm, or --format shell, compose or k8s for {spec.engine}"
        )


def engine_env(spec: DeploySpec) -> dict[str, str]:
    """The engine's environment: NCCL warnings only, and for a replica spanning servers, NCCL and
    Gloo over InfiniBand / RoCE between the pipeline stages."""
    space = spec.deployment.engine.kv_cache_space_gib
    if space is not None:  # vLLM-CPU: the planned KV cache, in whole GiB
        return {"VLLM_CPU_KVCACHE_SPACE": str(space)}
    env = {"NCCL_DEBUG": "WARN"}
    if spec.nodes_per_replica > 1:
        env |= {
            "NCCL_IB_DISABLE": "0",
            "NCCL_SOCKET_IFNAME": "eth0",
            "NCCL_IB_HCA": "mlx5",
            "GLOO_SOCKET_IFNAME": "eth0",
        }
    return env


def as_flags(settings: Mapping[str, Setting]) -> list[str]:
    """``{"max_model_len": 8192}`` -> ``["--max-model-len", "8192"]``; a switch is ``--name`` (True) or
    ``--no-name`` (False), a list its flag and every value."""
    flags: list[str] = []
    for name, value in settings.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, list):
            flags += [flag, *value]
        else:
            flags += [flag, str(value)]
    return flags


def engine_command(
    spec: DeploySpec, python: str | None = None, extra: Mapping[str, Setting] | None = None
) -> list[str]:
    """The engine's launch command (``python -m ...`` when ``python`` is given); ``extra``: more
    settings by their argument names (a disaggregated pool's role)."""
    listen = ["--served-model-name", spec.served_name, "--host", "0.0.0.0", "--port", str(spec.port)]
    if spec.engine == "vllm":
        head = (
            [python, "-m", "vllm.entrypoints.openai.api_server", "--model", spec.model_id]
            if python
            else ["vllm", "serve", spec.model_id]
        )
        return [*head, *listen, *as_flags({**vllm_settings(spec), **(extra or {})})]
    head = [python or "python3", "-m", "sglang.launch_server", "--model-path", spec.model_id]
    return [*head, *listen, *as_flags({**sglang_settings(spec), **(extra or {})})]
