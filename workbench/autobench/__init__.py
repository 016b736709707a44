"""Auto-Bench: LLMs as scientists via interactive causal discovery (Chen et al. 2025, arXiv 2502.15224).

Two settings, chemistry (hidden DAG; an intervention reveals the molecules downstream) and social
network (hidden undirected graph; reconstruction: an intervention reveals the person's friends within
``hops`` steps); an interaction loop where each round the agent states a hypothesis adjacency matrix,
the next intervention and a justification; the LLM agent (answers constrained to a JSON schema,
scored strictly) beside random, one-intervention-per-node and greedy information-gain baselines and a
content-free random-guess floor; scores success rate, rounds to success, colour-change (reachability)
similarity, justification validity and how each answer was read (strict, lenient-only, unparsed,
truncated); a complexity sweep over graph size.

Reconstructions (no public code; each documented where it lives and a config field where it is a
choice): the social intervention semantics (``oracles``), success judged on colour-change matrices,
the similarity formula, justification validity and strict scoring (``loop``), the baselines' evidence
model and the LLM's JSON answer format (``agents``).
"""
from .agents import (BASELINES, EVIDENCE_BASELINES, Action, EpisodeState, GreedyInfoAgent, Knowledge, LLMAgent,
                     OnePerNodeAgent, RandomAgent, RandomGuessAgent, action_schema, llm_prompt, parse_intervention,
                     parse_llm_action, template_text)
from .config import Config
from .core import run
from .loop import cited_interventions, is_template_echo, justification_check, run_episodes, scores
from .oracles import Oracle, make_oracle, random_dag, random_social_graph

__all__ = ["BASELINES", "EVIDENCE_BASELINES", "Action", "EpisodeState", "GreedyInfoAgent", "Knowledge", "LLMAgent",
           "OnePerNodeAgent", "RandomAgent", "RandomGuessAgent", "action_schema", "llm_prompt", "parse_intervention",
           "parse_llm_action", "template_text", "Config", "run", "cited_interventions", "is_template_echo",
           "justification_check", "run_episodes", "scores", "Oracle", "make_oracle", "random_dag",
           "random_social_graph"]
