"""Reaction templates and library enumeration with RDKit.

A synthesis scheme is one reaction SMARTS per step after the first cycle: step ``i`` (0-based)
joins the intermediate built from cycles ``0..i`` (reactant 0) with a block of cycle ``i + 1``
(reactant 1). The default scheme (reconstruction, matching the built-in blocks) is amide coupling
then Suzuki coupling. When a template gives several distinct products (a block with two matching
sites) the lexicographically smallest canonical SMILES is kept and the tuple is counted as
``ambiguous``; a tuple with no product is a ``failure`` with the step and reason recorded.

:class:`LibraryEnumerator` memoises intermediates (prefix tuples), so enumerating a whole
``k1 x k2 x k3`` library runs the first reaction ``k1 * k2`` times, not ``k1 * k2 * k3`` times.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from rdkit import Chem, RDLogger
from rdkit.Chem import rdChemReactions

# Amine: N with at least one H, not an amide / sulfonamide / imine / cation / nitrile N.
AMIDE_COUPLING = ("[N;!H0;!$(N-[C,S]=[O,S,N]);!$(N=*);!$([N+]);!$(N#*);!$(N-a=,:[n]):3]"
                  ".[C:1](=[O:2])[OX2H1]>>[C:1](=[O:2])[N:3]")
SUZUKI = "[c:1][Br].[c:2][BX3]([OX2H1])[OX2H1]>>[c:1]-[c:2]"
DEFAULT_SCHEME = (AMIDE_COUPLING, SUZUKI)


@dataclass
class EnumerationReport:
    """Counts of an enumeration: ``failures`` maps block-index tuples to ``(step, reason)``."""

    n_products: int = 0
    n_ambiguous: int = 0
    failures: dict[tuple[int, ...], tuple[int, str]] = field(default_factory=dict)


class LibraryEnumerator:
    """Enumerate products of building-block tuples under a reaction scheme.

    Args:
        block_smiles: ``block_smiles[c][i]`` is block ``i`` of cycle ``c``.
        scheme: one reaction SMARTS per step, ``len(scheme) == n_cycles - 1``.
        cache: keep intermediates and products in memory (``False`` recomputes every call; the
            benchmark's uncached baseline).
    """

    def __init__(self, block_smiles: list[list[str]], scheme=DEFAULT_SCHEME, *, cache: bool = True):
        if len(scheme) != len(block_smiles) - 1:
            raise ValueError(f"a scheme for {len(block_smiles)} cycles needs {len(block_smiles) - 1} "
                             f"reaction templates, got {len(scheme)}")
        self.block_smiles = block_smiles
        self.blocks = []
        for c, cyc in enumerate(block_smiles):
            mols = []
            for i, s in enumerate(cyc):
                m = Chem.MolFromSmiles(s)
                if m is None:
                    raise ValueError(f"block {i} of cycle {c + 1} does not parse: {s!r}")
                mols.append(m)
            self.blocks.append(mols)
        self.reactions = []
        for i, sma in enumerate(scheme):
            rxn = rdChemReactions.ReactionFromSmarts(sma)
            if rxn.GetNumReactantTemplates() != 2:
                raise ValueError(f"template {i} must have two reactants (intermediate, block): {sma}")
            rxn.Initialize()
            self.reactions.append(rxn)
        self.use_cache = cache
        self._cache: dict[tuple[int, ...], tuple[str | None, str, bool]] = {}
        self.report = EnumerationReport()

    @property
    def n_cycles(self) -> int:
        return len(self.blocks)

    def _react(self, step: int, inter: Chem.Mol, block: Chem.Mol) -> tuple[str | None, str, bool]:
        RDLogger.DisableLog("rdApp.*")
        try:
            outs = self.reactions[step].RunReactants((inter, block))
            prods = set()
            for tup in outs:
                p = tup[0]
                try:
                    Chem.SanitizeMol(p)
                except (ValueError, RuntimeError):
                    continue
                prods.add(Chem.MolToSmiles(p))
        finally:
            RDLogger.EnableLog("rdApp.*")
        if not prods:
            return None, ("no match" if not outs else "products fail sanitization"), False
        return min(prods), "", len(prods) > 1

    def _prefix(self, tup: tuple[int, ...]) -> tuple[str | None, str, bool]:
        """(smiles or None, failure reason, ambiguous) for the intermediate of a prefix tuple."""
        if self.use_cache and tup in self._cache:
            return self._cache[tup]
        if len(tup) == 1:
            out = (self.block_smiles[0][tup[0]], "", False)
        else:
            prev, reason, amb = self._prefix(tup[:-1])
            if prev is None:
                out = (None, reason, amb)
            else:
                step = len(tup) - 2
                smi, why, amb2 = self._react(step, Chem.MolFromSmiles(prev), self.blocks[len(tup) - 1][tup[-1]])
                out = (smi, f"step {step + 1}: {why}" if smi is None else "", amb or amb2)
        if self.use_cache:
            self._cache[tup] = out
        return out

    def product(self, tup: tuple[int, ...]) -> str | None:
        """Canonical SMILES of the product of one block tuple (one index per cycle), or ``None``."""
        if len(tup) != self.n_cycles:
            raise ValueError(f"need one block index per cycle ({self.n_cycles}), got {tup}")
        for c, i in enumerate(tup):
            if not 0 <= i < len(self.blocks[c]):
                raise IndexError(f"block {i} out of range for cycle {c + 1} ({len(self.blocks[c])} blocks)")
        smi, reason, amb = self._prefix(tuple(int(i) for i in tup))
        if smi is None:
            self.report.failures[tuple(tup)] = (int(reason.split(":")[0].split()[1]) if reason else -1, reason)
        else:
            self.report.n_products += 1
            self.report.n_ambiguous += int(amb)
        return smi

    def enumerate(self, selection: list[list[int]]) -> dict[tuple[int, ...], str | None]:
        """All products of a library: ``selection[c]`` lists the chosen blocks of cycle ``c``."""
        return {t: self.product(t) for t in itertools.product(*selection)}
