"""The onnxruntime-genai engine (``onnx``) against the transformers engine (``transformers``) on the
embedded model: same texts for the same seeds, log-probabilities within float tolerance, batches of
mixed lengths equal to requests alone (right padding), the reserved padding id never sampled and a
prompt holding it decoded on its own, options and the one-time conversion."""
import json

import pytest

from workbench.llm import BackendOptionError, Regex, SamplingParams, load_llm

PROMPTS = ["Count to five.", "Name a fruit.", "Write two sentences about the sea and the rain.", "Hi"]

pytestmark = pytest.mark.model


def test_same_text_as_transformers_greedy_and_sampled(embedded_onnx, embedded_transformers, one_torch_thread):
    for p in (SamplingParams(temperature=0, max_tokens=16),
              SamplingParams(temperature=1.0, max_tokens=16, logprobs=True),
              SamplingParams(temperature=0.7, top_p=0.9, max_tokens=16, stop=(".",))):
        a = embedded_onnx.generate(PROMPTS, p, seeds=[1, 2, 3, 4])
        b = embedded_transformers.generate(PROMPTS, p, seeds=[1, 2, 3, 4])
        assert [c.text for c in a] == [c.text for c in b]
        assert [c.finish_reason for c in a] == [c.finish_reason for c in b]
        assert [c.completion_tokens for c in a] == [c.completion_tokens for c in b]
        if p.logprobs:
            for x, y in zip(a, b):
                assert x.logprobs == pytest.approx(y.logprobs, abs=1e-3)


def test_structured_same_as_transformers(embedded_onnx, embedded_transformers, one_torch_thread):
    p = SamplingParams(temperature=1.0, max_tokens=12, structure=Regex(r"(yes|no), [0-9]{1,2}"))
    a = embedded_onnx.generate(PROMPTS, p, seeds=[5, 6, 7, 8])
    b = embedded_transformers.generate(PROMPTS, p, seeds=[5, 6, 7, 8])
    assert [c.text for c in a] == [c.text for c in b]
    assert all(p.structure.matches(c.text) for c in a)


def test_mixed_length_batch_equals_alone(embedded_onnx, one_torch_thread):
    """Right padding: the short prompts of a batch continue from their own last token."""
    p = SamplingParams(temperature=1.0, max_tokens=12)
    batch = embedded_onnx.generate(PROMPTS, p, seeds=[9, 10, 11, 12])
    for i, s in enumerate([9, 10, 11, 12]):
        assert embedded_onnx.generate([PROMPTS[i]], p, seeds=[s])[0].text == batch[i].text


def test_prompt_holding_the_padding_id_is_decoded_alone(embedded_onnx, embedded_transformers, one_torch_thread):
    pad = embedded_onnx._pad
    odd = "Repeat after me: <filename> notes.txt"  # the reserved id's text, tokenised as that id
    assert pad in embedded_onnx.render(odd) and pad not in embedded_onnx.render(PROMPTS[0])
    p = SamplingParams(temperature=1.0, max_tokens=10)
    mixed = embedded_onnx.generate([PROMPTS[0], odd, PROMPTS[3]], p, seeds=[1, 2, 3])
    ref = embedded_transformers.generate([PROMPTS[0], odd, PROMPTS[3]], p, seeds=[1, 2, 3])
    assert [c.text for c in mixed] == [c.text for c in ref]


def test_padding_id_is_never_sampled(embedded_onnx):
    """Even where the model is told to put all its mass on it, the reserved id is not drawn."""
    import torch

    pad = embedded_onnx._pad
    logits = torch.full((2, embedded_onnx._vocab), -50.0)
    logits[:, pad] = 50.0
    logits[:, 7] = 0.0
    g = [torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)]
    chosen = embedded_onnx._sample(logits, g, SamplingParams(temperature=1.0))
    assert pad not in chosen.tolist()


def test_options_validated_before_conversion():
    with pytest.raises(BackendOptionError, match="transformers engine.*default\\?dtype"):
        load_llm("onnx?dtype=float32", cache="off")
    with pytest.raises(BackendOptionError, match="threads"):
        load_llm("onnx?threads=-1", cache="off")


def test_converted_folder_marker_and_reserved_id(embedded_onnx):
    from workbench.llm.embedded import GGUF_SHA256, embedded_onnx_dir

    d = embedded_onnx_dir()
    marker = json.loads((d / "workbench.json").read_text())
    cfg = json.loads((d / "genai_config.json").read_text())["model"]
    assert marker["gguf_sha256"] == GGUF_SHA256 and marker["precision"] == "fp32"
    assert cfg["pad_token_id"] == cfg["eos_token_id"] == marker["reserved_padding_id"] == 6
    assert embedded_onnx.tokenizer.convert_ids_to_tokens(6) == "<filename>"
    assert embedded_onnx.identity.endswith(":onnx-fp32-1")


def test_onnx_spec_needs_a_model_folder(tmp_path):
    from workbench.llm import ModelNotFoundError

    with pytest.raises(BackendOptionError):
        load_llm("onnx:", cache="off")
    llm = load_llm("onnx?max_batch_size=64", cache="off")  # the engine's limit is 32 rows
    assert llm.options["max_batch_size"] == 32
    with pytest.raises(ModelNotFoundError, match="genai_config.json"):
        load_llm(f"onnx:{tmp_path}", cache="off")
