"""What the Kubernetes formats (k8s, KServe, llm-d) share: object names, the GPU resource a pod
asks for, its resource requests, the readiness probe and the model's URI."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from inferplan.deploy.engine_args import DeploySpec
from inferplan.errors import InputError
from inferplan.specs.hardware import GpuSpec

__all__ = [
    "GIB",
    "SHM_BYTES",
    "env_list",
    "gpu_resource",
    "host_cpus",
    "host_memory_bytes",
    "model_uri",
    "object_name",
    "pod_resources",
    "quantity_gib",
    "readiness_probe",
    "require_one_server",
]

GIB = 2**30
#: /dev/shm of the plain k8s and llm-d pods (an in-memory emptyDir): NCCL's intra-node buffers.
SHM_BYTES = 16 * GIB
#: Seconds between readiness checks, and failed checks before a pod leaves the Service.
PROBE_PERIOD_S = 10
PROBE_FAILURES = 3
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def require_one_server(spec: DeploySpec, fmt: str, why: str) -> None:
    """Refuse, in one line, a replica that spans servers in a format that cannot run one."""
    if spec.nodes_per_replica > 1:
        raise InputError(
            f"a replica of {spec.gpus_per_replica} GPUs spans {spec.nodes_per_replica} servers and --format {fmt} "
            f"{why}: use --format ray-serve or shell (Ray), or fewer GPUs per replica"
        )


def object_name(spec: DeploySpec) -> str:
    """A Kubernetes object name (an RFC 1035 label: lower-case letters, digits and dashes, a letter
    first, at most 63 characters) from the served model's name and the engine."""
    name = re.sub(r"[^a-z0-9]+", "-", f"{spec.served_name}-{spec.engine}".lower()).strip("-")
    if not name[:1].isalpha():
        name = f"m-{name}"
    return name[:63].rstrip("-")


def gpu_resource(gpu: GpuSpec) -> str:
    """The extended resource a pod requests for one GPU: the NVIDIA or AMD device plugin's name,
    or a MIG slice's own name (``nvidia.com/mig-3g.40gb``, the device plugin's mixed strategy)."""
    if gpu.mig_profile:
        return f"nvidia.com/mig-{gpu.mig_profile}"
    return "amd.com/gpu" if gpu.vendor == "amd" else "nvidia.com/gpu"


def host_cpus(spec: DeploySpec) -> int:
    """CPU cores one replica's pod needs: one worker process per GPU, plus the API
    server and the engine core (vLLM V1 runs each as its own process)."""
    return spec.gpus_per_replica + 2


def host_memory_bytes(spec: DeploySpec, shm_bytes: float) -> float:
    """Host memory one replica's pod needs: the checkpoint passes through the page cache while it
    loads, and an in-memory ``/dev/shm`` counts against the pod's memory."""
    return spec.checkpoint_bytes + shm_bytes


def quantity_gib(num_bytes: float) -> str:
    """A Kubernetes quantity in whole GiB, rounded up: ``"150Gi"``."""
    return f"{max(math.ceil(num_bytes / GIB), 1)}Gi"


def pod_resources(spec: DeploySpec, shm_bytes: float = SHM_BYTES) -> dict[str, Any]:
    """Limits and requests of the engine's container: its GPUs (an extended resource, so request
    equals limit), CPUs and host memory."""
    gpus = {gpu_resource(spec.deployment.gpu): str(spec.gpus_per_replica)}
    return {
        "limits": gpus,
        "requests": {
            **gpus,
            "cpu": str(host_cpus(spec)),
            "memory": quantity_gib(host_memory_bytes(spec, shm_bytes)),
        },
    }


def readiness_probe(port: int) -> dict[str, Any]:
    """Ready once the engine answers ``/health`` (after the weights load and the KV cache is
    allocated); out of the Service after three failed checks in a row."""
    return {
        "httpGet": {"path": "/health", "port": port},
        "periodSeconds": PROBE_PERIOD_S,
        "timeoutSeconds": 5,
        "failureThreshold": PROBE_FAILURES,
    }


def env_list(env: dict[str, str]) -> list[dict[str, str]]:
    """``{"A": "1"}`` -> ``[{"name": "A", "value": "1"}]``."""
    return [{"name": k, "value": v} for k, v in env.items()]


def model_uri(spec: DeploySpec, stack: str, schemes: tuple[str, ...]) -> str:
    """The model as a URI the stack downloads from: a hub id becomes ``hf://ID``; a URI with one of
    ``schemes`` passes through; a local path is refused (the cluster cannot read this machine)."""
    model = spec.model_id
    scheme, sep, _ = model.partition("://")
    if sep:
        if scheme in schemes:
            return model
        raise InputError(f"{stack} loads models from {', '.join(s + '://' for s in schemes)}; got {model!r}")
    if _HUB_ID.fullmatch(model) and not Path(model).exists():
        return f"hf://{model}"
    raise InputError(
        f"{stack} downloads the model inside the cluster: pass --model-id as a hub id (ORG/NAME) or a URI "
        f"({', '.join(s + '://' for s in schemes)}), not the local path {model!r}"
    )
