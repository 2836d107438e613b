"""Backend speed on this machine: model load time, greedy tokens/s, n=8 sampling tokens/s, and
how much faster concurrent calls finish than the same calls one after another.

Runs a registered model (``--model``, default the embedded SmolLM2-135M-Instruct) on each
backend (transformers, in-process vLLM, and a `vllm serve` process through OpenAIBackend), prints
a table and writes benchmarks/results/backends.json (the embedded model) or
backends-<model>.json (any other, e.g. backends-qwen2.5-coder-0.5b.json).

    .venv/bin/python -m benchmarks.backends [--model smollm2-135m] [--dtype float32] [--max-tokens 64]
        [--skip vllm,server]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

from rich.console import Console
from rich.table import Table

from benchmarks._common import write_results  # noqa: E402
from ttc_agent.backends.models import MODELS, TEST_MODEL, model_dir, named_model  # noqa: E402

PROMPTS = [
    [{"role": "user", "content": "Write a short story about a lighthouse keeper."}],
    [{"role": "user", "content": "Explain how photosynthesis works."}],
    [
        {
            "role": "user",
            "content": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether?",
        }
    ],
]


def measure(backend, max_tokens: int) -> dict:
    """Greedy and n=8 throughput over the prompts, after one warm-up call, and the greedy
    prompts again from one thread each at once (what concurrent graph threads do): how many
    times faster than one after another they finish."""
    backend.generate(PROMPTS[0], max_tokens=8)
    out = {}
    for label, kwargs in (("greedy", {}), ("n8", {"n": 8, "temperature": 0.8, "seed": 0})):
        tokens = seconds = 0.0
        for p in PROMPTS:
            gen = backend.generate(p, max_tokens=max_tokens, **kwargs)
            tokens += gen.completion_tokens
            seconds += gen.seconds
        out[f"{label}_tokens"] = int(tokens)
        out[f"{label}_seconds"] = round(seconds, 3)
        out[f"{label}_tokens_per_s"] = round(tokens / seconds, 2)
    started = time.perf_counter()
    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        list(pool.map(lambda p: backend.generate(p, max_tokens=max_tokens), PROMPTS))
    out["concurrent_greedy_seconds"] = round(time.perf_counter() - started, 3)
    out["concurrent_speedup"] = round(out["greedy_seconds"] / out["concurrent_greedy_seconds"], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--skip", default="", help="comma-separated: transformers, vllm, server")
    parser.add_argument("--model", default=TEST_MODEL, choices=sorted(MODELS), help="a registered model")
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "bfloat16"],
        help="vLLM's weights dtype, in process and served (transformers runs float32)",
    )
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    from ttc_agent.backends import OpenAIBackend, TransformersBackend, VLLMBackend, VLLMServer

    spec = named_model(args.model)
    folder = model_dir(args.model)
    rows: dict[str, dict] = {}
    console = Console()
    if "transformers" not in skip:
        with console.status("transformers..."):
            b = TransformersBackend(folder)
            rows["transformers"] = {"load_seconds": round(b.load_seconds, 2), **measure(b, args.max_tokens)}
            del b
    if "vllm" not in skip:
        with console.status("in-process vLLM..."):
            b = VLLMBackend(folder, dtype=args.dtype)
            rows["vllm"] = {"load_seconds": round(b.load_seconds, 2), **measure(b, args.max_tokens)}
            b.llm.llm_engine.engine_core.shutdown()
            del b
    if "server" not in skip:
        with console.status("vllm serve + OpenAIBackend..."):
            with VLLMServer(folder, served_name=args.model, dtype=args.dtype) as server:
                b = OpenAIBackend(server.v1, timeout=120)
                rows["openai (vllm serve)"] = {
                    "load_seconds": round(server.ready_after or 0, 2),
                    **measure(b, args.max_tokens),
                }
    table = Table(title=f"Backends on {args.model} ({len(PROMPTS)} prompts, max_tokens={args.max_tokens})")
    for col in ("backend", "load s", "greedy tok/s", "n=8 tok/s", "n=8 / greedy s", "concurrent speed-up"):
        table.add_column(col, justify="right")
    for name, r in rows.items():
        ratio = r["n8_seconds"] / r["greedy_seconds"]
        r["n8_over_greedy_seconds"] = round(ratio, 2)
        table.add_row(
            name,
            f"{r['load_seconds']:.1f}",
            f"{r['greedy_tokens_per_s']:.1f}",
            f"{r['n8_tokens_per_s']:.1f}",
            f"{ratio:.2f}x",
            f"{r['concurrent_speedup']:.2f}x",
        )
    console.print(table)
    path = write_results(
        "backends" if args.model == TEST_MODEL else f"backends-{args.model}",
        {
            "model": args.model,
            "model_sha256": spec.sha256,
            "vllm_dtype": args.dtype,
            "max_tokens": args.max_tokens,
            "prompts": len(PROMPTS),
            "backends": rows,
        },
    )
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
