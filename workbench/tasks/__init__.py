"""Reasoning tasks and verifiers shared by the notebooks.

- :mod:`.math_answers`: ``\\boxed{}`` extraction and math-verify equivalence.
- :mod:`.base`: :class:`Problem`, :class:`Task` (parse / score / equivalence), lenient parsing.
- :mod:`.reasoning_gym_tasks`: Reasoning Gym tasks with their own scorers; the RSA paper's subsets.
- :mod:`.loaders`: AIME-25 / HMMT-25 / GSM8K / MATH via ``datasets``, local JSONL.
- :mod:`.code_tasks`: LiveCodeBench-style code tasks; candidate programs run in a resource-limited
  subprocess sandbox (``lcb:<release>``, ``codejsonl:<path>``).

Submodules import their heavy dependencies lazily.
"""
from .base import FORMAT_HINTS, MalformedItem, MathTask, MCQTask, Problem, Task, parse_answer, same_answer
from .loaders import load_hf, load_jsonl, problems_from_records
from .reasoning_gym_tasks import COGNITION, GAMES, SUBSETS, ReasoningGymTask, check_task_names

__all__ = ["FORMAT_HINTS", "MalformedItem", "MathTask", "MCQTask", "Problem", "Task", "parse_answer",
           "same_answer", "load_hf", "load_jsonl", "problems_from_records", "COGNITION", "GAMES", "SUBSETS",
           "ReasoningGymTask", "check_task_names"]
