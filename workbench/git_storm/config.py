"""Configuration of the GIT-STORM notebook (small CPU defaults) and the paper-scale presets.

Every choice the papers leave open is a field here and is labelled "reconstruction" in its docstring.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass
class Config:
    # --- experiment -------------------------------------------------------------------------------
    seed: int = 1
    """seed of the experiment (every generator is derived from it)"""
    seeds: int = 3
    """seeds of the prior comparison in `run()`: seed, seed + 1, ..., each with its own data"""
    env: str = "branch:catch"
    """environment spec: `branch:catch` (catch with a randomly drifting ball: a multimodal next frame),
    `minatar:<game>`, `atari:<Game>` (ALE via gymnasium) or `dmc:<domain>-<task>`"""
    priors: tuple = ("mlp", "maskgit")
    """priors to train and compare in `run()`: `mlp` (STORM dynamics head) and/or `maskgit` (GIT-STORM)"""
    device: str = "cpu"
    """torch device"""
    torch_threads: int = 1
    """CPU threads torch may use inside `run()` (restored afterwards; 0 = leave torch's setting). The
    models are small: one thread is as fast uncontended and far faster on a shared CPU"""

    # --- environment --------------------------------------------------------------------------------
    catch_size: int = 5
    """branch:catch frame side (cells)"""
    catch_scale: int = 2
    """branch:catch frames are upsampled by this integer factor (nearest)"""
    catch_paddle: int = 2
    """branch:catch paddle width (cells)"""
    catch_balls: int = 8
    """branch:catch drops per episode (the episode terminates after the last)"""
    catch_drift: tuple = (1 / 3, 1 / 3, 1 / 3)
    """branch:catch probabilities that the falling ball moves left, straight down, right"""
    minatar_scale: int = 1
    """MinAtar frames (10x10 cells) are rendered to RGB and upsampled by this integer factor (nearest)"""
    minatar_sticky: float = 0.1
    """MinAtar sticky-action probability (the MinAtar default)"""
    atari_size: int = 64
    """Atari frame side after resizing (STORM: 64)"""
    atari_frame_skip: int = 4
    """Atari action repeat with max-pooling over the last two frames (STORM: 4)"""
    atari_repeat_action_probability: float = 0.25
    """ALE sticky actions (the ALE v5 default, which STORM's code keeps)"""
    life_loss_as_termination: bool = True
    """Atari: store a lost life as a termination for training (STORM does); the episode goes on"""
    dmc_size: int = 64
    """DeepMind Control pixel side (paper: 64)"""
    dmc_action_repeat: int = 2
    """DeepMind Control action repeat (paper: 2)"""
    dmc_shadows_reflections: bool = True
    """DeepMind Control: render MuJoCo's shadows and reflections (the standard look); False is several
    times faster on a software GL but changes the frames"""
    max_episode_steps: int = 2000
    """time limit on episodes (truncation, not termination)"""

    # --- world model ------------------------------------------------------------------------------
    enc_channels: tuple = (32,)
    """encoder conv channels, one stride-2 conv per entry (STORM: 32, 64, 128, 256 from 64x64 to 4x4;
    the CPU default takes 10x10 MinAtar frames to 5x5 in one stage)"""
    groups: int = 16
    """categorical latent: number of groups (tokens) (STORM: 32)"""
    classes: int = 16
    """categorical latent: classes per group (STORM: 32)"""
    unimix: float = 0.01
    """uniform mixture in the latent and prior distributions (STORM: 1%)"""
    d_model: int = 64
    """sequence-model width (STORM: 512)"""
    n_layers: int = 1
    """sequence-model layers (STORM: 2)"""
    n_heads: int = 4
    """sequence-model attention heads (STORM: 8)"""
    max_len: int = 64
    """longest sequence the learned positional embedding covers (STORM: 64)"""
    dropout: float = 0.0
    """dropout in the sequence model (STORM: 0.1; 0 keeps the small CPU runs deterministic)"""
    seq_ff_mult: int = 2
    """sequence-model feed-forward width as a multiple of d_model (STORM: 2)"""
    seq_ff_activation: str = "relu"
    """sequence-model feed-forward activation (STORM: relu; `gelu` also accepted)"""
    state_mixer: str = "concat"
    """how [z, action] become one token (the GIT-STORM authors' variants): `concat` (STORM's stem on the
    concatenation; the authors' DMC default), `concat+attn` (action queries attend over [z, a] of steps
    <= t, then the stem) or `z+attn` (action queries attend over z of steps <= t). The authors' attention
    was not causal over time; here it is (see workbench.git_storm.world_model)"""
    mixer_heads: int = 2
    """attention heads of the `concat+attn` / `z+attn` mixers (authors: 2)"""
    mixer_attn_dim: int = 0
    """query/key/value width of the attention mixers; 0 = the action size (authors' choice), must be
    divisible by `mixer_heads`"""
    reward_bins: int = 255
    """two-hot bins of the symlog reward and value heads (STORM: 255 on [-20, 20])"""
    free_bits: float = 1.0
    """free nats of the KL losses: max(free_bits, batch mean of the KL summed over groups), as STORM"""
    kl_dyn_scale: float = 0.5
    """weight of the dynamics KL (prior towards stop-grad posterior)"""
    kl_rep_scale: float = 0.1
    """weight of the representation KL (posterior towards stop-grad prior)"""
    wm_lr: float = 1e-3
    """world-model learning rate (STORM: 1e-4 with batch 16 x 64; larger here for short CPU runs)"""
    wm_grad_clip: float = 1000.0
    """world-model gradient-norm clip (STORM: 1000)"""
    batch_size: int = 16
    """world-model batch: sequences (STORM: 16)"""
    batch_length: int = 16
    """world-model batch: steps per sequence (STORM: 64)"""

    # --- MLP prior (STORM) -------------------------------------------------------------------------
    mlp_hidden: int = 64
    """hidden width of the MLP dynamics head"""
    mlp_layers: int = 1
    """hidden layers of the MLP dynamics head (STORM's public code: 0, a single linear layer on h_t; the
    paper presets use 0). Choice: the CPU default keeps one hidden layer so that the MLP prior has a
    capacity closer to the MaskGIT prior's"""

    # --- MaskGIT prior (GIT-STORM) -----------------------------------------------------------------
    mg_embed: int = 32
    """MaskGIT transformer width (GIT-STORM: 128)"""
    mg_layers: int = 2
    """MaskGIT transformer layers (GIT-STORM: 4)"""
    mg_heads: int = 4
    """MaskGIT attention heads (GIT-STORM: 8)"""
    mg_mlp: int = 64
    """MaskGIT feed-forward width (GIT-STORM: 128)"""
    mg_schedule: str = "cosine"
    """training mask schedule: `cosine` (GIT-STORM), `linear` or `square`"""
    draft_steps: int = 8
    """draft-and-revise: chunks of the draft pass, i.e. iterative unmasking steps (GIT-STORM's public
    config: T_draft 1, which draws every token from the all-masked state, factorised like the MLP prior).
    Choice: the CPU default decodes in 8 steps so that each chunk is drawn given the ones before"""
    revise_steps: int = 8
    """draft-and-revise: chunks of each revise pass (GIT-STORM: T_revise 1; with 1 chunk a revise pass
    redraws every token from the all-masked state and discards the draft)"""
    revise_rounds: int = 0
    """draft-and-revise: revise passes (GIT-STORM: M 1). Choice: 0 on CPU, so that the sampler's
    distribution is the one whose likelihood `MaskGITPrior.log_prob` computes exactly"""
    mg_input: str = "next"
    """reconstruction: tokens the MaskGIT sees in training. `next`: masked tokens of z_{t+1} (the target;
    matches draft-and-revise sampling); `current`: masked tokens of z_t as the public GIT-STORM code does"""

    # --- actor-critic ------------------------------------------------------------------------------
    ac_hidden: int = 64
    """actor and critic hidden width (STORM: 512)"""
    ac_layers: int = 2
    """actor and critic hidden layers (STORM: 2)"""
    gamma: float = 0.985
    """discount (STORM: 0.985)"""
    lam: float = 0.95
    """lambda of the lambda-returns (STORM: 0.95)"""
    entropy_coef: float = 3e-4
    """entropy bonus (STORM: 3e-4)"""
    ac_lr: float = 3e-4
    """actor and critic learning rate (STORM: 3e-5)"""
    lambda_bootstrap: str = "current"
    """lambda-returns: `current` mixes in V(s_k) as STORM's code does; `next` is standard TD(lambda) with
    V(s_{k+1}) (DreamerV3). See workbench.git_storm.agent"""
    ret_norm_decay: float = 0.99
    """EMA decay of the 5th/95th return percentiles (DreamerV3/STORM: 0.99)"""
    slow_critic_decay: float = 0.98
    """EMA decay of the slow critic used as a regulariser target (STORM: 0.98)"""
    imagine_batch_size: int = 64
    """imagined trajectories per agent update (STORM: 1024)"""
    imagine_context: int = 8
    """real steps that start each imagined trajectory (STORM: 8)"""
    horizon: int = 16
    """imagination horizon (STORM: 16)"""

    # --- data and loops ----------------------------------------------------------------------------
    dataset_steps: int = 3000
    """random-policy environment steps collected for the world-model comparison"""
    test_fraction: float = 0.2
    """fraction of the collected steps (the last ones) held out for video-prediction metrics"""
    wm_updates: int = 200
    """world-model updates per prior in the comparison"""
    eval_context: int = 8
    """video prediction: real context frames"""
    eval_horizon: int = 12
    """video prediction: open-loop frames predicted from the real actions"""
    eval_sequences: int = 32
    """video prediction: held-out sequences evaluated"""
    decode_scan: tuple = (1, 4, 16)
    """MaskGIT draft-only decoding steps whose metrics are reported (empty: skip the scan)"""
    agent_updates: int = 0
    """comparison: actor-critic updates in each trained world model's imagination, then a real-env
    evaluation (0 skips it)"""
    agent_eval_episodes: int = 4
    """comparison: real-env episodes that evaluate each imagination-trained agent"""
    agent_prior: str = "none"
    """prior of the short STORM outer loop (act, train world model, train agent) after the comparison
    (`none` skips it)"""
    agent_env_steps: int = 1500
    """outer loop: environment steps"""
    warmup_steps: int = 500
    """outer loop: random-policy steps before training starts (STORM: 1024)"""
    train_wm_every: int = 10
    """outer loop: environment steps between world-model updates (STORM: 1, i.e. train ratio 1 update/step)"""
    train_agent_every: int = 10
    """outer loop: environment steps between agent updates (STORM: 1)"""
    pretrain_wm_updates: int = 200
    """outer loop: world-model updates on the warm-up data before the first agent update"""


def atari100k_config(game: str = "Pong", **overrides) -> Config:
    """The STORM / GIT-STORM Atari 100k hyper-parameters (a GPU run: ~100k agent steps = 400k frames):
    STORM's linear prior head (``mlp_layers=0``) and GIT-STORM's public decoding (draft 1 / revise 1 / 1
    round)."""
    cfg = Config(
        env=f"atari:{game}", enc_channels=(32, 64, 128, 256), groups=32, classes=32, d_model=512,
        n_layers=2, n_heads=8, dropout=0.1, mlp_hidden=512, mlp_layers=0, mg_embed=128, mg_layers=4, mg_heads=8,
        mg_mlp=128, draft_steps=1, revise_steps=1, revise_rounds=1, wm_lr=1e-4, batch_size=16, batch_length=64, ac_hidden=512, ac_layers=2, ac_lr=3e-5,
        imagine_batch_size=1024, agent_env_steps=102_000, warmup_steps=1024, train_wm_every=1,
        train_agent_every=1, pretrain_wm_updates=0, dataset_steps=20_000, wm_updates=20_000,
        eval_sequences=256, agent_prior="maskgit", max_episode_steps=108_000, device="cuda")
    return dataclasses.replace(cfg, **overrides)


def dmc_config(task: str = "walker-walk", **overrides) -> Config:
    """DeepMind Control from pixels (64x64, action repeat 2) with the Atari-size model (GPU run)."""
    cfg = atari100k_config(env=f"dmc:{task}", agent_env_steps=500_000, max_episode_steps=1000)
    return dataclasses.replace(cfg, **overrides)


def paper_model_config(**overrides) -> Config:
    """The paper-size world model on 64x64 RGB frames (for benchmarks) with GIT-STORM's public decoding
    (draft 1 / revise 1 / 1 round) and STORM's linear prior head, other fields at defaults."""
    cfg = Config(enc_channels=(32, 64, 128, 256), groups=32, classes=32, d_model=512, n_layers=2,
                 n_heads=8, mlp_hidden=512, mlp_layers=0, mg_embed=128, mg_layers=4, mg_heads=8, mg_mlp=128,
                 draft_steps=1, revise_steps=1, revise_rounds=1, batch_size=16, batch_length=64, ac_hidden=512,
                 imagine_batch_size=1024)
    return dataclasses.replace(cfg, **overrides)
