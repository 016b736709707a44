"""Data, training loops, video-prediction evaluation and the notebook entry point ``run``.

Replay data is one flat stream of transitions (obs_t, a_t, r_t, term_t) across episodes; training
sequences are contiguous windows of it and may cross an episode end, marked by ``term`` (as in STORM's
buffer). Torch initialisation and sampling use generators derived from ``cfg.seed``; nothing is
seeded globally (module initialisation runs inside ``torch.random.fork_rng``).
"""
from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import torch
from tqdm.auto import tqdm

from workbench.seeding import derive_seed, make_rng

from .agent import ActorCritic
from .config import Config
from .envs import make_env
from .world_model import WorldModel


def torch_gen(seed: int, *parts) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(derive_seed(seed, *parts) % (2 ** 63))
    return g


def seeded_init(seed: int, *parts):
    """Context manager: module initialisation from a derived seed without touching global RNG state."""

    class _Ctx:
        def __enter__(self):
            self._fork = torch.random.fork_rng(devices=[])
            self._fork.__enter__()
            torch.manual_seed(derive_seed(seed, *parts) % (2 ** 63))

        def __exit__(self, *exc):
            return self._fork.__exit__(*exc)

    return _Ctx()


# --------------------------------------------------------------------------------------------------
# replay
# --------------------------------------------------------------------------------------------------
class Replay:
    """Flat transition stream. obs (N, C, H, W) uint8, action (N[, A]), reward (N,), term (N,), plus
    episode ids for returns."""

    def __init__(self, obs_shape, action_shape=(), action_dtype=np.int64, capacity: int = 200_000):
        self.obs = np.zeros((capacity, *obs_shape), np.uint8)
        self.action = np.zeros((capacity, *action_shape), action_dtype)
        self.reward = np.zeros(capacity, np.float32)
        self.term = np.zeros(capacity, np.float32)
        self.n = 0

    def add(self, obs, action, reward, term):
        if self.n >= len(self.obs):
            raise RuntimeError(f"replay full ({len(self.obs)} transitions)")
        i = self.n
        self.obs[i], self.action[i], self.reward[i], self.term[i] = obs, action, reward, term
        self.n += 1

    def window(self, starts, length: int, lo: int = 0):
        idx = np.asarray(starts)[:, None] + np.arange(length)[None]
        return (torch.from_numpy(self.obs[idx]), torch.from_numpy(self.action[idx]),
                torch.from_numpy(self.reward[idx]), torch.from_numpy(self.term[idx]))

    def sample(self, rng: np.random.Generator, batch: int, length: int, lo: int = 0, hi: int | None = None):
        """Uniform windows of ``length`` inside [lo, hi): tensors (B, L, ...)."""
        hi = self.n if hi is None else hi
        if hi - lo < length:
            raise ValueError(f"need at least {length} transitions in [{lo}, {hi})")
        return self.window(rng.integers(lo, hi - length + 1, size=batch), length)


def collect(env, replay: Replay, steps: int, rng: np.random.Generator, policy=None, seed: int = 0,
            state: dict | None = None, life_loss_as_termination: bool = True, progress: bool = False,
            desc: str = "collect") -> tuple[dict, list]:
    """Step ``env`` ``steps`` times, storing transitions. ``policy(obs_uint8) -> action`` (None = uniform
    random). ``state`` carries the current observation and episode return across calls.
    Returns (state, finished episode returns)."""
    if state is None or state.get("obs") is None:
        obs, _ = env.reset(seed=int(rng.integers(2 ** 31)))
        state = {"obs": obs, "ret": 0.0, "len": 0}
    finished = []
    for _ in tqdm(range(steps), desc=desc, disable=not progress, leave=False):
        obs = state["obs"]
        if policy is None:
            if hasattr(env.action_space, "n"):
                a = int(rng.integers(env.action_space.n))
            else:
                a = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        else:
            a = policy(obs)
        nxt, r, term, trunc, info = env.step(a)
        t = term or (life_loss_as_termination and info.get("life_loss", False))
        replay.add(obs, a, r, float(t))
        state["ret"] += r
        state["len"] += 1
        if term or trunc:
            finished.append(state["ret"])
            if policy is not None and hasattr(policy, "reset"):
                policy.reset()
            nxt, _ = env.reset(seed=int(rng.integers(2 ** 31)))
            state["ret"], state["len"] = 0.0, 0
        state["obs"] = nxt
    return state, finished


def env_info(env) -> tuple[tuple, int, bool]:
    """(obs_shape, action_dim, continuous)."""
    space = env.action_space
    continuous = not hasattr(space, "n")
    return tuple(env.observation_space.shape), (int(space.shape[0]) if continuous else int(space.n)), continuous


def build_world_model(cfg: Config, obs_shape, action_dim: int, continuous: bool, prior: str) -> WorldModel:
    with seeded_init(cfg.seed, "world_model", prior):
        wm = WorldModel(cfg, obs_shape, action_dim, continuous, prior)
    wm.opt = torch.optim.Adam(wm.parameters(), lr=cfg.wm_lr)
    return wm.to(cfg.device)


def train_world_model(wm: WorldModel, replay: Replay, updates: int, rng: np.random.Generator,
                      gen: torch.Generator, hi: int | None = None, progress: bool = False,
                      desc: str = "world model") -> list[dict]:
    """``updates`` Adam steps on random windows of ``replay[:hi]``; returns per-update metrics."""
    cfg = wm.cfg
    wm.train()
    hist = []
    for _ in tqdm(range(updates), desc=desc, disable=not progress, leave=False):
        obs, act, rew, term = (x.to(cfg.device) for x in replay.sample(rng, cfg.batch_size, cfg.batch_length, 0, hi))
        loss, m = wm.loss(obs, act, rew, term, gen)
        wm.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(wm.parameters(), cfg.wm_grad_clip)
        wm.opt.step()
        hist.append(m)
    return hist


# --------------------------------------------------------------------------------------------------
# video prediction
# --------------------------------------------------------------------------------------------------
def psnr(mse: np.ndarray, peak: float = 1.0) -> np.ndarray:
    """10 log10(peak^2 / mse), frames in [0, peak].

    >>> float(psnr(np.array(0.01)))
    20.0
    """
    return 10 * np.log10(peak ** 2 / np.maximum(mse, 1e-10))


@torch.no_grad()
def video_prediction(wm: WorldModel, obs, actions, rewards, terms, context: int, horizon: int,
                     gen: torch.Generator, n_examples: int = 4, frame_check=None) -> dict:
    """Open-loop rollouts from ``context`` real frames, driven by the real actions, and teacher-forced
    prior metrics on the same windows.

    obs (B, context + horizon, C, H, W) uint8 etc. Predicted frames k = 0..horizon-1 are compared with
    obs[:, context + k]. Per-step MSE (mean over pixels, frames in [0, 1]) and PSNR (mean over sequences
    of per-sequence PSNR), against two references: the autoencoder's own reconstruction of the true frame
    (a ceiling for any prior) and repeating the last context frame (the trivial baseline).

    Teacher-forced metrics at every transition of the windows, conditioned on the real past (posterior
    argmax tokens): ``prior_nll`` = -log p(z_{t+1} | h_t) / G in nats per token of the posterior argmax
    tokens under the prior's sampler (:meth:`Prior.log_prob`), ``token_perplexity`` = exp(prior_nll),
    ``token_accuracy`` of the greedy decode (temperature 0; for MaskGIT the same chunked decode),
    ``token_accuracy_one_shot`` of the all-masked / one-shot argmax. ``frame_check(frames) -> bool``
    (optional, e.g. :func:`~workbench.git_storm.envs.catch_frame_valid`) scores decoded samples: one
    step ahead from the real past (``valid_one_step``) and along the open-loop rollouts
    (``valid_per_step``, ``valid``).
    """
    B, T = obs.shape[:2]
    if T < context + horizon:
        raise ValueError(f"need {context + horizon} steps, got {T}")
    out = wm.imagine(obs[:, :context], actions[:, :context], horizon - 1, actions=actions[:, context:context + horizon - 1],
                     generator=gen, decode=True)
    pred = out["frames"].clamp(0, 1)  # (B, horizon, C, H, W)
    true = obs[:, context:context + horizon].float() / 255.0
    mse = (pred - true).pow(2).mean((-3, -2, -1)).cpu().numpy()  # (B, horizon)
    wm.eval()
    post = wm.posterior_logits(obs[:, context:context + horizon])
    recon = wm.decode(torch.nn.functional.one_hot(post.argmax(-1), wm.K).float()).clamp(0, 1)
    mse_ae = (recon - true).pow(2).mean((-3, -2, -1)).cpu().numpy()
    last = obs[:, context - 1:context].float() / 255.0
    mse_copy = (last - true).pow(2).mean((-3, -2, -1)).cpu().numpy()
    # teacher-forced token metrics over the whole windows
    post_next, h_tf = wm.teacher_forced_states(obs, actions)
    tgt = post_next.argmax(-1)  # (B, T-1, G)
    nll = float(-wm.prior.log_prob(h_tf, tgt, gen).mean()) / wm.G
    greedy = wm.prior.sample(h_tf, gen, temperature=0.0).argmax(-1)
    acc = float((greedy == tgt).float().mean())
    acc_one_shot = float((wm.prior.logits(h_tf).argmax(-1) == tgt).float().mean())
    res = {}
    if frame_check is not None:
        one = wm.decode(wm.prior.sample(h_tf, gen)).clamp(0, 1).cpu().numpy()  # (B, T-1, C, H, W)
        valid = frame_check(pred.cpu().numpy())  # (B, horizon)
        res = {"valid_one_step": float(frame_check(one).mean()), "valid": float(valid.mean()),
               "valid_per_step": valid.mean(0).tolist(),
               "valid_autoencoder": float(frame_check(recon.cpu().numpy()).mean())}
    rew_pred = out["reward"].cpu().numpy()  # (B, horizon-1)
    rew_true = rewards[:, context:context + horizon - 1].float().numpy()
    term_prob = torch.sigmoid(out["term_logit"]).cpu().numpy()
    ex = slice(0, min(n_examples, B))
    to_img = lambda x: (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 1, 3, 4, 2).cpu().numpy()
    res.update({
        "mse_per_step": mse.mean(0).tolist(), "psnr_per_step": psnr(mse).mean(0).tolist(),
        "mse": float(mse.mean()), "psnr": float(psnr(mse).mean()),
        "mse_autoencoder": float(mse_ae.mean()), "psnr_autoencoder": float(psnr(mse_ae).mean()),
        "mse_copy_last": float(mse_copy.mean()), "psnr_copy_last": float(psnr(mse_copy).mean()),
        "mse_copy_last_per_step": mse_copy.mean(0).tolist(),
        "prior_nll": nll, "token_accuracy": acc, "token_accuracy_one_shot": acc_one_shot,
        "token_perplexity": float(math.exp(nll)), "chance_perplexity": float(wm.K),
        "reward_mae": float(np.abs(rew_pred - rew_true).mean()),
        "examples": {
            "real": to_img(obs[ex, context:context + horizon].float() / 255.0).tolist(),
            "context": to_img(obs[ex, :context].float() / 255.0).tolist(),
            "pred": to_img(pred[ex]).tolist(),
            "mse": mse[ex].tolist(),
            "reward_pred": rew_pred[ex].tolist(), "reward_true": rew_true[ex].tolist(),
            "termination_prob": term_prob[ex].tolist(),
            "termination_true": terms[ex, context:context + horizon - 1].float().numpy().tolist(),
        },
    })
    return res


SCAN_KEYS = ("prior_nll", "token_accuracy", "psnr", "valid_one_step", "valid")


@torch.no_grad()
def decode_steps_scan(wm: WorldModel, test, cfg: Config, steps: tuple, seed_parts=()) -> dict:
    """MaskGIT only: the metrics of :func:`video_prediction` with a draft-only decode of S chunks for each
    S in ``steps`` (S = 1: every token from the all-masked state, factorised like the MLP prior).
    Returns {S: {metric: value}} with the metrics in ``SCAN_KEYS`` that exist."""
    from .priors import decoding

    out = {}
    for S in steps:
        with decoding(wm.prior, draft_steps=int(S), revise_rounds=0):
            vp = video_prediction(wm, *test, cfg.eval_context, cfg.eval_horizon,
                                  torch_gen(cfg.seed, "scan", S, *seed_parts), n_examples=0,
                                  frame_check=frame_check_for(cfg))
        out[int(S)] = {k: vp[k] for k in SCAN_KEYS if k in vp}
    return out


def frame_check_for(cfg: Config):
    """The frame-validity check of ``cfg.env`` (branch:catch), or None."""
    if cfg.env.startswith("branch:"):
        from .envs import catch_frame_valid

        return lambda f: catch_frame_valid(f, cfg.catch_paddle, cfg.catch_scale)
    return None


# --------------------------------------------------------------------------------------------------
# agent in imagination + outer loop
# --------------------------------------------------------------------------------------------------
def agent_features(z_flat: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    return torch.cat([z_flat, h], -1)


def train_agent_step(wm: WorldModel, ac: ActorCritic, replay: Replay, rng, gen, hi=None) -> dict:
    cfg = wm.cfg
    obs, act, _, _ = replay.sample(rng, cfg.imagine_batch_size, cfg.imagine_context, 0, hi)
    policy = lambda z, h: ac.act(agent_features(z, h), gen)
    im = wm.imagine(obs.to(cfg.device), act.to(cfg.device), cfg.horizon, policy=policy, generator=gen)
    feat = agent_features(im["z"].flatten(-2), im["h"])  # (B, H+1, F)
    cont = (im["term_logit"] <= 0).float()
    return ac.update(feat, im["actions"], im["reward"], cont)


class LatentPolicy:
    """Acts in the real env: encodes the last ``context`` frames (posterior argmax), runs the sequence
    model over the previous tokens to get h_{t-1}, and samples a_t from the actor on [z_t, h_{t-1}]
    (STORM's acting). ``reset()`` starts a new episode."""

    def __init__(self, wm: WorldModel, ac: ActorCritic, gen: torch.Generator, context: int):
        self.wm, self.ac, self.gen, self.context = wm, ac, gen, context
        self.reset()

    def reset(self):
        self.obs, self.act = [], []

    @torch.no_grad()
    def __call__(self, obs):
        wm = self.wm
        self.obs = (self.obs + [obs])[-self.context:]
        self.act = self.act[-(len(self.obs) - 1):] if len(self.obs) > 1 else []
        wm.eval()
        o = torch.from_numpy(np.stack(self.obs))[None]  # (1, T, C, H, W)
        z = torch.nn.functional.one_hot(wm.posterior_logits(o).argmax(-1), wm.K).float()  # (1, T, G, K)
        if len(self.act):
            a_prev = torch.as_tensor(np.stack(self.act))[None]  # (1, T-1[, A])
            hs, _ = wm.transformer(wm.mixer(z[:, :-1].flatten(-2), wm.action_input(a_prev)))
            h = hs[:, -1]
        else:
            h = torch.zeros(1, wm.D)
        a = self.ac.act(agent_features(z[:, -1].flatten(-2), h), self.gen)[0].numpy()
        a = a.astype(np.float32) if self.ac.continuous else int(a)
        self.act.append(a)
        return a


def outer_loop(cfg: Config, prior: str, progress: bool = True) -> dict:
    """STORM's training loop at small scale: random warm-up, then alternate acting (the current policy
    on the world model's latent state), world-model updates every ``train_wm_every`` steps and agent
    updates in imagination every ``train_agent_every`` steps."""
    env = make_env(cfg.env, cfg, derive_seed(cfg.seed, "agent_env"))
    obs_shape, action_dim, continuous = env_info(env)
    rng = make_rng(cfg.seed, "outer_loop")
    gen = torch_gen(cfg.seed, "outer_loop")
    act_shape = (action_dim,) if continuous else ()
    replay = Replay(obs_shape, act_shape, np.float32 if continuous else np.int64, cfg.agent_env_steps + 1)
    wm = build_world_model(cfg, obs_shape, action_dim, continuous, prior)
    with seeded_init(cfg.seed, "actor_critic"):
        ac = ActorCritic(cfg.groups * cfg.classes + cfg.d_model, action_dim, continuous, cfg)
    state, returns_random = collect(env, replay, cfg.warmup_steps, rng, seed=cfg.seed,
                                    life_loss_as_termination=cfg.life_loss_as_termination, progress=progress,
                                    desc="warm-up")
    wm_hist = train_world_model(wm, replay, cfg.pretrain_wm_updates, rng, gen, progress=progress,
                                desc="world model pre-training")
    policy = LatentPolicy(wm, ac, gen, cfg.imagine_context)
    returns, ag_hist = [], []
    steps_left = cfg.agent_env_steps - cfg.warmup_steps
    chunk = math.gcd(cfg.train_wm_every, cfg.train_agent_every)
    it = tqdm(total=max(steps_left, 0), desc=f"outer loop ({prior})", disable=not progress, leave=False)
    done_steps = 0
    while done_steps < steps_left:
        n = min(chunk, steps_left - done_steps)
        state, fin = collect(env, replay, n, rng, policy=policy, seed=cfg.seed, state=state,
                             life_loss_as_termination=cfg.life_loss_as_termination)
        returns += fin
        done_steps += n
        it.update(n)
        if done_steps % cfg.train_wm_every == 0:
            wm_hist += train_world_model(wm, replay, 1, rng, gen)
        if done_steps % cfg.train_agent_every == 0:
            ag_hist.append(train_agent_step(wm, ac, replay, rng, gen))
    it.close()
    return {"prior": prior, "episode_returns": returns, "random_episode_returns": returns_random,
            "wm_loss": [m["loss"] for m in wm_hist], "agent": ag_hist}


# --------------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------------
def _summary_curve(xs: list[float], every: int = 10) -> list[float]:
    """Means over consecutive blocks of ``every`` values (for plotting loss curves)."""
    return [float(np.mean(xs[i:i + every])) for i in range(0, len(xs), every)]


def train_agent_in_imagination(wm: WorldModel, replay: Replay, cfg: Config, hi: int | None = None,
                               progress: bool = False) -> dict:
    """Train a fresh actor-critic for ``cfg.agent_updates`` updates purely in the imagination of a
    (fixed) world model, starting from real context windows of ``replay[:hi]``, then act with it in the
    real env (:class:`LatentPolicy`) for ``cfg.agent_eval_episodes`` episodes. The evaluation env's seed
    does not depend on the prior, so different world models face the same env randomness."""
    prior = wm.prior_kind
    env = make_env(cfg.env, cfg, derive_seed(cfg.seed, "agent_eval_env"))
    obs_shape, action_dim, continuous = env_info(env)
    with seeded_init(cfg.seed, "actor_critic", prior):
        ac = ActorCritic(cfg.groups * cfg.classes + cfg.d_model, action_dim, continuous, cfg)
    rng, gen = make_rng(cfg.seed, "agent_batches"), torch_gen(cfg.seed, "agent", prior)
    hist = [train_agent_step(wm, ac, replay, rng, gen, hi)
            for _ in tqdm(range(cfg.agent_updates), desc=f"agent in imagination ({prior})", disable=not progress,
                          leave=False)]
    policy = LatentPolicy(wm, ac, torch_gen(cfg.seed, "agent_act", prior), cfg.imagine_context)
    rep = Replay(obs_shape, (action_dim,) if continuous else (), np.float32 if continuous else np.int64,
                 cfg.agent_eval_episodes * cfg.max_episode_steps + 1)
    env_rng = make_rng(cfg.seed, "agent_eval")
    state, returns = None, []
    while len(returns) < cfg.agent_eval_episodes:
        state, fin = collect(env, rep, 1, env_rng, policy=policy, state=state,
                             life_loss_as_termination=cfg.life_loss_as_termination)
        returns += fin
    return {"returns": returns, "imagined_return": [h["imagined_return"] for h in hist],
            "entropy": [h["entropy"] for h in hist]}


def compare_priors(cfg: Config, progress: bool = True) -> dict:
    """Collect random-policy data once, train one world model per prior on it (same data, same number of
    updates, the same sequence of training windows), and evaluate each on the same held-out windows:
    open-loop video prediction, teacher-forced prior likelihood and token accuracy, and for MaskGIT the
    effect of the number of decoding steps (``cfg.decode_scan``); with ``cfg.agent_updates > 0`` also
    the real-env return of an agent trained in each world model's imagination."""
    bad = [S for S in cfg.decode_scan if not 1 <= int(S) <= cfg.groups]
    if "maskgit" in cfg.priors and bad:
        raise ValueError(f"decode_scan steps {bad} outside [1, groups={cfg.groups}]")
    env = make_env(cfg.env, cfg, derive_seed(cfg.seed, "data_env"))
    obs_shape, action_dim, continuous = env_info(env)
    rng = make_rng(cfg.seed, "data")
    act_shape = (action_dim,) if continuous else ()
    replay = Replay(obs_shape, act_shape, np.float32 if continuous else np.int64, cfg.dataset_steps)
    _, ep_returns = collect(env, replay, cfg.dataset_steps, rng, seed=cfg.seed,
                            life_loss_as_termination=cfg.life_loss_as_termination, progress=progress,
                            desc="random-policy data")
    split = int(round(cfg.dataset_steps * (1 - cfg.test_fraction)))
    L = cfg.eval_context + cfg.eval_horizon
    if split < cfg.batch_length or cfg.dataset_steps - split < L:
        raise ValueError(f"dataset_steps={cfg.dataset_steps} too small for batch_length {cfg.batch_length} and "
                         f"evaluation windows of {L}")
    eval_rng = make_rng(cfg.seed, "eval_windows")
    starts = eval_rng.integers(split, cfg.dataset_steps - L + 1, size=cfg.eval_sequences)
    test = replay.window(starts, L)
    out = {"obs_shape": list(obs_shape), "action_dim": action_dim, "train_steps": split,
           "test_steps": cfg.dataset_steps - split, "random_episode_returns": ep_returns, "priors": {}}
    check = frame_check_for(cfg)
    for prior in cfg.priors:
        wm = build_world_model(cfg, obs_shape, action_dim, continuous, prior)
        t0 = time.perf_counter()
        hist = train_world_model(wm, replay, cfg.wm_updates, make_rng(cfg.seed, "wm_batches"),
                                 torch_gen(cfg.seed, "wm_train", prior), hi=split, progress=progress,
                                 desc=f"world model ({prior})")
        train_s = time.perf_counter() - t0
        vp = video_prediction(wm, *test, cfg.eval_context, cfg.eval_horizon, torch_gen(cfg.seed, "video"),
                              frame_check=check)
        n_params = sum(p.numel() for p in wm.parameters())
        prior_params = sum(p.numel() for p in wm.prior.parameters())
        out["priors"][prior] = {
            "loss_curve": _summary_curve([m["loss"] for m in hist]),
            "recon_curve": _summary_curve([m["recon"] for m in hist]),
            "kl_dyn_curve": _summary_curve([m["kl_dyn"] for m in hist]),
            "first_loss": float(np.mean([m["loss"] for m in hist[:10]])),
            "final_loss": float(np.mean([m["loss"] for m in hist[-10:]])),
            "final_kl_dyn": float(np.mean([m["kl_dyn"] for m in hist[-10:]])),
            "params": n_params, "prior_params": prior_params, "train_seconds": train_s,
            "video": vp,
        }
        if prior == "maskgit" and cfg.decode_scan:
            out["priors"][prior]["decode_scan"] = decode_steps_scan(wm, test, cfg, tuple(cfg.decode_scan))
        if cfg.agent_updates > 0:
            out["priors"][prior]["agent"] = train_agent_in_imagination(wm, replay, cfg, split, progress)
    return out


SUMMARY_KEYS = ("prior_nll", "token_accuracy", "token_accuracy_one_shot", "token_perplexity", "psnr",
                "psnr_last_step", "mse", "valid_one_step", "valid", "reward_mae")


def _seed_summary(comp: dict) -> dict:
    """Scalar metrics of one seed's comparison: {prior: {metric: value}, "baselines": {...}}."""
    out = {}
    for p, r in comp["priors"].items():
        v = r["video"]
        d = {"wm_loss_first": r["first_loss"], "wm_loss_final": r["final_loss"], "psnr_last_step": v["psnr_per_step"][-1]}
        d.update({k: v[k] for k in SUMMARY_KEYS if k in v})
        if "agent" in r:
            d["agent_return"] = float(np.mean(r["agent"]["returns"]))
        for S, m in r.get("decode_scan", {}).items():
            for k, x in m.items():
                d[f"steps{S}_{k}"] = x
        out[p] = d
    v0 = next(iter(comp["priors"].values()))["video"]
    out["baselines"] = {"psnr_copy_last": v0["psnr_copy_last"], "psnr_autoencoder": v0["psnr_autoencoder"],
                        "random_return": float(np.mean(comp["random_episode_returns"]))
                        if comp["random_episode_returns"] else float("nan")}
    if "valid_autoencoder" in v0:
        out["baselines"]["valid_autoencoder"] = v0["valid_autoencoder"]
    return out


def mean_se(values) -> tuple[float, float]:
    """Mean and standard error (sample std / sqrt(n); nan for one value).

    >>> mean_se([1.0, 2.0, 3.0])
    (2.0, 0.5773502691896257)
    """
    x = np.asarray(values, float)
    se = float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan")
    return float(x.mean()), se


def aggregate_seeds(per_seed: list[dict]) -> dict:
    """Mean and standard error over seeds of every scalar in :func:`_seed_summary`, as ``metric`` and
    ``metric_se``; plus paired differences maskgit - mlp (``diff``) when both priors ran."""
    out = {}
    for group in per_seed[0]:
        out[group] = {}
        for k in per_seed[0][group]:
            m, se = mean_se([s[group][k] for s in per_seed])
            out[group][k], out[group][k + "_se"] = m, se
    if "mlp" in per_seed[0] and "maskgit" in per_seed[0]:
        out["diff"] = {}
        for k in per_seed[0]["mlp"]:
            if k in per_seed[0]["maskgit"]:
                m, se = mean_se([s["maskgit"][k] - s["mlp"][k] for s in per_seed])
                out["diff"][k], out["diff"][k + "_se"] = m, se
    out["seeds"] = len(per_seed)
    return out


def run(cfg: Config | None = None, progress: bool = True) -> dict:
    """The notebook's experiment: MLP vs MaskGIT prior on the same data for ``cfg.seeds`` seeds (seed,
    seed + 1, ...), then (optionally) a short STORM outer loop with ``cfg.agent_prior``. Returns plain
    data: ``comparison`` (the first seed's full results, for the figures), ``per_seed`` (scalars of each
    seed) and ``summary`` (means and standard errors over seeds)."""
    cfg = cfg or Config()
    if not cfg.priors:
        raise ValueError("cfg.priors is empty")
    for p in cfg.priors:
        if p not in ("mlp", "maskgit"):
            raise ValueError(f"unknown prior {p!r}: use 'mlp' or 'maskgit'")
    if cfg.seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {cfg.seeds}")
    prev_threads = torch.get_num_threads()
    if cfg.torch_threads > 0:
        torch.set_num_threads(cfg.torch_threads)
    try:
        return _run(cfg, progress)
    finally:
        torch.set_num_threads(prev_threads)


def _run(cfg: Config, progress: bool) -> dict:
    res = {"config": dataclasses.asdict(cfg)}
    per_seed, first = [], None
    for i in range(cfg.seeds):
        comp = compare_priors(dataclasses.replace(cfg, seed=cfg.seed + i), progress)
        per_seed.append(_seed_summary(comp))
        if first is None:
            first = comp
    res["comparison"], res["per_seed"] = first, per_seed
    summary = aggregate_seeds(per_seed)
    if cfg.agent_prior != "none":
        ag = outer_loop(cfg, cfg.agent_prior, progress)
        res["agent"] = ag
        hist = ag["agent"]
        summary["agent"] = {
            "prior": cfg.agent_prior, "updates": len(hist),
            "episodes": len(ag["episode_returns"]),
            "imagined_return_first": float(np.mean([h["imagined_return"] for h in hist[:5]])) if hist else float("nan"),
            "imagined_return_last": float(np.mean([h["imagined_return"] for h in hist[-5:]])) if hist else float("nan"),
        }
    res["summary"] = summary
    return res
