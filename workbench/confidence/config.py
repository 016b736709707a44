"""Configuration of the embodied-confidence runs (CPU defaults: embedded model, 4 find tasks x 2 worlds x up
to 5 steps, Vanilla vs CoT, structured outputs on; execution policies are off at the CPU default, for time)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .policies import ELICITATION, EXECUTION

OBSERVATIONS = ("text", "text+image")
STRUCTURED = ("auto", "on", "off")
ACTION_OUTCOMES = ("progress", "task")
ENVIRONMENTS = ("crafter", "minedojo")


@dataclass
class Config:
    seed: int = 1
    """seed of the experiment (worlds, questions, per-request LLM seeds)"""
    backend: str = "default"
    """LLM spec for workbench.llm.load_llm (default = embedded SmolLM2-135M-Instruct)"""
    tasks: tuple = ("find_tree", "find_water", "find_stone", "find_sand")
    """task ids from workbench.confidence.tasks.TASKS (MINEDOJO_TASKS with environment="minedojo"), or "all"
    (30 Crafter tasks, 10 MineDojo ones)"""
    worlds_per_task: int = 2
    """independent worlds (seeds) per task: each world runs every policy combination once"""
    elicitation: tuple = ("vanilla", "cot")
    """elicitation policies run alone (vanilla, self_intervention, cot, plan_solve, top_k; all five at full scale)"""
    execution: tuple = ()
    """execution policies (action_sampling, scenario_reinterpretation, hypothetical); none at the CPU default"""
    execution_on: tuple = ("vanilla",)
    """elicitation policies combined with each execution policy (all five for the full grid)"""
    k_samples: int = 3
    """prompts/samples per stage for an execution policy (Xiong et al. use 5)"""
    aggregation: str = "consistency"
    """how samples become one confidence: consistency or avg_conf (Xiong et al.)"""
    top_k: int = 2
    """guesses asked for by the top_k policy"""
    max_steps: int = 5
    """agent steps per episode (capped by each task's budget; an episode also ends when its task succeeds)"""
    temperature: float = 0.7
    """sampling temperature of every call"""
    top_p: float = 0.95
    """nucleus mass"""
    max_tokens: int = 0
    """generated tokens per completion; 0 = auto: reasoning_chars // 2 + 32 for the reasoning policies,
    32 for the others (enough for the answer lines of any skill; Top-K adds 16 per guess)"""
    structured: str = "auto"
    """constrain every completion to the asked format (reasoning, Answer: <option>, Confidence: <0-100>%):
    on, off, or auto = on for every backend but scripted (whose canned texts then need not match)"""
    reasoning_chars: int = 60
    """characters of free reasoning (one line) before the constrained answer, for self_intervention, cot and
    plan_solve; vanilla and top_k answer at once (structured mode only; reconstruction)"""
    action_outcome: str = "progress"
    """what counts as action success, decided by the environment alone: progress (the task is done, or the
    nearest task target got closer / the target item count rose) or task (the step completed the task)"""
    n_boot: int = 200
    """bootstrap resamples (over graded steps) for the standard errors of ECE and AUROC"""
    scene_format: str = "grid"
    """scene text: grid (ASCII map) or list (things with offsets) -- reconstruction"""
    question_kinds: tuple = ("near", "direction")
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
    bins_closed: str = "left"
    """ECE bin edges: left = [a, b) as netcal's ECE(10) in Xiong et al.'s code; right = (a, b] (scikit-learn)"""
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
        for name in ("k_samples", "top_k", "max_steps", "skill_moves", "n_bins", "worlds_per_task"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an int >= 1, got {getattr(self, name)!r}")
        for name in ("max_tokens", "reasoning_chars", "n_boot"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be an int >= 0, got {getattr(self, name)!r}")
        if self.structured not in STRUCTURED:
            raise ValueError(f"structured must be one of {STRUCTURED}, got {self.structured!r}")
        if self.action_outcome not in ACTION_OUTCOMES:
            raise ValueError(f"action_outcome must be one of {ACTION_OUTCOMES}, got {self.action_outcome!r}")
        if self.bins_closed not in ("left", "right"):
            raise ValueError(f"bins_closed must be 'left' ([a, b), netcal) or 'right' ((a, b]), got {self.bins_closed!r}")
        if self.observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {OBSERVATIONS}, got {self.observation!r}")
        if not isinstance(self.image_size, int) or self.image_size < 0:
            raise ValueError(f"image_size must be an int >= 0 (0 = native frame), got {self.image_size!r}")
        if not self.question_kinds or not self.question_targets:
            raise ValueError("question_kinds and question_targets must be non-empty")

    def uses_structure(self, llm) -> bool:
        """Whether completions are constrained: ``structured`` on, or auto and the backend is not scripted."""
        if self.structured == "auto":
            return not str(getattr(llm, "spec", self.backend)).startswith("scripted")
        return self.structured == "on"

    def tokens_for(self, policy: str) -> int:
        """max_tokens of one completion of ``policy`` (the auto rule when ``max_tokens`` is 0)."""
        from .policies import REASONING_POLICIES

        if self.max_tokens:
            return self.max_tokens
        base = 32 + (16 * (self.top_k - 1) if policy == "top_k" else 0)
        return base + (self.reasoning_chars // 2 if policy in REASONING_POLICIES else 0)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
