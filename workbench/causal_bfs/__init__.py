"""Efficient causal graph discovery with LLMs via breadth-first search (Jiralerspong et al. 2024,
arXiv 2402.01207): BFS and pairwise LLM discovery, PC and GES baselines, metrics on bnlearn networks.

Reconstructions (paper silent or reference code changed, each a config field): fresh prompts instead of
one growing chat (``chat_history``), level-batched BFS (``level_batched``), a short answer-only prompt
style for small models (``prompt_style``), independent pairwise queries; see ``discovery``.
"""
from .config import Config
from .core import METHODS, query_scaling, run
from .discovery import bfs_discover, pairwise_discover, perfect_expert
from .parse import parse_answer, parse_choice
from .prompts import Problem, described_problems, load_problem

__all__ = ["Config", "METHODS", "query_scaling", "run", "bfs_discover", "pairwise_discover", "perfect_expert",
           "parse_answer", "parse_choice", "Problem", "described_problems", "load_problem"]
