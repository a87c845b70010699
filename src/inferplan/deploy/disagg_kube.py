"""Kubernetes manifests for disaggregated prefill/decode (issue 14): one Deployment per pool, the
router's Deployment and Service, and the ServiceAccount, Role and RoleBinding that let the router
list and watch the pools' pods (both routers find them by label through the Kubernetes API:
``--service-discovery --prefill-selector app=NAME-prefill --decode-selector app=NAME-decode``,
in the router's own namespace). :func:`render_disagg` writes either format."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import yaml

from inferplan.deploy.disaggregated import (
    BOOTSTRAP_PORT,
    DISAGG_FORMATS,
    NIXL_PORT,
    ROUTER_IMAGES,
    VLLM_ROUTER,
    DisaggDeploySpec,
    disagg_shell_script,
    role_settings,
    router_command,
)
from inferplan.deploy.engine_args import DeploySpec, engine_command, engine_env
from inferplan.deploy.kube import (
    SHM_BYTES,
    env_list,
    object_name,
    pod_resources,
    quantity_gib,
    readiness_probe,
    require_one_server,
)
from inferplan.errors import InputError

__all__ = ["ENGINE_PORT", "disagg_k8s_manifests", "render_disagg"]

#: Every engine pod listens on this port (the routers discover pods on one port).
ENGINE_PORT = 8000


def _pod_env(spec: DisaggDeploySpec, pool: DeploySpec) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = list(env_list(engine_env(pool)))
    if spec.engine == "vllm":
        env += [
            {"name": "VLLM_NIXL_SIDE_CHANNEL_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "VLLM_NIXL_SIDE_CHANNEL_PORT", "value": str(NIXL_PORT)},
        ]
    return env


def _pool_deployment(spec: DisaggDeploySpec, role: str, pool: DeploySpec) -> dict[str, Any]:
    require_one_server(pool, "k8s", "runs each replica in one pod")
    pool = replace(pool, target=replace(pool.target, port=ENGINE_PORT))
    name = f"{object_name(pool)[:55]}-{role}"
    cmd = engine_command(pool, None, role_settings(spec, role))
    args = cmd[2:] if spec.engine == "vllm" else cmd  # the vLLM image's entrypoint is `vllm serve`
    container = {
        "name": spec.engine,
        "image": pool.image,
        "args": args,
        "ports": [{"containerPort": pool.port, "name": "http"}],
        "env": _pod_env(spec, pool),
        "resources": pod_resources(pool),
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
        "readinessProbe": readiness_probe(pool.port),
    }
    template_meta: dict[str, Any] = {"labels": {"app": name, "inferplan.io/role": role}}
    if spec.engine == "sglang" and role == "prefill":
        template_meta["annotations"] = {"sglang.ai/bootstrap-port": str(BOOTSTRAP_PORT)}
    shm = {"medium": "Memory", "sizeLimit": quantity_gib(SHM_BYTES)}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": pool.replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": template_meta,
                "spec": {"containers": [container], "volumes": [{"name": "dshm", "emptyDir": shm}]},
            },
        },
    }


def _router_args(spec: DisaggDeploySpec, prefill_app: str, decode_app: str) -> list[str]:
    discovery = [
        "--service-discovery",
        "--prefill-selector",
        f"app={prefill_app}",
        "--decode-selector",
        f"app={decode_app}",
        "--service-discovery-port",
        str(ENGINE_PORT),
        "--service-discovery-namespace",
        "$(POD_NAMESPACE)",
    ]
    base = router_command(spec, [], [])
    if spec.engine == "vllm":
        return ["sh", "-c", f'pip install --no-cache-dir \'{VLLM_ROUTER}\' && exec "$0" "$@"', *base, *discovery]
    return [*base, *discovery]


def _rbac(name: str) -> list[dict[str, Any]]:
    rules = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
    subject = {"kind": "ServiceAccount", "name": name}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name}, "rules": rules},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [subject],
        },
    ]


def disagg_k8s_manifests(spec: DisaggDeploySpec) -> list[dict[str, Any]]:
    """RBAC for the router, one Deployment per pool, the router's Deployment and Service."""
    prefill = _pool_deployment(spec, "prefill", spec.prefill)
    decode = _pool_deployment(spec, "decode", spec.decode)
    name = f"{object_name(spec.prefill)[:55]}-router"
    container = {
        "name": "router",
        "image": ROUTER_IMAGES[spec.engine],
        "command": _router_args(spec, prefill["metadata"]["name"], decode["metadata"]["name"]),
        "ports": [{"containerPort": spec.router_port, "name": "http"}],
        "env": [{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
        "resources": {"requests": {"cpu": "2", "memory": "2Gi"}},
    }
    router = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"serviceAccountName": name, "containers": [container]},
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "selector": {"app": name},
            "ports": [{"name": "http", "port": spec.router_port, "targetPort": "http"}],
        },
    }
    return [*_rbac(name), prefill, decode, router, service]


def render_disagg(spec: DisaggDeploySpec, fmt: str, python: str | None = None) -> str:
    """The text of a disaggregated deployment in ``fmt`` (shell or k8s)."""
    if fmt == "shell":
        return disagg_shell_script(spec, python)
    if fmt == "k8s":
        return yaml.safe_dump_all(disagg_k8s_manifests(spec), sort_keys=False)
    raise InputError(f"disaggregated serving is written as --format {' or '.join(DISAGG_FORMATS)}; got {fmt!r}")
