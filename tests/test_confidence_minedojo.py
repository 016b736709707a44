"""The MineDojo path of workbench.confidence, end to end, on a fake ``minedojo`` module (MineDojo itself
needs Java 8 and internet): observation dicts in MineDojo's documented format (rgb (3, H, W), inventory
name/quantity, voxels block_name, location_stats pos/yaw), MultiDiscrete(8) actions, and the meta task's
``is_successful`` property (MineDojo's step puts no success key in info).

The fake world is a flat plain: one block per (x, z) column at the player's feet level, grass below,
air above. Walking moves 0.22 blocks per forward tick unless the next block is solid; 8 attack ticks
break the faced block into the inventory; craft turns logs into planks (1 -> 4), planks into a crafting
table (4 -> 1). Perception truths are recomputed here from that layout, independently of the library.
"""
import sys
import types

import numpy as np
import pytest

from workbench.confidence import Config, MineDojoUnavailable, envs, replay, run
from workbench.confidence.agent import MINEDOJO_IMAGE_NOTE, MINEDOJO_SKILLS, run_skill
from workbench.confidence.tasks import get_tasks, task_success
from workbench.llm import decode_image_part, load_llm, prompt_images, prompt_text

LAYOUT = {(0, 2): "log", (2, -1): "log", (-2, -2): "water", (-1, 2): "sand", (1, -2): "stone"}
CRAFT_ITEMS = ["stick", "planks", "crafting_table", "wooden_pickaxe", "wooden_sword", "furnace"]
RADIUS = 2  # voxel radius of every config here: a 5 x 5 perception grid
SIZE = (20, 32)  # MineDojo rgb (height, width)


def frame_of(pos, yaw, h, w):
    """The fake's rgb, (3, H, W) uint8, a deterministic function of the player's block and yaw."""
    x, z = pos
    rgb = np.zeros((3, h, w), np.uint8)
    rgb[0] = (37 * x) % 256
    rgb[1] = (53 * z) % 256
    rgb[2, :, : w // 2] = int(yaw) % 256
    rgb[2, : h // 2, w // 2:] = 200
    return rgb


class FakeMineDojoEnv:
    FACING = {0: (0, 1), 90: (-1, 0), 180: (0, -1), 270: (1, 0)}

    def __init__(self, task_id, image_size, seed, world_seed, use_voxel, voxel_size, target_names=None,
                 target_quantities=None, **kwargs):
        assert use_voxel and voxel_size["ymin"] == -1 and voxel_size["ymax"] == 1
        self.kwargs = dict(task_id=task_id, image_size=image_size, seed=seed, world_seed=world_seed,
                           voxel_size=voxel_size, target_names=target_names, target_quantities=target_quantities,
                           **kwargs)
        self.r = voxel_size["xmax"]
        self.h, self.w = image_size
        self.action_space = types.SimpleNamespace(no_op=lambda: np.array([0, 0, 0, 12, 12, 0, 0, 0]))
        self.actions: list[list[int]] = []
        self.closed = False

    def reset(self):
        self.blocks = dict(LAYOUT)
        self.pos = np.array([0.5, 0.5])  # (x, z), block centre
        self.yaw = 0
        self.inv: dict[str, int] = {}
        self.hits = 0
        self.is_successful = False
        return self._obs()

    def block(self):
        return tuple(int(v) for v in np.floor(self.pos))

    def _obs(self):
        bx, bz = self.block()
        n = 2 * self.r + 1
        vox = np.full((n, 3, n), "air", dtype=object)
        vox[:, 0, :] = "grass"
        for i in range(n):
            for k in range(n):
                vox[i, 1, k] = self.blocks.get((bx + i - self.r, bz + k - self.r), "air")
        names = list(self.inv) + ["air"] * (36 - len(self.inv))
        qty = list(self.inv.values()) + [0] * (36 - len(self.inv))
        return {"rgb": frame_of((bx, bz), self.yaw, self.h, self.w),
                "inventory": {"name": np.array(names), "quantity": np.array(qty)},
                "voxels": {"block_name": vox},
                "location_stats": {"pos": np.array([self.pos[0], 64.0, self.pos[1]]),
                                   "yaw": np.array([float(self.yaw)]), "pitch": np.array([0.0])}}

    def step(self, a):
        a = [int(v) for v in a]
        self.actions.append(a)
        assert len(a) == 8 and a[3] == 12
        self.yaw = (self.yaw + (a[4] - 12) * 15) % 360
        f = np.array(self.FACING[self.yaw])
        front = tuple(int(v) for v in np.array(self.block()) + f)
        if a[0] == 1:
            new = self.pos + 0.22 * f
            if tuple(int(v) for v in np.floor(new)) == self.block() or front not in self.blocks:
                self.pos = new
        if a[5] == 3 and self.blocks.get(front) not in (None, "water"):
            self.hits += 1
            if self.hits >= 8:
                name = self.blocks.pop(front)
                self.inv[name] = self.inv.get(name, 0) + 1
                self.hits = 0
        elif a[5] != 3:
            self.hits = 0
        if a[5] == 6:  # place the item of slot a[7] in front, if that block is free
            names = list(self.inv)
            item = names[a[7]] if a[7] < len(names) else "air"
            if self.inv.get(item, 0) > 0 and front not in self.blocks:
                self.inv[item] -= 1
                self.blocks[front] = item
        if a[5] == 4:
            item = CRAFT_ITEMS[a[6]]
            need = {"planks": ("log", 1, 4), "crafting_table": ("planks", 4, 1)}.get(item)
            if need and self.inv.get(need[0], 0) >= need[1]:
                self.inv[need[0]] -= need[1]
                self.inv[item] = self.inv.get(item, 0) + need[2]
        if self.kwargs["task_id"] == "harvest":
            self.is_successful = all(self.inv.get(t, 0) >= q for t, q in
                                     zip(self.kwargs["target_names"], self.kwargs["target_quantities"]))
        return self._obs(), 0.0, self.is_successful, {}

    def close(self):
        self.closed = True


@pytest.fixture
def fake_minedojo(monkeypatch):
    """A fake ``minedojo`` in sys.modules and a machine that appears to have Java 8 and xvfb."""
    made: list[FakeMineDojoEnv] = []
    mod = types.ModuleType("minedojo")

    def make(**kw):
        made.append(FakeMineDojoEnv(**kw))
        return made[-1]

    mod.make = make
    sim, meta, mc = (types.ModuleType(n) for n in ("minedojo.sim", "minedojo.sim.mc_meta", "minedojo.sim.mc_meta.mc"))
    mc.ALL_CRAFT_SMELT_ITEMS = CRAFT_ITEMS
    mod.sim, sim.mc_meta, meta.mc = sim, meta, mc
    for name, m in [("minedojo", mod), ("minedojo.sim", sim), ("minedojo.sim.mc_meta", meta),
                    ("minedojo.sim.mc_meta.mc", mc)]:
        monkeypatch.setitem(sys.modules, name, m)
    real_which = envs.shutil.which
    monkeypatch.setattr(envs.shutil, "which", lambda c: {"java": "/usr/bin/java", "Xvfb": "/usr/bin/Xvfb"}.get(c)
                        or real_which(c))
    monkeypatch.setattr(envs.subprocess, "run", lambda *a, **k: types.SimpleNamespace(
        stderr='openjdk version "1.8.0_392"\n', stdout="", returncode=0))
    assert envs.minedojo_missing() == []
    return made


def respond(prompt, request):
    """A scripted agent: walk toward the nearest log, attack it once faced; perception always says 1/yes/down."""
    text = prompt_text(prompt)
    if "Skills:" in text:
        if "(log)." in text:  # the scene's "Facing: <dir> (log)."
            return "Answer: interact\nConfidence: 80%"
        return "Answer: move toward log\nConfidence: 60%"
    return "Answer: 1\nConfidence: 70%" if "How many" in text else "Answer: yes, down\nConfidence: 55%"


def _cfg(**kw):
    base = dict(backend="scripted", environment="minedojo", tasks=("harvest_log", "find_tree"), max_steps=3,
                elicitation=("vanilla", "cot"), execution=("action_sampling",), k_samples=2,
                minedojo_image_size=SIZE, minedojo_voxel_radius=RADIUS, question_kinds=("direction", "count"),
                minedojo_question_targets=("log", "water", "sand"), worlds_per_task=1)
    base.update(kw)
    return Config(**base)


def truth_at(block, kind, target, radius=3):
    """Ground truth from the fake layout (feet-level blocks within the 5 x 5 window around ``block``)."""
    bx, bz = block
    cells = [(n, x - bx, z - bz) for (x, z), n in LAYOUT.items()
             if max(abs(x - bx), abs(z - bz)) <= RADIUS and n == target]
    if kind == "count":
        return (str(len(cells)),)
    if kind == "near":
        return ("yes",) if any(max(abs(dx), abs(dz)) <= radius for _, dx, dz in cells) else ("no",)
    if not cells:
        return ("none",)
    _, dx, dz = min(cells, key=lambda c: abs(c[1]) + abs(c[2]))
    h, v = ("left" if dx < 0 else "right"), ("up" if dz < 0 else "down")
    return (h,) if abs(dx) > abs(dz) else (v,) if abs(dz) > abs(dx) else (h, v)


def test_run_on_minedojo_end_to_end_success_from_the_env(fake_minedojo):
    cfg = _cfg()
    llm = load_llm("scripted", responses=respond, cache="off")
    r = run(cfg, llm=llm, progress=False)
    # one Minecraft per episode (2 tasks x 3 combos), each closed; harvest -> MineDojo's harvest meta task
    assert len(fake_minedojo) == 6 and all(e.closed for e in fake_minedojo)
    harvest = [e for e in fake_minedojo if e.kwargs["task_id"] == "harvest"]
    assert len(harvest) == 3 and all(e.kwargs["target_names"] == ["log"] and e.kwargs["target_quantities"] == [1]
                                     for e in harvest)
    assert {e.kwargs["task_id"] for e in fake_minedojo} == {"harvest", "open-ended"}
    assert all(e.kwargs["image_size"] == SIZE and e.kwargs["voxel_size"]["xmax"] == RADIUS for e in fake_minedojo)
    for ep in r["episodes"]:
        assert ep["environment"] == "minedojo"
        s0 = ep["steps"][0]
        # step 0: the log 2 south; facing south already: walk 5 ticks (1.1 blocks), now adjacent and faced
        assert s0["action"]["skill"] == "move toward log" and s0["primitives"] == ["move_down"]
        assert s0["action"]["success"] is True
        if ep["task"] == "find_tree":  # adjacency in the voxels decides a find task
            assert ep["success"] and len(ep["steps"]) == 1
        else:  # step 1: attack the faced log; MineDojo's is_successful and the inventory agree
            assert ep["success"] and len(ep["steps"]) == 2
            s1 = ep["steps"][1]
            assert s1["action"]["skill"] == "interact" and s1["primitives"] == ["do"] and s1["action"]["success"]
    # perception answers graded against the voxels, recomputed here from the layout
    n_graded = 0
    for ep in r["episodes"]:
        for s, block in zip(ep["steps"], [(0, 0), (0, 1)]):
            target = s["question"].split("nearest ")[-1].split(":")[0] if s["question_kind"] == "direction" else \
                s["question"].split("many ")[-1].split(" ")[0] if s["question_kind"] == "count" else \
                s["question"].split("there ")[-1].split(" ")[0]
            want = truth_at(block, s["question_kind"], target, cfg.near_radius)
            assert tuple(s["truth"]) == want
            assert s["perception"]["correct"] == (s["perception"]["answer"] in want)
            n_graded += 1
    assert n_graded == 9
    assert r["summary"]["vanilla"]["task_success"] == 1.0


def test_prompts_carry_the_minedojo_scene_and_menu(fake_minedojo):
    llm = load_llm("scripted", responses=respond, cache="off")
    run(_cfg(tasks=("harvest_log",), elicitation=("vanilla",), execution_on=()), llm=llm, progress=False)
    perception, action = llm.calls[0], llm.calls[1]
    assert all(isinstance(p, str) for call in llm.calls for p in call)
    # the 5 x 5 feet-level slice at the start: log 2 south, log at (2, -1), water at (-2, -2) ...
    rows = ["~  S ", "    T", "  @  ", "     ", " :T  "]
    for p in perception + action:
        assert "Map (you are @, up is north):\n" + "\n".join(rows) in p
        assert "Facing: down (air)." in p and "T=log" in p and "~=water" in p
    for p in action:
        assert all(f"{i + 1}. {s}" in p for i, s in enumerate(MINEDOJO_SKILLS))
        assert "place table" not in p and "make wood_pickaxe" not in p and "place crafting_table" in p


def test_image_observations_are_the_minedojo_rgb_resized(fake_minedojo):
    llm = load_llm("scripted", responses=respond, cache="off")
    cfg = _cfg(tasks=("harvest_log",), elicitation=("vanilla",), execution_on=(), observation="text+image",
               image_size=64)
    r = run(cfg, llm=llm, progress=False)
    # step 0 at block (0, 0) facing south (yaw 0), step 1 at block (0, 1): rgb (3, 20, 32) -> (40, 64, 3)
    for call, block in zip(llm.calls, [(0, 0), (0, 0), (0, 1), (0, 1)]):
        want = np.repeat(np.repeat(np.transpose(frame_of(block, 0, *SIZE), (1, 2, 0)), 2, 0), 2, 1)
        for p in call:
            (img,) = prompt_images(p)
            np.testing.assert_array_equal(decode_image_part(img), want)
            assert prompt_text(p).startswith(MINEDOJO_IMAGE_NOTE) and "Map (you are @" in prompt_text(p)
    ep = r["episodes"][0]
    assert ep["observation"] == "text+image" and ep["steps"][0]["prompt_image"]["shape"] == [40, 64]
    rep = replay(ep, question_kinds=cfg.question_kinds, near_radius=cfg.near_radius)
    assert rep["image_match"] == [True, True] and rep["success_match"] and rep["success"]


def test_replay_of_a_minedojo_episode(fake_minedojo):
    llm = load_llm("scripted", responses=respond, cache="off")
    cfg = _cfg(tasks=("harvest_log",), elicitation=("vanilla",), execution_on=())
    ep = run(cfg, llm=llm, progress=False)["episodes"][0]
    n_before = len(fake_minedojo)
    rep = replay(ep, near_radius=cfg.near_radius)
    assert len(fake_minedojo) == n_before + 1 and fake_minedojo[-1].kwargs["task_id"] == "harvest"
    assert rep["truth_match"] == [True, True] and rep["frame_match"] == [True, True]
    assert rep["success"] and rep["success_match"] and rep["image_match"] == [None, None]
    # a trace whose recorded actions no longer reach the log is caught
    bad = dict(ep, steps=[dict(ep["steps"][0], primitives=["move_up"]), ep["steps"][1]])
    rep = replay(bad, near_radius=cfg.near_radius)
    assert rep["frame_match"] == [True, False] and rep["success"] is False and not rep["success_match"]


def test_a_confident_model_does_not_make_success(fake_minedojo):
    llm = load_llm("scripted", responses={"Skills:": "Answer: noop\nConfidence: 99%",
                                          None: "Answer: 0\nConfidence: 99%"}, cache="off")
    r = run(_cfg(tasks=("harvest_log",), elicitation=("vanilla",), execution_on=()), llm=llm, progress=False)
    ep = r["episodes"][0]
    assert len(ep["steps"]) == 3 and not ep["success"]
    assert all(s["action"]["skill"] == "noop" and not s["action"]["success"] for s in ep["steps"])


def test_minedojo_env_action_vectors(fake_minedojo):
    task = get_tasks(["harvest_planks"], "minedojo")[0]
    env = envs.make_env("minedojo", 3, task, minedojo_image_size=SIZE, voxel_radius=RADIUS, ticks_per_tile=5,
                        attack_ticks=8)
    fake = fake_minedojo[-1]
    assert fake.kwargs["target_names"] == ["planks"] and fake.kwargs["target_quantities"] == [4]
    assert fake.kwargs["world_seed"] == 3
    obs, _ = env.step("move_up")  # south -> north: two +90 degree yaw turns, then 5 forward ticks
    assert [a[4] for a in fake.actions[:2]] == [18, 18] and [a[0] for a in fake.actions[2:]] == [1] * 5
    assert obs.facing == (0, -1) and obs.extra["player_pos"] == (0, 64, -1)
    fake.actions.clear()
    obs, _ = env.step("move_right")  # north -> east: one +90
    assert fake.actions[0][4] == 18 and obs.facing == (1, 0)
    fake.actions.clear()
    env.step("move_up")  # east -> north: one -90 (bin 6)
    assert fake.actions[0][4] == 6
    # face the log at (2, -1) from (1, -1): attack 8 ticks breaks it; crafting planks is MineDojo's craft action
    env2 = envs.make_env("minedojo", 3, task, minedojo_image_size=SIZE, voxel_radius=RADIUS, attack_ticks=8)
    f2 = fake_minedojo[-1]
    for a in ("move_up", "move_right"):
        obs, _ = env2.step(a)
    assert obs.facing_cell() == "log"
    obs, done = env2.step("do")
    assert obs.inventory == {"log": 1} and not done and not obs.extra["env_success"]
    obs, done = env2.step("make_planks")
    assert f2.actions[-1][5:7] == [4, CRAFT_ITEMS.index("planks")]
    assert obs.inventory == {"log": 0, "planks": 4} or obs.inventory == {"planks": 4}
    assert done and obs.extra["env_success"] and task_success(task, env2.last, obs)
    # placing: the slot comes from the observation's slot names; without the item it is a noop tick
    n = len(f2.actions)
    env2.step("place_crafting_table")
    assert f2.actions[-1] == [0, 0, 0, 12, 12, 0, 0, 0] and len(f2.actions) == n + 1
    f2.inv["crafting_table"] = 1  # (as if crafted) slot 2 after log and planks
    env2.step("noop")
    obs, _ = env2.step("place_crafting_table")
    assert f2.actions[-1][5] == 6 and f2.actions[-1][7] == 2 and obs.facing_cell() == "crafting_table"
    assert obs.inventory.get("crafting_table", 0) == 0
    with pytest.raises(ValueError, match="unknown MineDojo action"):
        env2.step("place_table")
    with pytest.raises(ValueError, match="unknown skill 'place table'"):
        run_skill(env2, obs, "place table", moves=2, rng=np.random.default_rng(0), skills=MINEDOJO_SKILLS)


def test_minedojo_missing_is_a_clear_error_before_any_model_call(monkeypatch):
    monkeypatch.setitem(sys.modules, "minedojo", None)  # import minedojo -> ImportError
    llm = load_llm("scripted", responses=respond, cache="off")
    with pytest.raises(MineDojoUnavailable, match="environment='minedojo' needs MineDojo; missing: the 'minedojo'"):
        run(_cfg(), llm=llm, progress=False)
    assert llm.calls == []
    # no backend is loaded either: an unloadable spec would fail differently
    with pytest.raises(MineDojoUnavailable, match="internet"):
        run(_cfg(backend="no-such-backend:x"), progress=False)


def test_harvest_success_is_the_environments():
    task = get_tasks(["harvest_4_logs"], "minedojo")[0]
    o = envs.Observation(frame=np.zeros((2, 2, 3), np.uint8), grid=[["air"]], center=(0, 0), inventory={"log": 3},
                         achievements={}, extra={"env_success": False})
    assert not task_success(task, o, o)
    o.extra["env_success"] = True  # MineDojo's own criterion, whatever the inventory shows
    assert task_success(task, o, o)
    o.extra["env_success"], o.inventory["log"] = False, 4  # the inventory in the observation
    assert task_success(task, o, o)


def test_bad_environment_and_tasks():
    with pytest.raises(ValueError, match="environment must be one of"):
        run(Config(backend="scripted", environment="minecraft"), llm=load_llm("scripted", cache="off"))
    with pytest.raises(ValueError, match="unknown task ids \\['collect_wood'\\] for minedojo"):
        get_tasks(["collect_wood"], "minedojo")
    with pytest.raises(ValueError, match="unknown environment"):
        envs.make_env("minecraft", 0)
    with pytest.raises(ValueError, match="minedojo_image_size"):
        Config(minedojo_image_size=(0, 10)).validate()
    assert len(get_tasks("all", "minedojo")) == 10
    # the default task ids exist in both suites, so the notebook's defaults run on either
    assert [t.target for t in get_tasks(Config().tasks, "minedojo")] == ["log", "water", "stone", "sand"]
