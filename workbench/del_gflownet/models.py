"""PPI-modulation classifiers: features, labels (user data or named proxies), scaffold split, models.

* Features: ECFP4 bits (Morgan radius 2) and a small set of RDKit descriptors. Every input of the
  proxy label (QEPPI's seven properties and the Rule of Four's four) is among those descriptors, so
  with proxy labels the classifiers default to ECFP4 only (``features="ecfp"``): the feature set
  then shares no input with the label function (:func:`label_feature_overlap`), and a classifier
  has to learn the label from structure, as the GIN does from atoms and bonds.
* Labels: a user's labelled CSV (``smiles`` + ``label`` columns, e.g. an iPPI-DB export with
  modulators = 1 and decoys = 0) when given. Offline, the default labels are **proxies**, not
  measured PPI activity: ``proxy_qeppi_ro4`` = 1 when the QEPPI score (PyPI ``qeppi``, a
  PPI-likeness estimate) is at least ``qeppi_threshold`` and at least ``ro4_min`` of the four
  Rule-of-Four criteria (MW > 400, AlogP > 4, rings > 4, H-bond acceptors > 4) hold. The proxy's
  two thresholds are reconstruction choices (config fields).
* Split: Bemis-Murcko scaffold split; no scaffold is in both train and test.
* Models, as compared in the paper: random forest (scikit-learn), an MLP (scikit-learn) and a small
  GIN graph network (torch_geometric). The paper's MolFormer and pretrained GNNs are not included.
* Metrics: ROC-AUC and PR-AUC (average precision) on the scaffold-split test set.
"""
from __future__ import annotations

import numpy as np
import torch
from rdkit import Chem, DataStructs, RDLogger
from rdkit.Chem import Crippen, Descriptors, rdFingerprintGenerator, rdMolDescriptors
from rdkit.Chem.Scaffolds import MurckoScaffold
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from workbench.seeding import derive_seed, make_rng

DESCRIPTOR_NAMES = ("MolWt", "MolLogP", "TPSA", "NumHBA", "NumHBD", "NumRings", "NumAromaticRings",
                    "NumRotatableBonds", "FractionCSP3", "HeavyAtoms")
MODEL_NAMES = ("rf", "mlp", "gnn")


def to_mol(smiles: str) -> Chem.Mol:
    RDLogger.DisableLog("rdApp.*")
    try:
        m = Chem.MolFromSmiles(smiles)
    finally:
        RDLogger.EnableLog("rdApp.*")
    if m is None:
        raise ValueError(f"SMILES does not parse: {smiles!r}")
    return m


_FPGEN: dict[tuple[int, int], object] = {}


def _fpgen(radius: int, n_bits: int):
    key = (radius, n_bits)
    if key not in _FPGEN:
        _FPGEN[key] = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    return _FPGEN[key]


def ecfp(mols, n_bits: int = 2048, radius: int = 2) -> np.ndarray:
    """ECFP4 (radius 2) bit vectors, shape (N, n_bits), uint8."""
    gen = _fpgen(radius, n_bits)
    out = np.zeros((len(mols), n_bits), dtype=np.uint8)
    for i, m in enumerate(mols):
        out[i] = gen.GetFingerprintAsNumPy(m)
    return out


def ecfp_bitvects(mols, n_bits: int = 2048, radius: int = 2) -> list:
    """RDKit ExplicitBitVect fingerprints (for Tanimoto with BulkTanimotoSimilarity)."""
    gen = _fpgen(radius, n_bits)
    return [gen.GetFingerprint(m) for m in mols]


DESCRIPTOR_FUNCS = {"MolWt": Descriptors.MolWt, "MolLogP": Crippen.MolLogP, "TPSA": rdMolDescriptors.CalcTPSA,
                    "NumHBA": rdMolDescriptors.CalcNumHBA, "NumHBD": rdMolDescriptors.CalcNumHBD,
                    "NumRings": rdMolDescriptors.CalcNumRings,
                    "NumAromaticRings": rdMolDescriptors.CalcNumAromaticRings,
                    "NumRotatableBonds": rdMolDescriptors.CalcNumRotatableBonds,
                    "FractionCSP3": rdMolDescriptors.CalcFractionCSP3, "HeavyAtoms": Chem.Mol.GetNumHeavyAtoms}
FEATURE_SETS = ("ecfp", "desc", "ecfp+desc")


def descriptors(mols) -> np.ndarray:
    """The ``DESCRIPTOR_NAMES`` descriptors, shape (N, 10), float64."""
    funcs = [DESCRIPTOR_FUNCS[n] for n in DESCRIPTOR_NAMES]
    rows = [[f(m) for f in funcs] for m in mols]
    return np.asarray(rows, dtype=np.float64).reshape(len(mols), len(DESCRIPTOR_NAMES))


def feature_inputs(features: str) -> dict[str, object]:
    """The whole-molecule computations a feature set is made of: name -> RDKit callable
    (``ecfp4`` stands for the fingerprint bits, which are substructure indicators, not properties)."""
    if features not in FEATURE_SETS:
        raise ValueError(f"features must be one of {FEATURE_SETS}, got {features!r}")
    out: dict[str, object] = {}
    if "ecfp" in features:
        out["ecfp4"] = _fpgen(2, 2048).GetFingerprintAsNumPy
    if "desc" in features:
        out.update(DESCRIPTOR_FUNCS)
    return out


def proxy_label_inputs() -> dict[str, object]:
    """Inputs of the proxy label: QEPPI's descriptor functions, read from the ``qeppi`` package
    itself, and the Rule of Four's four. Name -> RDKit callable."""
    from QEPPI.constant import DESC_FUNC_DICT

    out = {f"qeppi:{k}": f for k, f in DESC_FUNC_DICT.items()}
    out.update({"ro4:MolWt": Descriptors.MolWt, "ro4:MolLogP": Crippen.MolLogP,
                "ro4:NumRings": rdMolDescriptors.CalcNumRings, "ro4:NumHBA": rdMolDescriptors.CalcNumHBA})
    return out


def label_feature_overlap(features: str) -> list[str]:
    """Feature inputs that are also proxy-label inputs (the same RDKit function), as
    ``"feature=label_input"`` strings; empty when the label is not a function of the features' inputs."""
    lab = proxy_label_inputs()
    return sorted(f"{fn}={ln}" for fn, ff in feature_inputs(features).items() for ln, lf in lab.items() if ff is lf)


def featurize(mols, features: str = "ecfp", n_bits: int = 2048) -> np.ndarray:
    """Feature matrix, shape (N, F): ``ecfp``, ``desc`` or ``ecfp+desc``."""
    if features == "ecfp":
        return ecfp(mols, n_bits).astype(np.float32)
    if features == "desc":
        return descriptors(mols).astype(np.float32)
    if features == "ecfp+desc":
        return np.hstack([ecfp(mols, n_bits), descriptors(mols)]).astype(np.float32)
    raise ValueError(f"features must be 'ecfp', 'desc' or 'ecfp+desc', got {features!r}")


def rule_of_four_count(mol) -> int:
    """How many of the Rule-of-Four criteria hold (MW > 400, AlogP > 4, rings > 4, HBA > 4).

    >>> rule_of_four_count(to_mol("CCO"))
    0
    """
    f = proxy_label_inputs()
    return int(f["ro4:MolWt"](mol) > 400) + int(f["ro4:MolLogP"](mol) > 4) + \
        int(f["ro4:NumRings"](mol) > 4) + int(f["ro4:NumHBA"](mol) > 4)


_QEPPI = None


def qeppi_score(mol) -> float:
    """QEPPI score from the ``qeppi`` package (weights shipped in the package)."""
    global _QEPPI
    if _QEPPI is None:
        import QEPPI

        calc = QEPPI.QEPPI_Calculator()
        calc.read()
        _QEPPI = calc
    return float(_QEPPI.qeppi(mol))


def proxy_labels(mols, qeppi_threshold: float = 0.75, ro4_min: int = 3) -> dict[str, np.ndarray]:
    """Proxy PPI-modulator labels (not measured activity): QEPPI >= threshold and >= ro4_min
    Rule-of-Four criteria. Returns ``label`` (N,) int and the raw ``qeppi`` and ``ro4`` arrays."""
    if not 0 <= ro4_min <= 4:
        raise ValueError(f"ro4_min must be in 0..4, got {ro4_min}")
    q = np.array([qeppi_score(m) for m in mols])
    r = np.array([rule_of_four_count(m) for m in mols])
    return {"label": ((q >= qeppi_threshold) & (r >= ro4_min)).astype(int), "qeppi": q, "ro4": r}


def murcko_scaffold(mol) -> str:
    """Bemis-Murcko scaffold SMILES ('' for acyclic molecules)."""
    return MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False)


def scaffold_split(scaffolds: list[str], test_frac: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split indices so that no scaffold is in both parts.

    Groups larger than the whole test budget go to train; the rest are shuffled (seeded) and each is
    put in test while it still fits ``test_frac`` of the molecules, otherwise in train.
    Returns ``(train_idx, test_idx)``.
    """
    if not 0 < test_frac < 1:
        raise ValueError(f"test_frac must be in (0, 1), got {test_frac}")
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(scaffolds):
        groups.setdefault(s, []).append(i)
    n_test = int(round(test_frac * len(scaffolds)))
    big = [g for g in groups.values() if len(g) > n_test]
    small = [g for g in groups.values() if len(g) <= n_test]
    rng = make_rng(seed, "scaffold_split")
    order = rng.permutation(len(small))
    train, test = [i for g in big for i in g], []
    for k in order:
        (test if len(test) + len(small[k]) <= n_test else train).extend(small[k])
    if not test or not train:
        raise ValueError("scaffold split left one side empty: too few distinct scaffolds")
    return np.array(sorted(train)), np.array(sorted(test))


# ---- GNN -------------------------------------------------------------------------------------
_ELEMENTS = (6, 7, 8, 9, 15, 16, 17, 35, 53, 5)


def _atom_features(a) -> list[float]:
    z = a.GetAtomicNum()
    onehot = [float(z == e) for e in _ELEMENTS] + [float(z not in _ELEMENTS)]
    deg = [float(a.GetDegree() == d) for d in range(5)]
    return onehot + deg + [float(a.GetIsAromatic()), float(a.GetFormalCharge()), float(a.GetTotalNumHs()),
                           float(a.IsInRing())]


N_ATOM_FEATURES = len(_ELEMENTS) + 1 + 5 + 4


def mol_to_graph(mol, y: float | None = None):
    """A torch_geometric ``Data`` graph: x (n_atoms, N_ATOM_FEATURES), edge_index (2, 2 * n_bonds)."""
    from torch_geometric.data import Data

    x = torch.tensor([_atom_features(a) for a in mol.GetAtoms()], dtype=torch.float32)
    src, dst = [], []
    for b in mol.GetBonds():
        i, j = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
        src += [i, j]
        dst += [j, i]
    ei = torch.tensor([src, dst], dtype=torch.long).reshape(2, -1)
    d = Data(x=x, edge_index=ei)
    if y is not None:
        d.y = torch.tensor([float(y)])
    return d


class GIN(torch.nn.Module):
    """A small GIN: ``n_layers`` GINConv layers, mean+max pooling, a linear head -> one logit."""

    def __init__(self, in_dim: int = N_ATOM_FEATURES, hidden: int = 64, n_layers: int = 3):
        super().__init__()
        from torch_geometric.nn import GINConv

        self.convs = torch.nn.ModuleList()
        d = in_dim
        for _ in range(n_layers):
            mlp = torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden))
            self.convs.append(GINConv(mlp))
            d = hidden
        self.head = torch.nn.Sequential(torch.nn.Linear(2 * hidden, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))

    def forward(self, x, edge_index, batch):  # x (N_atoms, F) -> (B,)
        from torch_geometric.nn import global_max_pool, global_mean_pool

        for conv in self.convs:
            x = torch.relu(conv(x, edge_index))
        h = torch.cat([global_mean_pool(x, batch), global_max_pool(x, batch)], dim=-1)  # (B, 2H)
        return self.head(h).squeeze(-1)


class GNNClassifier:
    """Binary classifier wrapping :class:`GIN`; ``fit(mols, y)`` / ``predict_proba_mols(mols)``."""

    def __init__(self, hidden: int = 64, n_layers: int = 3, epochs: int = 30, lr: float = 1e-3,
                 batch_size: int = 64, seed: int = 0, progress: bool = False):
        self.hidden, self.n_layers, self.epochs, self.lr = hidden, n_layers, epochs, lr
        self.batch_size, self.seed, self.progress = batch_size, seed, progress
        self.model: GIN | None = None

    def fit(self, mols, y) -> "GNNClassifier":
        from torch_geometric.loader import DataLoader
        from tqdm.auto import tqdm

        graphs = [mol_to_graph(m, yy) for m, yy in zip(mols, y)]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(self.seed, "gnn"))
            self.model = GIN(hidden=self.hidden, n_layers=self.n_layers)
            opt = torch.optim.Adam(self.model.parameters(), lr=self.lr)
            pos = float(np.mean(y))
            pw = torch.tensor((1 - pos) / max(pos, 1e-6))  # class balance, as RF/MLP see balanced data
            loader = DataLoader(graphs, batch_size=self.batch_size, shuffle=True)
            self.model.train()
            for _ in tqdm(range(self.epochs), desc="GNN epochs", disable=not self.progress, leave=False):
                for batch in loader:
                    opt.zero_grad()
                    logit = self.model(batch.x, batch.edge_index, batch.batch)
                    loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, batch.y, pos_weight=pw)
                    loss.backward()
                    opt.step()
        self.model.eval()
        return self

    @torch.no_grad()
    def predict_proba_mols(self, mols) -> np.ndarray:
        """P(label = 1), shape (N,)."""
        from torch_geometric.loader import DataLoader

        if self.model is None:
            raise RuntimeError("GNNClassifier is not fitted")
        out = []
        for batch in DataLoader([mol_to_graph(m) for m in mols], batch_size=256):
            out.append(torch.sigmoid(self.model(batch.x, batch.edge_index, batch.batch)))
        return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


class PPIModel:
    """One fitted PPI-modulation classifier with ``predict_proba(mols) -> (N,)`` in [0, 1].

    ``kind`` is ``rf``, ``mlp`` or ``gnn``; RF and MLP use :func:`featurize` features.
    """

    def __init__(self, kind: str, *, features: str = "ecfp", n_bits: int = 2048, seed: int = 0,
                 rf_trees: int = 200, mlp_hidden: int = 256, gnn_epochs: int = 30, progress: bool = False):
        if kind not in MODEL_NAMES:
            raise ValueError(f"model kind must be one of {MODEL_NAMES}, got {kind!r}")
        self.kind, self.features, self.n_bits, self.seed = kind, features, n_bits, seed
        self.scaler: StandardScaler | None = None
        if kind == "rf":
            self.est = RandomForestClassifier(n_estimators=rf_trees, class_weight="balanced", n_jobs=1,
                                              random_state=derive_seed(seed, "rf") % 2**31)
        elif kind == "mlp":
            self.est = MLPClassifier(hidden_layer_sizes=(mlp_hidden,), alpha=1e-3, max_iter=200,
                                     early_stopping=True, random_state=derive_seed(seed, "mlp") % 2**31)
        else:
            self.est = GNNClassifier(epochs=gnn_epochs, seed=seed, progress=progress)

    def _x(self, mols, fit: bool = False) -> np.ndarray:
        x = featurize(mols, self.features, self.n_bits)
        if self.kind == "mlp":
            if fit:
                self.scaler = StandardScaler().fit(x)
            x = self.scaler.transform(x).astype(np.float32)
        return x

    def fit(self, mols, y) -> "PPIModel":
        y = np.asarray(y).astype(int)
        if len(np.unique(y)) < 2:
            raise ValueError("training labels hold a single class; cannot fit a classifier")
        if self.kind == "gnn":
            self.est.fit(mols, y)
        else:
            self.est.fit(self._x(mols, fit=True), y)
        return self

    def predict_proba(self, mols) -> np.ndarray:
        """P(PPI modulator), shape (N,)."""
        if len(mols) == 0:
            return np.zeros(0)
        if self.kind == "gnn":
            return self.est.predict_proba_mols(mols)
        return self.est.predict_proba(self._x(mols))[:, 1].astype(np.float64)


def evaluate(y_true, p) -> dict[str, float]:
    """ROC-AUC and PR-AUC (average precision) plus the positive rate of ``y_true``."""
    y_true = np.asarray(y_true)
    if len(np.unique(y_true)) < 2:
        raise ValueError("test labels hold a single class; ROC-AUC is undefined")
    return {"roc_auc": float(roc_auc_score(y_true, p)), "pr_auc": float(average_precision_score(y_true, p)),
            "positive_rate": float(np.mean(y_true))}


def load_labelled_csv(path: str, smiles_col: str = "smiles", label_col: str = "label") -> dict:
    """A user's labelled set: returns ``smiles`` (valid ones), ``label`` (0/1) and ``invalid`` rows."""
    import pandas as pd

    df = pd.read_csv(path)
    for c in (smiles_col, label_col):
        if c not in df.columns:
            raise ValueError(f"labelled CSV needs a '{c}' column; found {list(df.columns)}")
    smiles, labels, invalid = [], [], []
    for i, (s, y) in enumerate(zip(df[smiles_col], df[label_col])):
        try:
            yy = int(y)
            if yy not in (0, 1):
                raise ValueError
        except (TypeError, ValueError):
            invalid.append((i, str(s), f"label {y!r} is not 0/1"))
            continue
        try:
            m = to_mol(str(s))
        except ValueError:
            invalid.append((i, str(s), "SMILES does not parse"))
            continue
        smiles.append(Chem.MolToSmiles(m))
        labels.append(yy)
    return {"smiles": smiles, "label": np.array(labels, dtype=int), "invalid": invalid}


def tanimoto_matrix(fps) -> np.ndarray:
    """Pairwise Tanimoto similarity of RDKit bit vectors, shape (N, N)."""
    n = len(fps)
    out = np.ones((n, n))
    for i in range(n):
        out[i, :] = DataStructs.BulkTanimotoSimilarity(fps[i], fps)
    return out
