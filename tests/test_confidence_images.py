"""Image observations in the embodied-confidence agent (scripted backend): the frame rides on every
perception and action prompt when asked for, never otherwise; it is Crafter's render of the current
state; attaching it does not change the world; replay checks it; text-only backends are refused."""
import copy
import functools
import json

import numpy as np
import pytest

from workbench.confidence import Config, CrafterEnv, observation_from_minedojo, replay, run
from workbench.confidence.agent import IMAGE_NOTE, world_seed
from workbench.confidence.envs import prompt_frame, resize_frame
from workbench.llm import ImageInputError, decode_image_part, image_part, load_llm, prompt_images, prompt_text

RESPONSES = {"Skills:": "Answer: explore\nConfidence: 50%", None: "Answer: yes\nConfidence: 70%"}


@functools.lru_cache(maxsize=None)  # each run builds a Crafter world (seconds): share them; tests copy before editing
def _run(observation, image_size=96, **kw):
    cfg = Config(backend="scripted", tasks=("find_tree",), max_steps=2, elicitation=("vanilla", "cot"), worlds_per_task=1,
                 execution=("scenario_reinterpretation",), k_samples=2, observation=observation,
                 image_size=image_size, **kw)
    llm = load_llm("scripted", responses=RESPONSES, cache="off")
    return cfg, llm, run(cfg, llm=llm, progress=False)


def test_images_on_every_prompt_equal_to_the_rendered_frame():
    cfg, llm, r = _run("text+image")
    # perception and action, two steps, one call per token budget (vanilla answers at once, cot reasons)
    assert len(llm.calls) == 8
    # step 0: every episode starts from the task's freshly reset world, so the frame is known independently
    env = CrafterEnv(seed=world_seed(cfg.seed, "find_tree"))
    env.reset()
    expected = image_part(env.render(cfg.image_size))
    for call in llm.calls[:4]:
        for p in call:
            imgs = prompt_images(p)
            assert len(imgs) == 1 and imgs[0] == expected
            assert prompt_text(p).startswith(IMAGE_NOTE)
    # every prompt of every call carries exactly one image, a (96, 96) PNG of Crafter's own render
    for call in llm.calls:
        for p in call:
            (img,) = prompt_images(p)
            assert decode_image_part(img).shape == (96, 96, 3)
    # perception and action prompts of one step see the same frame; the trace records it
    c = llm.calls
    for perc, act in [(c[0] + c[1], c[2] + c[3]), (c[4] + c[5], c[6] + c[7])]:
        assert {prompt_images(p)[0]["image_url"]["url"] for p in perc} == \
               {prompt_images(p)[0]["image_url"]["url"] for p in act}
    for ep in r["episodes"]:
        assert ep["observation"] == "text+image"
        assert all(s["prompt_image"]["shape"] == [96, 96] for s in ep["steps"])
    # the frame at 96 px is Crafter's render, not an upscaled 64 px frame: at 64 px it equals the obs frame
    np.testing.assert_array_equal(env.render(64), env.last.frame)


def test_no_images_when_off_and_prompts_unchanged():
    _, llm_off, r_off = _run("text")
    assert all(isinstance(p, str) for call in llm_off.calls for p in call)
    assert all(s["prompt_image"] is None for ep in r_off["episodes"] for s in ep["steps"])
    _, llm_on, r_on = _run("text+image")
    # same text after the note, same actions, same frames: attaching the image changes nothing else
    for c_off, c_on in zip(llm_off.calls, llm_on.calls):
        assert [prompt_text(p).removeprefix(IMAGE_NOTE + "\n\n") for p in c_on] == c_off
    for a, b in zip(r_off["episodes"], r_on["episodes"]):
        assert [s["primitives"] for s in a["steps"]] == [s["primitives"] for s in b["steps"]]
        assert [s["frame_png"] for s in a["steps"]] == [s["frame_png"] for s in b["steps"]]
    assert json.dumps(r_off["summary"]) == json.dumps(r_on["summary"])  # NaN (undefined AUROC) included


def test_replay_checks_the_sent_image():
    _, _, r = _run("text+image")
    ep = copy.deepcopy(r["episodes"][0])
    rep = replay(ep)
    assert rep["image_match"] == [True] * len(ep["steps"]) and all(rep["frame_match"])
    ep["steps"][1]["prompt_image"]["sha256"] = "0" * 64  # a tampered record is caught
    assert replay(ep)["image_match"] == [True, False]
    _, _, r_txt = _run("text")
    assert replay(r_txt["episodes"][0])["image_match"] == [None, None]


def test_render_leaves_the_world_unchanged_at_night():
    env = CrafterEnv(seed=3)
    env.reset()
    world = env._env._world
    world.daylight = 0.1  # night: Crafter's renderer draws noise from the world's random state
    before = world.random.get_state()[1].copy()
    env.render(128)
    assert np.array_equal(before, world.random.get_state()[1])
    env._env.render((128, 128))  # Crafter's renderer itself does consume it (why we restore the state)
    assert not np.array_equal(before, world.random.get_state()[1])


def test_minedojo_frames_are_resized_rgb_obs():
    rgb = np.random.default_rng(0).integers(0, 256, (3, 16, 24), dtype=np.uint8)
    vox = np.full((3, 3, 3), "air", dtype=object)
    o = observation_from_minedojo({"rgb": rgb, "inventory": {"name": np.array(["air"]), "quantity": np.array([0])},
                                   "voxels": {"block_name": vox}})
    f = prompt_frame(None, o, 48)  # no renderer: the rgb observation, nearest neighbour x2, aspect kept
    np.testing.assert_array_equal(f, np.repeat(np.repeat(np.transpose(rgb, (1, 2, 0)), 2, 0), 2, 1))
    np.testing.assert_array_equal(prompt_frame(None, o, 0), o.frame)
    assert resize_frame(o.frame, 12).shape == (8, 12, 3)


def test_config_and_text_only_backend_errors():
    with pytest.raises(ValueError, match="observation"):
        Config(observation="image").validate()
    with pytest.raises(ValueError, match="image_size"):
        Config(image_size=-1).validate()
    from workbench.llm.hf import TransformersLLM

    text_only = object.__new__(TransformersLLM)  # the check needs no loaded model
    text_only.spec, text_only.model, text_only.model_name = "default", "/x", "SmolLM2-135M-Instruct"
    with pytest.raises(ImageInputError, match="text-only.*vllm:"):
        run(Config(observation="text+image", tasks=("find_tree",)), llm=text_only, progress=False)


def test_trace_viewer_says_what_the_model_saw():
    from widgets import embodied_confidence as view

    _, _, on = _run("text+image")
    _, _, off = _run("text")
    s = on["episodes"][0]["steps"][0]["prompt_image"]
    assert f"text + image (96x96 PNG, sha256 {s['sha256'][:12]}" in view.step_html(on["episodes"][0], 0)
    assert "model saw: text only" in view.step_html(off["episodes"][0], 0)
