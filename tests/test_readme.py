"""The README quotes the main job's output; this test regenerates that block from the current
output and fails when the README is stale (INFERPLAN_REGEN_DOCS=1 rewrites it)."""

from __future__ import annotations

import os
from pathlib import Path

from inferplan.plan.question import question_from
from inferplan.plan.service import answer
from inferplan.present.payload import to_json_dict
from inferplan.present.payload_plan import plan_payload
from inferplan.present.text_plan import COST_COLUMNS, assumptions_line, cost_notes, cost_rows

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- main-job:begin -->", "<!-- main-job:end -->"
MAIN_JOB = {"model": "llama-3.1-70b", "isl": 2000, "osl": 300, "rate_per_s": 10.0, "ttft_ms": 200.0}


def main_job_block() -> str:
    """The main job's headline, cost table and priced story, as the README quotes them."""
    d = to_json_dict(plan_payload(answer(question_from(MAIN_JOB), files=False), 10))
    lines = [" ".join(d["headline"]), "", "| " + " | ".join(COST_COLUMNS) + " |", "|" + "---|" * len(COST_COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in cost_rows(d["cost"])]
    lines += ["", *[f"- {line}" for line in d["cost"]["story"]], "", "Notes:", ""]
    lines += [*[f"- {line}" for line in cost_notes(d["cost"])], "", assumptions_line(d["cost"])]
    return "\n".join(lines)


def test_readme_quotes_the_main_jobs_current_output() -> None:
    text = README.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    block = "\n" + main_job_block() + "\n"
    if os.environ.get("INFERPLAN_REGEN_DOCS"):
        README.write_text(text[:start] + block + text[end:], encoding="utf-8")
        text = README.read_text(encoding="utf-8")
        start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    assert text[start:end] == block, (
        "README's main-job block is stale: INFERPLAN_REGEN_DOCS=1 pytest tests/test_readme.py"
    )
    assert "| option | offer | fleet |" in block and "Priced: llama-3.1-70b" in block
