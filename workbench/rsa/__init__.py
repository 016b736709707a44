"""Recursive Self-Aggregation (arXiv 2509.26626): the algorithm, budget-matched baselines, metrics,
JSON checkpoints and aggregation-aware training data. See :mod:`workbench.rsa.core`."""
from .config import Config
from .core import (best_of_n_verify_baseline, draw_subsets, generate_initial, load_checkpoints, make_task,
                   majority_vote_baseline, run, run_rsa)
from .answers import answer_structure, parse_verdict, read_answer, strict_answer, strict_tag_answer
from .metrics import average_metrics, cluster_answers, majority_vote, population_metrics, standard_error
from .prompts import aggregate_prompt, load_templates

__all__ = ["Config", "run", "run_rsa", "make_task", "draw_subsets", "generate_initial", "load_checkpoints",
           "majority_vote_baseline", "best_of_n_verify_baseline", "parse_verdict", "average_metrics",
           "cluster_answers", "majority_vote", "population_metrics", "aggregate_prompt", "load_templates",
           "answer_structure", "read_answer", "strict_answer", "strict_tag_answer", "standard_error"]
