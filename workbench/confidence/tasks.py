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

MineDojo suite (``MINEDOJO_TASKS``, reconstruction, 10 tasks in 4 levels): ``find_X`` (X adjacent to the
player in the voxel slice of ``observation_from_minedojo``; ``find_tree`` looks for ``log``) and harvest
tasks run as MineDojo's ``harvest`` meta task with ``target_names`` / ``target_quantities``. Success is
decided by the environment: MineDojo's own task success (``is_successful``) or the inventory in the observation holding
the target quantity (whichever comes first). Perception questions are graded from the voxel grid exactly
as the Crafter ones are from the semantic map.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .envs import Observation

__all__ = ["Task", "TASKS", "MINEDOJO_TASKS", "ENV_TASKS", "get_tasks", "task_success", "task_progress", "Question",
           "make_question", "grade_answer", "nearest", "ANSWER_OPTIONS"]


@dataclass(frozen=True)
class Task:
    id: str
    goal: str  # natural-language goal shown to the agent
    kind: str  # "find" | "achievement" | "harvest" (MineDojo)
    target: str  # cell name (find), achievement name or inventory item (harvest)
    level: int
    budget: int  # agent steps (skill calls) allowed
    quantity: int = 1  # harvest: items the inventory must hold


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

# MineDojo suite as data: (id, goal, kind, target, level, budget, quantity). Block and item names are
# Minecraft 1.11's, as in MineDojo's voxels and inventory ("log", "planks", "crafting_table", ...).
_MINEDOJO = [
    ("find_tree", "find a tree (log) and stand next to it", "find", "log", 1, 6, 1),
    ("find_water", "find water and stand next to it", "find", "water", 1, 6, 1),
    ("find_sand", "find sand and stand next to it", "find", "sand", 1, 6, 1),
    ("find_stone", "find stone and stand next to it", "find", "stone", 1, 6, 1),
    ("harvest_log", "obtain 1 log", "harvest", "log", 2, 10, 1),
    ("harvest_dirt", "obtain 1 dirt", "harvest", "dirt", 2, 10, 1),
    ("harvest_4_logs", "obtain 4 logs", "harvest", "log", 3, 20, 4),
    ("harvest_planks", "obtain 4 planks (craft them from a log)", "harvest", "planks", 3, 20, 4),
    ("harvest_crafting_table", "obtain a crafting table", "harvest", "crafting_table", 4, 40, 1),
    ("harvest_wooden_pickaxe", "obtain a wooden pickaxe", "harvest", "wooden_pickaxe", 4, 40, 1),
]
MINEDOJO_TASKS: list[Task] = [Task(*row) for row in _MINEDOJO]
ENV_TASKS = {"crafter": TASKS, "minedojo": MINEDOJO_TASKS}


def get_tasks(ids, environment: str = "crafter") -> list[Task]:
    """Tasks of ``environment`` by id (``"all"`` for every one); unknown ids raise with the known ones."""
    if environment not in ENV_TASKS:
        raise ValueError(f"unknown environment {environment!r}; known: {sorted(ENV_TASKS)}")
    suite = ENV_TASKS[environment]
    if ids == "all":
        return list(suite)
    by = {t.id: t for t in suite}
    bad = [i for i in ids if i not in by]
    if bad:
        raise ValueError(f"unknown task ids {bad} for {environment}; known: {sorted(by)}")
    return [by[i] for i in ids]


def nearest(obs: Observation, name: str) -> tuple[int, int] | None:
    """Offset (dx, dy) of the nearest visible ``name`` (Manhattan distance, ties by scan order)."""
    best = None
    for n, dx, dy in obs.cells():
        if n == name and (best is None or abs(dx) + abs(dy) < abs(best[0]) + abs(best[1])):
            best = (dx, dy)
    return best


def task_success(task: Task, start: Observation, now: Observation) -> bool:
    """Decided by the environment: the target is adjacent (find), the achievement count rose, or (harvest)
    MineDojo's task reported success (``now.extra["env_success"]``) or the inventory holds ``task.quantity``."""
    if task.kind == "find":
        d = nearest(now, task.target)
        return d is not None and abs(d[0]) + abs(d[1]) <= 1
    if task.kind == "harvest":
        return bool(now.extra.get("env_success")) or now.inventory.get(task.target, 0) >= task.quantity
    if task.kind == "achievement":
        return now.achievements.get(task.target, 0) > start.achievements.get(task.target, 0)
    raise ValueError(f"unknown task kind {task.kind!r}")


def _distance(obs: Observation, name: str) -> float:
    d = nearest(obs, name)
    return float("inf") if d is None else abs(d[0]) + abs(d[1])


def task_progress(task: Task, before: Observation, after: Observation, start: Observation | None = None) -> bool:
    """Whether one agent step moved the task forward, decided by the environment's state alone (the action
    stage's outcome; reconstruction): the task is now done (:func:`task_success` from ``start``), or, for a
    find task, the nearest ``task.target`` got closer (Manhattan distance; out of view = infinitely far),
    or, for a harvest task, the inventory holds more of the target or its nearest block got closer. Never what the chosen skill aimed at:
    walking toward a tree is no progress on ``find_water``."""
    if task_success(task, start if start is not None else before, after):
        return True
    if task.kind == "find":
        return _distance(after, task.target) < _distance(before, task.target)
    if task.kind == "harvest":  # more of the item, or the nearest block of that name (a log) got closer
        return (after.inventory.get(task.target, 0) > before.inventory.get(task.target, 0)
                or _distance(after, task.target) < _distance(before, task.target))
    return False


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


ANSWER_OPTIONS = {"near": ("yes", "no"), "direction": ("left", "right", "up", "down", "none"),
                  "count": "(?:0|[1-9][0-9]?)"}
"""the answers a perception question of each kind admits (literal options, or a regex for counts)"""

_WORDNUM = {w: str(i) for i, w in enumerate("zero one two three four five six seven eight nine ten".split())}


def parse_answer(kind: str, text: str) -> str | None:
    """Lenient answer parsing: an 'Answer:' field first, then the whole text. None if unreadable."""
    m = re.search(r"answer\s*[:=]\s*([^\n]*)", text, re.I)
    for chunk in ([m.group(1)] if m else []) + [text]:
        low = chunk.lower()
        if kind == "count":
            n = re.search(r"\b(\d+)\b", low)
            if n:
                digits = n.group(1)  # over Python's int digit limit (4300) int() raises: no count is that large
                return str(int(digits)) if len(digits) <= 4000 else digits.lstrip("0") or "0"
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
