"""MATH^2: AI-assisted generation of difficult math questions (Shah et al., arXiv 2407.21009).

Skill extraction (LLM labels -> coarse skills -> skill repository), the five-stage skill-pair
question pipeline with a full audit trail, an append-only annotation store for the human step,
JSONL export with provenance, and evaluation with the square-law fit. Entry point: :func:`run`.
"""
from .config import Config
from .core import run
from .data import load_builtin, load_gsm8k, load_jsonl, load_math, load_seed_problems
from .evaluate import PAPER_TABLE, evaluate, fit_square_law
from .pipeline import majority_answer, run_pipeline, sample_pairs
from .skills import build_repository, cluster_skills, label_skills, load_repository, save_repository
from .store import AnnotationStore

__all__ = ["Config", "run", "load_builtin", "load_gsm8k", "load_jsonl", "load_math", "load_seed_problems",
           "PAPER_TABLE", "evaluate", "fit_square_law", "majority_answer", "run_pipeline", "sample_pairs",
           "build_repository", "cluster_skills", "label_skills", "load_repository", "save_repository",
           "AnnotationStore"]
