"""Aggregation-aware training script (``make train-rsa``) at toy size on the embedded model: it runs
every stage, trains exactly the layers it claims (frozen ones unchanged, trained ones moved), logs
finite losses, and writes a checkpoint that loads back as ``transformers:<dir>`` and generates."""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("train_rsa_aggregation", ROOT / "scripts" / "train_rsa_aggregation.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_train_script_toy_run(tmp_path):
    from safetensors.torch import load_file

    from workbench.llm import SamplingParams, load_llm

    mod = load_script()
    out = tmp_path / "ckpt"
    report = mod.main(["--out", str(out), "--threads", "1", "--skip-eval", "--train-problems", "2", "--pool", "2",
                       "--sets", "1", "--sft-steps", "1", "--sft-batch", "2", "--rl-steps", "1", "--rl-prompts", "2",
                       "--max-new-tokens", "8", "--train-layers", "2", "--sft-lr", "1e-3"])
    assert report["data"]["rows"] == 2
    assert report["sft_steps_done"] == 1 and all(math.isfinite(x) for x in report["sft_loss"])
    assert report["rl_updates"] == 1
    saved = json.loads((out / "training_report.json").read_text())
    assert saved["trainable_params"] == report["trainable_params"]

    base = load_llm("default", cache="off").lm.state_dict()
    tuned = load_file(str(out / "model.safetensors"))
    n_layers = sum(1 for k in base if k.endswith("self_attn.q_proj.weight"))
    top = f"model.layers.{n_layers - 1}.mlp.down_proj.weight"
    bottom = "model.layers.0.mlp.down_proj.weight"
    assert torch.equal(tuned[bottom].float(), base[bottom].float()), "a frozen layer changed"
    assert not torch.equal(tuned[top].float(), base[top].float()), "a trained layer did not move"

    llm = load_llm(f"transformers:{out}?threads=1", cache="off")
    (c,) = llm.generate(["What is 2 + 3?"], SamplingParams(temperature=0.0, max_tokens=4))
    assert isinstance(c.text, str) and c.completion_tokens >= 1
