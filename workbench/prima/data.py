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
an object are its mask), and questions whose answer exists only in the comparison of two images.
Each template names a *reference* image r and a *target* image o (random, distinct); it builds image
o first, then draws uniformly which of image o's objects the answer is (the hidden choice), then
builds image r to make that choice right, so image o read alone with the question says nothing
about the answer (a per-image reader is at chance, 1 / n_choices; ``per_image_chance``). Category
mapping (our choice, labelled):

- open-ended: "which object appears in both images?" (the (colour, shape) pair image r shares with
  image o; segment it in both; part-level variant: its top half);
- functional (toy affordances: circles roll, squares stack, triangles point): "the objects of image
  o that can do the same thing as the <colour> object of image r" (image o holds every shape);
- spatial: "every object of image o that sits higher (lower) than the <colour> <shape> of image r"
  (centre rows; how many objects of image o qualify is the choice);
- numerical: "count the <shape>s of image r; in image o segment the colour that occurs that many
  times" (image o has 2-3 colour groups of distinct sizes).

With more than two images the others are random scenes with no targets.
"""
from __future__ import annotations

import functools
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
COLOR_NAMES = tuple(COLORS)
PAIRS = tuple((s, c) for s in SHAPES for c in COLOR_NAMES)
"""every (shape, colour) an object can have"""
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
@functools.lru_cache(maxsize=8)
def _grid(size: int):
    yy, xx = np.mgrid[0:size, 0:size]
    yy.flags.writeable = False; xx.flags.writeable = False
    return yy, xx


def shape_mask(shape: str, cy: int, cx: int, r: int, size: int) -> np.ndarray:
    """Exact raster of a shape centred at (cy, cx) with half-extent ``r``: (size, size) bool."""
    yy, xx = _grid(size)
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


def _fill(rng, objs, size, n_target, forbid=lambda s, c: False, r_range=(2, 5)):
    """Best effort: add random distractors until ``n_target`` objects, skipping (shape, colour)
    pairs ``forbid`` rejects. Used only for images that hold no targets."""
    guard = 0
    while len(objs) < n_target and guard < 50:
        guard += 1
        s = SHAPES[rng.integers(len(SHAPES))]; c = COLOR_NAMES[rng.integers(len(COLOR_NAMES))]
        if forbid(s, c):
            continue
        _place(rng, objs, s, c, size, r_range=r_range)


def _place_all(rng, specs, size, r_range=(2, 5)):
    """Place every (shape, colour) of ``specs`` in a random order; the objects in ``specs`` order, or
    None if one does not fit. The random order makes size and position exchangeable between the
    objects of one image whatever their role (a target is not the one placed first, on the most room)."""
    objs = []
    order = rng.permutation(len(specs))
    placed = {}
    for i in order:
        if not _place(rng, objs, specs[i][0], specs[i][1], size, r_range=r_range):
            return None
        placed[int(i)] = objs[-1]
    return [placed[i] for i in range(len(specs))]


def _choose(rng, n: int, choice):
    """The hidden choice of a template: uniform over ``n`` options, drawn only after the target image
    exists; ``choice`` (for counterfactual twins) overrides it, the draw is still consumed."""
    v = int(rng.integers(n))
    if choice is None:
        return v
    if not 0 <= int(choice) < n:
        raise ValueError(f"choice must be in 0..{n - 1} for this item, got {choice}")
    return int(choice)


def _roles(rng, n_images: int):
    """(target image o, reference image r), uniform and distinct."""
    o = int(rng.integers(n_images))
    r = int((o + 1 + rng.integers(n_images - 1)) % n_images)
    return o, r


def _others(rng, cfg, scenes, skip):
    """Images other than the target and reference images (n_images > 2): random scenes, no targets."""
    for i in range(cfg.n_images):
        if i not in skip:
            objs = []
            _fill(rng, objs, cfg.image_size, int(rng.integers(cfg.min_objects, cfg.max_objects + 1)))
            scenes[i] = objs


def _ord(i: int) -> str:
    return str(i + 1)


def _join(parts) -> str:
    return " and ".join(parts) + " ."


# Every template below builds the *target image* o first, only then draws its hidden choice (which
# objects of image o are the answer) uniformly, and finally builds the reference image r so that
# this choice is the right one. The question never depends on the choice. So image o, seen alone
# with the question, is identical for every choice (``tests/test_prima_oracle.py`` builds these
# counterfactual twins), and no per-image reader can beat 1 / n_choices on it: the answer exists
# only in the comparison with image r.
def _shared(rng, cfg, choice=None):
    """open-ended: the one (colour, shape) that appears in both image r and image o."""
    size = cfg.image_size
    o, r = _roles(rng, cfg.n_images)
    part = bool(rng.random() < cfg.part_prob)
    k_o = int(rng.integers(max(2, cfg.min_objects), cfg.max_objects + 1))
    pick = rng.choice(len(PAIRS), size=k_o, replace=False)
    specs_o = [PAIRS[p] for p in pick]
    objs_o = _place_all(rng, specs_o, size)
    if objs_o is None:
        return None
    x = _choose(rng, k_o, choice)
    s, c = specs_o[x]
    rest = [p for p in PAIRS if p not in specs_o]
    k_r = int(rng.integers(max(2, cfg.min_objects), cfg.max_objects + 1))
    for _ in range(50):  # after the choice: retry until it fits (never rejects the item)
        pick_r = rng.choice(len(rest), size=k_r - 1, replace=False)
        objs_r = _place_all(rng, [(s, c)] + [rest[p] for p in pick_r], size)
        if objs_r is not None:
            break
    else:
        raise RuntimeError("could not place the reference image (image_size too small?)")
    scenes = [None] * cfg.n_images
    scenes[o], scenes[r] = objs_o, objs_r
    _others(rng, cfg, scenes, {o, r})
    a, b = sorted((o, r))
    where = "both images" if cfg.n_images == 2 else f"both image {_ord(a)} and image {_ord(b)}"
    if part:
        q = f"Which object appears in {where}? Segment its top half in each of them."
        parts = [f"in image {_ord(i)} the top half of the {c} {s} {SEG}" for i in (a, b)]
        label, level = f"top half {c} {s}", "part"
    else:
        q = f"Which object appears in {where}? Segment it in each of them."
        parts = [f"in image {_ord(i)} the {c} {s} {SEG}" for i in (a, b)]
        label, level = f"{c} {s}", "object"
    targets = [(i, x if i == o else 0, level, label) for i in (a, b)]
    return "open-ended", q, _join(parts), scenes, targets, {"o": o, "r": r, "choice": x, "n_choices": k_o}


def _same_use(rng, cfg, choice=None):
    """functional (toy affordances: circles roll, squares stack, triangles point): the objects of
    image o that can do what the <colour> object of image r does, i.e. share its shape."""
    size = cfg.image_size
    o, r = _roles(rng, cfg.n_images)
    c = COLOR_NAMES[rng.integers(len(COLOR_NAMES))]
    # image o holds every shape at least once, so it says nothing about the reference's shape
    k_o = max(len(SHAPES), int(rng.integers(cfg.min_objects, cfg.max_objects + 1)))
    shapes = list(SHAPES) + [SHAPES[rng.integers(len(SHAPES))] for _ in range(k_o - len(SHAPES))]
    specs_o = [(sh, COLOR_NAMES[rng.integers(len(COLOR_NAMES))]) for sh in shapes]
    objs_o = _place_all(rng, specs_o, size, r_range=(2, 4))
    if objs_o is None:
        return None
    x = _choose(rng, len(SHAPES), choice)
    s = SHAPES[x]
    objs_r = []
    _place(rng, objs_r, s, c, size, r_range=(2, 4))
    _fill(rng, objs_r, size, int(rng.integers(cfg.min_objects, cfg.max_objects + 1)),
          lambda s2, c2: c2 == c, r_range=(2, 4))  # the only <colour> object of image r
    scenes = [None] * cfg.n_images
    scenes[o], scenes[r] = objs_o, objs_r
    _others(rng, cfg, scenes, {o, r})
    q = f"Segment the objects in image {_ord(o)} that can do the same thing as the {c} object in image {_ord(r)}."
    ks = [k for k, ob in enumerate(objs_o) if ob["shape"] == s]
    ans = f"the {c} {s} can {AFFORDANCE[s]} : " + _join(
        [f"in image {_ord(o)} the {objs_o[k]['color']} {s} {SEG}" for k in ks])
    targets = [(o, k, "object", f"{objs_o[k]['color']} {s}") for k in ks]
    return "functional", q, ans, scenes, targets, {"o": o, "r": r, "choice": x, "n_choices": len(SHAPES)}


SPATIAL_GAP = 2
"""pixels between the reference's centre row and the nearest centre row of image o (spatial)"""


def _beyond(rng, cfg, choice=None):
    """spatial: every object of image o whose centre sits higher (or lower) than the centre of the
    named reference object of image r; the number of such objects is the hidden choice (1..k)."""
    size, g, rr = cfg.image_size, SPATIAL_GAP, 2
    o, r = _roles(rng, cfg.n_images)
    up = bool(rng.random() < 0.5)
    s_ref = SHAPES[rng.integers(len(SHAPES))]; c_ref = COLOR_NAMES[rng.integers(len(COLOR_NAMES))]
    k_o = max(3, int(rng.integers(cfg.min_objects, cfg.max_objects + 1)))
    specs_o = [PAIRS[rng.integers(len(PAIRS))] for _ in range(k_o)]
    objs_o = None
    for _ in range(30):  # image o alone must admit every choice: distinct rows, room at both ends
        objs_o = _place_all(rng, specs_o, size, r_range=(2, 4))
        if objs_o is None:
            continue
        rows = np.sort([ob["cy"] for ob in objs_o])
        if (np.diff(rows) >= 2 * g).all() and rows[0] - g >= rr and rows[-1] + g <= size - 1 - rr:
            break
        objs_o = None
    if objs_o is None:
        return None
    x = _choose(rng, k_o, choice)
    j = x + 1  # number of targets
    order = sorted(range(k_o), key=lambda k: objs_o[k]["cy"])  # top first
    if not up:
        order = order[::-1]
    ks = order[:j]
    lo_row = objs_o[order[j - 1]]["cy"]  # the last target and the first non-target
    if up:
        lo, hi = lo_row + g, (objs_o[order[j]]["cy"] - g if j < k_o else size - 1 - rr)
    else:
        lo, hi = (objs_o[order[j]]["cy"] + g if j < k_o else rr), lo_row - g
    y_ref = int(rng.integers(lo, hi + 1))
    cx = int(rng.integers(rr, size - rr))
    m = shape_mask(s_ref, y_ref, cx, rr, size)
    objs_r = [{"shape": s_ref, "color": c_ref, "cy": y_ref, "cx": cx, "r": rr, "mask": m, "area": int(m.sum())}]
    _fill(rng, objs_r, size, int(rng.integers(cfg.min_objects, cfg.max_objects + 1)),
          lambda s2, c2: (s2, c2) == (s_ref, c_ref), r_range=(2, 4))
    scenes = [None] * cfg.n_images
    scenes[o], scenes[r] = objs_o, objs_r
    _others(rng, cfg, scenes, {o, r})
    word = "higher" if up else "lower"
    q = f"Segment every object in image {_ord(o)} that sits {word} than the {c_ref} {s_ref} in image {_ord(r)}."
    ks = sorted(ks, key=lambda k: objs_o[k]["cy"])  # answer lists them top to bottom
    ans = _join([f"in image {_ord(o)} the {objs_o[k]['color']} {objs_o[k]['shape']} {SEG}" for k in ks])
    targets = [(o, k, "object", f"{objs_o[k]['color']} {objs_o[k]['shape']}") for k in ks]
    return "spatial", q, ans, scenes, targets, {"o": o, "r": r, "choice": x, "n_choices": k_o}


def _as_many(rng, cfg, choice=None):
    """numerical: count the <shape>s of image r; segment the objects of image o whose colour occurs
    that many times there. Image o has 2-3 colour groups of distinct sizes; the group is the choice."""
    size = cfg.image_size
    o, r = _roles(rng, cfg.n_images)
    s = SHAPES[rng.integers(len(SHAPES))]
    n_groups = int(rng.integers(2, 4))
    sizes = [int(v) for v in rng.choice([1, 2, 3], size=n_groups, replace=False)]
    cols = [COLOR_NAMES[int(v)] for v in rng.choice(len(COLOR_NAMES), size=n_groups, replace=False)]
    specs_o = [(SHAPES[rng.integers(len(SHAPES))], cols[gi]) for gi in range(n_groups) for _ in range(sizes[gi])]
    objs_o = _place_all(rng, specs_o, size, r_range=(2, 3))
    if objs_o is None:
        return None
    x = _choose(rng, n_groups, choice)
    n, tc = sizes[x], cols[x]
    for _ in range(50):
        objs_r = _place_all(rng, [(s, COLOR_NAMES[rng.integers(len(COLOR_NAMES))]) for _ in range(n)], size,
                            r_range=(2, 3))
        if objs_r is not None:
            break
    else:
        raise RuntimeError("could not place the reference image (image_size too small?)")
    _fill(rng, objs_r, size, n + int(rng.integers(0, 3)), lambda s2, c2: s2 == s, r_range=(2, 3))
    scenes = [None] * cfg.n_images
    scenes[o], scenes[r] = objs_o, objs_r
    _others(rng, cfg, scenes, {o, r})
    q = (f"Count the {s}s in image {_ord(r)}. In image {_ord(o)}, segment every object of the colour "
         f"that occurs that many times.")
    ks = [k for k, ob in enumerate(objs_o) if ob["color"] == tc]
    ans = f"image {_ord(r)} has {n} {s}{'s' if n != 1 else ''} : " + _join(
        [f"in image {_ord(o)} the {tc} {objs_o[k]['shape']} {SEG}" for k in ks])
    targets = [(o, k, "object", f"{tc} {objs_o[k]['shape']}") for k in ks]
    return "numerical", q, ans, scenes, targets, {"o": o, "r": r, "choice": x, "n_choices": n_groups}


TEMPLATES = {"open-ended": [_shared], "numerical": [_as_many], "spatial": [_beyond], "functional": [_same_use]}


def generate_item(cfg, idx: int, *, split: str = "train", seed: int | None = None, category: str | None = None,
                  choice: int | None = None) -> M4SegItem:
    """Item ``idx`` of a split (category cycled if not given). ``choice`` forces the template's hidden
    choice (``meta["choice"]`` of ``meta["n_choices"]``): same target image and question, other answer."""
    seed = cfg.seed if seed is None else seed
    cat = CATEGORIES[idx % len(CATEGORIES)] if category is None else category
    if cat not in CATEGORIES:
        raise ValueError(f"unknown category {cat!r}; expected one of {CATEGORIES}")
    rng = make_rng(seed, "prima-item", split, idx)
    for _attempt in range(100):
        fn = TEMPLATES[cat][int(rng.integers(len(TEMPLATES[cat])))]
        out = fn(rng, cfg, choice)
        if out is not None:
            break
    else:
        raise RuntimeError(f"generator could not build a {cat} item (image_size too small?)")
    category, q, ans, scenes, targets, info = out
    # each image's pixel noise has its own stream, so an image is the same whatever the choice
    images = [render(objs, cfg.image_size, make_rng(seed, "prima-pixels", split, idx, i), cfg.noise_std)
              for i, objs in enumerate(scenes)]
    objects = []
    for (img, k, level, label) in targets:
        ob = scenes[img][k]
        m = ob["mask"].copy()
        if level == "part":
            m &= np.arange(cfg.image_size)[:, None] <= ob["cy"]  # top half: rows down to the centre row
        objects.append(SegObject(image=img, mask=m, label=label, level=level))
    meta = {"template": fn.__name__.lstrip("_"),
            "scenes": [[{k: v for k, v in ob.items() if k != "mask"} for ob in objs] for objs in scenes],
            "targets": [(t[0], t[1]) for t in targets],
            "target_image": info["o"], "reference_image": info["r"],
            "choice": info["choice"], "n_choices": info["n_choices"]}
    item = M4SegItem(id=f"{split}{idx:05d}", question=q, images=images, answer=ans, objects=objects,
                     category=category, meta=meta)
    validate_item(item)
    return item


def generate_items(cfg, n: int, *, split: str = "train", seed: int | None = None,
                   categories=CATEGORIES) -> list[M4SegItem]:
    """``n`` seeded items, categories cycled evenly; each item validated. Same seed -> same items."""
    categories = tuple(categories)
    bad = [c for c in categories if c not in CATEGORIES]
    if bad:
        raise ValueError(f"unknown categories {bad}")
    return [generate_item(cfg, idx, split=split, seed=seed, category=categories[idx % len(categories)])
            for idx in range(n)]


def per_image_chance(items) -> dict:
    """Exact-answer accuracy of the best per-image reader (one that sees each image alone with the
    question), per category and overall: the mean of 1 / n_choices, since the target image is the same
    for every choice and the choice is uniform."""
    rows: dict[str, list[float]] = {}
    for it in items:
        p = 1.0 / it.meta["n_choices"]
        rows.setdefault(it.category, []).append(p); rows.setdefault("overall", []).append(p)
    return {c: float(np.mean(v)) for c, v in rows.items()}

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
