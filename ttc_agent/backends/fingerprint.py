"""A cheap, stable identity for a local model folder.

Probe and verifier bundles record it, so a bundle trained on one model's traces is never
silently used with another. It hashes the config, the tokenizer and the head and tail of each
weight file with its size, so it takes milliseconds even for multi-GB checkpoints. A named
model converted from a pinned GGUF file also carries that file's sha256 (``source``), which is
its identity: converting the same file again does not always write the same folder bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

_CHUNK = 1 << 20
_META_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json")


@lru_cache(maxsize=32)
def model_digest(model_dir: str) -> str:
    """A sha256 digest (first 16 hex digits) identifying the weights in ``model_dir``."""
    root = Path(model_dir)
    h = hashlib.sha256()
    for name in _META_FILES:
        p = root / name
        if p.is_file():
            h.update(name.encode())
            h.update(_stable_json(p))
    for p in sorted(root.glob("*.safetensors")) + sorted(root.glob("*.bin")):
        size = p.stat().st_size
        h.update(f"{p.name}:{size}".encode())
        with p.open("rb") as f:
            h.update(f.read(_CHUNK))
            if size > _CHUNK:
                f.seek(max(size - _CHUNK, _CHUNK))
                h.update(f.read(_CHUNK))
    return h.hexdigest()[:16]


def _stable_json(path: Path) -> bytes:
    """A JSON file's content without the ``transformers_version`` that saved it (a newer
    transformers writing the same weights must not change the model's identity)."""
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        return path.read_bytes()
    if isinstance(data, dict):
        data.pop("transformers_version", None)
    return json.dumps(data, sort_keys=True).encode()


def same_model(a: Mapping[str, object] | None, b: Mapping[str, object] | None) -> bool | None:
    """Whether two fingerprints name the same model: by the sha256 of the source file both were
    converted from where both record one (a named model, however its folder was written),
    else by the weights digest; ``None`` when either fingerprint says neither."""
    source_a, source_b = _source_sha256(a), _source_sha256(b)
    if source_a and source_b:
        return source_a == source_b
    weights_a, weights_b = (a or {}).get("weights"), (b or {}).get("weights")
    if weights_a and weights_b:
        return weights_a == weights_b
    return None


def _source_sha256(fingerprint: Mapping[str, object] | None) -> object:
    source = (fingerprint or {}).get("source")
    return source.get("gguf_sha256") if isinstance(source, Mapping) else None
