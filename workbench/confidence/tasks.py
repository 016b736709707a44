"""Task suite (30 Crafter tasks of graded difficulty) and perception questions graded from the semantic map.

Reconstruction: the paper's task list is not public (PAPERS.md: "~30 tasks, unverified"). Ours follows
MP5's "find X" tasks and Crafter's achievements:

- level 1: find X (X adjacent to the player, decided from the semantic map) for 9 targets;
- levels 2-5: the 21 Crafter achievements other than ``wake_up``, grouped by their depth in the tech tree,
  with a step budget that grows with the level. Success = Crafter's achievement counter went up.

Perception questions (one per agent step, kind chosen by step) are answered from the text/image scene
and graded against the semantic map, never against the model's own report:
``count`` ("how many trees are in view?"), ``near`` ("is there water within 3 tiles?", yes/no) and
``direction`` ("in which direction is the nearest tree?": left/right/up/down; on a diagonal tie both
axes count as right).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .envs import Observation

__all__ = ["Task", "TASKS", "get_tasks", "task_success", "Question", "make_question", "grade_answer",
           "nearest"]


@dataclass(frozen=True)
class Task:
    id: str
    goal: str  # natural-language goal shown to the agent
    kind: str  # "find" | "achievement"
    target: str  # cell name (find) or achievement name
    level: int
    budget: int  # agent steps (skill calls) allowed


_FIND = ["tree", "water", "grass", "sand", "stone", "cow", "coal", "iron", "lava"]
_ACH = {
    2: ["collect_wood", "collect_sapling", "collect_drink", "place_plant", "eat_cow"],
    3: ["place_table", "make_wood_pickaxe", "make_wood_sword", "defeat_zombie", "collect_stone"],
    4: ["place_stone", "make_stone_pickaxe", "make_stone_sword", "collect_coal", "place_furnace",
        "eat_plant"],
    5: ["collect_iron", "make_iron_pickaxe", "make_iron_sword", "collect_diamond", "defeat_skeleton"],
}
_BUDGET = {1: 6, 2: 10, 3: 20, 4: 40, 5: 80}


def _build() -> list[Task]:
    tasks = [Task(f"find_{t}", f"find a {t} and stand next to it", "find", t, 1, _BUDGET[1]) for t in _FIND]
    for lvl, names in _ACH.items():
        for a in names:
            tasks.append(Task(a, a.replace("_", " "), "achievement", a, lvl, _BUDGET[lvl]))
    return tasks


TASKS: list[Task] = _build()


def get_tasks(ids) -> list[Task]:
    """Tasks by id (``"all"`` for every one); unknown ids raise with the list of known ones."""
    if ids == "all":
        return list(TASKS)
    by = {t.id: t for t in TASKS}
    bad = [i for i in ids if i not in by]
    if bad:
        raise ValueError(f"unknown task ids {bad}; known: {sorted(by)}")
    return [by[i] for i in ids]


def nearest(obs: Observation, name: str) -> tuple[int, int] | None:
    """Offset (dx, dy) of the nearest visible ``name`` (Manhattan distance, ties by scan order)."""
    best = None
    for n, dx, dy in obs.cells():
        if n == name and (best is None or abs(dx) + abs(dy) < abs(best[0]) + abs(best[1])):
            best = (dx, dy)
    return best


def task_success(task: Task, start: Observation, now: Observation) -> bool:
    """Decided by the environment: the target is adjacent (find) or the achievement count rose."""
    if task.kind == "find":
        d = nearest(now, task.target)
        return d is not None and abs(d[0]) + abs(d[1]) <= 1
    return now.achievements.get(task.target, 0) > start.achievements.get(task.target, 0)


# ------------------------------------------------------------------------------- perception questions
@dataclass(frozen=True)
class Question:
    kind: str  # count | near | direction
    target: str
    text: str
    truth: tuple  # accepted answers (normalised strings)


_QTARGETS = ["tree", "water", "stone", "grass", "sand", "cow", "coal"]


def make_question(obs: Observation, kind: str, target: str, radius: int = 3) -> Question:
    """A perception question about ``obs`` with its ground truth from the semantic grid."""
    cells = obs.cells()
    if kind == "count":
        n = sum(1 for c, _, _ in cells if c == target)
        return Question(kind, target, f"How many {target} tiles are in view? Answer with a number.", (str(n),))
    if kind == "near":
        hit = any(c == target and max(abs(dx), abs(dy)) <= radius for c, dx, dy in cells)
        return Question(kind, target, f"Is there {target} within {radius} tiles of you? Answer yes or no.",
                        ("yes",) if hit else ("no",))
    if kind == "direction":
        d = nearest(obs, target)
        if d is None:
            truth = ("none",)
        else:
            dx, dy = d
            h = "left" if dx < 0 else "right"
            v = "up" if dy < 0 else "down"
            truth = (h,) if abs(dx) > abs(dy) else (v,) if abs(dy) > abs(dx) else (h, v)
        return Question(kind, target, f"In which direction is the nearest {target}: left, right, up, down, "
                        "or none if not in view?", truth)
    raise ValueError(f"question kind must be count, near or direction, got {kind!r}")


_WORDNUM = {w: str(i) for i, w in enumerate("zero one two three four five six seven eight nine ten".split())}


def parse_answer(kind: str, text: str) -> str | None:
    """Lenient answer parsing: an 'Answer:' field first, then the whole text. None if unreadable."""
    m = re.search(r"answer\s*[:=]\s*([^\n]*)", text, re.I)
    for chunk in ([m.group(1)] if m else []) + [text]:
        low = chunk.lower()
        if kind == "count":
            n = re.search(r"\b(\d+)\b", low)
            if n:
                return str(int(n.group(1)))
            for w, d in _WORDNUM.items():
                if re.search(rf"\b{w}\b", low):
                    return d
        elif kind == "near":
            y, n = re.search(r"\byes\b", low), re.search(r"\bno\b", low)
            if y and (not n or y.start() < n.start()):
                return "yes"
            if n:
                return "no"
        elif kind == "direction":
            hits = [(mm.start(), mm.group(0)) for mm in re.finditer(r"\b(left|right|up|down|none)\b", low)]
            if hits:
                return min(hits)[1]
    return None


def grade_answer(q: Question, answer: str | None) -> bool:
    """True when the parsed answer is one of the question's ground-truth answers."""
    return answer is not None and answer in q.truth
