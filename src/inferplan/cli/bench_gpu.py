"""``inferplan bench gpu``: micro-benchmarks of this machine (GEMM, memory, host-to-device,
all-reduce, disk), and on a CPU the device file ``--gpu measured:FILE`` reads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from inferplan.bench.store import ResultsStore
from inferplan.cli.bench import DbOpt, JsonOpt, err, out
from inferplan.cli.common import emit_json, handles_errors
from inferplan.errors import InputError
from inferplan.present.payload_bench import BenchGpuPayload, MeasurementRow
from inferplan.present.text import table

__all__ = ["bench_gpu"]


@handles_errors
def bench_gpu(
    quick: Annotated[bool, typer.Option(help="Small sizes: seconds, not minutes.")] = False,
    disk_file: Annotated[Path | None, typer.Option(help="Read this file for the disk test (else a temp file).")] = None,
    world_size: Annotated[
        int | None, typer.Option(help="Processes for the all-reduce test (default: GPUs, or 2).")
    ] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, max=4096, help="CPU threads for torch (default: torch's own choice).")
    ] = None,
    save_device: Annotated[
        Path | None,
        typer.Option(help="Write the measured device (GEMM, memory) to FILE: use it as --gpu measured:FILE."),
    ] = None,
    device_only: Annotated[bool, typer.Option(help="GEMM and memory bandwidth only (skip disk, all-reduce).")] = False,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """GEMM FLOP/s per dtype, memory, host-to-device, all-reduce and disk bandwidth (needs torch);
    on a CPU, --save-device describes the machine for fit/predict/plan/calibrate."""
    from inferplan.bench.gpu import run_gpu_benchmarks, set_threads
    from inferplan.bench.serve import machine_description

    if disk_file is not None and not disk_file.is_file():
        raise InputError(f"--disk-file {disk_file} is not a file")
    if threads:
        set_threads(threads)
    device, results = run_gpu_benchmarks(
        quick, disk_file, world_size, None if as_json else err.print, device_only=device_only
    )
    saved = None
    if save_device is not None:
        from inferplan.bench.device_file import device_entry
        from inferplan.bench.device_file import save_device as write_device

        saved = write_device(save_device, device_entry(device, results))
    store = ResultsStore(db)
    try:
        run_id = store.start_run("gpu", {"quick": quick, "world_size": world_size}, machine_description() | device)
        for m in results:
            store.add_measurement(run_id, m.name, m.value, m.unit, m.params)
        store.finish_run(run_id, "complete", {"device": device["name"], "measurements": len(results)})
    finally:
        store.close()
    if as_json:
        emit_json(
            BenchGpuPayload(
                run_id=run_id,
                device=device,
                measurements=[
                    MeasurementRow(name=m.name, value=m.value, unit=m.unit, params=m.params) for m in results
                ],
            )
        )
        return
    rows = [[m.name, ", ".join(f"{k}={v}" for k, v in m.params.items()), f"{m.value:,.3f}", m.unit] for m in results]
    out.print(
        table(
            f"Micro-benchmarks on {device['name']} ({device['device']}), run {run_id}",
            ["measurement", "parameters", "value", "unit"],
            rows,
        )
    )
    if saved is not None:
        out.print(f"device saved to {saved}: use --gpu measured:{saved}", markup=False, highlight=False)
