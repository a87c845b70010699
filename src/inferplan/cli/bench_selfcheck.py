"""``inferplan bench self-check``'s payload and table: each metric's measured, server and
client share at p50, p99 and max, for each number of streams."""

from __future__ import annotations

from inferplan.bench.selfcheck import METRICS, SelfCheck
from inferplan.cli.common import out
from inferplan.present.payload_bench import LagQuantiles, SelfCheckFigure, SelfCheckPayload, SelfCheckPoint
from inferplan.present.text import ms, table

__all__ = ["print_self_check", "self_check_payload"]

QUANTILES = ("p50", "p99", "max")


def self_check_payload(
    points: list[SelfCheck], token_delay_s: float, event_loop: str, sustained: float | None = None
) -> SelfCheckPayload:
    return SelfCheckPayload(
        event_loop=event_loop,
        token_delay_s=token_delay_s,
        sustained_chunks_per_s=sustained,
        points=[
            SelfCheckPoint(
                concurrency=p.concurrency,
                requests=p.num_requests,
                succeeded=p.num_ok,
                figures=[
                    SelfCheckFigure(
                        metric=metric,
                        percentile=q,
                        measured_s=p.figures[metric]["measured"][q],
                        server_s=p.figures[metric]["server"][q],
                        client_s=p.figures[metric]["client"][q],
                    )
                    for metric in METRICS
                    for q in QUANTILES
                ],
                receive_delay_s=LagQuantiles.model_validate(p.receive_delay_s),
                send_lag_s=LagQuantiles.model_validate(p.send_lag_s),
                loop_lag_s=LagQuantiles.model_validate(p.loop_lag_s),
                wall_s=p.wall_s,
                chunks_per_s=p.chunks_per_s,
                kept_up=p.sustained(token_delay_s),
            )
            for p in points
        ],
    )


def print_self_check(payload: SelfCheckPayload) -> None:
    rows = []
    for p in payload.points:
        for metric in METRICS:
            figs = {f.percentile: f for f in p.figures if f.metric == metric}
            rows.append(
                [
                    str(p.concurrency),
                    metric.upper(),
                    *(ms(figs[q].measured_s, 3) for q in QUANTILES),
                    *(ms(figs[q].server_s, 3) for q in QUANTILES),
                    *(ms(figs[q].client_s, 3) for q in QUANTILES),
                ]
            )
    heads = ["streams", "metric"] + [f"{w} {q}" for w in ("measured", "server", "client") for q in QUANTILES]
    title = (
        f"What the client adds (ms), against a local server {payload.token_delay_s * 1e3:g} ms between tokens, "
        f"event loop {payload.event_loop}"
    )
    out.print(table(title, heads, rows))
    for p in payload.points:
        delay = " / ".join(ms(getattr(p.receive_delay_s, q), 3) for q in QUANTILES)
        out.print(
            f"{p.concurrency} streams: {p.succeeded}/{p.requests} requests; chunk receive delay p50 / p99 / max "
            f"{delay} ms; "
            f"event-loop lag p99 {ms(p.loop_lag_s.p99, 3)} ms; send lag p99 {ms(p.send_lag_s.p99, 3)} ms; "
            f"{p.chunks_per_s:,.0f} chunks/s" + ("" if p.kept_up else " (client ITL p99 over 10% of the gap)"),
            highlight=False,
        )
    out.print("client = measured - server, per request (per gap for ITL); percentiles of those differences.")
    gap = f"{payload.token_delay_s * 1e3:g} ms"
    if payload.sustained_chunks_per_s is None:
        out.print(f"One client process kept up at none of these points (client ITL p99 over 10% of {gap}).")
    else:
        out.print(
            f"One client process sustains {payload.sustained_chunks_per_s:,.0f} chunks/s with its ITL p99 share "
            f"within 10% of {gap}; bench serve warns when each of its processes (--ray --workers) needs more.",
            highlight=False,
        )
