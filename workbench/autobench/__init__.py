"""Auto-Bench: LLMs as scientists via interactive causal discovery (Chen et al. 2025, arXiv 2502.15224).

Two settings, chemistry (hidden DAG; an intervention reveals the molecules downstream) and social
network (hidden undirected graph; reconstruction: an intervention reveals the person's friends within
``hops`` steps); an interaction loop where each round the agent states a hypothesis adjacency matrix,
the next intervention and a justification; the LLM agent beside random, one-intervention-per-node and
greedy information-gain baselines; scores success rate, rounds to success, colour-change (reachability)
similarity and justification validity; a complexity sweep over graph size.

Reconstructions (no public code; each documented where it lives and a config field where it is a
choice): the social intervention semantics (``oracles``), success judged on colour-change matrices,
the similarity formula, justification validity (``loop``), the baselines' evidence model (``agents``).
"""
from .agents import (BASELINES, Action, EpisodeState, GreedyInfoAgent, Knowledge, LLMAgent, OnePerNodeAgent,
                     RandomAgent, llm_prompt, parse_llm_action)
from .config import Config
from .core import run
from .loop import cited_interventions, justification_check, run_episodes, scores
from .oracles import Oracle, make_oracle, random_dag, random_social_graph

__all__ = ["BASELINES", "Action", "EpisodeState", "GreedyInfoAgent", "Knowledge", "LLMAgent", "OnePerNodeAgent",
           "RandomAgent", "llm_prompt", "parse_llm_action", "Config", "run", "cited_interventions",
           "justification_check", "run_episodes", "scores", "Oracle", "make_oracle", "random_dag",
           "random_social_graph"]
