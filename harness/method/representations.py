"""What healing does to the representations: every layer's vectors, and the measures taken on them.

Zhou & Srikumar (ACL 2022, "A Closer Look at How Fine-tuning Changes BERT") measure how fine-tuning
changes BERT's space; here the same measures ask what a corrupted model's fine-tuning rebuilds.

*Capture* (``layer_vectors``): for a fixed example set, the pooled vector of every hidden state
(the embeddings' output, then each encoder layer's), with both poolings: the one the head reads and
the other. A cell captures them before fine-tuning (the corrupted model; for the clean cell, the
pretrained model) and after.

*Measures* (pure functions of arrays; ``examples x features`` matrices and integer labels):

1. ``probe_accuracy``: a linear probe (logistic regression on standardised vectors) trained on one
   half of the examples and scored on the other (stratified, seeded).
2. ``pair_distances``: for each pair of labels, the width of the hard-margin linear SVM's margin
   between their clusters (Zhou & Srikumar's ``SVC(kernel="linear", C=1e6)``, ``2 min|w.x+b| / ||w||``),
   0 where the two are not linearly separable. With no more points than dimensions any labelling is
   separable, so the vectors are first projected on their top ``dims`` principal components (fitted
   on the same space) and the examples must outnumber ``dims`` several times over (``MIN_POINTS_PER_DIM``).
   ``min_distances``: per label, its smallest distance to another label (their "minimum distance").
3. ``spatial_similarity``: the Pearson correlation of two spaces' vectors of all label-pair distances
   (defined for >= 3 labels: a 2-label task has a single distance).
4. ``centroid_movement``: per label, how far its centroid moved between two moments.
5. ``linear_cka``: linear CKA (Kornblith et al., 2019) between two representations of the same examples.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import torch
from scipy import stats
from scipy.optimize import linprog
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from harness.errors import BadInput
from harness.method.models import pool
from harness.method.prepare import Encoded
from harness.method.train import EVAL_TOKENS, collate, token_budget_batches

POOLINGS = ("mean", "cls")
# The fixed example sets: the first examples of a cell's training split (those it was fine-tuned on, the set
# Zhou & Srikumar measure) and of its test split, the same for every cell of a dataset and data_seed.
# 1,000 keeps a cell's saved vectors small (MiniLM: 2 splits x 2 moments x 2 poolings x 7 layers x 1,000
# x 384 in float16 = 43 MB) and still gives 20 examples per dimension at ``dims`` = 50.
ANALYSIS_EXAMPLES = 1000
# Cover (1965): n points in general position in d dimensions are linearly separable under a random
# labelling with probability ~1 while n < 2d. Five points per dimension puts the measure far from that.
MIN_POINTS_PER_DIM = 5
HARD_MARGIN_C = 1e6  # Zhou & Srikumar's setting: C large enough that no point may sit inside the margin


# ---------------------------------------------------------------- capture


def first_examples(data: Encoded, n: int) -> Encoded:
    """The first ``n`` examples of ``data`` (all of them if it has fewer)."""
    n = min(n, len(data))
    end = int(data.offsets[n])
    return Encoded(data.input_ids[:end], data.token_type_ids[:end], data.offsets[: n + 1], data.labels[:n])


@torch.inference_mode()
def layer_vectors(model, data: Encoded, pad_id: int, device: torch.device, precision: str = "fp32") -> dict[str, np.ndarray]:
    """``{pooling: array (layers + 1, examples, hidden)}``: the pooled embeddings' output and every encoder
    layer's, in example order, float32 (eval mode: no dropout). Layer 0 is the embeddings'."""
    model.eval()
    n_hidden = model.config.hidden_size
    n_states = (getattr(model.config, "num_hidden_layers", None) or model.config.n_layers) + 1
    out = {pooling: np.empty((n_states, len(data), n_hidden), dtype=np.float32) for pooling in POOLINGS}
    for index in token_budget_batches(data.lengths, EVAL_TOKENS):
        batch = collate(data, index, pad_id, device)
        if model.config.model_type != "bert":
            batch.pop("token_type_ids", None)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            states = model.base_model(**batch, output_hidden_states=True).hidden_states
        for pooling in POOLINGS:
            for layer, hidden in enumerate(states):
                out[pooling][layer, index] = pool(hidden, batch["attention_mask"], pooling).float().cpu().numpy()
    return out


# ---------------------------------------------------------------- measures


def _matrix(name: str, vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or len(vectors) < 2:
        raise BadInput(f"{name} must be an (examples, features) matrix of at least 2 rows, got shape {vectors.shape}")
    if not np.isfinite(vectors).all():
        raise BadInput(f"{name} has non-finite values")
    return vectors


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA: ``||Y'X||_F^2 / (||X'X||_F ||Y'Y||_F)`` on column-centred X, Y (rows = the same examples)."""
    x, y = _matrix("x", x), _matrix("y", y)
    if len(x) != len(y):
        raise BadInput(f"CKA needs the same examples in both: {len(x)} vs {len(y)} rows")
    x, y = x - x.mean(0), y - y.mean(0)
    # n x n Gram matrices when examples are fewer than features: same value, less work
    if len(x) < x.shape[1] + y.shape[1]:
        kx, ky = x @ x.T, y @ y.T
        cross, norm_x, norm_y = np.sum(kx * ky), np.linalg.norm(kx), np.linalg.norm(ky)
    else:
        cross, norm_x, norm_y = np.linalg.norm(y.T @ x) ** 2, np.linalg.norm(x.T @ x), np.linalg.norm(y.T @ y)
    if norm_x == 0 or norm_y == 0:
        return float("nan")  # a constant representation has no structure to compare
    return float(cross / (norm_x * norm_y))


def probe_accuracy(vectors: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    """Accuracy (%) of a linear probe trained on a stratified half of the examples, scored on the other."""
    vectors, labels = _matrix("vectors", vectors), np.asarray(labels)
    x_train, x_test, y_train, y_test = train_test_split(vectors, labels, test_size=0.5, random_state=seed,
                                                        stratify=labels)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return 100.0 * float(probe.fit(x_train, y_train).score(x_test, y_test))


def separable(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether some hyperplane puts every row of ``a`` strictly on one side and every row of ``b`` on the
    other: the linear programme ``s_i (w.x_i + c) >= 1`` is feasible (exact, unlike a converged-or-not SVM)."""
    points = np.vstack([a, b])
    points = (points - points.mean(0)) / (points.std() or 1.0)  # an affine map keeps separability; HiGHS likes unit scale
    signs = np.concatenate([np.ones(len(a)), -np.ones(len(b))])
    constraints = -signs[:, None] * np.hstack([points, np.ones((len(points), 1))])
    for method in ("highs", "highs-ds", "highs-ipm"):  # another algorithm where one reports an unknown status
        found = linprog(np.zeros(points.shape[1] + 1), A_ub=constraints, b_ub=-np.ones(len(points)),
                        bounds=[(None, None)] * (points.shape[1] + 1), method=method)
        if found.status in (0, 2):  # 0: feasible, 2: infeasible
            return found.status == 0
    raise RuntimeError(f"separability LP failed with every HiGHS method: {found.message}")


def margin_width(a: np.ndarray, b: np.ndarray) -> float:
    """Width of the hard-margin linear SVM's margin between point clouds ``a`` and ``b``; 0 if they overlap."""
    a, b = _matrix("a", a), _matrix("b", b)
    if not separable(a, b):
        return 0.0
    points = np.vstack([a, b])
    svm = SVC(kernel="linear", C=HARD_MARGIN_C).fit(points, np.r_[np.ones(len(a)), np.zeros(len(b))])
    return float(2.0 * np.min(np.abs(svm.decision_function(points))) / np.linalg.norm(svm.coef_[0]))


def pair_distances(vectors: np.ndarray, labels: np.ndarray, dims: int) -> dict[tuple[int, int], float]:
    """``{(a, b): margin width}`` for every pair of labels a < b, in the space of the top ``dims``
    principal components of ``vectors`` (``dims`` >= the features: no projection)."""
    vectors, labels = _matrix("vectors", vectors), np.asarray(labels)
    if len(vectors) < MIN_POINTS_PER_DIM * min(dims, vectors.shape[1]):
        raise BadInput(f"{len(vectors)} examples in {min(dims, vectors.shape[1])} dimensions: margins need "
                       f">= {MIN_POINTS_PER_DIM} examples per dimension (fewer make any labelling separable); "
                       "use more examples or fewer dims")
    present = np.unique(labels)
    if not np.ptp(vectors, axis=0).any():  # one point for every example (e.g. [CLS] at the embeddings): no gap anywhere
        return {(int(a), int(b)): 0.0 for a, b in combinations(present, 2)}
    if dims < vectors.shape[1]:
        vectors = PCA(n_components=dims, svd_solver="full").fit_transform(vectors)
    return {(int(a), int(b)): margin_width(vectors[labels == a], vectors[labels == b])
            for a, b in combinations(present, 2)}


def min_distances(distances: dict[tuple[int, int], float]) -> dict[int, float]:
    """Per label, its smallest distance to any other label's cluster."""
    found: dict[int, float] = {}
    for (a, b), width in distances.items():
        for label in (a, b):
            found[label] = min(found.get(label, math.inf), width)
    return found


def spatial_similarity(first: dict[tuple[int, int], float], second: dict[tuple[int, int], float]) -> float:
    """Pearson correlation of two spaces' label-pair distances (the same pairs); NaN where undefined:
    fewer than 3 labels (fewer than 2 pairs) or a constant distance vector (e.g. no pair separable)."""
    if set(first) != set(second):
        raise BadInput(f"spatial similarity needs the same label pairs: {sorted(first)} vs {sorted(second)}")
    pairs = sorted(first)
    x, y = np.array([first[p] for p in pairs]), np.array([second[p] for p in pairs])
    if len(pairs) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.pearsonr(x, y).statistic)


def centroid_movement(before: np.ndarray, after: np.ndarray, labels: np.ndarray) -> dict[int, float]:
    """Per label, the Euclidean distance between its centroid before and after (the same examples)."""
    before, after, labels = _matrix("before", before), _matrix("after", after), np.asarray(labels)
    if before.shape != after.shape:
        raise BadInput(f"before and after must hold the same examples: {before.shape} vs {after.shape}")
    return {int(label): float(np.linalg.norm(after[labels == label].mean(0) - before[labels == label].mean(0)))
            for label in np.unique(labels)}
