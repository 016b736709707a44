"""Configuration of the MATH^2 pipeline (Shah et al., arXiv 2407.21009).

Fields marked "reconstruction" are choices the paper does not pin down; they are settings so a user
can change them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

CLUSTERERS = ("tfidf", "embedding", "llm")
CLUSTER_TEXTS = ("label", "label+question")
GOLDS = ("verified", "majority")


@dataclass
class Config:
    seed: int = 1
    """seed of the experiment (pair sampling and every per-request LLM seed derive from it)"""
    backend: str = "default"
    """LLM spec for every pipeline stage (e.g. default, vllm:Qwen/Qwen3-4B-Instruct-2507, openai:<url>#<model>)"""
    seed_source: str = "builtin"
    """seed problems: builtin | jsonl:<path> | math | math:<subject> | gsm8k (the last two need `datasets`)"""
    n_seed_problems: int = 12
    """how many seed problems to take (0 = all); picked at random with the seed when fewer than available"""

    # --- structured outputs and parsing
    structured: bool = True
    """decode every stage under a structure (workbench.llm.structure): labels as ``SKILL: <words>`` then one
    name of the extracted skill list, verdicts as reasoning + <answer>Yes|No</answer>, answers as reasoning +
    <answer>number</answer>, generation as # QUESTION / # SOLUTION / Computation: ... = \\boxed{}. On by
    default (embedded model, transformers, vLLM and vLLM servers enforce it); off = free text, the paper's
    formats parsed strictly, fallbacks counted as lenient"""
    lenient_parsing: bool = False
    """let decisions use values only a lenient fallback could read (off: strict values only; lenient shares are
    always reported beside)"""
    label_from_skill_list: bool = True
    """after clustering, each problem's coarse skill is the model's choice from the extracted skill list
    (constrained to it under ``structured``); off = the coarse skill its free label was clustered into"""
    verdict_reasoning_chars: int = 160
    """reasoning bound (characters) before a Yes/No verdict (reconstruction). Token budgets of the structured
    stages are at least the character bound plus the answer's tokens, so a completion cannot be cut before
    its answer (a token holds at least one character; a run of digits is one token per digit)"""
    answer_reasoning_chars: int = 60
    """reasoning bound (characters) before a numeric answer in the attempt, final-solution and evaluation
    stages (reconstruction)"""
    question_max_chars: int = 200
    """longest generated question (characters) under structure"""
    solution_max_chars: int = 100
    """longest brief solution before the Computation line (characters) under structure"""

    # --- skill extraction
    label_max_tokens: int = 16
    """token budget of one skill label"""
    assign_max_tokens: int = 16
    """token budget of one skill choice from the extracted list"""
    clusterer: str = "tfidf"
    """how fine-grained labels become coarse skills: tfidf | embedding (all-MiniLM-L6-v2) | llm (the paper's way)"""
    cluster_text: str = "label"
    """what is clustered: the fine label (paper) or 'label+question' (reconstruction: helps when labels are poor)"""
    n_coarse_skills: int = 6
    """number of coarse skills (the paper has ~114 on MATH; 33 on the public algebra+prealgebra subset)"""
    n_exemplars: int = 3
    """exemplar Q/A pairs per skill shown to the generator and the validator (paper: 3)"""

    # --- pipeline
    n_pairs: int = 4
    """skill pairs sampled (uniformly, distinct pairs, without replacement)"""
    temperature: float = 0.7
    """sampling temperature of every generating stage (reconstruction: the paper gives none)"""
    top_p: float = 0.95
    """nucleus mass of every stage (reconstruction)"""
    pair_max_tokens: int = 176
    """token budget of the skill-pair check"""
    reject_unreadable_pairs: bool = False
    """drop a pair whose similarity verdict cannot be read (reconstruction: by default only an explicit
    'too similar' rejects, since the stage exists to catch similar pairs; an unreadable verdict is its own
    category, never 'too similar')"""
    generation_max_tokens: int = 192
    """token budget of question generation (question + brief solution)"""
    n_generation_examples: int = 1
    """worked generation turns put before the real request (multi-turn exemplars; 0 = none)"""
    attempt_max_tokens: int = 76
    """token budget of the flaw-seeking attempted solution"""
    n_validation_votes: int = 3
    """validator samples per question (reconstruction: 3); a question passes when more readable votes say Yes
    than No; unreadable votes are their own category, never No"""
    min_readable_votes: int = 1
    """fewest readable validator votes for a decision; below it the question is dropped as 'unreadable'
    (counted apart from 'rejected')"""
    validation_max_tokens: int = 176
    """token budget of one validator verdict"""
    n_final_solutions: int = 4
    """final-solution samples (paper: 4); the majority answer becomes the reference answer"""
    final_max_tokens: int = 76
    """token budget of one final solution"""
    final_temperature: float | None = 0.3
    """sampling temperature of the final-solution samples (None = ``temperature``). Reconstruction: at 0.7 the
    embedded model's 4 samples all disagreed on every question, so none survived; 0.3 keeps them samples
    (not one greedy answer four times) while letting a stable answer win"""
    drop_ties: bool = True
    """drop a question whose top answers tie (reconstruction; the paper drops 'all disagree')"""

    # --- evaluation
    eval_max_tokens: int = 76
    """token budget of one evaluation answer (greedy)"""
    eval_backends: tuple[str, ...] = ()
    """extra LLM specs evaluated on seed vs generated questions (square-law points); main backend always included"""
    eval_include_dropped: bool = False
    """also evaluate questions that failed validation but got a majority answer (never the default)"""
    gold: str = "verified"
    """reference answer of a generated question in evaluation: 'verified' (the generator's answer, only where
    math-verify confirms its Computation line on the question's numbers) | 'majority' (the final-solution
    majority: the same model's vote, NOT a valid gold for the square law; shown only for comparison)"""
    verify_numbers_from_question: bool = True
    """a verified Computation line may use only numbers stated in the question"""

    def __post_init__(self):
        if self.clusterer not in CLUSTERERS:
            raise ValueError(f"clusterer must be one of {CLUSTERERS}, got {self.clusterer!r}")
        if self.cluster_text not in CLUSTER_TEXTS:
            raise ValueError(f"cluster_text must be one of {CLUSTER_TEXTS}, got {self.cluster_text!r}")
        for name in ("n_coarse_skills", "n_exemplars", "n_validation_votes", "n_final_solutions"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_coarse_skills < 2:
            raise ValueError("n_coarse_skills must be >= 2 (a pair needs two skills)")
        if self.n_pairs < 0 or self.n_seed_problems < 0 or self.n_generation_examples < 0:
            raise ValueError("n_pairs, n_seed_problems and n_generation_examples must be >= 0")
        if not 0 <= self.temperature:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.final_temperature is not None and self.final_temperature < 0:
            raise ValueError(f"final_temperature must be >= 0 or None, got {self.final_temperature}")
        if self.gold not in GOLDS:
            raise ValueError(f"gold must be one of {GOLDS}, got {self.gold!r}")
        if self.min_readable_votes < 1 or self.min_readable_votes > self.n_validation_votes:
            raise ValueError(f"min_readable_votes must be in 1..n_validation_votes ({self.n_validation_votes}), "
                             f"got {self.min_readable_votes}")
        for name in ("verdict_reasoning_chars", "answer_reasoning_chars", "solution_max_chars"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.question_max_chars < 20:
            raise ValueError(f"question_max_chars must be >= 20 (a question needs room), got {self.question_max_chars}")
        self.eval_backends = tuple(self.eval_backends)
