"""workbench.confidence: parsing, prompts per policy (scripted backend), semantic-map grading, MineDojo
adapter, a scripted run and an episode replay from a saved trace."""
import doctest
import json

import numpy as np
import pytest

from workbench.confidence import agent, envs, policies, tasks
from workbench.confidence import (Config, CrafterEnv, MineDojoEnv, MineDojoUnavailable, Observation,
                                  observation_from_minedojo, replay, run)
from workbench.llm import load_llm


@pytest.mark.parametrize("mod", [policies, agent, tasks, envs])
def test_doctests(mod):
    assert doctest.testmod(mod, optionflags=doctest.ELLIPSIS).failed == 0


@pytest.mark.parametrize("text,want", [
    ("Answer: yes\nConfidence: 85%", 0.85), ("confidence: 0.3", 0.3), ("Confidence: 7/10", 0.7),
    ("Confidence: 4 out of 5", 0.8), ("confidence level: high", 0.85), ("I'm not sure", 0.3),
    ("Confidence: very confident", 0.9), ("I am 95% sure", 0.95), ("the tree is left", None),
    ("Confidence: 250%", None), ("", None),
])
def test_parse_confidence(text, want):
    got = policies.parse_confidence(text)
    assert got == (pytest.approx(want) if want is not None else None)


def test_aggregate_hand_computed():
    r = policies.aggregate(["up", "down", "up", "up", None], [0.9, 0.8, 0.2, None, 0.5], "consistency")
    # every sample counts: 3 "up" of 5 samples (the unreadable one is a vote for no answer)
    assert (r["answer"], r["conf"], r["n_samples"], r["n_unreadable"]) == ("up", 0.6, 5, 1)
    r = policies.aggregate(["up", "down", "up", "up", None], [0.9, 0.8, 0.2, None, 0.5], "avg_conf")
    # weights: .9, .8, .2, (mean of the readable .6), .5 -> total 3.0; up = .9 + .2 + .6
    assert r["answer"] == "up" and r["conf"] == pytest.approx(1.7 / 3.0) and r["n_unreadable"] == 1
    assert policies.aggregate([None], [0.5])["answer"] is None
    with pytest.raises(ValueError, match="aggregation"):
        policies.aggregate(["a"], [0.5], "mean")
    with pytest.raises(ValueError, match="one confidence per answer"):
        policies.aggregate(["a", "b"], [0.5])


def test_parse_answer_and_skill():
    assert tasks.parse_answer("count", "There are three trees.\nAnswer: 3") == "3"
    assert tasks.parse_answer("count", "I see two trees") == "2"
    assert tasks.parse_answer("near", "Answer: No, there is none") == "no"
    assert tasks.parse_answer("direction", "It is to the left, not right") == "left"
    assert tasks.parse_answer("direction", "banana") is None
    assert agent.parse_skill("Answer: make wood_pickaxe") == "make wood_pickaxe"
    assert agent.parse_skill("I think I should interact with it") == "interact"
    assert agent.parse_skill("hmm") is None


def _obs(grid_rows):
    """An Observation from rows of names (y down), player at the centre."""
    h, w = len(grid_rows), len(grid_rows[0])
    grid = [[grid_rows[y][x] for y in range(h)] for x in range(w)]
    return Observation(frame=np.zeros((8, 8, 3), np.uint8), grid=grid, center=(w // 2, h // 2),
                       inventory={}, achievements={}, facing=(0, 1))


def test_questions_graded_from_grid():
    g, t, w = "grass", "tree", "water"
    o = _obs([[t, g, g, g, g],
              [g, g, g, g, w],
              [g, g, "player", g, g],
              [g, g, g, g, g],
              [t, g, g, g, t]])
    assert tasks.make_question(o, "count", "tree").truth == ("3",)
    assert tasks.make_question(o, "count", "stone").truth == ("0",)
    assert tasks.make_question(o, "near", "water", radius=2).truth == ("yes",)
    assert tasks.make_question(o, "near", "water", radius=1).truth == ("no",)
    assert tasks.make_question(o, "direction", "water").truth == ("right",)  # (2, -1)
    assert set(tasks.make_question(o, "direction", "tree").truth) == {"left", "up"}  # (-2, -2) tie
    assert tasks.make_question(o, "direction", "cow").truth == ("none",)
    q = tasks.make_question(o, "count", "tree")
    assert tasks.grade_answer(q, "3") and not tasks.grade_answer(q, "2") and not tasks.grade_answer(q, None)


@pytest.fixture(scope="module")
def crafter_env():
    env = CrafterEnv(seed=7)
    env.reset()
    return env


def test_crafter_grid_matches_world_materials(crafter_env):
    env = crafter_env.clone()
    obs = env.last
    world = env._env._world
    px, py = obs.extra["player_pos"]
    cx, cy = obs.center
    assert obs.grid[cx][cy] == "player"
    checked = 0
    for x in range(len(obs.grid)):
        for y in range(len(obs.grid[0])):
            mat, objs = world[(px + x - cx, py + y - cy)]
            if objs is None:  # no creature on the cell: the grid shows the material
                assert obs.grid[x][y] == mat
                checked += 1
    assert checked > 40
    # counts by an independent scan of Crafter's semantic map
    sem = env._env._sem_view()
    trees = int((sem[px - 4:px + 5, py - 3:py + 4] == envs.CRAFTER_NAMES.index("tree")).sum())
    assert tasks.make_question(obs, "count", "tree").truth == (str(trees),)


def test_crafter_clone_is_independent(crafter_env):
    a, b = crafter_env.clone(), crafter_env.clone()
    a.step("move_left")
    oa, _ = a.step("move_left")
    ob = b.last
    assert oa.extra["player_pos"] != ob.extra["player_pos"] or oa.facing != ob.facing
    with pytest.raises(ValueError, match="unknown Crafter action"):
        b.step("fly")


def test_tasks_suite():
    assert len(tasks.TASKS) == 30 and len({t.id for t in tasks.TASKS}) == 30
    assert sorted({t.level for t in tasks.TASKS}) == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="unknown task"):
        tasks.get_tasks(["fly"])


def test_minedojo_adapter_on_handmade_observation():
    vox = np.full((3, 3, 3), "air", dtype=object)
    vox[0, 1, 1] = "log"
    vox[2, 1, 2] = "stone"
    obs = {"rgb": np.zeros((3, 16, 24), np.uint8),
           "inventory": {"name": np.array(["air", "log", "dirt", "log"]), "quantity": np.array([0, 2, 5, 1])},
           "voxels": {"block_name": vox},
           "location_stats": {"pos": np.array([1.0, 64.0, 2.0]), "yaw": np.array([90.0])}}
    o = observation_from_minedojo(obs)
    assert o.frame.shape == (16, 24, 3)
    assert o.inventory == {"log": 3, "dirt": 5}
    assert o.grid[0][1] == "log" and o.grid[2][2] == "stone" and o.center == (1, 1)
    assert tasks.make_question(o, "count", "log").truth == ("1",)
    assert tasks.make_question(o, "direction", "log").truth == ("left",)
    del obs["voxels"]
    with pytest.raises(KeyError, match="voxels/block_name"):
        observation_from_minedojo(obs)


def test_minedojo_unavailable_names_what_is_missing():
    missing = envs.minedojo_missing()
    if not missing:
        pytest.skip("MineDojo prerequisites are present")
    with pytest.raises(MineDojoUnavailable, match="missing") as e:
        MineDojoEnv()
    assert "internet" in str(e.value)


def test_policies_send_the_prompts_they_claim():
    cfg = Config(backend="scripted", tasks=("find_tree",), max_steps=1, k_samples=3, worlds_per_task=1,
                 elicitation=policies.ELICITATION,
                 execution=("action_sampling", "scenario_reinterpretation", "hypothetical"))
    llm = load_llm("scripted", responses={"Skills:": "Answer: explore\nConfidence: 50%",
                                          None: "Answer: yes\nConfidence: 70%"}, cache="off")
    run(cfg, llm=llm, progress=False)
    # one batched call per stage and distinct sampling parameters (token budget, structure)
    calls = [p for call in llm.calls for p in call]
    perception = [p for p in calls if "Skills:" not in p]
    action = [p for p in calls if "Skills:" in p]
    # 5 elicitation alone + vanilla x 3 execution policies; reinterpretation adds k-1 perception prompts
    assert len(perception) == 8 + 2 and len(action) == 8 + 2 + 2
    assert sum("previous step" in p.lower() and "reflect" in p.lower() for p in perception) == 1
    assert sum("Think step by step" in p for p in perception) == 1 and sum("devise a short plan" in p for p in perception) == 1
    assert sum("2 best guesses" in p and "G1:" in p for p in perception) == 1
    assert all("Confidence: <0-100>%" in p for p in perception if "G1:" not in p)
    cues = [p.split("\n")[0] for p in perception if p.split("\n")[0] in policies.FOCUS_CUES]
    assert cues == list(policies.FOCUS_CUES[:3])
    # action sampling: three identical action prompts; hypothetical: three counterfactual openings
    assert max(action.count(p) for p in action) == 5  # vanilla, its 3 action samples, vanilla+reinterpretation
    assert [p.split("\n")[0] for p in action if p.split("\n")[0] in policies.HYPOTHETICALS] == \
        list(policies.HYPOTHETICALS[:3])


def test_scripted_run_metrics_and_unparsable_counts():
    cfg = Config(backend="scripted", tasks=("find_tree",), max_steps=2, elicitation=("vanilla", "cot"),
                 execution=(), question_kinds=("near",), worlds_per_task=1)
    llm = load_llm("scripted", responses={"Skills:": "Answer: move toward tree\nConfidence: 80%",
                                          "step by step": "I do not know.", None: "Answer: no\nConfidence: 30%"},
                   cache="off")
    r = run(cfg, llm=llm, progress=False)
    assert r["combos"] == ["vanilla", "cot"] and r["structured"] is False  # auto: off for scripted
    cot = r["table"]["cot"]["perception"]
    assert cot["unparsed"] == 1.0 and cot["n_cal"] == 0 and cot["answer_unreadable"] == 1.0
    assert cot["accuracy"] == 0.0  # unreadable is not correct, and not "no" either
    van = r["table"]["vanilla"]
    assert van["perception"]["strict"] == 1.0 and van["perception"]["truncated"] == 0.0
    steps = [s for ep in r["episodes"] if ep["combo"] == "vanilla" for s in ep["steps"]]
    acc = np.mean([s["truth"] == ["no"] for s in steps])
    assert van["perception"]["accuracy"] == pytest.approx(acc)
    assert van["perception"]["ece"] == pytest.approx(abs(acc - 0.3))
    assert all(s["action"]["conf"] == 0.8 for s in steps)
    assert r["summary"]["vanilla"]["task_success"] in (0.0, 1.0)


def test_replay_from_saved_trace(tmp_path):
    cfg = Config(backend="scripted", tasks=("find_water",), max_steps=3, elicitation=("vanilla",), execution=(),
                 worlds_per_task=1)
    llm = load_llm("scripted", responses={"Skills:": "Answer: explore\nConfidence: 50%",
                                          None: "Answer: 2\nConfidence: 40%"}, cache="off")
    r = run(cfg, llm=llm, progress=False)
    path = tmp_path / "trace.json"
    path.write_text(json.dumps(r["episodes"][0]))
    ep = json.loads(path.read_text())
    rep = replay(ep)
    assert rep["steps"] == len(ep["steps"]) and all(rep["truth_match"]) and rep["success_match"]
    assert all(rep["frame_match"])
    moved = sum(len(s["primitives"]) for s in ep["steps"])
    assert moved > 0
    # a tampered trace is caught: drop every move, so later questions see the starting view
    for s in ep["steps"]:
        s["primitives"] = []
    assert not all(replay(ep)["frame_match"][1:])


def test_config_errors():
    with pytest.raises(ValueError, match="elicitation"):
        run(Config(elicitation=("magic",)), llm=load_llm("scripted", cache="off"), progress=False)
    with pytest.raises(ValueError, match="aggregation"):
        Config(aggregation="mean").validate()


@pytest.mark.model
def test_embedded_model_one_step():
    """The embedded model through the whole loop, structured by default: every completion is read by the
    strict rule (the constraint), within its token budget."""
    cfg = Config(tasks=("find_tree",), max_steps=1, elicitation=("vanilla", "cot"), execution=(),
                 worlds_per_task=1)
    r = run(cfg, progress=False)
    assert r["structured"] is True
    for name in ("vanilla", "cot"):
        for stage in ("perception", "action"):
            m = r["table"][name][stage]
            assert m["n"] == 1 and m["strict"] + m["truncated"] == 1.0 and m["n_cal"] == 1 - m["truncated"]
    assert r["tokens"]["completion"] is not None
