"""The tuned models (`--model tuned`, `tuned-1.5b`): LoRA adapters shipped in the package, each built
into a GGUF once per machine.

``agent/tuned/`` holds the adapter this project's own pipeline trained (data, command and figures:
docs/RESULTS.md) and ``manifest.json`` with the adapter's sha256. On first use the adapter is checked
against that hash, merged into the dequantized base model and exported to Q8_0 in the cache, the same
steps as ``analyst train export`` (up to about a minute on two cores, one line on stderr); later runs
load the cached file.
It is also the ``default`` model; ``--model base`` is the untuned one (docs/RESULTS.md says why).

Why Q8_0 and not the base's Q4_K_M: the base weights were dequantized from Q4_K_M, so they sit exactly
on its grid, and the adapter's deltas are small next to a grid step. Quantizing the merged weights
back to Q4_K_M rounds much of them away (measured: the tuned model's first reply turned back into the
base's). Q8_0's grid is 8-16x finer than the Q5_0/Q4_K it replaces: the deltas survive (the
same greedy reply as transformers with the adapter).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

from agent import models
from agent.models import ModelError, ResolvedModel, cache_dir
from agent.records import file_sha256

TUNED_DIR = Path(__file__).parent / "tuned"
# ``--model tuned-1.5b``: an adapter over the untuned 1.5B (``base-1.5b``, the optional extra
# model-1p5b); better on closed questions, slower, and not the default (docs/RESULTS.md).
TUNED_1P5B_DIR = Path(__file__).parent / "tuned_1p5b"
ADAPTER_FILE = "adapter_model.safetensors"
MANIFEST_FILE = "manifest.json"
QUANT = "q8_0"  # not the base's q4_k_m: see the module docstring


def read_manifest(adapter_dir: Path) -> dict | None:
    """A shipped adapter's manifest, or None when that adapter does not ship."""
    path = adapter_dir / MANIFEST_FILE
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
        manifest["adapter_sha256"], manifest["model_id"]  # noqa: B018 (required keys)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"the shipped model's {path.name} is unreadable ({exc}); reinstall analyst") from exc
    return manifest


def verify_adapter(adapter_dir: Path, manifest: dict) -> None:
    """Fail in one line when the shipped adapter is missing or is not the file the manifest names."""
    adapter = adapter_dir / ADAPTER_FILE
    if not adapter.exists() or not (adapter_dir / "adapter_config.json").exists():
        raise ModelError(f"the shipped tuned model is incomplete ({adapter_dir}); reinstall analyst")
    actual = file_sha256(adapter)
    if actual != manifest["adapter_sha256"]:
        raise ModelError(
            f"the shipped tuned model is corrupt: sha256 {actual[:12]}... != "
            f"{manifest['adapter_sha256'][:12]}...; reinstall analyst or use --model base"
        )


def tuned_gguf_path(manifest: dict) -> Path:
    """Where the built GGUF of this adapter lives in the cache (one file per adapter hash)."""
    return cache_dir() / "models" / f"{manifest['model_id']}-{manifest['adapter_sha256'][:12]}-{QUANT}.gguf"


def build_tuned_gguf(adapter_dir: Path, manifest: dict) -> Path:
    """Merge and export the adapter to Q8_0 in the cache once; concurrent callers wait on a lock."""
    dest = tuned_gguf_path(manifest)
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.with_name(dest.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # eval workers may all start at once: one builds, the rest wait
        if dest.exists():
            return dest
        verify_adapter(adapter_dir, manifest)
        print(
            f"analyst: building the tuned model once ({manifest['model_id']}: merge + {QUANT}, "
            "up to about a minute)...",
            file=sys.stderr,
            flush=True,
        )
        from finetune.export import ExportError, export_gguf
        from finetune.merge import MergeError

        try:
            with _quiet_libraries():
                export_gguf(adapter_dir, dest, quant=QUANT)
        except (ExportError, MergeError) as exc:
            raise ModelError(f"cannot build the tuned model: {exc}") from exc
    return dest


@contextlib.contextmanager
def _quiet_libraries() -> Iterator[None]:
    """No transformers progress bars or deprecation warnings in a user's run: the one line above says
    what is happening (a first `analyst run` printed four progress bars and a FutureWarning).

    transformers' GGUF loader draws its "Converting and de-quantizing GGUF tensors" bar with
    ``tqdm.auto`` directly, which ``disable_progress_bar`` does not reach: its ``tqdm`` is swapped for
    a silent one while the build runs."""
    from transformers import modeling_gguf_pytorch_utils as gguf_loader
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with (
            mock.patch.object(gguf_loader, "tqdm", functools.partial(gguf_loader.tqdm, disable=True)),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def shipped_tuned(adapter_dir: Path) -> ResolvedModel | None:
    """The tuned GGUF of the adapter in ``adapter_dir``, built on first use; None when it does not ship."""
    manifest = read_manifest(adapter_dir)
    if manifest is None:
        return None
    return ResolvedModel("gguf", build_tuned_gguf(adapter_dir, manifest), manifest["model_id"])


@dataclass(frozen=True)
class ShippedModel:
    """A tuned model that ships as a LoRA adapter in the package: ``name`` as ``--model`` spells it,
    ``adapter_dir`` its folder, ``base`` the ``--model`` name of the untuned model it was trained over
    (what ``analyst train --base NAME`` keeps training it over)."""

    name: str
    adapter_dir: Path
    base: str

    def ships(self) -> bool:
        """A cheap check, building nothing: its adapter is installed, and so is its base (``base-1.5b``
        is an optional extra)."""
        if self.base == models.LARGER_NAME and models.package_dir(models.LARGER_PACKAGES[0]) is None:
            return False
        return read_manifest(self.adapter_dir) is not None

    def resolve(self) -> ResolvedModel | None:
        """Its GGUF, built on first use; None when its adapter does not ship."""
        return shipped_tuned(self.adapter_dir)

    def require(self) -> ResolvedModel:
        """``--model NAME``: its GGUF, or a one-line error when its adapter is missing."""
        if (found := self.resolve()) is None:
            raise ModelError(
                f"no {self.name} model ships with this install ({self.adapter_dir / MANIFEST_FILE} is missing)"
            )
        return found


# Tuned models that ``default`` tries, in order, before the base. The 0.5B adapter (agent/tuned/,
# ``--model tuned``) is the default: on the held-out split it finishes and answers far more tasks
# than the base under the same loop (docs/RESULTS.md). ``--model base`` is the untuned model.
# ``tuned-1.5b`` comes after it, so it is the default only in an install without the 0.5B adapter:
# it needs the optional extra, and is slower.
SHIPPED: list[ShippedModel] = [
    ShippedModel("tuned", TUNED_DIR, "base"),
    ShippedModel("tuned-1.5b", TUNED_1P5B_DIR, models.LARGER_NAME),
]


def named(name: str) -> ShippedModel | None:
    """The shipped model ``--model NAME`` names, or None."""
    return next((shipped for shipped in SHIPPED if shipped.name == name), None)
