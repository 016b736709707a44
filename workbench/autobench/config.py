"""Configuration of the Auto-Bench notebook (small CPU defaults).

Reconstruction (the paper is silent): the JSON answer format and its schema, the justification length
bound, strict scoring of the transcript, the graph sizes and budgets of the CPU default."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Config:
    seed: int = 1
    """seed of the experiment (graphs, agents' tie-breaking, per-request LLM seeds)"""
    backend: str = "default"
    """LLM spec for workbench.llm.load_llm (default = embedded SmolLM2-135M-Instruct)"""
    settings: tuple[str, ...] = ("chemistry", "social")
    """which Auto-Bench settings to run"""
    sizes: tuple[int, ...] = (3, 4, 6, 8, 10)
    """graph sizes (nodes) of the complexity sweep for the algorithmic agents"""
    graphs_per_size: int = 20
    """random graphs per setting and size for the algorithmic agents"""
    density: float = 0.4
    """edge probability of the random graphs"""
    max_rounds: int = 7
    """round budget per episode (the hypothesis of round t sees the observations of rounds < t)"""
    hops: int = 1
    """social setting: an intervention changes the people within this many friendship steps"""
    agents: tuple[str, ...] = ("random", "one_per_node", "greedy_info", "random_guess", "llm")
    """agents to run: random, one_per_node, greedy_info (evidence-based), random_guess (random hypotheses
    and interventions, the content-free floor), llm"""
    llm_sizes: tuple[int, ...] = (2,)
    """graph sizes the LLM agent plays (tokens are the CPU bottleneck)"""
    llm_graphs_per_size: int = 6
    """random graphs per setting and size for the LLM agent (the first of the baseline graphs)"""
    llm_max_rounds: int = 3
    """round budget of the LLM agent's episodes (baselines are also scored on these same episodes)"""
    temperature: float = 0.7
    """LLM sampling temperature"""
    max_tokens: int = 80
    """max new tokens per LLM answer (the schema's justification bound keeps a constrained answer inside it)"""
    structured: bool = True
    """constrain the LLM's answer to the JSON schema (matrix n x n of 0/1, intervention one of the node
    names, bounded justification); needs a backend with structured outputs (default, transformers, vllm,
    a json_schema-capable server). Off: free text, read strictly only when it is schema-valid JSON"""
    justification_max_chars: int = 40
    """the schema's bound on the justification's length (characters)"""
    scoring: str = "strict"
    """strict: only answers valid under the schema are used (a lenient-only read is a malformed round);
    lenient: fallback reads are used too. The other view is reported beside it, labelled"""
