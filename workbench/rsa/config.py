"""Configuration of an RSA run (small CPU defaults, those of the notebook; the full-scale set is in the
notebook). The default task is one-digit additions, where the embedded model's strict single-sample
accuracy with structured outputs is in the 20-60% band (measured: see the notebook)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Config:
    seed: int = 1
    """seed of the experiment (subset draws and every request's sampling seed derive from it)"""
    backend: str = "default"
    """LLM backend spec (workbench.llm): default | transformers:<dir> | vllm:<model> | openai:<url>#<model> | scripted"""
    task: str = "rg:basic_arithmetic"
    """rg:<name>[,<name>...] | rg:games | rg:cognition | hf:aime25 | hf:hmmt25 | hf:gsm8k | hf:math | jsonl:<path> |
    lcb:<release>[:<start>[:<end>]] (LiveCodeBench, sandboxed execution) | codejsonl:<path>"""
    task_config: dict = field(default_factory=dict)
    """keyword arguments for the Reasoning Gym generator(s); empty = the easy setting in tasks.EASY if any"""
    n_problems: int = 12
    """problems per task (Reasoning Gym: generated; datasets: the first n; 0 = all)"""
    task_seed: int = 0
    """seed of the Reasoning Gym generators"""
    population: int = 4
    """N: candidates per problem in the population"""
    subset_size: int = 2
    """K: candidates aggregated into each new candidate (K=1 is self-refinement)"""
    steps: int = 3
    """T: number of generations, counting the first one (cost N*T generations per problem)"""
    k1_parent: str = "uniform"
    """for K=1: 'uniform' draws the refined candidate like any subset; 'self' refines the slot's own candidate (reconstruction)"""
    temperature: float = 0.7
    """sampling temperature (the paper uses 1.0)"""
    top_p: float = 1.0
    """nucleus sampling mass"""
    max_tokens: int = 48
    """max new tokens per generation (the paper uses 8192)"""
    baselines: tuple = ("majority_vote", "best_of_n_verify", "self_refine")
    """budget-matched baselines to run (any of the three)"""
    verify_max_tokens: int = 8
    """max new tokens of a self-verification verdict"""
    structured: str = "auto"
    """structured outputs: on | off | auto (= on for the embedded model, backend 'default'). On: an
    <answer> task's completions are reason-then-answer (free text up to max_reasoning_chars, then
    <answer> + an answer of the expected shape + </answer>) and verdicts are exactly True or False
    (reconstruction: the paper's models follow the format unaided)"""
    reasoning: str = "calculation"
    """with structured outputs: the reasoning before the <answer> tag: free (any text without '<') |
    calculation (the calculation written out, 'expression =', whose result is the tagged answer:
    '4 + 2 = <answer>6</answer>'; reconstruction for arithmetic at CPU scale) | a custom regex without '<'"""
    max_reasoning_chars: int = 16
    """with structured outputs: the most characters of reasoning (free) or of the expression (calculation)"""
    answer_pattern: str = ""
    """with structured outputs: regex of the answer inside the tags ('' = an integer when every reference
    answer is one, else one line without '<')"""
    k_sweep: tuple = ()
    """extra K values to run RSA with (same N, T, seed); the main K is always included"""
    correct_threshold: float = 1.0
    """a candidate counts as correct when its task score is >= this"""
    templates: dict = field(default_factory=dict)
    """prompt template overrides: name (generate|aggregate|candidate|refine|verify) -> text"""
    checkpoint_dir: str = ""
    """directory for one JSON checkpoint per step ('' = no checkpoints)"""
    resume: bool = False
    """continue from the checkpoints in checkpoint_dir (same seed gives the same result)"""

    def __post_init__(self):
        if self.population < 1:
            raise ValueError(f"population (N) must be >= 1, got {self.population}")
        if self.steps < 1:
            raise ValueError(f"steps (T) must be >= 1, got {self.steps}")
        for k in (self.subset_size, *self.k_sweep):
            if not 1 <= int(k) <= self.population:
                raise ValueError(f"subset size K must satisfy 1 <= K <= N={self.population}, got {k}")
        if self.k1_parent not in ("uniform", "self"):
            raise ValueError(f"k1_parent must be 'uniform' or 'self', got {self.k1_parent!r}")
        unknown = set(self.baselines) - {"majority_vote", "best_of_n_verify", "self_refine"}
        if unknown:
            raise ValueError(f"unknown baseline(s) {sorted(unknown)}; choose from majority_vote, best_of_n_verify, self_refine")
        if self.resume and not self.checkpoint_dir:
            raise ValueError("resume=True needs checkpoint_dir")
        if self.structured not in ("auto", "on", "off"):
            raise ValueError(f"structured must be 'auto', 'on' or 'off', got {self.structured!r}")
        if self.max_reasoning_chars < 0:
            raise ValueError(f"max_reasoning_chars must be >= 0, got {self.max_reasoning_chars}")
        self.baselines = tuple(self.baselines)
        self.k_sweep = tuple(int(k) for k in self.k_sweep)
