"""RSA widget and aggregation-training data, fed a scripted run."""
from __future__ import annotations

import json
import random

import pandas as pd
import pytest

from workbench.llm import load_llm
from workbench.rsa import Config, run
from workbench.rsa.training_data import write_aggregation_dataset
from workbench.tasks import ReasoningGymTask


def _fn(prompt, req):
    return f"work...\n<answer>{random.Random(req.seed).randint(0, 6)}</answer>"


@pytest.fixture(scope="module")
def results():
    cfg = Config(backend="scripted", task="rg:chain_sum", n_problems=2, population=4, subset_size=2, steps=3, k_sweep=(1,))
    return run(cfg, llm=load_llm("scripted", responses=_fn, cache="off"), progress=False)


def test_widget_views_build_from_results(results):
    from widgets.rsa import answer_counts, k_sweep_figure, lineage_figure, metric_curves, population_cards, population_inspector

    fig = metric_curves(results)
    names = {tr.name for tr in fig.data}
    assert {"RSA", "majority vote (N·t samples)", "best-of-m + self-verification", "self-refinement (K=1)"} <= names
    assert len(k_sweep_figure(results).data) == 2
    pops = results["rsa"]["populations"]
    lf = lineage_figure(pops, 0, 2)
    n_edges = sum(len(c["parents"]) for t in range(1, 3) for c in pops[t][0])
    assert len([x for x in lf.data[0].x if x is None]) == n_edges  # one segment per parent link
    assert len(lf.data[1].x) == 3 * 4
    counts = answer_counts(pops, 1, 3)
    assert sum(c for _, c in counts) == 4
    html = population_cards(pops, 0, 2, "5")
    assert html.count("slot ") == 4 and "parents" in html
    w = population_inspector(results)
    assert w.children[0].children[1].max == 3


def test_aggregation_dataset_rows_in_verl_trl_format(tmp_path):
    task = ReasoningGymTask("chain_sum", size=3, seed=0, config={"min_terms": 2, "max_terms": 2, "max_digits": 1})
    llm = load_llm("scripted", responses=_fn, cache="off")
    info = write_aggregation_dataset(llm, task, tmp_path / "agg.jsonl", k=2, pool_size=4, sets_per_problem=2, seed=1)
    assert info["rows"] == 6 and len(llm.calls) == 1 and len(llm.calls[0]) == 12  # one batched sampling call
    rows = [json.loads(line) for line in (tmp_path / "agg.jsonl").read_text().splitlines()]
    r = rows[0]
    assert r["prompt"][0]["role"] == "user" and "---- Solution 2 ----" in r["prompt"][0]["content"]
    assert r["reward_model"] == {"style": "rule", "ground_truth": task.problems[0].answer} == {"style": "rule", "ground_truth": r["answer"]}
    assert r["extra_info"]["k"] == 2 and len(r["extra_info"]["candidate_answers"]) == 2
    # the stored correctness flags agree with the task's own scorer
    p = task.problems[0]
    assert r["extra_info"]["candidates_correct"] == [task.score(a, p) == 1.0 for a in r["extra_info"]["candidate_answers"]]
    info = write_aggregation_dataset(llm, task, tmp_path / "agg.parquet", k=2, pool_size=4, sets_per_problem=1, seed=1)
    df = pd.read_parquet(tmp_path / "agg.parquet")
    assert len(df) == 3 and {"prompt", "reward_model", "data_source", "extra_info", "answer"} <= set(df.columns)
    with pytest.raises(ValueError, match="jsonl or .parquet"):
        write_aggregation_dataset(llm, task, tmp_path / "agg.csv", k=2, pool_size=4)
    assert len(llm.calls) == 2  # the bad path was refused before sampling
