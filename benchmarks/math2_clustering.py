"""MATH^2 skill clustering without an LLM: TF-IDF vs all-MiniLM-L6-v2 embeddings on the 24 built-in
seed problems, clustered by question text into 8 groups and scored against the 8 topics we wrote them
for (adjusted Rand index, 1 = perfect). Wall times of both are measured in one run; their ratio is
what survives a shared machine. The paper clusters with the LLM itself (``clusterer="llm"``), which
needs a capable model and is not measured here.

Run: ``python benchmarks/math2_clustering.py``
"""
from __future__ import annotations

import time


def main(repeats: int = 3) -> list[dict]:
    from sklearn.metrics import adjusted_rand_score

    from workbench.math2.data import load_builtin
    from workbench.math2.skills import agglomerate, embed_texts, tfidf_vectors

    probs = load_builtin()
    texts = [p["question"] for p in probs]
    truth = [p["topic"] for p in probs]
    k = len(set(truth))
    embed_texts(texts[:1])  # load the model once, outside the timed region
    rows, times, aris = [], {}, {}
    for name, vec in (("tfidf", tfidf_vectors), ("embedding", embed_texts)):
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            labels = agglomerate(vec(texts), k)
            best = min(best, time.perf_counter() - t0)
        times[name], aris[name] = best, adjusted_rand_score(truth, labels)
        rows.append({"figure": f"math2 {name} clustering ARI vs written topics (24 problems, 8 topics)",
                     "value": round(aris[name], 3), "unit": "ARI"})
        rows.append({"figure": f"math2 {name} clustering wall time (best of {repeats})", "value": round(best * 1000, 1),
                     "unit": "ms"})
    rows.append({"figure": "math2 embedding / tfidf clustering time", "value": round(times["embedding"] / times["tfidf"], 1),
                 "unit": "x"})
    for r in rows:
        print(f"{r['figure']}: {r['value']} {r['unit']}")
    return rows


if __name__ == "__main__":
    main()
