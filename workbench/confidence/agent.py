"""The embodied agent: text rendering of the scene, a small skill layer, the two-stage confidence loop,
``run(cfg)`` and ``replay(trace)``.

Each agent step, for every episode (task x elicitation x execution policy), in lockstep:
1. perception stage: a question about the scene (``tasks.make_question``), graded against Crafter's
   semantic map; the model answers and states a confidence;
2. action stage: the model picks one skill from the menu and states its confidence that the skill
   brings it closer to its goal; the skill runs in the environment, which alone decides success:
   ``tasks.task_progress`` (``action_outcome="progress"``: the task is done, or the nearest task target
   got closer, or the target item count rose) or the task completed (``action_outcome="task"``). What the
   skill itself aimed at never counts: walking toward a tree is no success on find_water.
All prompts of a stage and step that share sampling parameters (token budget, structure) go to the model
in one batched ``generate`` call.

Reading completions: with structured outputs (``Config.structured``, on for real backends by default) each
completion is constrained to ``[reasoning line]`` + ``Answer: <option>`` + ``Confidence: <0-100>%`` (the
options: the skill menu, yes/no, the five directions, a count); ``policies.read_strict`` reads only that,
``read_lenient`` reads free text after removing what was copied from the prompt. Each sample is classed
strict / lenient / unparsed, with its ``finish_reason``; headline metrics use the strict reads, and an
unreadable answer is its own category (not correct, never an option); the executed skill is the strict
choice, ``noop`` when unreadable.

Reconstructions (the paper's agent is not public): the scene text is an ASCII map of Crafter's 9x7
local view with a legend (``scene_format="grid"``) or a list of visible things with offsets
(``"list"``); skills are ``move toward X`` (up to ``skill_moves`` primitive moves), ``interact``
(Crafter's ``do``), ``place X`` / ``make X``, ``explore`` (``skill_moves`` moves in a seeded random
direction) and ``noop``. Whether the skill did what it aimed at is kept in the trace (``skill_effect``)
for inspection only.

Image observations (``observation="text+image"``, for vision backends): every perception and action
prompt becomes one user message holding the current frame as an image part (``workbench.llm.image_part``,
PNG; Crafter re-renders the view at ``image_size`` px, see ``envs.prompt_frame``) followed by the text
prompt, opened by ``IMAGE_NOTE`` (reconstruction: the paper's GPT-4V prompts are not public). The text
scene stays in the prompt, so text and image describe the same view. Execution-policy variants of a
stage all carry the same frame. Each step's trace records the SHA-256 and shape of the PNG that was
sent (``prompt_image``); ``replay`` re-renders it and checks it. With ``observation="text"`` prompts are
plain strings, exactly as before (same response-cache keys).

MineDojo (``cfg.environment="minedojo"``, reconstruction): the same loop on ``envs.MineDojoEnv`` built by
``envs.make_env`` (one Minecraft per episode: worlds cannot be cloned, so every policy combination of a
task gets a fresh world from the same seed). The scene text is the voxel slice rendered as the same
ASCII map (Minecraft block names, ``SYMBOLS``); perception targets come from
``cfg.minedojo_question_targets``; the skill menu is ``MINEDOJO_SKILLS``: ``move toward X`` over
MineDojoEnv's tile moves (turn to the side, walk ``minedojo_ticks_per_tile`` ticks), ``interact`` (hold
attack ``minedojo_attack_ticks`` ticks), ``make X`` (MineDojo's craft action), ``place crafting_table``
(MineDojo's place action on the slot holding it), ``explore`` and ``noop``, with the same success rules
as on Crafter. A skill outside the environment's menu is an error. Without MineDojo, run() raises ``MineDojoUnavailable`` before
any model is loaded or called.
"""
from __future__ import annotations

import base64
import hashlib
import re

import numpy as np
from tqdm.auto import tqdm

from .. import calibration as cal
from ..seeding import derive_seed, make_rng
from .config import Config
from .envs import (MineDojoUnavailable, Observation, frame_png_b64, make_env, minedojo_missing,
                   prompt_frame)
from .policies import (EXECUTION_STAGE, REASONING_POLICIES, aggregate, elicit_prompt, execution_variants,
                       parse_confidence, parse_top_k, read_strict, stage_structure, strip_echo)
from .tasks import (ANSWER_OPTIONS, Task, get_tasks, grade_answer, make_question, nearest, parse_answer,
                    task_progress, task_success)

__all__ = ["render_scene", "SKILLS", "MINEDOJO_SKILLS", "ENV_SKILLS", "parse_skill", "run_skill", "run", "replay", "combos", "with_image",
           "IMAGE_NOTE"]

IMAGE_NOTE = ("The image is the current game frame: your view, with you in the centre and your inventory "
              "in the bottom rows. The text below describes the same view.")
MINEDOJO_IMAGE_NOTE = ("The image is the current first-person Minecraft frame. The text below describes the "
                       "blocks around you, seen from above.")

SYMBOLS = {"none": " ", "water": "~", "grass": ".", "stone": "S", "path": "_", "sand": ":", "tree": "T",
           "lava": "L", "coal": "C", "iron": "I", "diamond": "D", "table": "B", "furnace": "F",
           "player": "@", "cow": "c", "zombie": "z", "skeleton": "k", "arrow": ">", "plant": "p",
           # Minecraft block names (MineDojo voxels); water, grass, stone and sand share Crafter's symbols
           "air": " ", "log": "T", "log2": "T", "leaves": "*", "leaves2": "*", "dirt": "d", "gravel": "g",
           "cobblestone": "s", "planks": "=", "crafting_table": "B", "tallgrass": ",", "bedrock": "#",
           "flowing_water": "~"}
MOVE_TARGETS = ("tree", "water", "stone", "cow", "coal", "iron", "grass", "sand", "table", "zombie")
SKILLS = ([f"move toward {t}" for t in MOVE_TARGETS] + ["interact"]
          + [f"place {x}" for x in ("table", "stone", "furnace", "plant")]
          + [f"make {x}" for x in ("wood_pickaxe", "wood_sword", "stone_pickaxe", "stone_sword",
                                   "iron_pickaxe", "iron_sword")]
          + ["explore", "noop"])
MINEDOJO_MOVE_TARGETS = ("log", "water", "stone", "sand", "dirt", "grass", "leaves", "crafting_table")
MINEDOJO_SKILLS = ([f"move toward {t}" for t in MINEDOJO_MOVE_TARGETS] + ["interact"]
                   + [f"make {x}" for x in ("planks", "stick", "crafting_table", "wooden_pickaxe", "wooden_sword")]
                   + ["place crafting_table", "explore", "noop"])
ENV_SKILLS = {"crafter": SKILLS, "minedojo": MINEDOJO_SKILLS}
_DIRNAME = {(-1, 0): "left", (1, 0): "right", (0, -1): "up", (0, 1): "down"}


def render_scene(obs: Observation, fmt: str = "grid") -> str:
    """The scene as text: ASCII map (x right, y down, player ``@``) or a list of things with offsets."""
    inv = ", ".join(f"{k} {v}" for k, v in obs.inventory.items()
                    if v and k not in ("health", "food", "drink", "energy")) or "empty"
    head = f"Facing: {_DIRNAME.get(tuple(obs.facing), '?')} ({obs.facing_cell()}). Inventory: {inv}."
    if fmt == "grid":
        w, h = len(obs.grid), len(obs.grid[0])
        rows = []
        for y in range(h):
            rows.append("".join("@" if (x, y) == tuple(obs.center) else SYMBOLS.get(obs.grid[x][y], "?")
                                for x in range(w)))
        present = sorted({obs.grid[x][y] for x in range(w) for y in range(h)} - {"player"})
        legend = ", ".join(f"{SYMBOLS.get(n, '?')}={n}" for n in present)
        return "Map (you are @, up is north):\n" + "\n".join(rows) + f"\nLegend: @=you, {legend}\n" + head
    if fmt == "list":
        things = sorted(obs.cells(), key=lambda c: (abs(c[1]) + abs(c[2]), c))
        desc = []
        for n, dx, dy in things:
            if n in ("grass", "none"):
                continue
            parts = ([f"{abs(dx)} {'right' if dx > 0 else 'left'}"] if dx else []) + \
                    ([f"{abs(dy)} {'down' if dy > 0 else 'up'}"] if dy else [])
            desc.append(f"{n} ({', '.join(parts)})")
        return "You see: " + ("; ".join(desc) or "only grass") + ".\n" + head
    raise ValueError(f"scene_format must be 'grid' or 'list', got {fmt!r}")


def _skill_hits(chunk: str, norm: dict) -> set:
    """Skills named in ``chunk``; a name inside a longer named one (same place) is not counted."""
    spans = []
    for s, v in norm.items():
        for m in re.finditer(re.escape(v), chunk):
            spans.append((m.start(), m.end(), s))
    return {s for a, b, s in spans if not any(a2 <= a and b <= b2 and (a2, b2) != (a, b) for a2, b2, _ in spans)}


def parse_skill(text: str, skills=SKILLS) -> str | None:
    """The skill of ``skills`` (the environment's menu) named in a completion, leniently: the 'Answer:'
    field, then the whole text, each only if it names exactly one skill (a copied menu, or "move toward
    tree, not explore", names several: no answer); a bare menu number only in the 'Answer:' field.
    None if none is found. Copied prompt lines should be removed first (``policies.strip_echo``).

    >>> parse_skill("I will go.\\nAnswer: Move toward tree\\nConfidence: 80%"), parse_skill("answer: 11")
    ('move toward tree', 'interact')
    >>> parse_skill("1. move toward tree\\n2. move toward water\\n3. explore") is None
    True
    """
    low = (text or "").lower().replace("_", " ")
    m = re.search(r"answer\s*[:=]\s*([^\n]*)", low)
    norm = {s: s.replace("_", " ") for s in skills}
    for chunk, numbered in (([(m.group(1), True)] if m else []) + [(low, False)]):
        hits = _skill_hits(chunk, norm)
        if len(hits) == 1:
            return hits.pop()
        if hits:
            return None  # several skills named: ambiguous, not an answer
        num = re.match(r"\s*(\d+)\b", chunk) if numbered else None
        # a menu number; a run of digits too long for int() (4300-digit limit) is no menu number
        digits = num.group(1).lstrip("0") or "0" if num else ""
        if num and len(digits) <= 18 and 1 <= int(digits) <= len(skills):
            return skills[int(digits) - 1]
    return None


def with_image(prompt: str, image: dict, note: str = IMAGE_NOTE) -> list[dict]:
    """A text prompt as one user message: the image part, then ``note`` and the text.

    >>> m = with_image("Q?", {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}})
    >>> [p["type"] for p in m[0]["content"]], m[0]["content"][1]["text"].endswith("Q?")
    (['image_url', 'text'], True)
    """
    from ..llm import text_part

    return [{"role": "user", "content": [image, text_part(note + "\n\n" + prompt)]}]


def _image_record(part: dict) -> dict:
    """What a trace keeps of a prompt image: the SHA-256 of its PNG bytes and its (H, W)."""
    from ..llm import decode_image_part

    png = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
    return {"sha256": hashlib.sha256(png).hexdigest(), "shape": list(decode_image_part(part).shape[:2])}


def _snapshot(obs: Observation) -> tuple:
    return (tuple(sorted(obs.inventory.items())), tuple(sorted(obs.achievements.items())), obs.facing_cell())


def run_skill(env, obs: Observation, skill: str, *, moves: int, rng: np.random.Generator, skills=SKILLS
              ) -> tuple[Observation, list[str], bool, bool]:
    """Run one skill of the menu ``skills`` (``ENV_SKILLS[environment]``) in ``env`` (CrafterEnv or
    MineDojoEnv: the same primitive names); returns (new observation, primitive actions, success, done).
    A skill outside the menu raises ValueError."""
    if skill not in skills:
        raise ValueError(f"unknown skill {skill!r}; known: {list(skills)}")
    prims: list[str] = []
    done = False

    def act(a):
        nonlocal obs, done
        prims.append(a)
        obs, done = env.step(a)

    if skill.startswith("move toward "):
        target = skill[len("move toward "):]
        d0 = nearest(obs, target)
        if d0 is None:
            return obs, prims, False, done
        for _ in range(moves):
            d = nearest(obs, target)
            if d is None or done:
                break
            dx, dy = d
            step = ("left" if dx < 0 else "right") if abs(dx) >= abs(dy) and dx else ("up" if dy < 0 else "down")
            if abs(dx) + abs(dy) == 1:
                if tuple(obs.facing) == d:
                    break
                act("move_" + step)  # blocked moves still turn the player to face the target
                if tuple(obs.facing) == d:
                    break
            else:
                act("move_" + step)
        d1 = nearest(obs, target)
        ok = d1 is not None and (abs(d1[0]) + abs(d1[1]) < abs(d0[0]) + abs(d0[1])
                                 or (abs(d1[0]) + abs(d1[1]) == 1 and tuple(obs.facing) == d1))
        return obs, prims, bool(ok), done
    before = _snapshot(obs)
    if skill == "interact":
        act("do")
        return obs, prims, _snapshot(obs) != before, done
    if skill.startswith("place "):
        item = skill.split(" ", 1)[1]
        act("place_" + item)
        return obs, prims, _snapshot(obs)[0] != before[0], done
    if skill.startswith("make "):
        item = skill.split(" ", 1)[1]
        n0 = obs.inventory.get(item, 0)
        act("make_" + item)
        return obs, prims, obs.inventory.get(item, 0) > n0, done
    if skill == "explore":
        pos0 = obs.extra.get("player_pos")
        direction = ["left", "right", "up", "down"][int(rng.integers(4))]
        for _ in range(moves):
            if done:
                break
            act("move_" + direction)
        return obs, prims, obs.extra.get("player_pos") != pos0, done
    if skill == "noop":
        act("noop")
        return obs, prims, False, done
    raise ValueError(f"skill {skill!r} has no implementation")


def combos(cfg: Config) -> list[tuple[str, str]]:
    """(elicitation, execution) pairs run: every elicitation policy alone, then each policy of
    ``execution_on`` with each execution policy."""
    out = [(e, "none") for e in cfg.elicitation]
    out += [(e, x) for e in cfg.execution_on for x in cfg.execution if x != "none"]
    return out


def world_seed(seed: int, task_id: str, world: int = 0) -> int:
    """The seed of a task's ``world``-th world (the same world for every policy combination)."""
    if world == 0:
        return derive_seed(seed, "world", task_id) % (2 ** 31 - 1)
    return derive_seed(seed, "world", task_id, world) % (2 ** 31 - 1)


def _combo_name(e: str, x: str) -> str:
    return e if x == "none" else f"{e}+{x}"


def _options(stage: str, kind: str, skills) -> tuple | str:
    return tuple(skills) if stage == "action" else ANSWER_OPTIONS[kind]


def read_lenient(policy: str, stage: str, kind: str, text: str, prompt: str = "", skills=SKILLS
                 ) -> tuple[str | None, float | None]:
    """(answer, confidence) by the lenient rule: what the completion copied from ``prompt`` (menu lines,
    templates, placeholders) is removed first, then the free-text parsers read it; top_k reads its first
    guess."""
    text = strip_echo(text, prompt)
    parse = (lambda t: parse_skill(t, skills)) if stage == "action" else (lambda t: parse_answer(kind, t))
    if policy == "top_k":
        guesses = parse_top_k(text)
        if guesses:
            ans = parse(guesses[0][0])
            if ans is not None:
                return ans, guesses[0][1]
    return parse(text), parse_confidence(text)


def _read(policy: str, stage: str, kind: str, text: str, skills=SKILLS, prompt: str = "", top_k: int = 2) -> dict:
    """Both reads of one completion: strict (the asked format, ``policies.read_strict``) and lenient, and
    which class it falls in: strict, lenient (only the lenient rule read an answer and a confidence) or
    unparsed."""
    a_s, c_s = read_strict(text, _options(stage, kind, skills), top_k if policy == "top_k" else None)
    a_l, c_l = read_lenient(policy, stage, kind, text, prompt, skills)
    if a_s is not None:  # the strict format is also what a lenient reader takes
        a_l, c_l = a_s, c_s
    parse = "strict" if a_s is not None else "lenient" if (a_l is not None and c_l is not None) else "unparsed"
    return {"answer": a_s, "conf": c_s, "answer_lenient": a_l, "conf_lenient": c_l, "parse": parse}


class _Episode:
    def __init__(self, task: Task, elic: str, execp: str, world_seed: int, env, world: int = 0):
        self.task, self.elic, self.exec = task, elic, execp
        self.world = world  # which of the task's worlds (0 .. worlds_per_task - 1)
        self.name = _combo_name(elic, execp)
        self.world_seed = world_seed
        self.env = env  # the task's freshly reset world (a Crafter clone): every combo starts in the same state
        self.obs = env.last
        self.start = self.obs
        self.steps: list[dict] = []
        self.done = False
        self.success = False
        self.reflection = ""


_PLURAL = {"answer": "answers", "conf": "confs", "answer_lenient": "answers_lenient", "conf_lenient": "confs_lenient"}


def _stage(llm, params_for, eps, cfg, step, stage, build, images=None, note=IMAGE_NOTE) -> dict:
    """One batched call for a stage: ``build(ep)`` -> (base prompt, kind); returns per-episode reads.
    ``params_for(ep, kind)`` gives each episode's SamplingParams (its structure). ``images`` (``id(ep)`` ->
    image part) attaches each episode's current frame to all its prompts."""
    from ..llm import prompt_text

    prompts, owner, seeds, params = [], [], [], []
    for i, ep in enumerate(eps):
        base, kind = build(ep)
        xp = ep.exec if EXECUTION_STAGE.get(ep.exec) == stage else "none"
        for j, p in enumerate(execution_variants(xp, base, cfg.k_samples)):
            prompts.append(p if images is None else with_image(p, images[id(ep)], note))
            owner.append(i)
            seeds.append(derive_seed(cfg.seed, ep.task.id, ep.world, ep.name, step, stage, j))
            params.append(params_for(ep, kind))
    comps = []
    for pr in dict.fromkeys(params):  # one generate call per distinct structure, in prompt order
        idx = [n for n, q in enumerate(params) if q == pr]
        for c in llm.generate([prompts[n] for n in idx], pr, seeds=[seeds[n] for n in idx]):
            comps.append((idx[c.index], c))
    comps.sort(key=lambda t: t[0])
    out: dict[int, dict] = {}
    skills = ENV_SKILLS[cfg.environment]
    for n, c in comps:
        i = owner[n]
        ep = eps[i]
        kind = build(ep)[1]
        r = _read(ep.elic, stage, kind, c.text, skills, prompt_text(prompts[n]), cfg.top_k)
        d = out.setdefault(i, {"prompt": prompts[n], "texts": [], "finish": [], "parse": [], "answers": [],
                               "confs": [], "answers_lenient": [], "confs_lenient": []})
        d["texts"].append(c.text)
        d["finish"].append(c.finish_reason)
        d["parse"].append(r["parse"])
        for key, plural in _PLURAL.items():
            d[plural].append(r[key])
    for d in out.values():
        for suffix in ("", "_lenient"):
            ans, conf = d["answers" + suffix], d["confs" + suffix]
            if len(ans) > 1:
                agg = aggregate(ans, conf, cfg.aggregation)
                d["answer" + suffix], d["conf" + suffix] = agg["answer"], agg["conf"]
            else:
                d["answer" + suffix], d["conf" + suffix] = ans[0], conf[0]
    return out


def run(cfg: Config, llm=None, progress: bool = True) -> dict:
    """Run every (task x policy combination) episode and compute calibration per combination and stage.

    Returns ``{"summary", "table", "effects", "reliability", "episodes", "combos", "structured", "tokens",
    "config"}``; each
    episode holds its trace (frames as base64 PNG, scene, question, answers, confidences, outcomes and
    the primitive actions that ``replay`` re-runs).
    """
    from ..llm import SamplingParams, load_llm

    cfg.validate()
    if cfg.environment == "minedojo":  # before any model is loaded or called
        missing = minedojo_missing()
        if missing:
            raise MineDojoUnavailable("environment='minedojo' needs MineDojo; missing: " + "; ".join(missing)
                                      + ". The first reset() also needs internet (gradle, Maven, Mojang) to "
                                      "build Minecraft. Use environment='crafter' offline.")
    if llm is None:
        llm = load_llm(cfg.backend)
    use_images = cfg.observation == "text+image"
    if use_images and not getattr(llm, "accepts_images", True):
        from ..llm import ImageInputError

        raise ImageInputError(getattr(llm, "spec", cfg.backend), getattr(llm, "model_name", "") or
                              getattr(llm, "model", ""))
    tasks = get_tasks(cfg.tasks, cfg.environment)
    skills = ENV_SKILLS[cfg.environment]
    env_options = _env_options(cfg)
    note = MINEDOJO_IMAGE_NOTE if cfg.environment == "minedojo" else IMAGE_NOTE
    targets = cfg.minedojo_question_targets if cfg.environment == "minedojo" else cfg.question_targets
    eps = []
    for t, w in tqdm([(t, w) for t in tasks for w in range(cfg.worlds_per_task)], desc="worlds",
                     disable=not progress):
        seed_w = world_seed(cfg.seed, t.id, w)
        if cfg.environment == "crafter":
            base = make_env("crafter", seed_w, t)
            eps += [_Episode(t, e, x, seed_w, base.clone(), w) for e, x in combos(cfg)]
        else:  # a Minecraft world cannot be copied: a fresh one per episode, same seed
            eps += [_Episode(t, e, x, seed_w, make_env(cfg.environment, seed_w, t, **env_options), w)
                    for e, x in combos(cfg)]
    structured = cfg.uses_structure(llm)
    param_cache: dict = {}

    def params_for(ep, kind):
        """SamplingParams of one completion: its token budget and, structured, the constrained format."""
        key = (ep.elic, kind)
        if key not in param_cache:
            structure = None
            if structured:
                r = cfg.reasoning_chars if ep.elic in REASONING_POLICIES else 0
                opts = tuple(skills) if kind == "skill" else ANSWER_OPTIONS[kind]
                structure = stage_structure(opts, r, cfg.top_k if ep.elic == "top_k" else None)
            param_cache[key] = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p,
                                              max_tokens=cfg.tokens_for(ep.elic), structure=structure)
        return param_cache[key]

    n_steps = max(min(cfg.max_steps, t.budget) for t in tasks)
    bar = tqdm(range(n_steps), desc="agent steps", disable=not progress)
    for step in bar:
        active = [ep for ep in eps if not ep.done and step < min(cfg.max_steps, ep.task.budget)]
        if not active:
            break
        qs = {}
        for ep in active:
            qr = make_rng(cfg.seed, "question", ep.task.id, step)
            kind = cfg.question_kinds[step % len(cfg.question_kinds)]
            target = targets[int(qr.integers(len(targets)))]
            qs[id(ep)] = make_question(ep.obs, kind, target, cfg.near_radius)
        scenes = {id(ep): render_scene(ep.obs, cfg.scene_format) for ep in active}
        images = None
        if use_images:
            from ..llm import image_part

            images = {id(ep): image_part(prompt_frame(ep.env, ep.obs, cfg.image_size)) for ep in active}

        def perc(ep):
            q = qs[id(ep)]
            return elicit_prompt(ep.elic, scenes[id(ep)], q.text, reflection=ep.reflection, k=cfg.top_k), q.kind

        def action(ep):
            menu = "\n".join(f"{i + 1}. {s}" for i, s in enumerate(skills))
            question = (f"Your goal: {ep.task.goal}. Which skill should you use next? Skills:\n{menu}\n"
                        "Answer with the skill name. Your confidence is how likely this skill is to bring you "
                        "closer to your goal.")
            return elicit_prompt(ep.elic, scenes[id(ep)], question, reflection=ep.reflection, k=cfg.top_k), "skill"

        p_out = _stage(llm, params_for, active, cfg, step, "perception", perc, images, note)
        a_out = _stage(llm, params_for, active, cfg, step, "action", action, images, note)
        for i, ep in enumerate(active):
            q, p, a = qs[id(ep)], p_out[i], a_out[i]
            frame = frame_png_b64(ep.obs.frame, cfg.frame_scale)
            sent = _image_record(images[id(ep)]) if images is not None else None
            skill = a["answer"]  # the strict read; an unreadable choice runs noop
            rng = make_rng(cfg.seed, "explore", ep.task.id, ep.world, ep.name, step)
            before = ep.obs
            ep.obs, prims, effect, done = run_skill(ep.env, ep.obs, skill or "noop", moves=cfg.skill_moves,
                                                    rng=rng, skills=skills)
            finished = task_success(ep.task, ep.start, ep.obs)
            ok = finished if cfg.action_outcome == "task" else task_progress(ep.task, before, ep.obs, ep.start)
            ep.success = ep.success or finished
            ep.done = done or ep.success
            ep.steps.append({
                "step": step, "frame_png": frame, "prompt_image": sent, "scene": scenes[id(ep)],
                "question": q.text, "question_kind": q.kind, "truth": list(q.truth),
                "perception": {**_trace_reads(p), "correct": grade_answer(q, p["answer"]),
                               "correct_lenient": grade_answer(q, p["answer_lenient"])},
                "action": {**_trace_reads(a), "skill": skill, "skill_run": skill or "noop",
                           "skill_effect": bool(effect), "success": bool(ok)},
                "primitives": prims, "task_success": ep.success,
            })
            ep.reflection = (f"you answered '{p['answer']}' to '{q.text}' and chose '{skill or 'noop'}', "
                             f"which {'worked' if ok else 'did not work'}.")
    bar.close()
    for ep in eps:
        close = getattr(ep.env, "close", None)  # MineDojo: stop each Minecraft process
        if callable(close):
            close()
    return _collect(cfg, eps, llm)


def _trace_reads(d: dict) -> dict:
    """What a trace keeps of a stage: raw texts, finish reasons, parse classes, both reads per sample and
    aggregated."""
    keys = ("texts", "finish", "parse", "answers", "confs", "answers_lenient", "confs_lenient", "answer", "conf",
            "answer_lenient", "conf_lenient")
    return {k: d[k] for k in keys}


def _env_options(cfg: Config) -> dict:
    """``make_env`` keyword arguments of the configured environment (stored in each episode for replay)."""
    if cfg.environment == "crafter":
        return {}
    return {"minedojo_image_size": list(cfg.minedojo_image_size), "voxel_radius": cfg.minedojo_voxel_radius,
            "ticks_per_tile": cfg.minedojo_ticks_per_tile, "attack_ticks": cfg.minedojo_attack_ticks}


_CAL_KEYS = ("mean_conf", "ece", "brier", "auroc", "pr_p", "pr_n")


def _calibration(conf: list, y: list, cfg: Config, rng: np.random.Generator | None = None) -> dict:
    """Calibration metrics over the steps with a readable confidence (``n_cal`` of them), and bootstrap
    standard errors of ECE and AUROC over those steps (NaN where fewer than 2 resamples define it)."""
    pairs = [(c, v) for c, v in zip(conf, y) if c is not None]
    out = {"n_cal": len(pairs)}
    if not pairs:
        out.update({k: float("nan") for k in _CAL_KEYS + ("ece_se", "auroc_se")})
        return out
    c = np.array([p[0] for p in pairs], float)
    v = np.array([p[1] for p in pairs], int)
    s = cal.calibration_summary(c, v, cfg.n_bins, cfg.ece_strategy, cfg.pr_convention, cfg.bins_closed)
    out.update({k: s[k] for k in _CAL_KEYS})
    eces, aucs = [], []
    if rng is not None and cfg.n_boot and len(pairs) > 1:
        for _ in range(cfg.n_boot):
            idx = rng.integers(len(pairs), size=len(pairs))
            eces.append(cal.ece(c[idx], v[idx], cfg.n_bins, cfg.ece_strategy, cfg.bins_closed))
            if 0 < v[idx].sum() < len(idx):
                aucs.append(cal.auroc(c[idx], v[idx]))
    out["ece_se"] = float(np.std(eces, ddof=1)) if len(eces) > 1 else float("nan")
    out["auroc_se"] = float(np.std(aucs, ddof=1)) if len(aucs) > 1 else float("nan")
    return out


def _stage_metrics(steps: list, key: str, cfg: Config, rng: np.random.Generator) -> dict:
    """One stage of one policy combination: graded steps ``n``, completions, parse shares (strict, lenient
    only, unparsed, truncated: shares of completions), accuracy (strict; an unreadable answer is not
    correct and is counted in ``answer_unreadable``, a share of steps), strict calibration, and the lenient
    variant (``*_lenient``)."""
    n = len(steps)
    parses = [p for s in steps for p in s["parse"]]
    finish = [f for s in steps for f in s["finish"]]
    nc = len(parses)
    y = [int(s[key]) for s in steps]
    lkey = key + "_lenient" if key == "correct" else key
    y_len = [int(s[lkey]) for s in steps]
    share = (lambda k: k / nc) if nc else (lambda k: float("nan"))
    out = {"n": n, "n_completions": nc, "strict": share(parses.count("strict")),
           "lenient_only": share(parses.count("lenient")), "unparsed": share(parses.count("unparsed")),
           "truncated": share(sum(f == "length" for f in finish)),
           "accuracy": float(np.mean(y)) if n else float("nan"),
           "answer_unreadable": float(np.mean([s["answer"] is None for s in steps])) if n else float("nan")}
    out.update(_calibration([s["conf"] for s in steps], y, cfg, rng))
    len_m = _calibration([s["conf_lenient"] for s in steps], y_len, cfg)
    out.update({"accuracy_lenient": float(np.mean(y_len)) if n else float("nan"),
                "n_cal_lenient": len_m["n_cal"], "ece_lenient": len_m["ece"], "auroc_lenient": len_m["auroc"]})
    return out


def _effects(table: dict, cfg: Config) -> dict:
    """The paper's comparisons on this run: each other policy combination minus Vanilla (AUROC and ECE
    differences per stage), with standard errors from the two cells' bootstraps (independent episodes)."""
    if "vanilla" not in table:
        return {}
    out = {}
    for name, row in table.items():
        if name == "vanilla":
            continue
        d = {}
        for stage in ("perception", "action"):
            a, b = row[stage], table["vanilla"][stage]
            d[stage] = {m: a[m] - b[m] for m in ("auroc", "ece")}
            d[stage].update({m + "_se": float(np.hypot(a[m + "_se"], b[m + "_se"])) for m in ("auroc", "ece")})
        out[f"{name} - vanilla"] = d
    return out


def _collect(cfg: Config, eps: list[_Episode], llm) -> dict:
    names = [_combo_name(e, x) for e, x in combos(cfg)]
    table, rel, summary = {}, {}, {}
    for name in names:
        mine = [ep for ep in eps if ep.name == name]
        row, rel[name] = {}, {}
        for stage, key in (("perception", "correct"), ("action", "success")):
            steps = [s[stage] for ep in mine for s in ep.steps]
            row[stage] = _stage_metrics(steps, key, cfg, make_rng(cfg.seed, "bootstrap", name, stage))
            ok = [(s["conf"], int(s[key])) for s in steps if s["conf"] is not None]
            rel[name][stage] = (cal.reliability_diagram([c for c, _ in ok], [v for _, v in ok], cfg.n_bins,
                                                        cfg.ece_strategy, cfg.bins_closed) if ok else None)
        kinds = sorted({s["question_kind"] for ep in mine for s in ep.steps})
        row["perception"]["accuracy_by_kind"] = {
            k: float(np.mean([s["perception"]["correct"] for ep in mine for s in ep.steps if s["question_kind"] == k]))
            for k in kinds}
        row["task_success"] = float(np.mean([ep.success for ep in mine])) if mine else float("nan")
        table[name] = row
        summary[name] = {st: {k: row[st][k] for k in ("n", "accuracy", "ece", "ece_se", "auroc", "auroc_se",
                                                      "strict", "lenient_only", "unparsed", "truncated",
                                                      "ece_lenient", "auroc_lenient")}
                         for st in ("perception", "action")}
        summary[name]["task_success"] = row["task_success"]
    effects = _effects(table, cfg)
    usage = getattr(llm, "usage", None)
    tokens = {"prompt": getattr(usage, "prompt_tokens", None),
              "completion": getattr(usage, "completion_tokens", None),
              "cache_hits": getattr(usage, "cache_hits", None)}
    episodes = [{"task": ep.task.id, "level": ep.task.level, "goal": ep.task.goal, "combo": ep.name,
                 "elicitation": ep.elic, "execution": ep.exec, "world": ep.world, "world_seed": ep.world_seed,
                 "frame_scale": cfg.frame_scale, "observation": cfg.observation, "image_size": cfg.image_size,
                 "environment": cfg.environment, "env_options": _env_options(cfg),
                 "success": ep.success, "steps": ep.steps} for ep in eps]
    return {"summary": summary, "table": table, "effects": effects, "reliability": rel, "episodes": episodes,
            "combos": names, "structured": cfg.uses_structure(llm), "tokens": tokens, "config": cfg.to_dict()}


def replay(episode: dict, question_kinds=None, near_radius: int = 3) -> dict:
    """Re-run a saved episode's primitive actions in a fresh world of its environment (Crafter unless the
    episode says ``"environment": "minedojo"``; built by ``envs.make_env``) and re-grade it.

    Checks that each step's question truth (from the semantic map) and the final task success are
    reproduced, that the re-rendered frame equals the stored one at every step, and, where the step sent
    an image to the model, that re-rendering it gives the same PNG (``image_match``; None for steps
    without one). Returns ``{"steps", "truth_match", "frame_match", "image_match", "success",
    "success_match"}``.
    """
    from ..llm import image_part

    environment = episode.get("environment", "crafter")
    task = get_tasks([episode["task"]], environment)[0]
    env = make_env(environment, episode["world_seed"], task, **episode.get("env_options", {}))
    obs = env.last
    start = obs
    matches, frames, images = [], [], []
    for s in episode["steps"]:
        q = make_question(obs, s["question_kind"], _question_target(s["question"]), near_radius)
        matches.append(list(q.truth) == list(s["truth"]))
        frames.append(frame_png_b64(obs.frame, episode.get("frame_scale", 2)) == s["frame_png"])
        sent = s.get("prompt_image")
        images.append(None if sent is None else
                      _image_record(image_part(prompt_frame(env, obs, episode.get("image_size", 256)))) == sent)
        for a in s["primitives"]:
            obs, _ = env.step(a)
    ok = task_success(task, start, obs)
    close = getattr(env, "close", None)
    if callable(close) and environment != "crafter":
        close()
    return {"steps": len(episode["steps"]), "truth_match": matches, "frame_match": frames,
            "image_match": images, "success": ok,
            "success_match": ok == episode["success"]}


def _question_target(text: str) -> str:
    m = re.search(r"(?:many|there|nearest) (\w+)", text)
    if not m:
        raise ValueError(f"cannot read the question target from {text!r}")
    return m.group(1)
