"""Building blocks per synthesis cycle: the built-in set, a CSV loader and validation.

The built-in set is written by this project (not taken from a vendor catalogue): a few simple cores
per cycle, each decorated with one substituent from a short list of common medicinal-chemistry
groups. The three-cycle scheme it serves (reconstruction: the paper does not publish its building
blocks) is

* cycle 1: amino acids (the carboxylic acid is the DNA attachment point, the amine the handle),
* cycle 2: bromo-(hetero)aryl carboxylic acids (amide coupling onto the cycle-1 amine),
* cycle 3: (hetero)aryl boronic acids (Suzuki coupling onto the cycle-2 aryl bromide).

``builtin_blocks()`` reads the shipped ``data/building_blocks.csv``; ``generate_builtin_blocks()``
rebuilds that table from the cores and substituents below (a test checks they agree).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from rdkit import Chem, RDLogger

DATA_DIR = Path(__file__).resolve().parent / "data"
BUILTIN_CSV = DATA_DIR / "building_blocks.csv"

# One substituent per core; "" means hydrogen. Their ring-closure digit is 9 so that it cannot clash
# with a ring the core leaves open where the substituent is inserted. None of them carries a second reactive handle of the
# scheme (no free NH amine, carboxylic acid, bromide, iodide or boronic acid).
SUBSTITUENTS = (
    "", "F", "Cl", "C", "CC", "C(C)C", "C(C)(C)C", "OC", "OCC", "OC(F)F", "C(F)(F)F", "OC(F)(F)F",
    "C#N", "SC", "S(C)(=O)=O", "C(C)=O", "C(=O)OC", "N(C)C", "C9CC9", "c9ccccc9", "N9CCOCC9",
    "[N+](=O)[O-]", "C(=O)N(C)C", "c9ccncc9", "OC9CCCC9", "CO", "n9ccnc9",
)
# Amino-acid side chains for the alpha-amino acid core of cycle 1.
SIDE_CHAINS = (
    "C", "CC", "C(C)C", "CC(C)C", "C(C)CC", "Cc1ccccc1", "Cc1ccc(O)cc1", "Cc1c[nH]c2ccccc12", "CO",
    "C(C)O", "CCSC", "CC(N)=O", "CCC(N)=O", "Cc1cnc[nH]1", "C1CCCCC1", "CC1CCCCC1", "c1ccccc1",
    "Cc1ccc(F)cc1", "Cc1ccc(Cl)cc1", "Cc1cccs1", "Cc1ccco1", "CC#C", "CC=C", "C(C)(C)C", "CCc1ccccc1",
    "Cc1ccc2ccccc2c1", "Cc1ccncc1", "COC", "CSC", "C1CC1",
)
# Cores: a SMILES with one "{R}" slot. Cycle 1 keeps a free NH (the handle) and a carboxylic acid.
CORES = {
    1: (
        "Nc1ccc(C(=O)O)c({R})c1", "Nc1cc({R})cc(C(=O)O)c1", "NCc1ccc(C(=O)O)c({R})c1",
        "NCc1cc({R})cc(C(=O)O)c1", "N1CCC(C(=O)O)CC1", "OC(=O)c1ccc(CN)cc1{R}",
        "NCCc1ccc(C(=O)O)c({R})c1", "N1CCN(c2ccc(C(=O)O)cc2{R})CC1",
    ),
    2: (
        "OC(=O)c1ccc(Br)c({R})c1", "OC(=O)c1cc(Br)cc({R})c1", "OC(=O)Cc1ccc(Br)c({R})c1",
        "OC(=O)c1cc({R})c(Br)s1", "OC(=O)c1ncc(Br)cc1{R}", "OC(=O)c1ccc(Br)cc1{R}",
        "OC(=O)C1CC1c1ccc(Br)cc1{R}", "OC(=O)c1cc(Br)c({R})o1",
    ),
    3: (
        "OB(O)c1ccc({R})cc1", "OB(O)c1cccc({R})c1", "OB(O)c1ccccc1{R}", "OB(O)c1ccc({R})nc1",
        "OB(O)c1cc({R})cs1", "OB(O)c1ccc2cc({R})ccc2c1", "OB(O)c1cnc({R})nc1", "OB(O)c1ccc({R})o1",
    ),
}
ALPHA_AMINO_ACID_CORE = "NC({R})C(=O)O"


@dataclass
class BuildingBlocks:
    """Building blocks per cycle: ``smiles[c]`` and ``ids[c]`` are parallel lists for cycle ``c``
    (0-based). ``invalid`` lists rows that were rejected, each ``(cycle, id, smiles, reason)``."""

    smiles: list[list[str]]
    ids: list[list[str]]
    invalid: list[tuple[int, str, str, str]] = field(default_factory=list)

    @property
    def n_cycles(self) -> int:
        return len(self.smiles)

    @property
    def sizes(self) -> list[int]:
        return [len(s) for s in self.smiles]

    def subset(self, indices: list[list[int]]) -> "BuildingBlocks":
        """The blocks at ``indices[c]`` of each cycle (same order)."""
        if len(indices) != self.n_cycles:
            raise ValueError(f"need one index list per cycle ({self.n_cycles}), got {len(indices)}")
        return BuildingBlocks([[self.smiles[c][i] for i in idx] for c, idx in enumerate(indices)],
                              [[self.ids[c][i] for i in idx] for c, idx in enumerate(indices)],
                              list(self.invalid))


def canonical(smiles: str) -> str | None:
    """Canonical SMILES, or ``None`` if RDKit cannot parse it.

    >>> canonical("C(C)O"), canonical("not a molecule")
    ('CCO', None)
    """
    RDLogger.DisableLog("rdApp.*")
    try:
        mol = Chem.MolFromSmiles(smiles)
    finally:
        RDLogger.EnableLog("rdApp.*")
    return None if mol is None else Chem.MolToSmiles(mol)


def _decorate(core: str, r: str) -> str:
    if r == "":
        return core.replace("({R})", "").replace("{R}", "")
    return core.replace("{R}", r)


def generate_builtin_blocks() -> list[tuple[int, str, str]]:
    """Rebuild the built-in table as ``(cycle, id, canonical smiles)`` rows (cycles 1-based)."""
    rows: list[tuple[int, str, str]] = []
    for cycle in (1, 2, 3):
        seen: set[str] = set()
        cands = []
        if cycle == 1:
            cands += [_decorate(ALPHA_AMINO_ACID_CORE, s) for s in SIDE_CHAINS]
        cands += [_decorate(core, r) for core in CORES[cycle] for r in SUBSTITUENTS]
        for smi in cands:
            can = canonical(smi)
            if can is None:
                raise ValueError(f"built-in block does not parse: {smi}")
            if can in seen:
                continue
            seen.add(can)
            rows.append((cycle, f"c{cycle}_{len(seen) - 1:03d}", can))
    return rows


def write_builtin_csv(path: Path = BUILTIN_CSV) -> Path:
    """Write the generated built-in table to ``path`` (columns cycle,id,smiles)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["cycle", "id", "smiles"])
        w.writerows(generate_builtin_blocks())
    return path


def load_blocks_csv(path_or_text: str | Path, *, n_cycles: int | None = None,
                    smiles_col: str = "smiles", cycle_col: str = "cycle", id_col: str = "id") -> BuildingBlocks:
    """Load building blocks from a CSV with columns ``cycle`` (1-based), ``smiles`` and optional ``id``.

    Rows whose SMILES does not parse, or whose cycle is not an integer in 1..n_cycles, are not used
    and are listed in ``BuildingBlocks.invalid`` with the reason; duplicates within a cycle are
    reported the same way. Raises ``ValueError`` for missing columns or a cycle with no valid block.
    ``path_or_text`` is a file path, or CSV text if it contains a newline.
    """
    text = str(path_or_text)
    if "\n" in text:
        fh = io.StringIO(text)
    else:
        p = Path(text)
        if not p.exists():
            raise FileNotFoundError(f"building-block CSV not found: {p}")
        fh = open(p, newline="")
    with fh:
        reader = csv.DictReader(fh)
        cols = reader.fieldnames or []
        for need in (smiles_col, cycle_col):
            if need not in cols:
                raise ValueError(f"building-block CSV needs a '{need}' column; found {cols}")
        rows = list(reader)
    cycles_seen = []
    for r in rows:
        try:
            cycles_seen.append(int(r[cycle_col]))
        except (TypeError, ValueError):
            pass
    if n_cycles is None:
        n_cycles = max(cycles_seen) if cycles_seen else 0
    if n_cycles < 1:
        raise ValueError("building-block CSV has no row with an integer cycle")
    smiles: list[list[str]] = [[] for _ in range(n_cycles)]
    ids: list[list[str]] = [[] for _ in range(n_cycles)]
    invalid: list[tuple[int, str, str, str]] = []
    seen: list[set[str]] = [set() for _ in range(n_cycles)]
    for i, r in enumerate(rows):
        smi = (r.get(smiles_col) or "").strip()
        bid = (r.get(id_col) or "").strip() or f"row{i}"
        try:
            c = int(r[cycle_col])
        except (TypeError, ValueError):
            invalid.append((-1, bid, smi, f"cycle '{r.get(cycle_col)}' is not an integer"))
            continue
        if not 1 <= c <= n_cycles:
            invalid.append((c, bid, smi, f"cycle {c} outside 1..{n_cycles}"))
            continue
        can = canonical(smi) if smi else None
        if can is None:
            invalid.append((c, bid, smi, "SMILES does not parse"))
            continue
        if can in seen[c - 1]:
            invalid.append((c, bid, smi, "duplicate within its cycle"))
            continue
        seen[c - 1].add(can)
        smiles[c - 1].append(can)
        ids[c - 1].append(bid)
    for c in range(n_cycles):
        if not smiles[c]:
            raise ValueError(f"cycle {c + 1} has no valid building block")
    return BuildingBlocks(smiles, ids, invalid)


def builtin_blocks() -> BuildingBlocks:
    """The built-in three-cycle set shipped in ``data/building_blocks.csv``."""
    return load_blocks_csv(BUILTIN_CSV, n_cycles=3)
