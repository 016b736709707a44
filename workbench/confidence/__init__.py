"""Confidence elicitation for embodied agents (Yu et al. 2025, arXiv 2503.10628), on Crafter by default
(MineDojo with ``Config(environment="minedojo")``).

Reconstruction throughout: the paper has no public code; see the module docstrings for each choice.
``run(Config(...))`` returns per-policy calibration metrics and episode traces.
"""
from .agent import MINEDOJO_SKILLS, SKILLS, combos, parse_skill, render_scene, replay, run, run_skill
from .config import Config
from .envs import (CrafterEnv, MineDojoEnv, MineDojoUnavailable, Observation, make_env,
                   observation_from_minedojo)
from .policies import ELICITATION, EXECUTION, aggregate, elicit_prompt, execution_variants, parse_confidence
from .tasks import MINEDOJO_TASKS, TASKS, get_tasks, grade_answer, make_question

__all__ = ["SKILLS", "MINEDOJO_SKILLS", "MINEDOJO_TASKS", "make_env", "combos", "parse_skill", "render_scene",
           "replay", "run", "run_skill", "Config",
           "CrafterEnv", "MineDojoEnv", "MineDojoUnavailable", "Observation", "observation_from_minedojo",
           "ELICITATION", "EXECUTION", "aggregate", "elicit_prompt", "execution_variants", "parse_confidence",
           "TASKS", "get_tasks", "grade_answer", "make_question"]
