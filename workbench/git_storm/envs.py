"""Environments through gymnasium, all returning channel-first uint8 RGB frames (3, S, S).

- ``minatar:<game>`` (breakout, asterix, freeway, seaquest, space_invaders): MinAtar's 10x10xK boolean
  planes painted with a fixed palette (one colour per object channel, later channels on top) and
  upsampled by ``cfg.minatar_scale`` (nearest): frames (3, 10*scale, 10*scale); sticky actions
  ``cfg.minatar_sticky``; minimal action set.
- ``branch:catch``: a 10x10 catch game built for this notebook whose next frame is genuinely
  multimodal (:class:`BranchCatch`): a falling ball drifts one column left, straight or right at random
  every step and respawns at a uniformly random column, so the next latent has 3 (falling) or 10
  (respawn) equally likely modes given the past and the action.
- ``atari:<Game>`` (ALE via ale-py, ROMs in the wheel): ``ALE/<Game>-v5`` with frameskip 1 and
  gymnasium's ``AtariPreprocessing`` (frame skip ``cfg.atari_frame_skip`` with max-pooling of the last
  two frames, resize to ``cfg.atari_size``, RGB, no no-op starts) as in STORM's wrappers;
  ``info["life_loss"]`` flags a lost life (STORM stores it as a termination).
- ``dmc:<domain>-<task>`` (dm-control with ``mujoco==3.17.0``, optional extra ``dmc``): frames
  (3, ``cfg.dmc_size``, ``cfg.dmc_size``) uint8 rendered by MuJoCo at that size (64 in the paper) from
  camera 0 (camera 2 for quadruped, the DreamerV3 convention); actions float32 in [-1, 1]^A (Box),
  rescaled to the task's action bounds; each step repeats the action ``cfg.dmc_action_repeat`` times
  (paper: 2) and sums the rewards, so a step's reward lies in [0, repeat] (suite rewards are in [0, 1]).
  An episode ends by the suite's time limit (1000 physics steps = 500 env steps at repeat 2) as a
  truncation; a step with discount 0 (a true terminal state, rare in the suite) is a termination.
  ``reset(seed=s)`` rebuilds the task with ``random=s``: the same seed gives the same frames for the same
  actions. Headless rendering needs ``MUJOCO_GL`` set before mujoco is first imported: ``egl`` (default
  here; works with Debian's libegl1 + libegl-mesa0 + libgl1-mesa-dri) or ``osmesa`` (needs libosmesa6).
  ``cfg.dmc_shadows_reflections=False`` turns MuJoCo's shadows and reflections off: several times faster
  on a software GL, but the frames differ from the standard DMC look.

Every env is wrapped in a time limit of ``cfg.max_episode_steps`` (truncation).
"""
from __future__ import annotations

import os

import gymnasium as gym
import numpy as np

MINATAR_GAMES = ("breakout", "asterix", "freeway", "seaquest", "space_invaders")
# one colour per object channel (MinAtar has at most 10 channels); background black
_PALETTE = np.array([
    [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
    [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 190]], dtype=np.uint8)


def minatar_to_rgb(state: np.ndarray, scale: int = 1) -> np.ndarray:
    """MinAtar planes (10, 10, K) bool -> RGB (3, 10*scale, 10*scale) uint8 (last active channel wins).

    >>> s = np.zeros((10, 10, 2), bool); s[0, 0, 1] = True
    >>> img = minatar_to_rgb(s, 2); img.shape, img[:, 0, 0].tolist(), img[:, 2, 2].tolist()
    ((3, 20, 20), [60, 180, 75], [0, 0, 0])
    """
    k = state.shape[-1]
    if k > len(_PALETTE):
        raise ValueError(f"at most {len(_PALETTE)} channels supported, got {k}")
    ids = np.where(state.any(-1), k - 1 - np.argmax(state[..., ::-1], -1), -1)  # last active channel
    rgb = np.zeros(state.shape[:2] + (3,), np.uint8)
    on = ids >= 0
    rgb[on] = _PALETTE[ids[on]]
    if scale > 1:
        rgb = rgb.repeat(scale, 0).repeat(scale, 1)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))


class MinAtarRGB(gym.Env):
    """MinAtar game as a gymnasium env with RGB frames (see the module docstring)."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, game: str, scale: int = 2, sticky: float = 0.1):
        from minatar import Environment

        if game not in MINATAR_GAMES:
            raise ValueError(f"unknown MinAtar game {game!r}; choose from {MINATAR_GAMES}")
        self.game = Environment(game, sticky_action_prob=sticky)
        self.scale = scale
        self.actions = list(self.game.minimal_action_set())
        self.action_space = gym.spaces.Discrete(len(self.actions))
        self.observation_space = gym.spaces.Box(0, 255, (3, 10 * scale, 10 * scale), np.uint8)
        self.render_mode = "rgb_array"

    def _obs(self):
        return minatar_to_rgb(self.game.state(), self.scale)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.game.seed(int(seed) % (2 ** 31))
        self.game.reset()
        return self._obs(), {}

    def step(self, action):
        reward, done = self.game.act(self.actions[int(action)])
        return self._obs(), float(reward), bool(done), False, {}

    def render(self):
        return self._obs().transpose(1, 2, 0)


class BranchCatch(gym.Env):
    """Catch with branching ball dynamics (reconstruction: an environment built for the CPU experiment,
    not from the papers). Frames (3, S, S) uint8, S = ``size`` (10): black background, a green paddle of
    ``paddle`` cells in the bottom row, a white ball (drawn on top; white so that missing it costs the
    autoencoder three channels of squared error, not one). Actions 0 stay, 1 left, 2 right (the
    paddle moves one cell, clipped at the walls).

    Each step the ball falls one row and moves sideways by -1, 0 or +1 with probabilities ``drift``
    (reflected at the walls: column -1 -> 1, S -> S - 2). When it reaches the bottom row the step's
    reward is +1 if the paddle covers its column, else -1; on the next step a new ball appears in the top
    row at a uniformly random column. The episode terminates after ``balls`` drops (S * balls steps).
    Given the frame and the action the next frame therefore has 3 (or, at a respawn, S) distinct
    outcomes whose ball cell is far apart in pixel space: a prior that samples the latent tokens
    independently can mix them into frames with no ball or several.
    """

    metadata = {"render_modes": ["rgb_array"]}
    BALL, PADDLE = (255, 255, 255), (0, 255, 0)

    def __init__(self, size: int = 10, paddle: int = 3, balls: int = 8, drift=(1 / 3, 1 / 3, 1 / 3),
                 scale: int = 1):
        if size < 4 or not 1 <= paddle < size or balls < 1 or scale < 1:
            raise ValueError(f"need size >= 4, 1 <= paddle < size, balls >= 1 and scale >= 1, got {size}, "
                             f"{paddle}, {balls}, {scale}")
        drift = np.asarray(drift, np.float64)
        if drift.shape != (3,) or np.any(drift < 0) or not np.isclose(drift.sum(), 1.0):
            raise ValueError(f"drift must be 3 probabilities (left, straight, right) summing to 1, got {drift}")
        self.size, self.paddle_w, self.balls, self.drift, self.scale = size, paddle, balls, drift, scale
        self.action_space = gym.spaces.Discrete(3)
        self.observation_space = gym.spaces.Box(0, 255, (3, size * scale, size * scale), np.uint8)
        self.render_mode = "rgb_array"
        self.np_random_ = np.random.default_rng(0)

    def _obs(self):
        img = np.zeros((3, self.size, self.size), np.uint8)
        img[:, -1, self.pad:self.pad + self.paddle_w] = np.array(self.PADDLE, np.uint8)[:, None]
        img[:, self.ball[0], self.ball[1]] = self.BALL
        if self.scale > 1:
            img = np.ascontiguousarray(img.repeat(self.scale, 1).repeat(self.scale, 2))
        return img

    def _spawn(self):
        self.ball = (0, int(self.np_random_.integers(self.size)))

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.np_random_ = np.random.default_rng(int(seed))
        self.pad = int(self.np_random_.integers(self.size - self.paddle_w + 1))
        self.dropped = 0
        self._spawn()
        return self._obs(), {}

    def step(self, action):
        action = int(action)
        if action not in (0, 1, 2):
            raise ValueError(f"action must be 0 (stay), 1 (left) or 2 (right), got {action}")
        self.pad = int(np.clip(self.pad + (0, -1, 1)[action], 0, self.size - self.paddle_w))
        r, c = self.ball
        reward, term = 0.0, False
        if r == self.size - 1:  # the ball landed on the previous step: respawn
            self._spawn()
        else:
            c = c + int(self.np_random_.choice(3, p=self.drift)) - 1
            c = -c if c < 0 else (2 * (self.size - 1) - c if c > self.size - 1 else c)
            self.ball = (r + 1, c)
            if r + 1 == self.size - 1:
                reward = 1.0 if self.pad <= c < self.pad + self.paddle_w else -1.0
                self.dropped += 1
                term = self.dropped >= self.balls
        return self._obs(), reward, term, False, {}

    def render(self):
        return self._obs().transpose(1, 2, 0)


def catch_frame_valid(frames: np.ndarray, paddle: int = 3, scale: int = 1) -> np.ndarray:
    """Whether frames (..., 3, S, S) in [0, 1] (or uint8) look like BranchCatch frames: exactly one
    ball-coloured cell (red, green and blue > 0.5) and paddle-coloured cells (green > 0.5, red < 0.5)
    only in the bottom row, ``paddle - 1`` or ``paddle`` of them (the ball may cover one). Returns bool
    (...). With ``scale`` > 1 each cell is the mean of its scale x scale block of pixels."""
    f = np.asarray(frames, np.float64)
    if f.max(initial=0) > 1.0:
        f = f / 255.0
    if scale > 1:
        *lead, c, hh, ww = f.shape
        f = f.reshape(*lead, c, hh // scale, scale, ww // scale, scale).mean((-3, -1))
    red, green, blue = f[..., 0, :, :] > 0.5, f[..., 1, :, :] > 0.5, f[..., 2, :, :] > 0.5
    ball = red & green & blue
    pad = green & ~red
    n_ball = ball.sum((-2, -1))
    n_pad_bottom = pad[..., -1, :].sum(-1)
    n_pad_else = pad[..., :-1, :].sum((-2, -1))
    return (n_ball == 1) & (n_pad_else == 0) & (n_pad_bottom >= paddle - 1) & (n_pad_bottom <= paddle)


class LifeLossInfo(gym.Wrapper):
    """Adds ``info["life_loss"]`` (bool): the ALE life counter dropped on this step."""

    def reset(self, **kw):
        obs, info = self.env.reset(**kw)
        self.lives = self.env.unwrapped.ale.lives()
        info["life_loss"] = False
        return obs, info

    def step(self, action):
        obs, r, term, trunc, info = self.env.step(action)
        lives = self.env.unwrapped.ale.lives()
        info["life_loss"] = bool(lives < self.lives)
        self.lives = lives
        return obs, r, term, trunc, info


class ChannelFirst(gym.ObservationWrapper):
    """(H, W, C) -> (C, H, W)."""

    def __init__(self, env):
        super().__init__(env)
        h, w, c = env.observation_space.shape
        self.observation_space = gym.spaces.Box(0, 255, (c, h, w), np.uint8)

    def observation(self, obs):
        return np.ascontiguousarray(obs.transpose(2, 0, 1))


def make_atari(game: str, cfg) -> gym.Env:
    import ale_py

    gym.register_envs(ale_py)
    env = gym.make(f"ALE/{game}-v5", frameskip=1, repeat_action_probability=cfg.atari_repeat_action_probability,
                   full_action_space=False, max_episode_steps=None)
    env = gym.wrappers.AtariPreprocessing(env, noop_max=0, frame_skip=cfg.atari_frame_skip,
                                          screen_size=cfg.atari_size, terminal_on_life_loss=False,
                                          grayscale_obs=False, scale_obs=False)
    return ChannelFirst(LifeLossInfo(env))


class DMCPixels(gym.Env):
    """dm-control suite task from pixels (see the module docstring): obs (3, S, S) uint8, Box actions
    float32 in [-1, 1]^A, reward in [0, action_repeat] per step."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, domain: str, task: str, size: int = 64, action_repeat: int = 2, seed: int = 0,
                 shadows_reflections: bool = True):
        os.environ.setdefault("MUJOCO_GL", "egl")
        _load_triton_before_gl()
        try:
            from dm_control import suite
        except ImportError as e:
            raise ImportError("DeepMind Control needs the `dmc` extra: pip install -e '.[dmc]' "
                              "(dm-control with mujoco==3.17.0; headless rendering with MUJOCO_GL=egl or "
                              "osmesa)") from e
        if size < 1 or action_repeat < 1:
            raise ValueError(f"size and action_repeat must be >= 1, got {size}, {action_repeat}")
        if (domain, task) not in suite.ALL_TASKS:
            raise ValueError(f"unknown DMC task {domain}-{task}; e.g. walker-walk, cartpole-swingup, cheetah-run")
        self._suite, self.domain, self.task = suite, domain, task
        self.size, self.repeat = size, action_repeat
        self.camera = 2 if domain == "quadruped" else 0
        self._scene_callback = None if shadows_reflections else _no_shadows_reflections
        self.env = suite.load(domain, task, task_kwargs={"random": int(seed) % 2 ** 32})  # numpy's seed range
        spec = self.env.action_spec()
        self.low, self.high = spec.minimum.astype(np.float64), spec.maximum.astype(np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, spec.shape, np.float32)
        self.observation_space = gym.spaces.Box(0, 255, (3, size, size), np.uint8)
        self.reward_range = (0.0, float(action_repeat))
        self.render_mode = "rgb_array"

    def _frame(self):
        img = self.env.physics.render(self.size, self.size, camera_id=self.camera,
                                      scene_callback=self._scene_callback)  # (S, S, 3) uint8
        return np.ascontiguousarray(img.transpose(2, 0, 1))

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.env = self._suite.load(self.domain, self.task, task_kwargs={"random": int(seed) % 2 ** 32})
        self.env.reset()
        return self._frame(), {}

    def step(self, action):
        action = np.asarray(action, dtype=np.float64)
        if action.shape != self.action_space.shape or not np.all(np.isfinite(action)):
            raise ValueError(f"action must be a finite array of shape {self.action_space.shape}, got {action!r}")
        a = self.low + (np.clip(action, -1, 1) + 1) / 2 * (self.high - self.low)
        reward, term, trunc = 0.0, False, False
        for _ in range(self.repeat):
            ts = self.env.step(a)
            reward += ts.reward or 0.0
            if ts.last():
                # dm_env: a terminal state has discount 0; the suite's time limit ends with discount 1
                term = ts.discount is not None and float(ts.discount) == 0.0
                trunc = not term
                break
        return self._frame(), float(reward), term, trunc, {}

    def render(self):
        return self._frame().transpose(1, 2, 0)


def _load_triton_before_gl() -> None:
    """Load triton's native library (pulled in by xgrammar) before the GL stack, if it is installed.

    Measured here (triton 3.9, mujoco 3.17, Mesa EGL): once a DMC env has rendered a frame, the first
    ``import triton`` (which torch does lazily, e.g. inside ``torch.optim.Adam(...)``) kills the process
    with a segmentation fault: both libraries bring their own LLVM. Loading triton first avoids it
    (``tests/test_git_storm_dmc.py`` runs a DMC env and then builds an optimizer in a fresh process)."""
    try:
        import triton._C.libtriton  # noqa: F401
    except Exception:  # not installed (or unusable): nothing to order
        pass


def _no_shadows_reflections(physics, scene):
    import mujoco

    scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
    scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0


def make_env(spec: str, cfg, seed: int | None = None) -> gym.Env:
    """Build the env named by ``spec`` (see the module docstring), wrapped in a time limit."""
    if ":" not in spec:
        raise ValueError("env spec must look like 'branch:catch', 'minatar:breakout', 'atari:Pong' or "
                         f"'dmc:walker-walk', got {spec!r}")
    kind, name = spec.split(":", 1)
    if kind == "branch":
        if name != "catch":
            raise ValueError(f"unknown branch env {name!r}; the one available is 'branch:catch'")
        env = BranchCatch(cfg.catch_size, cfg.catch_paddle, cfg.catch_balls, tuple(cfg.catch_drift), cfg.catch_scale)
    elif kind == "minatar":
        env = MinAtarRGB(name, cfg.minatar_scale, cfg.minatar_sticky)
    elif kind == "atari":
        env = make_atari(name, cfg)
    elif kind == "dmc":
        if "-" not in name:
            raise ValueError(f"dmc spec is 'dmc:<domain>-<task>', got {spec!r}")
        domain, task = name.split("-", 1)
        env = DMCPixels(domain, task.replace("-", "_"), cfg.dmc_size, cfg.dmc_action_repeat, seed or 0,
                        cfg.dmc_shadows_reflections)
    else:
        raise ValueError(f"unknown env kind {kind!r} in {spec!r} (branch, minatar, atari, dmc)")
    return gym.wrappers.TimeLimit(env, cfg.max_episode_steps)
