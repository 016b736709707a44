"""Configuration of the embodied-confidence runs (CPU defaults: embedded model, 3 easy tasks)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .policies import ELICITATION, EXECUTION

OBSERVATIONS = ("text", "text+image")
ENVIRONMENTS = ("crafter", "minedojo")


@dataclass
class Config:
    seed: int = 1
    """seed of the experiment (worlds, questions, per-request LLM seeds)"""
    backend: str = "default"
    """LLM spec for workbench.llm.load_llm (default = embedded SmolLM2-135M-Instruct)"""
    tasks: tuple = ("find_tree", "find_water")
    """task ids from workbench.confidence.tasks.TASKS (MINEDOJO_TASKS with environment="minedojo"), or "all"
    (30 Crafter tasks, 10 MineDojo ones)"""
    elicitation: tuple = ELICITATION
    """elicitation policies run alone (vanilla, self_intervention, cot, plan_solve, top_k)"""
    execution: tuple = ("action_sampling",)
    """execution policies (action_sampling, scenario_reinterpretation, hypothetical)"""
    execution_on: tuple = ("vanilla",)
    """elicitation policies combined with each execution policy (all five for the full grid)"""
    k_samples: int = 3
    """prompts/samples per stage for an execution policy (Xiong et al. use 5)"""
    aggregation: str = "consistency"
    """how samples become one confidence: consistency or avg_conf (Xiong et al.)"""
    top_k: int = 2
    """guesses asked for by the top_k policy"""
    max_steps: int = 2
    """agent steps per episode (capped by each task's budget)"""
    temperature: float = 0.7
    """sampling temperature of every call"""
    top_p: float = 0.95
    """nucleus mass"""
    max_tokens: int = 40
    """generated tokens per completion"""
    scene_format: str = "grid"
    """scene text: grid (ASCII map) or list (things with offsets) -- reconstruction"""
    question_kinds: tuple = ("near", "count", "direction")
    """perception question kinds, cycled by step"""
    question_targets: tuple = ("tree", "water", "stone", "grass", "sand")
    """things perception questions ask about (drawn per task and step)"""
    near_radius: int = 3
    """radius (tiles, Chebyshev) of the near questions"""
    skill_moves: int = 4
    """primitive moves per move-toward / explore skill"""
    n_bins: int = 10
    """ECE bins"""
    ece_strategy: str = "uniform"
    """ECE bins: uniform (equal width, as Xiong et al.) or quantile (equal mass)"""
    pr_convention: str = "xiong"
    """PR-P/PR-N positive class: xiong (PR-P correct as positives) or swap"""
    frame_scale: int = 2
    """upscaling of the 64x64 frames stored in traces"""
    observation: str = "text"
    """what the agent observes: text (scene rendering) or text+image (plus the current frame attached to
    every perception and action prompt; needs a vision backend, vllm: or openai: with a VLM)"""
    image_size: int = 256
    """side in pixels of the attached frame: Crafter re-renders its view at this size; other
    environments' frames (MineDojo rgb) are resized, longest side, aspect kept; 0 = native frame"""

    environment: str = "crafter"
    """world: crafter (offline default) or minedojo (real Minecraft; needs the MineDojo install, Java 8,
    xvfb and internet on the first reset; task ids from workbench.confidence.tasks.MINEDOJO_TASKS)"""
    minedojo_image_size: tuple = (160, 256)
    """MineDojo rgb frame (height, width) asked of minedojo.make"""
    minedojo_voxel_radius: int = 4
    """MineDojo voxels: blocks each side of the player (the perception grid is (2r+1) x (2r+1))"""
    minedojo_ticks_per_tile: int = 5
    """MineDojo ticks of walking forward per one-tile move (reconstruction)"""
    minedojo_attack_ticks: int = 20
    """MineDojo ticks of holding attack per interact (reconstruction)"""
    minedojo_question_targets: tuple = ("log", "water", "stone", "grass", "sand", "dirt")
    """block names perception questions ask about on MineDojo (question_targets is Crafter's)"""

    def validate(self) -> None:
        if self.environment not in ENVIRONMENTS:
            raise ValueError(f"environment must be one of {ENVIRONMENTS}, got {self.environment!r}")
        size = tuple(self.minedojo_image_size)
        if len(size) != 2 or not all(isinstance(v, int) and v >= 1 for v in size):
            raise ValueError(f"minedojo_image_size must be (height, width) ints >= 1, got {self.minedojo_image_size!r}")
        for name in ("minedojo_voxel_radius", "minedojo_ticks_per_tile", "minedojo_attack_ticks"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an int >= 1, got {getattr(self, name)!r}")
        if not self.minedojo_question_targets:
            raise ValueError("minedojo_question_targets must be non-empty")
        bad = [e for e in self.elicitation + self.execution_on if e not in ELICITATION]
        if bad:
            raise ValueError(f"unknown elicitation policies {bad}; known: {ELICITATION}")
        bad = [x for x in self.execution if x not in EXECUTION]
        if bad:
            raise ValueError(f"unknown execution policies {bad}; known: {EXECUTION}")
        if self.aggregation not in ("consistency", "avg_conf"):
            raise ValueError(f"aggregation must be consistency or avg_conf, got {self.aggregation!r}")
        for name in ("k_samples", "top_k", "max_steps", "max_tokens", "skill_moves", "n_bins"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {OBSERVATIONS}, got {self.observation!r}")
        if not isinstance(self.image_size, int) or self.image_size < 0:
            raise ValueError(f"image_size must be an int >= 0 (0 = native frame), got {self.image_size!r}")
        if not self.question_kinds or not self.question_targets:
            raise ValueError("question_kinds and question_targets must be non-empty")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
