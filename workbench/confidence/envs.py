"""Environments behind one interface: Crafter (offline default) and a MineDojo adapter.

Both return :class:`Observation`: the RGB frame, a grid of named cells around the player (the ground
truth that perception questions are graded against), inventory, achievements and the player's facing.

- :class:`CrafterEnv` wraps ``crafter.Env`` (seeded, offline). The visible area is Crafter's local view,
  9 columns x 7 rows centred on the player; cell names come from the semantic map
  (``info["semantic"]``, ids = Crafter's material ids then Player, Cow, Zombie, Skeleton, Arrow, Plant).
- :class:`MineDojoEnv` wraps ``minedojo.make`` and converts MineDojo's observation dict
  (``rgb`` (3, H, W), ``inventory`` {name, quantity}, ``voxels`` {block_name (X, Y, Z)},
  ``location_stats`` {pos, yaw, pitch}) through :func:`observation_from_minedojo`, which is tested on a
  hand-made dict. MineDojo needs the ``minedojo`` package (pip<24.1 + gym==0.21.0), Java 8, xvfb and
  internet on the first reset; :func:`minedojo_missing` lists what this machine lacks and
  :class:`MineDojoUnavailable` says so. The horizontal slice of the voxel cube at the player's feet
  level + 1 is used as the "visible grid" (reconstruction: the paper's perception ground truth is
  not public).

Frames for vision backends (``prompt_frame``): Crafter re-renders the current view at the asked size
with its own renderer (``CrafterEnv.render``: sharper than upscaling the 64 px frame); an environment
without such a renderer (MineDojo, whose ``rgb`` has the size fixed at ``make``) has its observation
frame resized (nearest neighbour, longest side, aspect kept).
"""
from __future__ import annotations

import base64
import copy
import io
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

__all__ = ["Observation", "EmbodiedEnv", "CrafterEnv", "MineDojoEnv", "MineDojoUnavailable",
           "observation_from_minedojo", "minedojo_missing", "make_env", "frame_png_b64", "resize_frame", "prompt_frame",
           "CRAFTER_NAMES"]

# Crafter semantic ids: materials (constants order) then object classes in SemanticView order
CRAFTER_NAMES = ["none", "water", "grass", "stone", "path", "sand", "tree", "lava", "coal", "iron",
                 "diamond", "table", "furnace", "player", "cow", "zombie", "skeleton", "arrow", "plant"]
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


@dataclass
class Observation:
    """What the agent gets each step.

    ``grid[x][y]`` holds cell names, shape (W, H) with the player at ``center`` (x right, y down).
    """

    frame: np.ndarray  # (H, W, 3) uint8
    grid: list[list[str]]  # (W, H) names
    center: tuple[int, int]
    inventory: dict[str, int]
    achievements: dict[str, int]
    facing: tuple[int, int] = (0, 1)
    extra: dict = field(default_factory=dict)

    def cells(self) -> list[tuple[str, int, int]]:
        """All visible cells as (name, dx, dy) relative to the player (player cell excluded)."""
        cx, cy = self.center
        out = []
        for x, col in enumerate(self.grid):
            for y, name in enumerate(col):
                if (x, y) != (cx, cy):
                    out.append((name, x - cx, y - cy))
        return out

    def facing_cell(self) -> str:
        cx, cy = self.center
        x, y = cx + self.facing[0], cy + self.facing[1]
        if 0 <= x < len(self.grid) and 0 <= y < len(self.grid[0]):
            return self.grid[x][y]
        return "none"


class EmbodiedEnv(Protocol):
    """One interface for every backend: primitive actions by name."""

    action_names: list[str]

    def reset(self) -> Observation: ...

    def step(self, action: str) -> tuple[Observation, bool]: ...


def frame_png_b64(frame: np.ndarray, scale: int = 2) -> str:
    """A frame (H, W, 3) uint8 as a base64 PNG (nearest-neighbour upscaled by ``scale``)."""
    from PIL import Image

    img = Image.fromarray(np.asarray(frame, dtype=np.uint8))
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode()


def resize_frame(frame: np.ndarray, size: int) -> np.ndarray:
    """A frame (H, W, 3) uint8 resized so that its longest side is ``size`` (nearest neighbour, aspect
    kept; ``size=0`` returns it unchanged).

    >>> resize_frame(np.zeros((16, 24, 3), np.uint8), 48).shape
    (32, 48, 3)
    """
    frame = np.asarray(frame, dtype=np.uint8)
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    h, w = frame.shape[:2]
    if size == 0 or max(h, w) == size:
        return frame
    from PIL import Image

    f = size / max(h, w)
    nh, nw = max(1, round(h * f)), max(1, round(w * f))
    return np.asarray(Image.fromarray(frame).resize((nw, nh), Image.NEAREST))


def prompt_frame(env, obs: Observation, size: int) -> np.ndarray:
    """The frame a vision backend sees, (H, W, 3) uint8: the environment's own render at ``size`` where it
    has one (``env.render(size)``, Crafter), else the observation's frame resized (MineDojo's rgb)."""
    if size == 0:
        return np.asarray(obs.frame, dtype=np.uint8)
    render = getattr(env, "render", None)
    if callable(render):
        return render(size)
    return resize_frame(obs.frame, size)


class CrafterEnv:
    """Crafter with named primitive actions and semantic-map ground truth.

    ``seed`` fixes the world; ``length`` is Crafter's episode length.
    """

    VIEW = (9, 7)  # local view (columns, rows) that the frame shows above the inventory bar

    def __init__(self, seed: int = 0, length: int = 10000, size: int = 64):
        try:
            import crafter
        except ImportError as e:  # pragma: no cover - crafter is a core dependency here
            raise ImportError("CrafterEnv needs the 'crafter' package (pip install crafter)") from e
        self._env = crafter.Env(seed=int(seed), length=length, size=(size, size), reward=False)
        self.action_names = list(crafter.constants.actions)
        self.seed = int(seed)
        self._last = None

    def _observe(self, frame: np.ndarray, info: dict) -> Observation:
        sem = info["semantic"]  # (64, 64) ids indexed [x, y]
        px, py = (int(v) for v in info["player_pos"])
        w, h = self.VIEW
        grid = []
        for dx in range(-(w // 2), w // 2 + 1):
            col = []
            for dy in range(-(h // 2), h // 2 + 1):
                x, y = px + dx, py + dy
                inside = 0 <= x < sem.shape[0] and 0 <= y < sem.shape[1]
                col.append(CRAFTER_NAMES[int(sem[x, y])] if inside else "none")
            grid.append(col)
        player = self._env._player
        return Observation(frame=np.asarray(frame, dtype=np.uint8), grid=grid, center=(w // 2, h // 2),
                           inventory=dict(info["inventory"]), achievements=dict(info["achievements"]),
                           facing=tuple(int(v) for v in player.facing), extra={"player_pos": (px, py)})

    def reset(self) -> Observation:
        frame = self._env.reset()
        # Crafter returns info only from step(); a noop gives it without changing the world but the daylight
        frame, _, _, info = self._env.step(0)
        self._last = self._observe(frame, info)
        return self._last

    def clone(self) -> "CrafterEnv":
        """An independent copy in the same state (world generation costs seconds; copying is fast)."""
        return copy.deepcopy(self)

    @property
    def last(self) -> Observation | None:
        """The latest observation."""
        return self._last

    def render(self, size: int) -> np.ndarray:
        """The current view rendered by Crafter at (size, size), (H, W, 3) uint8, without changing the
        world: at night Crafter's renderer draws its noise from the world's random state, which is saved
        and restored around the call so that an extra frame never alters what happens next."""
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        rs = self._env._world.random
        state = rs.get_state()
        try:
            frame = self._env.render((int(size), int(size)))  # a tuple: Crafter tests `size or default`
        finally:
            rs.set_state(state)
        return np.asarray(frame, dtype=np.uint8)

    def step(self, action: str) -> tuple[Observation, bool]:
        if action not in self.action_names:
            raise ValueError(f"unknown Crafter action {action!r}; known: {self.action_names}")
        frame, _, done, info = self._env.step(self.action_names.index(action))
        self._last = self._observe(frame, info)
        return self._last, bool(done)


# --------------------------------------------------------------------------------------- MineDojo
class MineDojoUnavailable(RuntimeError):
    """MineDojo cannot start on this machine; the message lists what is missing."""


def minedojo_missing() -> list[str]:
    """What this machine lacks to run MineDojo (empty list = everything found)."""
    missing = []
    try:
        import minedojo  # noqa: F401
    except ImportError:
        missing.append("the 'minedojo' package (pip<24.1, setuptools==65.5.0, wheel==0.38.4, "
                       "pip install --no-build-isolation gym==0.21.0, pip install minedojo, then numpy<2)")
    java = shutil.which("java")
    if java is None:
        missing.append("Java 8 (a JDK 8 'java' on PATH; Debian 12 ships only OpenJDK 17)")
    else:
        try:
            v = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=10).stderr
        except (OSError, subprocess.SubprocessError):
            v = ""
        if '"1.8' not in v:
            missing.append(f"Java 8 (found: {v.splitlines()[0] if v else 'unknown java'})")
    if shutil.which("Xvfb") is None and shutil.which("xvfb-run") is None:
        missing.append("xvfb (apt-get install xvfb) for headless rendering")
    return missing


def observation_from_minedojo(obs: dict) -> Observation:
    """Convert a MineDojo observation dict into an :class:`Observation`.

    Needs ``rgb`` (3, H, W), ``inventory`` with ``name`` and ``quantity`` arrays, ``voxels`` with
    ``block_name`` (X, Y, Z); ``location_stats`` (``yaw``, ``pos``) is optional. The grid is the voxel
    slice at the middle height, x to the right (east), z as "down" rows (south); the facing is the yaw
    rounded to the nearest of the four grid directions (south if no yaw).
    """
    need = [("rgb",), ("inventory", "name"), ("inventory", "quantity"), ("voxels", "block_name")]
    for path in need:
        d = obs
        for k in path:
            if not isinstance(d, dict) or k not in d:
                raise KeyError(f"MineDojo observation lacks {'/'.join(path)}; keys: {sorted(obs)}")
            d = d[k]
    rgb = np.asarray(obs["rgb"])
    if rgb.ndim != 3 or rgb.shape[0] != 3:
        raise ValueError(f"MineDojo rgb must be (3, H, W), got {rgb.shape}")
    frame = np.transpose(rgb, (1, 2, 0)).astype(np.uint8)  # (H, W, 3)
    inv: dict[str, int] = {}
    for name, q in zip(np.asarray(obs["inventory"]["name"]).reshape(-1),
                       np.asarray(obs["inventory"]["quantity"]).reshape(-1)):
        name = str(name).replace(" ", "_")
        if name in ("air", "none"):
            continue
        inv[name] = inv.get(name, 0) + int(q)
    vox = np.asarray(obs["voxels"]["block_name"])  # (X, Y, Z)
    if vox.ndim != 3:
        raise ValueError(f"MineDojo voxels/block_name must be (X, Y, Z), got {vox.shape}")
    mid = vox.shape[1] // 2
    grid = [[str(vox[x, mid, z]).replace(" ", "_") for z in range(vox.shape[2])] for x in range(vox.shape[0])]
    center = (vox.shape[0] // 2, vox.shape[2] // 2)
    extra = {k: np.asarray(v).tolist() for k, v in obs.get("location_stats", {}).items()}
    extra["inventory_slots"] = [str(n).replace(" ", "_") for n in np.asarray(obs["inventory"]["name"]).reshape(-1)]
    facing = (0, 1)
    if "yaw" in extra:  # Minecraft yaw: 0 south (+z, "down"), 90 west, 180 north, 270 east
        yaw = float(np.asarray(extra["yaw"]).reshape(-1)[0])
        facing = [(0, 1), (-1, 0), (0, -1), (1, 0)][int(round(yaw / 90.0)) % 4]
    if "pos" in extra:  # block position, so that "the player moved" is decidable as in Crafter
        extra["player_pos"] = tuple(int(np.floor(v)) for v in np.asarray(extra["pos"]).reshape(-1)[:3])
    return Observation(frame=frame, grid=grid, center=center, inventory=inv, achievements={},
                       facing=facing, extra=extra)


class MineDojoEnv:
    """MineDojo through the same interface as :class:`CrafterEnv`.

    Primitive actions (reconstruction: the paper's controller is not public) are named like Crafter's so
    that one skill layer drives both, each a fixed sequence of MineDojo MultiDiscrete(8) action vectors
    (0 forward/back, 1 left/right, 2 jump/sneak/sprint, 3 camera pitch, 4 camera yaw (25 bins of 15
    degrees, 12 = no turn), 5 functional (1 use, 3 attack, 4 craft), 6 craft argument, 7 slot argument):

    - ``move_left|right|up|down``: turn (yaw, in 90-degree steps) to face that side of the voxel grid
      (x right = east, z down = south; "up" is north), then walk forward ``ticks_per_tile`` ticks
      (a walking player covers about 0.22 blocks per tick; a block in the way stops it, as in Crafter);
    - ``do``: hold attack for ``attack_ticks`` ticks (breaks the faced block bare-handed with MineDojo's
      ``break_speed_multiplier``); ``use``, ``jump``, ``noop``: one tick;
    - ``make_<item>``: one craft action for ``item`` (its index in MineDojo's
      ``minedojo.sim.mc_meta.mc.ALL_CRAFT_SMELT_ITEMS``; needs ``event_level_control``, the harvest
      tasks' default; table recipes such as the wooden pickaxe need a crafting table nearby);
    - ``place_<item>``: one place action with the inventory slot that holds ``item`` (from the
      observation's slot names); a noop tick when the inventory has none.

    ``observation.extra["env_success"]`` carries the task's own success after the latest tick: MineDojo's
    meta tasks (harvest, ...) decide it from their success criteria and expose it as the ``is_successful``
    property (their ``step`` returns ``done`` on success but puts no success key in ``info``).
    Episodes cannot be cloned (each is a Minecraft process): :func:`make_env` builds one per episode.
    """

    MOVES = ("move_left", "move_right", "move_up", "move_down")
    CRAFTABLE = ("planks", "stick", "crafting_table", "wooden_pickaxe", "wooden_sword")
    PLACEABLE = ("crafting_table",)
    YAW = {(0, 1): 0, (-1, 0): 90, (0, -1): 180, (1, 0): 270}  # grid facing -> Minecraft yaw (degrees)

    def __init__(self, task_id: str = "open-ended", image_size: tuple[int, int] = (160, 256), seed: int = 0,
                 ticks_per_tile: int = 5, attack_ticks: int = 20, **kwargs):
        if ticks_per_tile < 1 or attack_ticks < 1:
            raise ValueError(f"ticks_per_tile and attack_ticks must be >= 1, got {ticks_per_tile}, {attack_ticks}")
        missing = minedojo_missing()
        if missing:
            raise MineDojoUnavailable("MineDojo cannot start here; missing: " + "; ".join(missing)
                                      + ". The first reset() also needs internet (gradle, Maven, Mojang) "
                                      "to build Minecraft. Use CrafterEnv offline.")
        import minedojo

        self._env = minedojo.make(task_id=task_id, image_size=image_size, seed=seed, **kwargs)
        self.ticks_per_tile, self.attack_ticks = int(ticks_per_tile), int(attack_ticks)
        self.action_names = (["noop", *self.MOVES, "do", "use", "jump"]
                             + [f"make_{x}" for x in self.CRAFTABLE] + [f"place_{x}" for x in self.PLACEABLE])
        self._last: Observation | None = None

    @property
    def last(self) -> Observation | None:
        """The latest observation."""
        return self._last

    def _tick(self, set_: dict) -> bool:
        vec = self._env.action_space.no_op()
        for i, v in set_.items():
            vec[i] = v
        obs, _, done, info = self._env.step(vec)
        self._last = observation_from_minedojo(obs)
        self._last.extra["env_success"] = bool(getattr(self._env, "is_successful", False))
        return bool(done)

    def reset(self) -> Observation:
        self._last = observation_from_minedojo(self._env.reset())
        self._last.extra["env_success"] = False
        return self._last

    def close(self) -> None:
        close = getattr(self._env, "close", None)
        if callable(close):
            close()

    def step(self, action: str) -> tuple[Observation, bool]:
        if action not in self.action_names:
            raise ValueError(f"unknown MineDojo action {action!r}; known: {self.action_names}")
        if self._last is None:
            raise RuntimeError("call reset() before step()")
        done = False
        if action in self.MOVES:
            want = DIRECTIONS[action[len("move_"):]]
            turns = ((self.YAW[want] - self.YAW.get(tuple(self._last.facing), 0)) // 90) % 4
            for delta in {0: [], 1: [18], 2: [18, 18], 3: [6]}[turns]:  # yaw bins: 18 = +90, 6 = -90 degrees
                done = self._tick({4: delta}) or done
            for _ in range(self.ticks_per_tile):
                if done:
                    break
                done = self._tick({0: 1})
        elif action == "do":
            for _ in range(self.attack_ticks):
                done = self._tick({5: 3})
                if done:
                    break
        elif action.startswith("make_"):
            from minedojo.sim.mc_meta import mc

            done = self._tick({5: 4, 6: list(mc.ALL_CRAFT_SMELT_ITEMS).index(action[len("make_"):])})
        elif action.startswith("place_"):
            slots = self._last.extra.get("inventory_slots", [])
            item = action[len("place_"):]
            done = self._tick({5: 6, 7: slots.index(item)} if item in slots else {})
        else:
            done = self._tick({"noop": {}, "use": {5: 1}, "jump": {2: 1}}[action])
        return self._last, done


def make_env(environment: str, seed: int, task=None, *, minedojo_image_size: tuple[int, int] = (160, 256),
             voxel_radius: int = 4, ticks_per_tile: int = 5, attack_ticks: int = 20):
    """The one factory of run() and replay(): a reset environment for ``task`` in world ``seed``.

    ``"crafter"``: :class:`CrafterEnv`. ``"minedojo"``: :class:`MineDojoEnv` on MineDojo's ``harvest``
    meta task for harvest tasks (``target_names=[task.target]``, ``target_quantities=task.quantity``) and
    ``open-ended`` for find tasks, with voxels ``voxel_radius`` blocks around the player (one block below
    and above the feet) and ``world_seed = seed``.
    """
    if environment == "crafter":
        env = CrafterEnv(seed=seed)
    elif environment == "minedojo":
        kw = dict(seed=seed, world_seed=seed, image_size=tuple(minedojo_image_size), use_voxel=True,
                  voxel_size=dict(xmin=-voxel_radius, ymin=-1, zmin=-voxel_radius,
                                  xmax=voxel_radius, ymax=1, zmax=voxel_radius),
                  ticks_per_tile=ticks_per_tile, attack_ticks=attack_ticks)
        if task is not None and task.kind == "harvest":
            env = MineDojoEnv(task_id="harvest", target_names=[task.target],
                              target_quantities=[task.quantity], **kw)
        else:
            env = MineDojoEnv(task_id="open-ended", **kw)
    else:
        raise ValueError(f"unknown environment {environment!r}; known: crafter, minedojo")
    env.reset()
    return env
