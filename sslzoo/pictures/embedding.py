"""The 2-D embedding: a fixed random subset of a set, and t-SNE (scikit-learn) of its features."""
from __future__ import annotations

import numpy as np


def subset_positions(num_items: int, limit: int, seed: int = 0) -> np.ndarray:
    """At most `limit` positions of range(num_items), drawn without replacement by `seed` and
    sorted: the same images every time, spread over the set even when it is ordered by class."""
    if limit < 0:
        raise ValueError(f"the number of points must be >= 0, got {limit}")
    if num_items <= limit:
        return np.arange(num_items)
    return np.sort(np.random.default_rng(seed).choice(num_items, limit, replace=False))


def tsne_2d(features: np.ndarray, seed: int = 0, perplexity: float = 30.0, iterations: int = 500) -> np.ndarray:
    """(N, D) features -> (N, 2) t-SNE coordinates, deterministic for a given `seed` (PCA start).

    t-SNE needs perplexity < N, so small sets get perplexity (N - 1) / 3 (at least 1), which keeps
    each point's effective neighbourhood inside the set. Identical features (one point, or a
    collapsed network) all sit at the origin: scikit-learn cannot place them (it crashes)."""
    from sklearn.manifold import TSNE  # imported here: it takes a second and only embeddings need it

    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or len(features) == 0:
        raise ValueError(f"tsne_2d needs a non-empty (N, D) feature array, got shape {features.shape}")
    if not np.isfinite(features).all():
        raise ValueError("tsne_2d: the features hold NaN or inf values; the network's outputs are not finite")
    spread = np.ptp(features, axis=0).max()
    if spread <= 1e-6 * max(1.0, float(np.abs(features).max())):
        return np.zeros((len(features), 2), dtype=np.float32)
    if iterations < 250:
        raise ValueError(f"t-SNE needs at least 250 iterations (scikit-learn's minimum), got {iterations}")
    perplexity = min(perplexity, max(1.0, (len(features) - 1) / 3))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", max_iter=iterations, random_state=seed)
    return tsne.fit_transform(features).astype(np.float32)
