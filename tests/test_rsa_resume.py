"""RSA resume: a checkpoint is used only by the run that wrote it (problem content, task, model), and
every corrupt checkpoint form raises the module's clear error naming the file. Scripted backend only."""
from __future__ import annotations

import json
import pickle
import random

import pytest

from workbench.llm import SamplingParams, load_llm
from workbench.rsa import Config, run, run_rsa
from workbench.tasks import MathTask, Problem

SP = SamplingParams(temperature=1.0, max_tokens=16)


def responder(prompt, req):
    return f"<answer>{random.Random(req.seed).randint(0, 9)}</answer> \\boxed{{{random.Random(req.seed).randint(0, 3)}}}"


def other_responder(prompt, req):
    return "\\boxed{1}"


def llm(fn=responder):
    return load_llm("scripted", responses=fn, cache="off")


def toy(answers=(0, 2, 4), question="What is {i} + {i}?"):
    return MathTask([Problem(f"p{i}", question.format(i=i), str(a)) for i, a in enumerate(answers)], name="toy")


def _rsa(task, ck, resume=False, model=None, **kw):
    return run_rsa(model or llm(), task, n=3, k=2, t=2, sampling=SP, seed=0, checkpoint_dir=ck, resume=resume,
                   progress=False, **kw)


def test_resume_with_another_task_seed_is_refused(tmp_path):
    """Reasoning Gym ids (chain_sum/0 ...) do not depend on task_seed: the content fingerprint tells them apart."""
    base = dict(backend="scripted", task="rg:chain_sum", n_problems=2, population=2, subset_size=2, steps=2,
                baselines=(), checkpoint_dir=str(tmp_path / "ck"))
    first = run(Config(**base, task_seed=0), llm=llm(), progress=False)
    again = run(Config(**base, task_seed=0, resume=True), llm=llm(), progress=False)  # same run: resumes
    assert again["summary"] == first["summary"]
    with pytest.raises(ValueError, match=r"different run.*problems_sha256"):
        run(Config(**base, task_seed=7, resume=True), llm=llm(), progress=False)


def test_resume_with_same_ids_but_other_questions_or_answers_is_refused(tmp_path):
    _rsa(toy(), tmp_path)
    assert _rsa(toy(), tmp_path, resume=True)["llm_calls"] == 0
    with pytest.raises(ValueError, match="problems_sha256"):
        _rsa(toy(answers=(0, 2, 5)), tmp_path, resume=True)
    with pytest.raises(ValueError, match="problems_sha256"):
        _rsa(toy(question="What is {i} plus {i}?"), tmp_path, resume=True)


def test_resume_with_another_model_is_refused(tmp_path):
    _rsa(toy(), tmp_path)
    with pytest.raises(ValueError, match="model_identity"):
        _rsa(toy(), tmp_path, resume=True, model=llm(other_responder))


def test_resume_with_an_llm_reporting_another_identity_is_refused(tmp_path):
    class Named:  # an LLM object that reports a content identity (e.g. hashes of its weights)
        def __init__(self, identity):
            self.inner, self.identity = llm(), identity

        def __getattr__(self, name):
            return getattr(self.inner, name)

    _rsa(toy(), tmp_path, model=Named("weights-a"))
    assert _rsa(toy(), tmp_path, resume=True, model=Named("weights-a"))["llm_calls"] == 0
    with pytest.raises(ValueError, match="model_identity"):
        _rsa(toy(), tmp_path, resume=True, model=Named("weights-b"))


def test_resume_with_another_task_kind_is_refused(tmp_path):
    class OtherScoring(MathTask):
        def score(self, answer, problem):
            return 1.0

    _rsa(toy(), tmp_path)
    t = OtherScoring(toy().problems, name="toy")
    with pytest.raises(ValueError, match="task"):
        _rsa(t, tmp_path, resume=True)


def _valid(tmp_path):
    _rsa(toy(), tmp_path)
    path = tmp_path / "rsa_k2_step001.json"
    return path, json.loads(path.read_text())


def _edit(fn):
    def apply(raw, d):
        fn(d)
        return json.dumps(d).encode()
    return apply


CORRUPT = {
    "truncated": lambda raw, d: raw[: len(raw) // 2],
    "empty file": lambda raw, d: b"",
    "garbage bytes": lambda raw, d: bytes(range(256)) * 3,
    "invalid utf-8 in a string": lambda raw, d: raw.replace(b'"text"', b'"te\xffxt"', 1),
    "pickle": lambda raw, d: pickle.dumps(d),
    "json list": lambda raw, d: b"[]",
    "json null": lambda raw, d: b"null",
    "json number": lambda raw, d: b"1",
    "json string": lambda raw, d: b'"checkpoint"',
    "deep nesting": lambda raw, d: b"[" * 100_000 + b"]" * 100_000,
    "step is a string": _edit(lambda d: d.update(step="1")),
    "fingerprint is a list": _edit(lambda d: d.update(fingerprint=[])),
    "no fingerprint": _edit(lambda d: d.pop("fingerprint")),
    "no population": _edit(lambda d: d.pop("population")),
    "population is a dict": _edit(lambda d: d.update(population={})),
    "population has a problem too few": _edit(lambda d: d["population"].pop()),
    "row has a candidate too few": _edit(lambda d: d["population"][0].pop()),
    "candidate is a string": _edit(lambda d: d["population"][0].__setitem__(0, "x")),
    "candidate without text": _edit(lambda d: d["population"][0][0].pop("text")),
    "text is a number": _edit(lambda d: d["population"][0][0].update(text=3)),
    "correct is a string": _edit(lambda d: d["population"][1][2].update(correct="yes")),
    "score is null": _edit(lambda d: d["population"][1][2].update(score=None)),
    "parents out of range": _edit(lambda d: d["population"][0][1].update(parents=[7])),
    "tokens are a float": _edit(lambda d: d["population"][0][1].update(prompt_tokens=1.5)),
}


@pytest.mark.parametrize("form", sorted(CORRUPT))
def test_every_corrupt_checkpoint_form_raises_the_clear_error(tmp_path, form):
    path, data = _valid(tmp_path)
    path.write_bytes(CORRUPT[form](path.read_bytes(), data))
    with pytest.raises(ValueError, match=r"rsa_k2_step001\.json.*(delete|another checkpoint_dir)") as e:
        _rsa(toy(), tmp_path, resume=True)
    assert type(e.value).__name__ == "CheckpointError"


def test_a_directory_in_place_of_a_checkpoint_raises_the_clear_error(tmp_path):
    path, _ = _valid(tmp_path)
    path.unlink()
    path.mkdir()
    with pytest.raises(ValueError, match=r"rsa_k2_step001\.json.*cannot be read.*delete"):
        _rsa(toy(), tmp_path, resume=True)


def test_a_corrupt_later_step_keeps_nothing_silently(tmp_path):
    """Step 1 fine, step 2 corrupt: the error names step 2's file (not a silent recompute)."""
    _rsa(toy(), tmp_path)
    (tmp_path / "rsa_k2_step002.json").write_text("{")
    with pytest.raises(ValueError, match=r"rsa_k2_step002\.json.*recompute step 2"):
        _rsa(toy(), tmp_path, resume=True)
