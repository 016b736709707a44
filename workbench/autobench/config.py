"""Configuration of the Auto-Bench notebook (small CPU defaults)."""
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
    agents: tuple[str, ...] = ("random", "one_per_node", "greedy_info", "llm")
    """agents to run: random, one_per_node, greedy_info, llm"""
    llm_sizes: tuple[int, ...] = (3, 4)
    """graph sizes the LLM agent plays (tokens are the CPU bottleneck)"""
    llm_graphs_per_size: int = 2
    """random graphs per setting and size for the LLM agent (the first of the baseline graphs)"""
    llm_max_rounds: int = 3
    """round budget of the LLM agent's episodes (baselines are also scored on these same episodes)"""
    temperature: float = 0.7
    """LLM sampling temperature"""
    max_tokens: int = 64
    """max new tokens per LLM answer"""
