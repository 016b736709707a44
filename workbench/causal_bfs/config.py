"""Configuration of the causal-BFS notebook (small CPU defaults)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Config:
    seed: int = 1
    """seed of the experiment (data sampling, per-request LLM seeds, pair orientation)"""
    backend: str = "default"
    """LLM spec for workbench.llm.load_llm (default = embedded SmolLM2-135M-Instruct)"""
    datasets: tuple[str, ...] = ("asia",)
    """bnlearn networks to discover (need a description file in workbench/causal_bfs/data/)"""
    methods: tuple[str, ...] = ("bfs", "bfs_stats", "pairwise", "pairwise_stats", "pc", "ges")
    """methods to run: bfs, bfs_stats (BFS + Pearson correlations), pairwise, pairwise_stats, pc, ges"""
    n_samples: int = 1000
    """observational samples drawn from the network (correlations, PC, GES)"""
    temperature: float = 0.7
    """sampling temperature (the reference code uses 0.7)"""
    top_p: float = 1.0
    """nucleus mass (reference: 1.0)"""
    max_tokens: int = 40
    """max new tokens per BFS query (reference: 4095; small for CPU; with prompt_style 'reference' use > reasoning_chars / 3 + 30)"""
    pairwise_max_tokens: int = 20
    """max new tokens per pairwise query. The short style's constrained answer ``<Answer>A</Answer>`` is 7
    tokens when tokenised canonically, but constrained sampling may spell it in smaller pieces (at 12
    tokens 14% of answers were cut): its 18 characters bound any spelling, so 20 cannot truncate it"""
    prompt_style: str = "short"
    """'reference': 'Think step by step, then <Answer>..' (the paper's prompts; with ``structured`` the reasoning is bounded by ``reasoning_chars``); 'short': answer-only with one placeholder format example (reconstruction for small models)"""
    structured: str = "auto"
    """constrained decoding of the answers: 'on', 'off', or 'auto' = on for the embedded / transformers / vllm backends (engines that enforce it), off for scripted and openai servers. BFS: <Answer> + 'none' or a ', '-list of the variable names + </Answer>; pairwise: <Answer>A|B|C</Answer>"""
    reasoning_chars: int = 160
    """with structured + reference style: at most this many characters of reasoning before a BFS answer (reconstruction; the paper lets GPT-4 reason freely)"""
    pairwise_reasoning_chars: int = 120
    """the same bound for pairwise answers"""
    parse_rule: str = "strict"
    """rule that reads answers for the traversal and the headline metrics: 'strict' (the authors' <Answer> format) or 'lenient' (fallbacks); the other reading is reported beside, labelled"""
    variable_order: str = "shuffled"
    """order the variables are listed in the prompts: 'shuffled' (seeded, per repeat), 'reference' (the reference code's order; asia, child), 'file' (the description file: topological, which a content-free responder can exploit)"""
    repeats: int = 2
    """repeats of each LLM method (each its own variable order and sampling seeds): the summary gives mean and standard error"""
    chat_history: bool = False
    """True: one growing chat as in the reference code (sequential queries); False: each query is a fresh prompt holding the roots and relationships found so far"""
    level_batched: bool = True
    """batch all frontier nodes of one BFS level into one generate call (each sees the relationships known at the start of its level); False = one node at a time as in the reference. Ignored with chat_history"""
    pairwise_max_nodes: int = 12
    """skip (and report) pairwise prompting on networks with more nodes (n(n-1)/2 queries)"""
    nhd_nodes: str = "all"
    """which m normalises NHD: 'all' variables, or 'predicted' (nodes in predicted edges, as the reference code)"""
    jitter: float = 1e-5
    """std of Gaussian noise added to the integer-coded data before PC/GES (as the reference)"""
    pc_alpha: float = 0.05
    """significance level of PC's Fisher-z tests (causal-learn default)"""
    column_order: str = "bnlearn"
    """column order of the sampled data that PC/GES see (PC's orientations depend on it): 'bnlearn' = the reference's (bnlearn builds the network from the .bif edge list, so its pgmpy samples have columns in first-appearance order), 'file' = .bif declaration order, 'topological'"""
    ges_score: str = "reference"
    """'reference': causal-learn 0.1.3.7's BIC as the reference ran it (twice the standard penalty, at most n/2 parents: lambda_value=1.0, maxP=n/2); 'library': the installed causal-learn's default (standard BIC, up to n parents)"""
    scaling_networks: tuple[str, ...] = ("asia", "sachs", "child", "insurance", "alarm", "hepar2")
    """networks for the query-count scaling curve (answered by a perfect expert that reads the true graph)"""
