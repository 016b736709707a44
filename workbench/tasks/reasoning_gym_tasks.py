"""Reasoning Gym tasks, generated offline by the ``reasoning-gym`` package and scored by its own scorers.

The RSA paper (arXiv 2509.26626) evaluates two Reasoning Gym subsets; their task names are
:data:`GAMES` (17 tasks) and :data:`COGNITION` (9 tasks), read off the task names of the authors'
released evaluation files. :func:`check_task_names` verifies every name against the installed package.

>>> t = ReasoningGymTask("chain_sum", size=2, seed=0, config={"min_terms": 2, "max_terms": 2, "max_digits": 1})
>>> p = t.problems[0]
>>> t.score(p.answer, p), t.score(None, p)
(1.0, 0.0)
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from .base import Problem, Task

GAMES: tuple[str, ...] = (
    "boxnet", "countdown", "emoji_mystery", "futoshiki", "kakurasu", "knight_swap", "mahjong_puzzle",
    "maze", "mini_sudoku", "n_queens", "puzzle24", "rush_hour", "sokoban", "sudoku", "survo",
    "tower_of_hanoi", "tsumego",
)
"""the paper's Reasoning Gym *games* subset"""
COGNITION: tuple[str, ...] = (
    "arc_1d", "arc_agi", "color_cube_rotation", "figlet_font", "modulo_grid", "needle_haystack",
    "number_sequence", "rectangle_count", "rubiks_cube",
)
"""the paper's Reasoning Gym *cognition* subset"""
SUBSETS = {"games": GAMES, "cognition": COGNITION}

# Easy settings where a very small model is sometimes right (used by the CPU notebook default).
# basic_arithmetic: one-digit additions ("Calculate 5 + 3."); the embedded SmolLM2-135M's strict
# single-sample accuracy with the RSA notebook's structured calculation form was 6/20 (chain_sum's
# one-digit sums and differences: see the notebook), inside the 20-60% band where a method can show.
EASY: dict[str, dict[str, Any]] = {
    "chain_sum": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1},
    "basic_arithmetic": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1, "operators": ("+",),
                         "allow_parentheses": False, "allow_negation": False},
    "products": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1},
}


def available_tasks() -> list[str]:
    """All task names the installed reasoning-gym registers."""
    from reasoning_gym.factory import DATASETS

    return sorted(DATASETS)


def check_task_names(names: Sequence[str]) -> None:
    """Raise ``ValueError`` naming every task the installed reasoning-gym does not know."""
    known = set(available_tasks())
    missing = [n for n in names if n not in known]
    if missing:
        raise ValueError(f"unknown Reasoning Gym task(s) {missing}; reasoning-gym has {len(known)} tasks, "
                         f"see workbench.tasks.reasoning_gym_tasks.available_tasks()")


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return repr(x)


class ReasoningGymTask(Task):
    """One or several Reasoning Gym datasets; answers in ``<answer>`` tags, scored by ``score_answer``.

    ``names`` is a task name, a list of names, or a subset name (``"games"``, ``"cognition"``).
    ``config`` holds per-dataset keyword arguments: either one dict for every task, or
    ``{task name: dict}``. ``size`` problems are drawn per task.
    """

    answer_format = "tags"
    problem_kind = "problem"

    def __init__(self, names: str | Sequence[str], *, size: int = 10, seed: int = 0,
                 config: Mapping[str, Any] | None = None):
        import reasoning_gym

        if isinstance(names, str):
            names = SUBSETS.get(names, (names,))
        names = list(names)
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        check_task_names(names)
        config = dict(config or {})
        per_task = all(isinstance(v, Mapping) for v in config.values()) and set(config) <= set(names) and config
        self.datasets: dict[str, Any] = {}
        problems: list[Problem] = []
        for name in names:
            kw = dict(config.get(name, {})) if per_task else dict(config)
            ds = reasoning_gym.create_dataset(name, size=size, seed=seed, **kw)
            self.datasets[name] = ds
            for i in range(size):
                e = ds[i]
                problems.append(Problem(id=f"{name}/{i}", question=e["question"], answer=str(e["answer"]),
                                        source=f"reasoning_gym:{name}",
                                        meta={"dataset": name, "index": i, "entry_metadata": _jsonable(e.get("metadata", {}))}))
        super().__init__(problems, name="rg:" + ",".join(names))

    def _entry(self, problem: Problem) -> dict:
        return self.datasets[problem.meta["dataset"]][problem.meta["index"]]

    def score(self, answer: str | None, problem: Problem) -> float:
        if answer is None:
            return 0.0
        try:
            return float(self.datasets[problem.meta["dataset"]].score_answer(answer, self._entry(problem)))
        except Exception:  # some scorers raise on unparsable answers; that is a wrong answer, score 0
            return 0.0
