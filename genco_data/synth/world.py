r"""The simulator's ground truth: latent parameters of ads, users, queries and creative elements, and the
exact click probability of any (request, combination).

Model (all on the logit scale; ``σ(x) = 1 / (1 + e^{-x})``). A request ``r`` is an ad ``a`` shown to a
user ``u``, optionally for a search query ``q``; the ad has a category ``c(a)`` and, for each component
``j`` it has, a candidate pool ``S_{r,j}``. A combination picks one element ``e_j ∈ S_{r,j}`` per present
component. Its true click probability is

.. math::

    \mathrm{CTR}(r, e) = σ\Big(b + α_a + ρ\,\tfrac{⟨p_u, v_a⟩}{\sqrt{D}}
        + \sum_{j \in J_r} W_{c(a), j}\,\big(θ_{e_j} + ⟨τ_r, s_{e_j}⟩\big)
        + \sum_{(π(j), j) \in T,\; j, π(j) \in J_r} γ_j\,⟨s_{e_{π(j)}}, s_{e_j}⟩\Big)

- ``b``: intercept, calibrated by bisection so that the train CTR (production policy) is the paper's 6.84 %;
- ``α_a ~ N(0, appeal_scale²)``: product appeal, the dominant source of CTR variance (the
  "disentangle creative from product" problem); ``p_u, v_a ~ N(0, I_D)``, ``D = 4``, ``ρ = user_ad_scale``;
- ``J_r``: the components with a non-empty pool; ``W[c, j]``: component weight per category
  (:data:`COMPONENT_WEIGHTS`, after the paper's Figure 3: image highest everywhere; highlight / attribute /
  structure_attribute heavier for phone, computer, wine; image dominant for clothing and bedding);
- element ``e``: quality ``θ_e ~ N(0, quality_scale²)`` and style ``s_e ~ N(0, I_S)``, ``S = 2``;
- request taste ``τ_r = t_u + ι_q`` (``ι = 0`` without a query): the user's taste
  ``t_u = T[age_u, gender_u] + ε_u`` (a demographic mean plus a personal part) and the query's intent
  ``ι_q``; per coordinate ``Var T = 0.4 κ², Var ε = 0.3 κ², Var ι = 0.3 κ²``, ``κ = taste_scale``;
- synergy along the tree ``T`` of :data:`PARENT` (root ``image``; ``title``, ``marketing``, ``highlight``
  under it; ``attribute``, ``structure_attribute`` under ``highlight``), ``γ_j = synergy_scale · U(0.5, 1.5)``.

A component missing from a request is removed from the tree (its edges vanish; its children become
roots of their own subtrees). Because ``σ`` is monotone the best combination maximises the bracket, a
max-sum over a forest: messages ``m_{j→π(j)}(x) = max_y [U_j(y) + γ_j⟨s_x, s_y⟩ + Σ_{k: π(k)=j} m_{k→j}(y)]``
from the leaves up, then argmax back down — exact, ``O(Σ_j n_{π(j)} n_j)`` per request, any pool length.

Ids are hashed, non-negative int64 (:func:`genco_data.synth.draw.hashed_ids`). The world
maps ids back to parameters with ``np.searchsorted`` on sorted id arrays; an id it does not know is an
error (:class:`~genco_data.errors.InvalidInputError`), never a silent default: a world answers only for
rows of its own release.

How a world is drawn: :mod:`genco_data.synth.draw`; on disk (``<release>/world/``, no pickle):
:mod:`genco_data.synth.storage`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from genco_data.format.components import COMPONENTS, N_COMPONENTS, candidates_col
from genco_data.errors import InvalidInputError, SchemaError
from genco_data.synth.storage import read_world, write_world

CATEGORIES: tuple[str, ...] = ("phone", "computer", "wine", "clothing", "bedding", "food", "beauty", "toys")
#: W[category, component]; columns in COMPONENTS order (title, image, marketing, highlight, attribute, structure_attribute).
COMPONENT_WEIGHTS = np.array(
    [
        [0.60, 1.00, 0.40, 0.90, 0.85, 0.85],  # phone
        [0.60, 1.00, 0.40, 0.90, 0.90, 0.90],  # computer
        [0.60, 1.00, 0.50, 0.85, 0.80, 0.75],  # wine
        [0.50, 1.60, 0.40, 0.35, 0.25, 0.25],  # clothing
        [0.50, 1.50, 0.40, 0.35, 0.30, 0.30],  # bedding
        [0.60, 1.20, 0.60, 0.50, 0.40, 0.40],  # food
        [0.60, 1.30, 0.50, 0.50, 0.40, 0.40],  # beauty
        [0.60, 1.20, 0.50, 0.50, 0.40, 0.40],  # toys
    ]
)
#: Synergy tree: PARENT[j] is the parent component of j (-1 for the root, image).
PARENT: tuple[int, ...] = (1, -1, 1, 1, 3, 3)
ROOT = 1
#: Children before parents (the order max-sum messages flow in).
POST_ORDER: tuple[int, ...] = (4, 5, 0, 2, 3, 1)
STYLE_DIM = 2  # S
AFFINITY_DIM = 4  # D

_CHUNK = 2048  # rows per max-sum block (memory ~ CHUNK · n_parent · n_child · 8 bytes)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class _Requests:
    """Requests resolved to world indices. ``offsets[j]`` [R+1] index ``elems[j]`` (flat element indices)."""

    ad: np.ndarray  # int64 [R]
    user: np.ndarray  # int64 [R]
    query: np.ndarray  # int64 [R], -1 = no query
    n: np.ndarray  # int64 [R, 6] pool sizes
    offsets: list[np.ndarray]
    elems: list[np.ndarray]

    @property
    def rows(self) -> int:
        return len(self.ad)


class World:
    """Ground truth of one simulation. Build with :func:`genco_data.synth.simulate` (or ``World.load``).

    ``params``: JSON-able parameters (``base``, scales, ``test_start_day``, …); ``arrays``: name → ndarray
    (``ad_id``, ``ad_category``, ``ad_appeal``, ``ad_vec``, ``user_*``, ``query_*``, ``elem{j}_id`` /
    ``_quality`` / ``_style`` / ``_prod``, ``weights`` [C, 6], ``synergy`` [6]).
    """

    def __init__(self, params: dict[str, Any], arrays: dict[str, np.ndarray]):
        self.params = params
        self.arrays = arrays
        self._sorted: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._cache: dict[str, Any] = {}
        self._last: tuple[Any, _Requests] | None = None

    @property
    def base(self) -> float:
        return float(self.params["base"])

    @property
    def test_start_day(self) -> str:
        return str(self.params["test_start_day"])

    # ------------------------------------------------------------------------------ save / load
    def save(self, path: str | Path) -> Path:
        """Write ``world.npz`` then ``world.json`` (last, atomically) into the folder ``path``
        (:func:`~genco_data.synth.storage.write_world`)."""
        return write_world(path, self.params, self.arrays)

    @classmethod
    def load(cls, path: str | Path) -> "World":
        """Load ``path`` = a world folder (``world.json`` + ``world.npz``) or a release holding ``world/``."""
        return cls(*read_world(path))

    def _with_base(self, base: float) -> "World":
        params = dict(self.params)
        params["base"] = float(base)
        return World(params, self.arrays)

    # ------------------------------------------------------------------------------ public answers
    def true_ctr(self, requests: pa.Table, choices: np.ndarray) -> np.ndarray:
        """Exact click probability ``CTR(r, e)`` per row, float64 [R]. ``choices`` int [R, 6]: index into each
        original pool (COMPONENTS order), -1 iff the pool is empty."""
        req = self._requests(requests)
        ch = self._check_choices(req, choices)
        ctx, cat, taste = self._context(req.ad, req.user, req.query)
        return sigmoid(self.base + ctx + self._creative(cat, taste, self._shown(req, ch)))

    def optimum(self, requests: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """Exact best combination per row by max-sum on the synergy tree: (choices int64 [R, 6], ctr float64 [R])."""
        req = self._requests(requests)
        ctx, cat, taste = self._context(req.ad, req.user, req.query)
        unary = [self._unary(req, j, cat, taste) for j in range(N_COMPONENTS)]
        R = req.rows
        choices = np.full((R, N_COMPONENTS), -1, dtype=np.int64)
        best = np.zeros(R)
        for lo in range(0, R, _CHUNK):
            hi = min(R, lo + _CHUNK)
            choices[lo:hi], best[lo:hi] = self._maxsum(req, unary, lo, hi)
        return choices, sigmoid(self.base + ctx + best)

    def policy_value(self, requests: pa.Table, choices: np.ndarray) -> float:
        """Mean true CTR of the combinations ``choices`` over the rows of ``requests``."""
        return float(self.true_ctr(requests, choices).mean())

    def uniform_value(self, requests: pa.Table, n_samples: int = 64, seed: int = 0) -> tuple[float, float]:
        """True value of the uniform-random policy on ``requests``, ``mean_r E_{e ~ U(S_r)}[CTR(r, e)]``, by Monte
        Carlo (σ admits no closed form): ``n_samples`` uniform combinations per row, drawn from
        ``default_rng(seed)``. Returns (value, standard error of the Monte Carlo; the rows are held fixed).

        With the same ``requests`` and ``seed``, :meth:`component_value` draws the same combinations for the
        other components (common random numbers), so differences of the two carry little Monte Carlo noise."""
        req = self._requests(requests)
        return self._monte_carlo(req, None, -1, n_samples, seed)

    def component_value(
        self, requests: pa.Table, choices: np.ndarray, component: int, n_samples: int = 64, seed: int = 0
    ) -> tuple[float, float]:
        """True mean CTR of "``choices`` on ``component``, uniform on the others" over the rows whose pool of
        ``component`` is non-empty (rows without it carry no weight in the per-component calibrated sCTR).
        That is what calibrated sCTR estimates on a uniform log: ``E[n·y·1{shown=choice}] / E[n·1{shown=choice}]
        = E_r E_{e_{-j} ~ U}[CTR(r, choice_j, e_{-j})]``. Returns (value, Monte Carlo standard error)."""
        if isinstance(component, bool) or not isinstance(component, (int, np.integer)) or not 0 <= component < N_COMPONENTS:
            raise InvalidInputError(f"component: expected an int in [0, {N_COMPONENTS}), got {component!r}")
        req = self._requests(requests)
        ch = self._check_choices(req, choices)
        return self._monte_carlo(req, ch, int(component), n_samples, seed)

    # ------------------------------------------------------------------------------ internals
    def _lookup(self, name: str, ids: np.ndarray, what: str) -> np.ndarray:
        if name not in self._sorted:
            ref = self.arrays[name]
            order = np.argsort(ref, kind="stable")
            self._sorted[name] = (ref[order], order)
        sorted_ids, order = self._sorted[name]
        if len(sorted_ids) == 0:
            if len(ids):
                raise InvalidInputError(f"requests: {what} {int(ids[0])} is not in this world (it has none)")
            return np.zeros(0, dtype=np.int64)
        pos = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
        bad = sorted_ids[pos] != ids
        if bad.any():
            raise InvalidInputError(
                f"requests: {int(bad.sum())} {what} values are not in this world (e.g. {int(ids[bad][0])}); "
                "a world answers only for rows of its own release"
            )
        return order[pos].astype(np.int64)

    def _requests(self, requests: Any) -> _Requests:
        if self._last is not None and self._last[0] is requests:
            return self._last[1]
        if isinstance(requests, pa.RecordBatch):
            table = pa.Table.from_batches([requests])
        elif isinstance(requests, pa.Table):
            table = requests
        else:
            raise TypeError(f"requests: expected a pyarrow Table with the impressions columns, got {type(requests).__name__}")
        need = ["user_id", "ad_id", "query_id", *(candidates_col(c) for c in COMPONENTS)]
        missing = [c for c in need if c not in table.column_names]
        if missing:
            raise SchemaError(f"requests: missing column(s) {missing}")

        def ints(col: str) -> tuple[np.ndarray, np.ndarray]:
            arr = table.column(col).combine_chunks()
            valid = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
            return np.asarray(arr.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64), valid

        ad_ids, ad_ok = ints("ad_id")
        user_ids, user_ok = ints("user_id")
        if not (ad_ok.all() and user_ok.all()):
            raise InvalidInputError("requests: ad_id and user_id must not be null")
        query_ids, has_query = ints("query_id")
        query = np.full(len(query_ids), -1, dtype=np.int64)
        query[has_query] = self._lookup("query_id", query_ids[has_query], "query_id")
        n = np.zeros((len(ad_ids), N_COMPONENTS), dtype=np.int64)
        offsets, elems = [], []
        for j, c in enumerate(COMPONENTS):
            arr = table.column(candidates_col(c)).combine_chunks()
            off = np.asarray(arr.offsets, dtype=np.int64)
            off = off - off[0]
            flat = np.asarray(arr.flatten().to_numpy(zero_copy_only=False), dtype=np.int64)
            n[:, j] = np.diff(off)
            offsets.append(off)
            elems.append(self._lookup(f"elem{j}_id", flat, f"{c} element id"))
        req = _Requests(
            ad=self._lookup("ad_id", ad_ids, "ad_id"),
            user=self._lookup("user_id", user_ids, "user_id"),
            query=query,
            n=n,
            offsets=offsets,
            elems=elems,
        )
        self._last = (requests, req)
        return req

    @staticmethod
    def _check_choices(req: _Requests, choices: Any) -> np.ndarray:
        c = np.asarray(choices)
        if c.shape != (req.rows, N_COMPONENTS):
            raise InvalidInputError(f"choices: expected shape ({req.rows}, {N_COMPONENTS}), got {c.shape}")
        if not np.issubdtype(c.dtype, np.integer):
            raise InvalidInputError(f"choices: expected integers, got dtype {c.dtype}")
        c = c.astype(np.int64)
        empty = req.n == 0
        bad = np.where(empty, c != -1, (c < 0) | (c >= req.n))
        if bad.any():
            r, j = map(int, np.argwhere(bad)[0])
            raise InvalidInputError(
                f"choices[{r}, {j}] ({COMPONENTS[j]}) = {int(c[r, j])} for a pool of {int(req.n[r, j])}; "
                "expected -1 for an empty pool, else 0 <= choice < pool length"
            )
        return c

    def _padded_arrays(self) -> tuple[list[tuple[np.ndarray, ...]], np.ndarray]:
        """Per component the element columns (θ, s_1, …, s_S), each [E + 1] with a zero last entry, and the
        query intents [Q + 1, S] with a zero last row: index -1 (absent element, no query) reads zeros,
        which add nothing to the logit."""
        if "padded" not in self._cache:
            a = self.arrays
            cols = []
            for j in range(N_COMPONENTS):
                x = np.column_stack([a[f"elem{j}_quality"], a[f"elem{j}_style"]])
                cols.append(tuple(np.append(x[:, k], 0.0) for k in range(1 + STYLE_DIM)))
            intent = np.vstack([a["query_intent"], np.zeros((1, STYLE_DIM))])
            self._cache["padded"] = (cols, intent)
        return self._cache["padded"]

    def _context(self, ad: np.ndarray, user: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ctx [R] = α_a + ρ⟨p_u, v_a⟩/√D, category [R], taste τ_r [R, S]); ``query`` -1 = none."""
        a = self.arrays
        aff = (np.take(a["user_vec"], user, axis=0) * np.take(a["ad_vec"], ad, axis=0)).sum(axis=1, dtype=np.float64)
        ctx = a["ad_appeal"].take(ad) + (float(self.params["user_ad_scale"]) / math.sqrt(AFFINITY_DIM)) * aff
        taste = np.take(a["user_taste"], user, axis=0) + np.take(self._padded_arrays()[1], query, axis=0)
        return ctx, a["ad_category"].take(ad).astype(np.int64), taste

    def _creative(self, cat: np.ndarray, taste: np.ndarray, shown: np.ndarray) -> np.ndarray:
        """Creative part of the logit for shown element indices ``shown`` int64 [R, 6] (-1 = absent):
        Σ_j W[c, j]·(θ + ⟨τ, s⟩) + Σ_tree γ_j⟨s_{π(j)}, s_j⟩ (absent elements read zeros)."""
        cols, _ = self._padded_arrays()
        parts = [tuple(col.take(shown[:, j]) for col in cols[j]) for j in range(N_COMPONENTS)]
        return self._creative_from(cat, taste, parts)

    def _creative_from(self, cat: np.ndarray, taste: np.ndarray, parts: list[tuple[np.ndarray, ...]]) -> np.ndarray:
        """As :meth:`_creative`, from each component's shown columns ``parts[j] = (θ, s_1, s_2)``, each [R]
        (zeros where the component is absent)."""
        t1, t2 = np.ascontiguousarray(taste[:, 0]), np.ascontiguousarray(taste[:, 1])  # S = 2
        weights, gamma = self.arrays["weights"], self.arrays["synergy"]
        total = np.zeros(len(cat))
        for j in range(N_COMPONENTS):
            q, s1, s2 = parts[j]
            total += weights[:, j].take(cat) * (q + t1 * s1 + t2 * s2)
            p = PARENT[j]
            if p >= 0:
                total += gamma[j] * (s1 * parts[p][1] + s2 * parts[p][2])
        return total

    @staticmethod
    def _shown(req: _Requests, choices: np.ndarray) -> np.ndarray:
        shown = np.full(choices.shape, -1, dtype=np.int64)
        for j in range(N_COMPONENTS):
            c = choices[:, j]
            pres = c >= 0
            shown[pres, j] = req.elems[j][req.offsets[j][:-1][pres] + c[pres]]
        return shown

    def _unary(self, req: _Requests, j: int, cat: np.ndarray, taste: np.ndarray) -> np.ndarray:
        """U_j per flat candidate: W[c, j]·(θ_e + ⟨τ_r, s_e⟩), aligned with ``req.elems[j]``."""
        e = req.elems[j]
        if len(e) == 0:
            return np.zeros(0)
        row = np.repeat(np.arange(req.rows), req.n[:, j])
        s = self.arrays[f"elem{j}_style"][e]
        return self.arrays["weights"][cat[row], j] * (self.arrays[f"elem{j}_quality"][e] + np.einsum("rs,rs->r", taste[row], s))

    def _block(self, req: _Requests, j: int, values: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows [lo, hi) of component j as padded [Rc, L] unary (-inf pad) and [Rc, L, S] style (0 pad)."""
        n = req.n[lo:hi, j]
        L = max(1, int(n.max()) if len(n) else 1)
        off = req.offsets[j]
        a, b = int(off[lo]), int(off[hi])
        row = np.repeat(np.arange(hi - lo), n)
        pos = np.arange(b - a) - np.repeat(off[lo:hi] - a, n)
        U = np.full((hi - lo, L), -np.inf)
        S = np.zeros((hi - lo, L, STYLE_DIM))
        U[row, pos] = values[a:b]
        if b > a:
            S[row, pos] = self.arrays[f"elem{j}_style"][req.elems[j][a:b]]
        return U, S

    def _maxsum(self, req: _Requests, unary: list[np.ndarray], lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        Rc = hi - lo
        rows = np.arange(Rc)
        pres = req.n[lo:hi] > 0  # [Rc, 6]
        V, S = [], []
        for j in range(N_COMPONENTS):
            u, s = self._block(req, j, unary[j], lo, hi)
            V.append(u)
            S.append(s)
        gamma = self.arrays["synergy"]
        arg_child: dict[int, np.ndarray] = {}
        total = np.zeros(Rc)
        for j in POST_ORDER:  # V[j] already holds U_j + messages from j's children
            p = PARENT[j]
            if p >= 0:
                # M[r, x, y] = V_j[r, y] + γ_j ⟨s_x, s_y⟩, x over the parent's pool, y over j's   [Rc, Lp, Lj]
                M = V[j][:, None, :] + gamma[j] * np.einsum("rxs,rys->rxy", S[p], S[j])
                arg = M.argmax(axis=2)
                both = pres[:, j] & pres[:, p]
                V[p] = V[p] + np.where(both[:, None], np.take_along_axis(M, arg[..., None], 2)[..., 0], 0.0)
                arg_child[j] = arg
                alone = pres[:, j] & ~pres[:, p]
            else:
                alone = pres[:, j]
            total += np.where(alone, V[j].max(axis=1), 0.0)
        choice = np.full((Rc, N_COMPONENTS), -1, dtype=np.int64)
        for j in reversed(POST_ORDER):  # parents before children
            p = PARENT[j]
            own = V[j].argmax(axis=1)
            if p >= 0:
                both = pres[:, j] & pres[:, p]
                via = arg_child[j][rows, np.maximum(choice[:, p], 0)]
                own = np.where(both, via, own)
            choice[:, j] = np.where(pres[:, j], own, -1)
        return choice, total

    def _monte_carlo(self, req: _Requests, fixed: np.ndarray | None, j: int, n_samples: int, seed: int) -> tuple[float, float]:
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 2:
            raise InvalidInputError(f"n_samples: expected an int >= 2, got {n_samples!r}")
        rng = np.random.default_rng(seed)
        ctx, cat, taste = self._context(req.ad, req.user, req.query)
        rows = np.ones(req.rows, dtype=bool) if fixed is None else req.n[:, j] > 0
        if not rows.any():
            what = "no requests" if fixed is None else f"no request has a {COMPONENTS[j]} pool"
            raise InvalidInputError(f"cannot value a policy: {what}")
        acc = np.zeros(req.rows)
        acc2 = np.zeros(req.rows)
        empty = req.n == 0
        for _ in range(int(n_samples)):
            ch = np.floor(rng.random(req.n.shape) * req.n).astype(np.int64)
            ch[empty] = -1
            if fixed is not None:
                ch[:, j] = fixed[:, j]
            v = sigmoid(self.base + ctx + self._creative(cat, taste, self._shown(req, ch)))
            acc += v
            acc2 += v * v
        S = float(n_samples)
        mean_r = acc[rows] / S
        var_r = np.maximum(acc2[rows] - S * mean_r**2, 0.0) / (S - 1.0)
        m = int(rows.sum())
        return float(mean_r.mean()), float(math.sqrt(var_r.sum() / S) / m)


__all__ = [
    "World",
    "CATEGORIES",
    "COMPONENT_WEIGHTS",
    "PARENT",
    "ROOT",
    "POST_ORDER",
    "STYLE_DIM",
    "AFFINITY_DIM",
    "sigmoid",
]
