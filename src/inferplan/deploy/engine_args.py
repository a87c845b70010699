"""Launch commands and manifests for vLLM and SGLang whose memory settings match the plan.

The memory fraction is chosen so that the engine's own KV-cache budget holds the planned
concurrency at the planned context (vLLM: KV = total x gpu_memory_utilization - weights -
activations - runtime; SGLang's mem_fraction_static covers weights + KV), with a 5% margin.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, replace
from typing import Any

import yaml

from inferplan.errors import DoesNotFitError, InputError
from inferplan.sizing.capacity import plan_memory
from inferplan.sizing.memory import EngineMemoryConfig, Parallelism
from inferplan.specs.hardware import GpuSpec
from inferplan.specs.model import ModelSpec
from inferplan.specs.precision import KvDtype, Precision

__all__ = ["DeploySpec", "compose_manifest", "engine_command", "k8s_manifests", "settings_for", "shell_script"]

KV_MARGIN = 1.05
MAX_UTILIZATION = 0.95


@dataclass(frozen=True, slots=True)
class DeploySpec:
    model_id: str
    served_name: str
    engine: str
    gpu: GpuSpec
    tp: int
    pp: int
    replicas: int
    precision: Precision
    kv_dtype: KvDtype
    prequantized: bool
    max_model_len: int
    max_num_seqs: int
    max_num_batched_tokens: int
    memory_fraction: float
    kv_tokens_per_replica: int
    port: int = 8000
    image: str = ""

    @property
    def gpus_per_replica(self) -> int:
        return self.tp * self.pp

    @property
    def nodes_per_replica(self) -> int:
        node = min(self.gpu.max_scale_up_gpus if self.gpu.scale_up else 8, 8)
        return max(-(-self.gpus_per_replica // node), 1)


def settings_for(
    model: ModelSpec,
    model_id: str,
    gpu: GpuSpec,
    precision: Precision,
    kv: KvDtype,
    par: Parallelism,
    engine: str,
    context_tokens: int,
    concurrency: int,
    max_num_batched_tokens: int = 8192,
    port: int = 8000,
) -> DeploySpec:
    """The smallest memory fraction whose KV cache holds ``concurrency`` x ``context_tokens``."""
    if engine not in ("vllm", "sglang"):
        raise InputError("--engine must be vllm or sglang")
    if not 1 <= concurrency <= 100_000 or not 16 <= context_tokens <= 10_000_000:
        raise InputError("concurrency must be 1-100,000 and context 16-10,000,000 tokens")
    if context_tokens > model.max_position_embeddings:
        raise InputError(f"context {context_tokens} exceeds {model.name}'s {model.max_position_embeddings} positions")
    cfg = EngineMemoryConfig(
        gpu_memory_utilization=0.9, max_num_batched_tokens=max_num_batched_tokens, max_num_seqs=concurrency
    )
    base = plan_memory(model, gpu, precision, kv, par, cfg)
    need = base.sequence_bytes(context_tokens) * concurrency * KV_MARGIN
    fraction = (base.used_bytes + need) / base.visible_bytes
    if fraction > MAX_UTILIZATION:
        raise DoesNotFitError(
            f"{concurrency} x {context_tokens} tokens need a memory fraction of {fraction:.2f} on {gpu.id} "
            f"(TP {par.tp}, PP {par.pp}); lower the concurrency or context, or add GPUs (inferplan fit)"
        )
    fraction = max(round(fraction + 0.005, 2), 0.5)
    final = plan_memory(model, gpu, precision, kv, par, replace(cfg, gpu_memory_utilization=fraction))
    return DeploySpec(
        model_id=model_id,
        served_name=model.name,
        engine=engine,
        gpu=gpu,
        tp=par.tp,
        pp=par.pp,
        replicas=par.dp,
        precision=precision,
        kv_dtype=kv,
        prequantized=model.quantization is not None,
        max_model_len=context_tokens,
        max_num_seqs=concurrency,
        max_num_batched_tokens=max_num_batched_tokens,
        memory_fraction=fraction,
        kv_tokens_per_replica=final.kv_tokens,
        port=port,
        image="vllm/vllm-openai:latest" if engine == "vllm" else "lmsysorg/sglang:latest",
    )


def _dtype(p: Precision) -> str:
    return "float16" if p.name == "fp16" else "bfloat16"


def _quantization(spec: DeploySpec) -> str | None:
    """Online quantisation the engine can do itself; pre-quantised checkpoints are detected."""
    if spec.prequantized or spec.precision.name in ("bf16", "fp16"):
        return None
    if spec.precision.name == "fp8":
        return "fp8"
    raise InputError(
        f"{spec.precision.name} needs a pre-quantised checkpoint (AWQ/GPTQ/compressed-tensors); "
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
            "fp8" if spec.kv_dtype.name == "fp8" else "auto",
            "--dtype",
            _dtype(spec.precision),
        ]
        return [*head, *args, *(["--quantization", quant] if quant else [])]
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
        "fp8_e4m3" if spec.kv_dtype.name == "fp8" else "auto",
        "--dtype",
        _dtype(spec.precision),
    ]
    return [*head, *args, *(["--quantization", quant] if quant else [])]


def _nccl_env(spec: DeploySpec) -> dict[str, str]:
    env = {"NCCL_DEBUG": "WARN"}
    if spec.nodes_per_replica > 1:  # pipeline stages on several servers talk over InfiniBand / RoCE
        env |= {
            "NCCL_IB_DISABLE": "0",
            "NCCL_SOCKET_IFNAME": "eth0",
            "NCCL_IB_HCA": "mlx5",
            "GLOO_SOCKET_IFNAME": "eth0",
        }
    return env


def shell_script(spec: DeploySpec, python: str | None = None) -> str:
    lines = [
        "#!/usr/bin/env bash",
        "# generated by inferplan deploy; memory settings follow the plan:",
        f"# KV cache for {spec.max_num_seqs} x {spec.max_model_len} tokens "
        f"({spec.kv_tokens_per_replica:,} tokens per replica) at memory fraction {spec.memory_fraction}",
        "set -euo pipefail",
    ]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in _nccl_env(spec).items()]
    if spec.nodes_per_replica > 1:
        lines += [
            "# multi-node: start a Ray cluster first (ray start --head on node 0, ray start "
            "--address=HEAD:6379 on the others), then run this on the head node"
        ]
    lines.append(shlex.join(engine_command(spec, python)))
    return "\n".join(lines) + "\n"


def _container_args(spec: DeploySpec) -> list[str]:
    cmd = engine_command(spec)
    return cmd[2:] if spec.engine == "vllm" else cmd  # the vLLM image's entrypoint is `vllm serve`; keep MODEL


def compose_manifest(spec: DeploySpec) -> dict[str, Any]:
    if spec.nodes_per_replica > 1:
        raise InputError("a replica spans several servers: use --format shell (Ray) or k8s with LeaderWorkerSet")
    services: dict[str, Any] = {}
    per = spec.gpus_per_replica
    for r in range(spec.replicas):
        services[f"{spec.engine}-{r}"] = {
            "image": spec.image,
            "command": _container_args(spec),
            "ports": [f"{spec.port + r}:{spec.port}"],
            "ipc": "host",
            "volumes": ["${HOME}/.cache/huggingface:/root/.cache/huggingface"],
            "environment": {"HF_TOKEN": "${HF_TOKEN:-}", **_nccl_env(spec)},
            "deploy": {
                "resources": {
                    "reservations": {
                        "devices": [
                            {
                                "driver": "nvidia",
                                "device_ids": [str(g) for g in range(r * per, (r + 1) * per)],
                                "capabilities": ["gpu"],
                            }
                        ]
                    }
                }
            },
            "healthcheck": {
                "test": ["CMD", "curl", "-f", f"http://localhost:{spec.port}/health"],
                "interval": "30s",
                "start_period": "600s",
            },
        }
    return {"services": services}


def k8s_manifests(spec: DeploySpec) -> list[dict[str, Any]]:
    if spec.nodes_per_replica > 1:
        raise InputError("a replica spans several servers: use --format shell (Ray) for multi-node pipelines")
    name = f"{spec.served_name}-{spec.engine}".replace(".", "-").lower()
    container = {
        "name": spec.engine,
        "image": spec.image,
        "args": _container_args(spec),
        "ports": [{"containerPort": spec.port}],
        "env": [{"name": k, "value": v} for k, v in _nccl_env(spec).items()],
        "resources": {"limits": {"nvidia.com/gpu": spec.gpus_per_replica}},
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
        "readinessProbe": {
            "httpGet": {"path": "/health", "port": spec.port},
            "periodSeconds": 10,
            "failureThreshold": 60,
        },
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [container],
                    "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}}],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": spec.port, "targetPort": spec.port}]},
    }
    return [deployment, service]


def render(spec: DeploySpec, fmt: str, python: str | None = None) -> str:
    if fmt == "shell":
        return shell_script(spec, python)
    if fmt == "compose":
        return yaml.safe_dump(compose_manifest(spec), sort_keys=False)
    if fmt == "k8s":
        return yaml.safe_dump_all(k8s_manifests(spec), sort_keys=False)
    raise InputError("--format must be shell, compose or k8s")
