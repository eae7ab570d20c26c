"""BEIR-style retrieval evaluation: nDCG@10, recall@100 and MRR@10 for several systems at once.

Layout (``--data DIR``): ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl``
(``_id``, ``text``) and ``qrels/{train,test}.tsv`` (``query-id corpus-id score`` with a header).
A document is its title and text; the embedders truncate it to their max length.

Systems are measured in one run on the same documents:

* ``bm25``: the product's own lexical search (SQLite FTS5 through :class:`Searcher`),
* dense systems: the TP embedder with last-token and mean pooling (one forward pass gives both),
  optionally its vanilla prompt, and all-MiniLM-L6-v2 when installed; exact inner product,
* ``hybrid``: a dense system fused with BM25, by weighted RRF or by normalised-score fusion;
  the method and the dense weight are chosen on the *train* qrels and reported on test.

Document vectors are cached as ``.npy`` (loaded with ``allow_pickle=False``) under a key made of
the embedder fingerprint and a hash of the corpus, so re-runs skip the slow part.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataNotFoundError
from ..index.store import Store
from ..index.tables import file_row
from ..search.fusion import FUSE
from ..search.searcher import Searcher

Run = dict[str, list[tuple[str, float]]]  # query id -> [(doc id, score)] best first
DENSE_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0)


@dataclass
class BeirData:
    corpus: dict[str, str]  # doc id -> title + text
    queries: dict[str, str]
    qrels: dict[str, dict[str, dict[str, int]]]  # split -> query id -> doc id -> relevance

    def split_queries(self, split: str) -> dict[str, str]:
        return {q: self.queries[q] for q in self.qrels[split] if q in self.queries}

    def corpus_hash(self) -> str:
        h = hashlib.sha256()
        for doc_id, text in self.corpus.items():
            h.update(doc_id.encode() + b"\0" + text.encode() + b"\0")
        return h.hexdigest()[:16]


def _jsonl(path: Path) -> list[dict]:
    if not path.exists():
        raise DataNotFoundError(
            f"{path} not found; pass --data DIR with corpus.jsonl, queries.jsonl and qrels/"
        )
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load(data: Path, limit_docs: int | None = None, seed: int = 0) -> BeirData:
    """Load a BEIR folder. ``limit_docs`` keeps every judged document plus random others."""
    corpus = {}
    for d in _jsonl(data / "corpus.jsonl"):
        title, text = (d.get("title") or "").strip(), (d.get("text") or "").strip()
        corpus[str(d["_id"])] = f"{title}\n\n{text}" if title else text
    queries = {str(q["_id"]): q["text"] for q in _jsonl(data / "queries.jsonl")}
    qrels: dict[str, dict[str, dict[str, int]]] = {}
    for split_file in sorted((data / "qrels").glob("*.tsv")):
        table: dict[str, dict[str, int]] = {}
        for line in split_file.read_text().splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 3 and int(parts[2]) > 0:
                table.setdefault(parts[0], {})[parts[1]] = int(parts[2])
        qrels[split_file.stem] = table
    if limit_docs and limit_docs < len(corpus):
        judged = {d for t in qrels.values() for rel in t.values() for d in rel if d in corpus}
        rest = sorted(set(corpus) - judged)
        rng = np.random.default_rng(seed)
        extra = rng.choice(len(rest), size=max(0, limit_docs - len(judged)), replace=False)
        keep = judged | {rest[i] for i in extra}
        corpus = {k: v for k, v in corpus.items() if k in keep}
    return BeirData(corpus, queries, qrels)


# -- metrics ---------------------------------------------------------------------------------


# Published figures per data set (nDCG@10 on its test split, BEIR's own tables); a data set not
# listed here shows none, rather than another set's numbers.
PUBLISHED_NDCG = {"scifact": {"bm25": 66.5, "minilm": 64.51}}


def ndcg_at(run: Run, qrels: dict[str, dict[str, int]], k: int = 10) -> float:
    """nDCG@k x 100 as BEIR reports it (pytrec_eval's ``ndcg_cut``): the gain of a document is
    its relevance grade itself (not ``2^grade - 1``), negative grades count as 0."""
    scores = []
    for q, rel in qrels.items():
        ranked = [d for d, _ in run.get(q, [])[:k]]
        dcg = sum(max(rel.get(d, 0), 0) / math.log2(i + 2) for i, d in enumerate(ranked))
        ideal = sorted((max(g, 0) for g in rel.values()), reverse=True)[:k]
        idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
        scores.append(dcg / idcg if idcg else 0.0)
    return 100 * float(np.mean(scores))


def recall_at(run: Run, qrels: dict[str, dict[str, int]], k: int = 100) -> float:
    return 100 * float(
        np.mean(
            [
                len({d for d, _ in run.get(q, [])[:k]} & set(rel)) / len(rel)
                for q, rel in qrels.items()
            ]
        )
    )


def mrr_at(run: Run, qrels: dict[str, dict[str, int]], k: int = 10) -> float:
    out = []
    for q, rel in qrels.items():
        rr = 0.0
        for i, (d, _) in enumerate(run.get(q, [])[:k]):
            if d in rel:
                rr = 1 / (i + 1)
                break
        out.append(rr)
    return 100 * float(np.mean(out))


def metrics(run: Run, qrels) -> dict[str, float]:
    return {
        "ndcg@10": ndcg_at(run, qrels),
        "recall@100": recall_at(run, qrels),
        "mrr@10": mrr_at(run, qrels),
    }


# -- systems ---------------------------------------------------------------------------------


class BM25:
    """The product's FTS5 BM25 over the corpus, in a throw-away index directory."""

    def __init__(self, corpus: dict[str, str]):
        self._tmp = tempfile.TemporaryDirectory(prefix="tpr-beir-")
        path = Path(self._tmp.name)
        with Store.writer(path) as store:
            store.set_meta(dimension=1, generation=0, root="(beir)", fingerprint="bm25-only")
            with store.atomic():
                for doc_id, text in corpus.items():
                    chunk = {
                        "ordinal": 0,
                        "text": text,
                        "start": 0,
                        "end": len(text),
                        "tokens": 0,
                        "vector": b"\0\0\0\0",
                    }
                    store.rows.write_file(
                        file_row(doc_id, 0, 0, None, "indexed", chunks=1), None, [chunk]
                    )
        self.searcher = Searcher(path)
        self.doc_of = self.searcher.store.rows.chunk_paths()

    def run(self, queries: dict[str, str], k: int = 100) -> Run:
        return {
            q: [(self.doc_of[c], s) for c, s in self.searcher.bm25(text, k)]
            for q, text in queries.items()
        }


def dense_run(
    doc_ids: list[str],
    doc_vecs: np.ndarray,
    queries: dict[str, str],
    query_vecs: np.ndarray,
    k: int = 100,
) -> Run:
    """Exact inner-product top-k (what a FAISS Flat IP index returns)."""
    return top_k_run(doc_ids, queries, query_vecs @ doc_vecs.T, k)


def top_k_run(doc_ids: list[str], queries, scores: np.ndarray, k: int = 100) -> Run:
    """Best k documents per query from a [Q, D] score matrix (zero scores dropped for sparse)."""
    top = np.argsort(-scores, axis=1)[:, :k]
    return {
        q: [(doc_ids[j], float(scores[i, j])) for j in top[i] if scores[i, j] != 0]
        for i, q in enumerate(queries)
    }


def sparse_run(doc_ids, doc_bags, queries: dict[str, str], query_bags, k: int = 100) -> Run:
    """Word-weight dot products (see :mod:`retriever.embed.sparse`), exact top-k."""
    from ..embed.sparse import sparse_scores

    return top_k_run(doc_ids, queries, sparse_scores(query_bags, doc_bags), k)


def fuse_runs(runs: dict[str, Run], weights: dict[str, float], method: str = "rrf") -> Run:
    """Any number of runs fused per query by the product's fusion (``rrf`` or ``score``)."""
    out: Run = {}
    for q in set().union(*(r.keys() for r in runs.values())):
        docs = {d for r in runs.values() for d, _ in r.get(q, [])}
        ids = {d: i for i, d in enumerate(docs)}
        names = {i: d for d, i in ids.items()}
        ranked = {side: [(ids[d], s) for d, s in r.get(q, [])] for side, r in runs.items()}
        out[q] = [(names[i], s) for i, s in FUSE[method](ranked, weights)[:100]]
    return out


def fuse(dense: Run, bm25: Run, weight: float, method: str = "rrf") -> Run:
    """Dense fused with BM25 at weight 1, by the product's own fusion (``rrf`` or ``score``)."""
    return fuse_runs({"dense": dense, "bm25": bm25}, {"dense": weight, "bm25": 1.0}, method)


def choose_weights3(a: Run, b: Run, bm25: Run, qrels_train) -> tuple[tuple[float, float], float]:
    """RRF weights (a, b) with BM25 at 1, best train nDCG@10 over the DENSE_WEIGHTS grid."""
    best, best_score = (0.0, 0.0), -1.0
    for wa in DENSE_WEIGHTS:
        for wb in DENSE_WEIGHTS:
            fused = fuse_runs({"a": a, "b": b, "bm25": bm25}, {"a": wa, "b": wb, "bm25": 1.0})
            score = ndcg_at(fused, qrels_train)
            if score > best_score + 1e-9:
                best, best_score = (wa, wb), score
    return best, best_score


RERANK_DEPTHS = (0, 5, 10, 20, 50, 100)  # 0 = the first-stage order unchanged


def rerank(first: Run, doc_ids: list[str], doc_vecs, queries, query_vecs, depth: int) -> Run:
    """``first``'s top ``depth`` documents per query re-ordered by dense score, the rest after.

    Dense as a re-ranker of BM25's candidates: it can only re-order what BM25 found.
    """
    pos = {d: i for i, d in enumerate(doc_ids)}
    out: Run = {}
    for i, q in enumerate(queries):
        ranked = first.get(q, [])
        head, tail = ranked[:depth], ranked[depth:]
        if head:
            s = doc_vecs[[pos[d] for d, _ in head]] @ query_vecs[i]
            head = [(head[j][0], float(s[j])) for j in np.argsort(-s, kind="stable")]
        floor = min((sc for _, sc in head), default=0.0)
        out[q] = head + [(d, floor - 1.0 - r) for r, (d, _) in enumerate(tail)]
    return out


def choose_depth(first_train: Run, doc_ids, doc_vecs, train_q, query_vecs, qrels_train):
    """The re-ranking depth with the best train nDCG@10 (0 = first stage alone, never worse)."""
    grid = {
        n: ndcg_at(rerank(first_train, doc_ids, doc_vecs, train_q, query_vecs, n), qrels_train)
        for n in RERANK_DEPTHS
    }
    return max(grid, key=lambda n: (grid[n], -n)), grid


def cached_vectors(cache: Path | None, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """``compute()`` once per key; stored as .npy (no pickle)."""
    if cache is None:
        return compute()
    path = cache / f"{key}.npy"
    if path.exists():
        return np.load(path, allow_pickle=False)
    vecs = compute()
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, vecs.astype(np.float32), allow_pickle=False)
    tmp.replace(path)
    return vecs


def choose_weight(
    dense_train: Run, bm25_train: Run, qrels_train, method: str = "rrf"
) -> tuple[float, dict]:
    """The dense weight with the best train nDCG@10 (0 = BM25 alone, so never worse)."""
    grid = {
        w: ndcg_at(fuse(dense_train, bm25_train, w, method), qrels_train) for w in DENSE_WEIGHTS
    }
    best = max(grid, key=lambda w: (grid[w], -w))
    return best, grid


def format_table(rows: list[dict], reference: dict[str, float] | None = None) -> str:
    reference = reference or {}
    lines = [
        "| system | nDCG@10 | recall@100 | MRR@10 | published nDCG@10 |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        ref = reference.get(r["system"])
        lines.append(
            f"| {r['system']} | {r['ndcg@10']:.2f} | {r['recall@100']:.2f} | "
            f"{r['mrr@10']:.2f} | {'' if ref is None else f'{ref:.1f}'} |"
        )
    return "\n".join(lines)
