"""Every PRIMA question needs two images: a reader that sees one image alone with the question is at
chance on every category and template.

Two checks. (1) Counterfactual twins, exact: for each item, forcing each value of the template's
hidden choice gives the same question and a pixel-identical target image, with a different answer
in it each time; so any function of (question, image index, that image) is right for at most one
twin, i.e. at most 1 / n_choices, the chance level ``per_image_chance`` reports. (2) Learned
per-image oracles: a gradient-boosted classifier that sees one image's exact scene description
(shape, colour, size, position of every object, within-image ranks and counts) and the question's
words is trained on generated items and scored on fresh ones; it stays at chance on every category,
while the same oracle solves a per-image-answerable template (the old functional one) almost always.
"""
import re

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from workbench.prima import Config
from workbench.prima.data import (AFFORDANCE, CATEGORIES, COLOR_NAMES, SHAPES, TEMPLATES, generate_item,
                                  generate_items, per_image_chance)


def _target_set(item, image):
    return frozenset(k for (i, k) in item.meta["targets"] if i == image)


@pytest.mark.parametrize("n_images", [2, 3])
@pytest.mark.parametrize("category", CATEGORIES)
def test_counterfactual_twins_share_the_view_not_the_answer(category, n_images):
    cfg = Config(seed=5, n_images=n_images)
    assert [f.__name__ for f in TEMPLATES[category]]  # every template of the category is reached below
    for idx in range(12):
        base = generate_item(cfg, idx, split="twin", category=category)
        o, n = base.meta["target_image"], base.meta["n_choices"]
        assert n >= 2 and o != base.meta["reference_image"]
        answers = set()
        for ch in range(n):
            tw = generate_item(cfg, idx, split="twin", category=category, choice=ch)
            assert tw.meta["choice"] == ch and tw.meta["target_image"] == o
            assert tw.question == base.question  # the question never depends on the choice
            assert np.array_equal(tw.images[o], base.images[o])  # nor does the target image
            assert tw.meta["scenes"][o] == base.meta["scenes"][o]
            answers.add(_target_set(tw, o))
        assert len(answers) == n  # ...but the answer in it differs for every choice
        with pytest.raises(ValueError, match="choice must be"):
            generate_item(cfg, idx, split="twin", category=category, choice=n)


def test_per_image_chance_is_mean_inverse_choices():
    items = generate_items(Config(seed=2), 40)
    ch = per_image_chance(items)
    for c in CATEGORIES:
        sub = [it for it in items if it.category == c]
        assert ch[c] == pytest.approx(np.mean([1 / it.meta["n_choices"] for it in sub]))
        assert 0.2 < ch[c] < 0.5


# ------------------------------------------------------------------------------------- learned oracle
WORD = re.compile(r"[a-z]+|\d+")


def _legacy_functional(cfg, idx, seed):
    """The old functional template, per-image answerable: 'segment every object that can <verb>'
    (the verb names the shape). Scene descriptions only; used as the oracle's positive control."""
    rng = np.random.default_rng([seed, idx])
    s = SHAPES[rng.integers(3)]
    scenes, targets = [], []
    for i in range(cfg.n_images):
        objs = []
        for k in range(int(rng.integers(2, 5))):
            sh = SHAPES[rng.integers(3)]
            objs.append({"shape": sh, "color": COLOR_NAMES[rng.integers(4)], "r": int(rng.integers(2, 5)),
                         "cy": int(rng.integers(3, 29)), "cx": int(rng.integers(3, 29))})
            objs[-1]["area"] = 4 * objs[-1]["r"] ** 2
        scenes.append(objs)
        targets += [(i, k) for k, ob in enumerate(objs) if ob["shape"] == s]
    o = targets[0][0] if targets else 0
    return {"question": f"Across all images, segment every object that can {AFFORDANCE[s]}.",
            "scenes": scenes, "targets": targets, "o": o, "n_choices": None}


def _records(items):
    return [{"question": it.question, "scenes": it.meta["scenes"], "targets": it.meta["targets"],
             "o": it.meta["target_image"], "category": it.category, "n_choices": it.meta["n_choices"]}
            for it in items]


def _features(rec, i):
    """One row per object of image ``i``: what that image alone (plus the question) shows."""
    q = rec["question"].lower()
    words = set(WORD.findall(q))
    mentioned = [int(m) - 1 for m in re.findall(r"image (\d+)", q)]
    objs = rec["scenes"][i]
    cy = np.array([ob["cy"] for ob in objs]); area = np.array([ob["area"] for ob in objs])
    rows = []
    for k, ob in enumerate(objs):
        same_shape = sum(x["shape"] == ob["shape"] for x in objs)
        same_col = sum(x["color"] == ob["color"] for x in objs)
        f = [SHAPES.index(ob["shape"]), COLOR_NAMES.index(ob["color"]), ob["r"], ob["area"], ob["cy"], ob["cx"],
             len(objs), same_shape, same_col, int((cy < ob["cy"]).sum()), int((cy > ob["cy"]).sum()),
             int((area > ob["area"]).sum()), i,
             int(bool(mentioned) and mentioned[0] == i), int(len(mentioned) > 1 and mentioned[1] == i),
             int(ob["color"] in words), int(ob["shape"] in words or ob["shape"] + "s" in words),
             int(AFFORDANCE[ob["shape"]].split()[-1] in words)]
        f += [int(w in words) for w in ("higher", "lower", "count", "both", "same", "roll", "stacked", "point",
                                        "top", "1", "2", "3", *COLOR_NAMES, *SHAPES)]
        rows.append(f)
    return rows


def _xy(recs):
    X, y = [], []
    for rec in recs:
        tg = set(rec["targets"])
        for i in range(len(rec["scenes"])):
            rows = _features(rec, i)
            X += rows; y += [(i, k) in tg for k in range(len(rows))]
    return np.array(X, float), np.array(y)


def _oracle_accuracy(clf, recs):
    """Per item: does the oracle's set for the target image (objects with p > 0.5) equal the truth?"""
    hits = []
    for rec in recs:
        o = rec["o"]
        p = clf.predict_proba(np.array(_features(rec, o), float))[:, 1]
        pred = frozenset(np.flatnonzero(p > 0.5).tolist())
        hits.append(pred == frozenset(k for (i, k) in rec["targets"] if i == o))
    return np.array(hits, float)


def test_learned_per_image_oracle_is_at_chance_on_every_category():
    """The learned oracle need not be the best per-image reader (the twin test bounds every one); it
    looks for leaks the twin argument cannot see, such as a target that is bigger or better placed."""
    with threadpool_limits(limits=1):  # the classifier's OpenMP threads: one, on a shared machine
        _check_learned_oracle()


def _check_learned_oracle():
    cfg = Config(seed=11)
    train = _records(generate_items(cfg, 800, split="oracle-train"))
    test_items = generate_items(cfg, 480, split="oracle-test")
    test = _records(test_items)
    clf = HistGradientBoostingClassifier(max_iter=200, random_state=0).fit(*_xy(train))
    chance = per_image_chance(test_items)
    for c in CATEGORIES:
        sub = [r for r in test if r["category"] == c]
        acc = _oracle_accuracy(clf, sub)
        se = np.sqrt(chance[c] * (1 - chance[c]) / len(sub))
        assert acc.mean() <= chance[c] + 3 * se, (c, acc.mean(), chance[c])

    # positive control: the same oracle, on a template whose question can be answered image by image
    legacy_train = [_legacy_functional(cfg, i, 1) for i in range(400)]
    legacy_test = [r for r in (_legacy_functional(cfg, i, 2) for i in range(200)) if r["targets"]]
    clf2 = HistGradientBoostingClassifier(max_iter=200, random_state=0).fit(*_xy(legacy_train))
    assert _oracle_accuracy(clf2, legacy_test).mean() > 0.95
