"""M4Seg-format data: schema, loader with validation, and an offline generator with exact masks.

Schema (one item = one multi-image question; M4Seg, Wahed et al. arXiv 2412.15209):
``question`` (text), ``images`` (a set of >= 2 RGB images), ``answer`` (text with exactly one
``[SEG]`` token per referred object, in order), ``objects`` (one per ``[SEG]``: the image it lies in,
a binary mask of that image's size, a short label phrase and a level, ``object`` or ``part``) and
``category`` (``functional``, ``spatial``, ``numerical`` or ``open-ended``).

On disk: a folder with ``items.jsonl`` (one JSON object per line) and the image files it names
(PNG, relative paths). Masks are stored as uncompressed row-major run-length counts starting with a
run of zeros: ``{"size": [H, W], "counts": [z0, o0, z1, ...]}``.

The generator is a reconstruction (M4Seg itself is not public): scenes of coloured shapes, each
object's mask rasterised exactly (objects never touch, so masks are exact and the rendered pixels of
an object are its mask), and questions that need comparing images. Category mapping (our choice,
labelled): open-ended = "which object appears in every image"; numerical = "which image has more
circles" and "the larger of the red objects" (part-level variant: its top half); spatial = "which
square sits higher"; functional = toy affordances (circles roll, squares stack, triangles point).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workbench.seeding import make_rng

SEG = "[SEG]"
CATEGORIES = ("functional", "spatial", "numerical", "open-ended")
LEVELS = ("object", "part")
COLORS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (50, 80, 230), "yellow": (230, 210, 40)}
SHAPES = ("circle", "square", "triangle")
AFFORDANCE = {"circle": "roll", "square": "be stacked", "triangle": "point"}
BACKGROUND = (60, 60, 60)


class M4SegValidationError(ValueError):
    """An item breaks the M4Seg schema (message names the item and the problem)."""


@dataclass
class SegObject:
    """One referred object: ``mask`` (H, W) bool lies in image ``image``; ``label`` is its phrase."""
    image: int
    mask: np.ndarray
    label: str
    level: str = "object"


@dataclass
class M4SegItem:
    """One question over a set of images; ``objects[i]`` belongs to the i-th ``[SEG]`` in ``answer``."""
    id: str
    question: str
    images: list  # list of (H, W, 3) uint8 arrays
    answer: str
    objects: list  # list[SegObject]
    category: str
    meta: dict = field(default_factory=dict)

    @property
    def n_images(self) -> int:
        return len(self.images)

    def set_mask(self, k: int) -> np.ndarray:
        """Object ``k`` as a mask over the whole image set: (n_images, H, W) bool, empty elsewhere."""
        obj = self.objects[k]
        h, w = self.images[0].shape[:2]
        out = np.zeros((self.n_images, h, w), dtype=bool)
        out[obj.image] = obj.mask
        return out

    def set_masks(self) -> np.ndarray:
        """All objects: (n_objects, n_images, H, W) bool."""
        h, w = self.images[0].shape[:2]
        if not self.objects:
            return np.zeros((0, self.n_images, h, w), dtype=bool)
        return np.stack([self.set_mask(k) for k in range(len(self.objects))])


def validate_item(item: M4SegItem) -> None:
    """Raise :class:`M4SegValidationError` naming the first problem found in ``item``."""
    p = f"item {item.id!r}:"
    if not isinstance(item.question, str) or not item.question.strip():
        raise M4SegValidationError(f"{p} empty question")
    if item.category not in CATEGORIES:
        raise M4SegValidationError(f"{p} unknown category {item.category!r}; expected one of {CATEGORIES}")
    if len(item.images) < 1:
        raise M4SegValidationError(f"{p} no images")
    shapes = set()
    for i, im in enumerate(item.images):
        im = np.asarray(im)
        if im.ndim != 3 or im.shape[2] != 3:
            raise M4SegValidationError(f"{p} image {i} has shape {im.shape}, expected (H, W, 3)")
        shapes.add(im.shape[:2])
    if len(shapes) != 1:
        raise M4SegValidationError(f"{p} images differ in size: {sorted(shapes)}")
    n_seg = item.answer.count(SEG)
    if n_seg != len(item.objects):
        raise M4SegValidationError(f"{p} answer has {n_seg} {SEG} tokens but {len(item.objects)} objects")
    for k, obj in enumerate(item.objects):
        if not 0 <= obj.image < len(item.images):
            raise M4SegValidationError(f"{p} object {k} refers to image {obj.image}, item has {len(item.images)}")
        im_hw = np.asarray(item.images[obj.image]).shape[:2]
        if np.asarray(obj.mask).shape != im_hw:
            raise M4SegValidationError(
                f"{p} object {k} mask size {np.asarray(obj.mask).shape} != image {obj.image} size {im_hw}")
        if obj.level not in LEVELS:
            raise M4SegValidationError(f"{p} object {k} has level {obj.level!r}; expected one of {LEVELS}")


# ---------------------------------------------------------------------------------------------
# run-length codes and files
def mask_to_rle(mask: np.ndarray) -> dict:
    """Row-major run lengths starting with zeros.

    >>> mask_to_rle(np.array([[0, 1, 1], [1, 0, 0]], bool))
    {'size': [2, 3], 'counts': [1, 3, 2]}
    """
    flat = np.asarray(mask, dtype=bool).ravel()
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    return {"size": list(np.asarray(mask).shape), "counts": [int(c) for c in counts]}


def rle_to_mask(rle: dict) -> np.ndarray:
    """Inverse of :func:`mask_to_rle`; raises ValueError if counts do not fill the size."""
    h, w = (int(v) for v in rle["size"])
    counts = np.asarray(rle["counts"], dtype=np.int64)
    if counts.sum() != h * w or (counts < 0).any():
        raise ValueError(f"RLE counts sum to {counts.sum()}, size {h}x{w} needs {h * w}")
    vals = np.arange(len(counts)) % 2 == 1
    return np.repeat(vals, counts).reshape(h, w)


def save_m4seg(items: list[M4SegItem], folder: str | Path) -> Path:
    """Write ``items`` in the on-disk schema; returns the path of ``items.jsonl``."""
    from PIL import Image

    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for it in items:
        validate_item(it)
        names = []
        for i, im in enumerate(it.images):
            name = f"images/{it.id}_{i}.png"
            Image.fromarray(np.asarray(im, dtype=np.uint8)).save(folder / name)
            names.append(name)
        lines.append(json.dumps({
            "id": it.id, "question": it.question, "images": names, "answer": it.answer,
            "category": it.category,
            "objects": [{"image": o.image, "label": o.label, "level": o.level, "mask": mask_to_rle(o.mask)}
                        for o in it.objects]}))
    path = folder / "items.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def load_m4seg(path: str | Path, *, strict: bool = True):
    """Read an M4Seg-format folder (or its ``items.jsonl``).

    ``strict=True`` raises :class:`M4SegValidationError` on the first bad item (missing image file,
    mask size mismatch, [SEG]/object count mismatch, unknown category...). ``strict=False`` returns
    ``(items, errors)``: the valid items and one message per rejected item, so nothing is dropped
    silently.
    """
    from PIL import Image

    path = Path(path)
    jsonl = path / "items.jsonl" if path.is_dir() else path
    if not jsonl.exists():
        raise FileNotFoundError(f"no items.jsonl at {jsonl}")
    root = jsonl.parent
    items, errors = [], []
    for ln, line in enumerate(jsonl.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise M4SegValidationError(f"line {ln}: not JSON ({e})") from None
            missing = [k for k in ("id", "question", "images", "answer", "objects", "category") if k not in rec]
            if missing:
                raise M4SegValidationError(f"line {ln}: missing fields {missing}")
            images = []
            for name in rec["images"]:
                f = root / name
                if not f.exists():
                    raise M4SegValidationError(f"item {rec['id']!r}: missing image file {name}")
                images.append(np.asarray(Image.open(f).convert("RGB")))
            objs = []
            for k, o in enumerate(rec["objects"]):
                try:
                    m = rle_to_mask(o["mask"])
                except (KeyError, ValueError, TypeError) as e:
                    raise M4SegValidationError(f"item {rec['id']!r}: object {k} mask unreadable ({e})") from None
                objs.append(SegObject(image=int(o["image"]), mask=m, label=str(o.get("label", "")),
                                      level=o.get("level", "object")))
            item = M4SegItem(id=str(rec["id"]), question=rec["question"], images=images, answer=rec["answer"],
                             objects=objs, category=rec["category"])
            validate_item(item)
            items.append(item)
        except M4SegValidationError as e:
            if strict:
                raise
            errors.append(str(e))
    return items if strict else (items, errors)


# ---------------------------------------------------------------------------------------------
# generator
def shape_mask(shape: str, cy: int, cx: int, r: int, size: int) -> np.ndarray:
    """Exact raster of a shape centred at (cy, cx) with half-extent ``r``: (size, size) bool."""
    yy, xx = np.mgrid[0:size, 0:size]
    if shape == "circle":
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    if shape == "square":
        return (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r)
    if shape == "triangle":  # apex up: half-width grows by 1/2 pixel per row, base width 2r
        return (yy >= cy - r) & (yy <= cy + r) & (2 * np.abs(xx - cx) <= yy - (cy - r))
    raise ValueError(f"unknown shape {shape!r}")


def _place(rng, objs: list[dict], shape: str, color: str, size: int, r_range=(2, 6), tries=200):
    """Add one non-touching object to ``objs`` (dicts with shape/color/cy/cx/r/mask); False if no room."""
    taken = np.zeros((size, size), bool)
    for o in objs:
        taken |= o["mask"]
    # one-pixel dilation keeps objects apart, so every mask is exactly its object's pixels
    dil = taken.copy()
    dil[1:] |= taken[:-1]; dil[:-1] |= taken[1:]; dil[:, 1:] |= taken[:, :-1]; dil[:, :-1] |= taken[:, 1:]
    for _ in range(tries):
        r = int(rng.integers(r_range[0], r_range[1] + 1))
        cy = int(rng.integers(r, size - r)); cx = int(rng.integers(r, size - r))
        m = shape_mask(shape, cy, cx, r, size)
        if not (m & dil).any() and m.sum() >= 3:
            objs.append({"shape": shape, "color": color, "cy": cy, "cx": cx, "r": r, "mask": m,
                         "area": int(m.sum())})
            return True
    return False


def render(objs: list[dict], size: int, rng, noise_std: float) -> np.ndarray:
    """(size, size, 3) uint8 image of the objects on a flat background plus Gaussian noise."""
    im = np.empty((size, size, 3), np.float64)
    im[:] = BACKGROUND
    for o in objs:
        im[o["mask"]] = COLORS[o["color"]]
    if noise_std > 0:
        im += rng.normal(0.0, noise_std, im.shape)
    return np.clip(np.rint(im), 0, 255).astype(np.uint8)


def _fill(rng, objs, size, n_target, forbid=lambda s, c: False):
    """Add random distractors until ``n_target`` objects, skipping (shape, colour) pairs ``forbid`` rejects."""
    guard = 0
    while len(objs) < n_target and guard < 50:
        guard += 1
        s = SHAPES[rng.integers(len(SHAPES))]; c = list(COLORS)[rng.integers(len(COLORS))]
        if forbid(s, c):
            continue
        _place(rng, objs, s, c, size)


def _ord(i: int) -> str:
    return str(i + 1)


def _common(rng, cfg):
    """open-ended: the (colour, shape) present in every image, once per image."""
    s = SHAPES[rng.integers(3)]; c = list(COLORS)[rng.integers(4)]
    scenes = []
    for _ in range(cfg.n_images):
        objs = []
        if not _place(rng, objs, s, c, cfg.image_size):
            return None
        scenes.append(objs)
    # distractors: no other (shape, colour) may appear in every image; forbid any pair already used
    # in another image so the common pair is unique.
    used = [set() for _ in scenes]
    for i, objs in enumerate(scenes):
        n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
        others = set().union(*[used[j] for j in range(len(scenes)) if j != i])
        _fill(rng, objs, cfg.image_size, n, lambda s2, c2: (s2, c2) == (s, c) or (s2, c2) in others)
        used[i] = {(o["shape"], o["color"]) for o in objs[1:]}
    q = (f"Look at all {cfg.n_images} images. Which object appears in every image? Segment it in each image.")
    parts, targets = [], []
    for i in range(cfg.n_images):
        parts.append(f"in image {_ord(i)} the {c} {s} {SEG}")
        targets.append((i, 0, "object", f"{c} {s}"))
    return "open-ended", q, " and ".join(parts) + " .", scenes, targets


def _count(rng, cfg):
    """numerical: the image with the most circles; segment all its circles."""
    size = cfg.image_size
    counts = rng.integers(0, 4, size=cfg.n_images)  # circles per image, 0..3
    if counts.max() == 0 or (counts == counts.max()).sum() > 1:
        return None  # the winner must be unique; redraw
    scenes = []
    for i in range(cfg.n_images):
        objs = []
        for _ in range(int(counts[i])):
            if not _place(rng, objs, "circle", list(COLORS)[rng.integers(4)], size, r_range=(2, 4)):
                return None
        n = max(int(rng.integers(cfg.min_objects, cfg.max_objects + 1)), len(objs))
        _fill(rng, objs, size, n, lambda s2, c2: s2 == "circle")
        scenes.append(objs)
    win = int(np.argmax(counts))
    q = "Which image contains the most circles? Segment every circle in that image."
    circ = [k for k, o in enumerate(scenes[win]) if o["shape"] == "circle"]
    parts = [f"the {scenes[win][k]['color']} circle {SEG}" for k in circ]
    ans = f"image {_ord(win)} has the most circles : " + " , ".join(parts) + " ."
    targets = [(win, k, "object", f"{scenes[win][k]['color']} circle") for k in circ]
    return "numerical", q, ans, scenes, targets


def _larger(rng, cfg):
    """numerical: the larger of the red objects (one per image); part variant: its top half."""
    size = cfg.image_size
    c = list(COLORS)[rng.integers(4)]
    scenes, areas = [], []
    for i in range(cfg.n_images):
        objs = []
        if not _place(rng, objs, SHAPES[rng.integers(3)], c, size, r_range=(2, 7)):
            return None
        scenes.append(objs); areas.append(objs[0]["area"])
    areas = np.array(areas)
    win = int(np.argmax(areas))
    if (np.sort(areas)[-1] < 1.3 * np.sort(areas)[-2]):
        return None  # too close to call by eye; redraw
    for objs in scenes:
        n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
        _fill(rng, objs, size, n, lambda s2, c2: c2 == c)
    o = scenes[win][0]
    part = rng.random() < cfg.part_prob
    which = "largest" if cfg.n_images > 2 else "larger"
    if part:
        q = f"Each image has one {c} object. Segment the top half of the {which} one."
        ans = f"in image {_ord(win)} the top half of the {c} {o['shape']} {SEG} ."
        targets = [(win, 0, "part", f"top half {c} {o['shape']}")]
    else:
        q = f"Each image has one {c} object. Segment the {which} one."
        ans = f"in image {_ord(win)} the {c} {o['shape']} {SEG} ."
        targets = [(win, 0, "object", f"{c} {o['shape']}")]
    return "numerical", q, ans, scenes, targets


def _higher(rng, cfg):
    """spatial: one square per image; segment the one that sits highest in its image."""
    size = cfg.image_size
    scenes, tops = [], []
    for i in range(cfg.n_images):
        objs = []
        if not _place(rng, objs, "square", list(COLORS)[rng.integers(4)], size, r_range=(2, 4)):
            return None
        scenes.append(objs); tops.append(objs[0]["cy"])
    tops = np.array(tops)
    if np.sort(tops)[1] - np.sort(tops)[0] < 4:
        return None  # ambiguous
    for objs in scenes:
        n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
        _fill(rng, objs, size, n, lambda s2, c2: s2 == "square")
    win = int(np.argmin(tops))
    o = scenes[win][0]
    q = "Each image has one square. Segment the square that sits highest in its image."
    ans = f"in image {_ord(win)} the {o['color']} square {SEG} ."
    return "spatial", q, ans, scenes, [(win, 0, "object", f"{o['color']} square")]


def _functional(rng, cfg):
    """functional (toy affordances): every object across the images that can <verb>."""
    size = cfg.image_size
    s = SHAPES[rng.integers(3)]
    verb = AFFORDANCE[s]
    scenes = []
    total = 0
    for i in range(cfg.n_images):
        objs = []
        k = int(rng.integers(0, 2))
        for _ in range(k):
            if not _place(rng, objs, s, list(COLORS)[rng.integers(4)], size, r_range=(2, 4)):
                return None
        total += k
        n = max(int(rng.integers(cfg.min_objects, cfg.max_objects + 1)), len(objs))
        _fill(rng, objs, size, n, lambda s2, c2: s2 == s)
        scenes.append(objs)
    if total == 0:
        return None
    q = f"Across all images, segment every object that can {verb}."
    parts, targets = [], []
    for i, objs in enumerate(scenes):
        for k, o in enumerate(objs):
            if o["shape"] == s:
                parts.append(f"in image {_ord(i)} the {o['color']} {s} {SEG}")
                targets.append((i, k, "object", f"{o['color']} {s}"))
    return "functional", q, " and ".join(parts) + " .", scenes, targets


TEMPLATES = {"open-ended": [_common], "numerical": [_count, _larger], "spatial": [_higher],
             "functional": [_functional]}


def generate_items(cfg, n: int, *, split: str = "train", seed: int | None = None,
                   categories=CATEGORIES) -> list[M4SegItem]:
    """``n`` seeded items, categories cycled evenly; each item validated. Same seed -> same items."""
    seed = cfg.seed if seed is None else seed
    bad = [c for c in categories if c not in CATEGORIES]
    if bad:
        raise ValueError(f"unknown categories {bad}")
    items = []
    for idx in range(n):
        cat = categories[idx % len(categories)]
        rng = make_rng(seed, "prima-item", split, idx)
        for _attempt in range(100):
            fn = TEMPLATES[cat][int(rng.integers(len(TEMPLATES[cat])))]
            out = fn(rng, cfg)
            if out is not None:
                break
        else:
            raise RuntimeError(f"generator could not build a {cat} item (image_size too small?)")
        category, q, ans, scenes, targets = out
        images = [render(objs, cfg.image_size, rng, cfg.noise_std) for objs in scenes]
        objects = []
        for (img, k, level, label) in targets:
            o = scenes[img][k]
            m = o["mask"].copy()
            if level == "part":
                m &= np.arange(cfg.image_size)[:, None] <= o["cy"]  # top half: rows down to the centre row
            objects.append(SegObject(image=img, mask=m, label=label, level=level))
        meta = {"template": fn.__name__.lstrip("_"),
                "scenes": [[{k: v for k, v in o.items() if k != "mask"} for o in objs] for objs in scenes],
                "targets": [(t[0], t[1]) for t in targets]}
        item = M4SegItem(id=f"{split}{idx:05d}", question=q, images=images, answer=ans, objects=objects,
                         category=category, meta=meta)
        validate_item(item)
        items.append(item)
    return items


# ---------------------------------------------------------------------------------------------
# text: a word-level tokenizer over the generator's closed vocabulary
TOKEN_RE = re.compile(r"\[SEG\]|[A-Za-z]+|\d+|[^\sA-Za-z\d]")
SPECIALS = ("[PAD]", "[BOS]", "[SEP]", "[EOS]", SEG)
STOP_WORDS = {"the", "a", "an", "of", "in", "image", "and", "has", "most", "circles"}


def tokenize(text: str) -> list[str]:
    """Lower-cased words, numbers, punctuation and [SEG].

    >>> tokenize("In image 1 the red circle [SEG] .")
    ['in', 'image', '1', 'the', 'red', 'circle', '[SEG]', '.']
    """
    return [t if t == SEG else t.lower() for t in TOKEN_RE.findall(text)]


class Vocab:
    """Word <-> id over a fixed list of words (raises KeyError naming unknown words)."""

    def __init__(self, words):
        words = [w for w in words if w not in SPECIALS]
        self.itos = list(SPECIALS) + sorted(set(words))
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.pad, self.bos, self.sep, self.eos, self.seg = (self.stoi[s] for s in SPECIALS)

    def __len__(self):
        return len(self.itos)

    @classmethod
    def from_items(cls, items) -> "Vocab":
        words = set()
        for it in items:
            words.update(tokenize(it.question)); words.update(tokenize(it.answer))
        return cls(words)

    def encode(self, text: str) -> list[int]:
        toks = tokenize(text)
        unknown = sorted({t for t in toks if t not in self.stoi})
        if unknown:
            raise KeyError(f"words outside the vocabulary: {unknown}")
        return [self.stoi[t] for t in toks]

    def decode(self, ids) -> str:
        return " ".join(self.itos[int(i)] for i in ids)


def seg_phrases(answer: str) -> list[str]:
    """The phrase naming each [SEG]: words since the previous boundary, stop words dropped.

    >>> seg_phrases("in image 1 the red circle [SEG] and in image 2 the top half of the blue square [SEG] .")
    ['red circle', 'top half blue square']
    """
    out, cur = [], []
    for t in tokenize(answer):
        if t == SEG:
            out.append(" ".join(w for w in cur if w not in STOP_WORDS and not w.isdigit()))
            cur = []
        elif t in {",", ".", ":", "and"}:
            cur = []
        else:
            cur.append(t)
    return out
