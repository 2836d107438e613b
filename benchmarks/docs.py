"""Regenerate the generated blocks of docs/benchmarks.md and docs/benchmarks-smollm2.md from the
saved results (benchmarks/results/*.json), or check that none is stale.

Every table and figure list between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` is rendered
by the ``doc_blocks(results)`` function of the benchmark that wrote the results; a benchmark
refreshes its own blocks after a run (`refresh`), and this command refreshes them all without
running anything. The test command runs ``--check``: a block edited by hand, or results saved
without their blocks, fails it.

    .venv/bin/python -m benchmarks.docs            # rewrite every block from the saved results
    .venv/bin/python -m benchmarks.docs --check    # exit 1 naming each stale block
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Callable
from typing import Any

from benchmarks._common import REPO, RESULTS

DOCS = (REPO / "docs" / "benchmarks.md", REPO / "docs" / "benchmarks-smollm2.md")

#: Each results file, and the benchmark module whose ``doc_blocks(results)`` renders its blocks.
SOURCES = {
    "strategies": "benchmarks.strategies",
    "strategies-qwen2.5-coder-0.5b": "benchmarks.strategies",
    "budgets": "benchmarks.budgets",
    "probes": "benchmarks.probes",
    "policy": "benchmarks.policy",
    "peers": "benchmarks.peers",
    "peers-gsm8k": "benchmarks.peers",
    "reliability": "benchmarks.reliability",
    "serve": "benchmarks.serve",
    "two_stage": "benchmarks.two_stage",
    "ood": "benchmarks.ood",
    "temperatures": "benchmarks.temperatures",
    "pool_policy": "benchmarks.pool_policy",
    "replay_check": "benchmarks.replay_check",
}


def _marker(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def _results(name: str) -> dict[str, Any]:
    import json

    return json.loads((RESULTS / f"{name}.json").read_text())


def rendered() -> dict[str, str]:
    """Every block, rendered from the saved results."""
    blocks: dict[str, str] = {}
    for name, module in SOURCES.items():
        render: Callable[[dict[str, Any]], dict[str, str]] = importlib.import_module(module).doc_blocks
        blocks.update(render(_results(name)))
    return blocks


def _split(doc: str, name: str) -> tuple[str, str, str] | None:
    begin, end = _marker(name)
    m = re.search(re.escape(begin) + r"\n(.*?)\n?" + re.escape(end), doc, flags=re.DOTALL)
    return None if m is None else (doc[: m.start(1)], m.group(1), doc[m.end(1) :])


def write(blocks: dict[str, str]) -> list[str]:
    """Put each block between its markers in whichever benchmark doc holds them; returns the
    blocks no doc holds (add their markers where they belong)."""
    texts = {path: path.read_text() for path in DOCS}
    missing = []
    for name, text in blocks.items():
        for path, doc in texts.items():
            if (parts := _split(doc, name)) is not None:
                texts[path] = parts[0] + text.rstrip("\n") + "\n" + parts[2].lstrip("\n")
                break
        else:
            missing.append(name)
    for path, doc in texts.items():
        if doc != path.read_text():
            path.write_text(doc)
    return missing


def refresh(results_name: str) -> None:
    """Rewrite the blocks of one results file (what a benchmark calls after saving them)."""
    module = importlib.import_module(SOURCES[results_name])
    if missing := write(module.doc_blocks(_results(results_name))):
        print(f"no doc holds the markers of {missing}; add them to {', '.join(str(p) for p in DOCS)}")


def stale() -> list[str]:
    """The blocks whose text differs from what the saved results render (or that no doc holds)."""
    texts = [path.read_text() for path in DOCS]
    out = []
    for name, text in rendered().items():
        found = [parts for doc in texts if (parts := _split(doc, name)) is not None]
        if not found or found[0][1].rstrip("\n") != text.rstrip("\n"):
            out.append(name)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if a block is stale instead of rewriting it")
    args = parser.parse_args()
    if args.check:
        if bad := stale():
            print(f"stale blocks (run python -m benchmarks.docs): {', '.join(bad)}")
            sys.exit(1)
        print("every generated block matches its results")
        return
    if missing := write(rendered()):
        print(f"no doc holds the markers of {missing}")
        sys.exit(1)


def figure_list(intro: str, stems: list[str], kinds: tuple[str, ...] = ("png", "svg")) -> str:
    """A block listing figures in docs/img by stem, each with the formats that exist."""
    img = REPO / "docs" / "img"
    lines = [intro, ""]
    for stem in stems:
        links = [f"[{kind}](img/{stem}.{kind})" for kind in kinds if (img / f"{stem}.{kind}").is_file()]
        lines.append(f"- {stem}: {', '.join(links)}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
