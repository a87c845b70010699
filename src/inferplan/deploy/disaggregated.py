"""Deploy files for disaggregated prefill/decode (issue 14): each pool's engine with its role, and
the router that sends every request to a prefill instance and then to a decode instance.

* vLLM 0.33: ``--kv-transfer-config`` JSON with ``kv_connector`` NixlConnector and ``kv_role``
  kv_producer (prefill) / kv_consumer (decode); 0.33's parser rejects the old ``kv_rank``,
  ``kv_parallel_size`` and ``kv_buffer_size`` keys and P2pNcclConnector, so none is written. Each
  instance's NIXL side channel (``VLLM_NIXL_SIDE_CHANNEL_HOST`` / ``_PORT``) is its own. Router:
  ``vllm-router --vllm-pd-disaggregation --prefill URL --decode URL --kv-connector nixl``
  (PyPI ``vllm-router``, vllm-project/router).
* SGLang 0.5: ``--disaggregation-mode prefill|decode`` with ``--disaggregation-transfer-backend``
  (mooncake or nixl) and, on a prefill instance, ``--disaggregation-bootstrap-port``. Router:
  ``python -m sglang_router.launch_router --pd-disaggregation --prefill URL BOOTSTRAP_PORT
  --decode URL``.

Formats: ``shell`` here (every instance on this one server, then the router, waits bounded);
``k8s`` in :mod:`~inferplan.deploy.disagg_kube`.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, replace

from inferplan.deploy.engine_args import DeploySpec, ServeTarget, engine_command, engine_env, settings_for
from inferplan.errors import InputError
from inferplan.specs.disaggregation import Disaggregated
from inferplan.specs.hardware import gpus_per_server

__all__ = [
    "DISAGG_FORMATS",
    "ROUTER_IMAGES",
    "VLLM_ROUTER",
    "DisaggDeploySpec",
    "disagg_settings",
    "disagg_shell_script",
    "instances",
    "kv_transfer_config",
    "role_settings",
    "router_command",
]

DISAGG_FORMATS = ("shell", "k8s")
#: Ports of the instances on one server (prefill i: PREFILL_PORT + i, decode j: DECODE_PORT + j).
PREFILL_PORT, DECODE_PORT = 8100, 8200
#: NIXL's side channel (vLLM's default 5600), one per instance; SGLang's bootstrap (default 8998).
NIXL_PORT, BOOTSTRAP_PORT = 5600, 8998
#: The vLLM router is a PyPI package run from a slim Python image; SGLang's image ships its router.
VLLM_ROUTER = "vllm-router==0.1.17"
ROUTER_IMAGES = {"vllm": "python:3.12-slim", "sglang": "lmsysorg/sglang:latest"}
#: How long the shell script waits for each instance's /health (seconds) before it gives up.
HEALTH_WAIT_S = 1800


@dataclass(frozen=True, slots=True)
class DisaggDeploySpec:
    """Both pools with the engine settings that hold the planned KV cache, and the router's port."""

    disagg: Disaggregated
    prefill: DeploySpec
    decode: DeploySpec
    router_port: int

    @property
    def engine(self) -> str:
        return self.prefill.engine


def disagg_settings(dis: Disaggregated, target: ServeTarget) -> DisaggDeploySpec:
    """Each pool sized as ``settings_for`` sizes a replica; the router listens on the target's port."""
    if dis.engine_connector == "LMCacheConnectorV1":
        raise InputError(
            "--kv-connector LMCacheConnectorV1 needs LMCache's own configuration and proxy, which inferplan does "
            "not write; use NixlConnector"
        )
    prefill = settings_for(dis.prefill, replace(target, port=PREFILL_PORT))
    decode = settings_for(dis.decode, replace(target, port=DECODE_PORT))
    return DisaggDeploySpec(dis, prefill, decode, target.port)


def kv_transfer_config(connector: str, role: str) -> str:
    """vLLM's ``--kv-transfer-config`` for one pool (vLLM 0.33 keys only)."""
    kv_role = {"prefill": "kv_producer", "decode": "kv_consumer"}[role]
    return json.dumps({"kv_connector": connector, "kv_role": kv_role}, separators=(",", ":"))


def role_settings(spec: DisaggDeploySpec, role: str, instance: int = 0) -> dict[str, int | float | str]:
    """The settings that make an instance a prefill or a decode instance."""
    dis = spec.disagg
    if spec.engine == "vllm":
        return {"kv_transfer_config": kv_transfer_config(dis.engine_connector, role)}
    settings: dict[str, int | float | str] = {
        "disaggregation_mode": role,
        "disaggregation_transfer_backend": dis.engine_connector,
    }
    if role == "prefill":
        settings["disaggregation_bootstrap_port"] = BOOTSTRAP_PORT + instance
    return settings


def router_command(spec: DisaggDeploySpec, prefill_urls: list[str], decode_urls: list[str]) -> list[str]:
    """The router over these instances (a prefill URL carries its bootstrap port on SGLang)."""
    listen = ["--host", "0.0.0.0", "--port", str(spec.router_port)]
    if spec.engine == "vllm":
        urls = [p for u in prefill_urls for p in ("--prefill", u)] + [p for u in decode_urls for p in ("--decode", u)]
        return ["vllm-router", "--vllm-pd-disaggregation", *urls, "--kv-connector", "nixl", *listen]
    prefill = [p for i, u in enumerate(prefill_urls) for p in ("--prefill", u, str(BOOTSTRAP_PORT + i))]
    decode = [p for u in decode_urls for p in ("--decode", u)]
    return ["python3", "-m", "sglang_router.launch_router", "--pd-disaggregation", *prefill, *decode, *listen]


def instances(spec: DisaggDeploySpec) -> list[tuple[str, int, DeploySpec]]:
    """(role, index, the instance's settings on its own port) for every instance of both pools."""
    out = []
    for role, pool, base in (("prefill", spec.prefill, PREFILL_PORT), ("decode", spec.decode, DECODE_PORT)):
        out += [(role, i, replace(pool, target=replace(pool.target, port=base + i))) for i in range(pool.replicas)]
    return out


def disagg_shell_script(spec: DisaggDeploySpec, python: str | None = None) -> str:
    """Every instance on this server on its own GPUs, then the router once all are healthy."""
    need = spec.prefill.gpus_per_replica * spec.prefill.replicas + spec.decode.gpus_per_replica * spec.decode.replicas
    server = gpus_per_server(spec.prefill.deployment.gpu)
    if need > server or spec.prefill.deployment.gpu.id != spec.decode.deployment.gpu.id:
        raise InputError(
            f"the pools need {need} GPUs ({spec.disagg.label()}) and --format shell runs them on one {server}-GPU "
            "server of one GPU type: use --format k8s, or fewer replicas"
        )
    lines = [
        "#!/usr/bin/env bash",
        f"# generated by inferplan deploy: disaggregated prefill/decode, {spec.disagg.label()}",
        "set -euo pipefail",
        'LOGS="${LOGS:-$(mktemp -d)}"',
        'echo "logs in $LOGS"',
    ]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in engine_env(spec.prefill).items()]
    gpu, ports = 0, list[int]()
    for role, i, inst in instances(spec):
        env = [f"CUDA_VISIBLE_DEVICES={','.join(str(g) for g in range(gpu, gpu + inst.gpus_per_replica))}"]
        if spec.engine == "vllm":
            env.append(f"VLLM_NIXL_SIDE_CHANNEL_PORT={NIXL_PORT + len(ports)}")
        gpu += inst.gpus_per_replica
        ports.append(inst.port)
        cmd = engine_command(inst, python, role_settings(spec, role, i))
        lines.append(f'env {" ".join(env)} {shlex.join(cmd)} > "$LOGS/{role}-{i}.log" 2>&1 &')
    tries = HEALTH_WAIT_S // 5
    lines += [
        f"for port in {' '.join(str(p) for p in ports)}; do",
        f'  for _ in $(seq {tries}); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 5; done',
        '  curl -sf "http://127.0.0.1:$port/health" >/dev/null ||',
        f'    {{ echo "port $port not healthy after {HEALTH_WAIT_S} s; see $LOGS" >&2; exit 1; }}',
        "done",
    ]
    if spec.engine == "vllm":
        lines.append(f"# the router: pip install {shlex.quote(VLLM_ROUTER)}")
    urls = {
        role: [f"http://127.0.0.1:{inst.port}" for r, _, inst in instances(spec) if r == role]
        for role in ("prefill", "decode")
    }
    lines.append("exec " + shlex.join(router_command(spec, urls["prefill"], urls["decode"])))
    return "\n".join(lines) + "\n"
