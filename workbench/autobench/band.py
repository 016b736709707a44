"""Where the LLM agent sits: its strict single-answer accuracy per setting and graph size, beside the
content-free random-guess floor on the same graphs and round budget (to pick CPU tasks in the model's
band, roughly 20-60% correct answers, and to state it in the notebook)."""
from __future__ import annotations

from ..llm import SamplingParams
from ..seeding import derive_seed
from .agents import LLMAgent, RandomGuessAgent
from .config import Config
from .core import _oracles
from .loop import run_episodes, scores

KEYS = ("round_accuracy", "success_rate", "success_se", "strict_rate", "lenient_only_rate", "unparsed_rate",
        "truncated_rate", "rounds_played")


def measure_band(llm, cfg: Config, sizes=(2, 3, 4), graphs: int = 6) -> list[dict]:
    """One row per (setting, size, agent): strict single-answer accuracy (``round_accuracy``: correct
    hypotheses per played round), success, parse and truncation rates, and the LLM's generated tokens.
    Graphs are the seeds after the notebook's own (``graph`` index offset 1000), so the band is measured
    on graphs the notebook does not score."""
    rows = []
    for setting in cfg.settings:
        for n in sizes:
            oracles = [o for o in _oracles(cfg, setting, n, 1000 + graphs)[1000:]]
            agent = LLMAgent(llm, SamplingParams(temperature=cfg.temperature, max_tokens=cfg.max_tokens),
                             structured=cfg.structured, justification_max_chars=cfg.justification_max_chars)
            for name, ag in (("llm", agent), ("random_guess", RandomGuessAgent())):
                eps = run_episodes(ag, oracles, cfg.llm_max_rounds, derive_seed(cfg.seed, "band", name),
                                   accept=cfg.scoring)
                sc = scores(eps)
                rows.append({"setting": setting, "n": n, "agent": name, **{k: sc[k] for k in KEYS},
                             **({"completion_tokens": agent.completion_tokens} if name == "llm" else {})})
    return rows
