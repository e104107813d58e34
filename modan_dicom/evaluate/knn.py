"""k-nearest-neighbour accuracy of features: a quick probe of what an encoder has learnt."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def knn_predict(
    train_features: torch.Tensor,
    train_labels: np.ndarray,
    query_features: torch.Tensor,
    k: int = 5,
) -> np.ndarray:
    """Majority vote of the `k` nearest training samples by cosine similarity.

    Args:
        train_features: (N, D). train_labels: (N,) any hashable labels.
        query_features: (M, D).
    Returns:
        (M,) predicted labels (ties go to the label of the nearest neighbour among the tied).
    """
    train = F.normalize(train_features.float(), dim=1)
    query = F.normalize(query_features.float(), dim=1)
    k = min(k, train.shape[0])
    nearest = (query @ train.T).topk(k, dim=1).indices.numpy()
    labels = np.asarray(train_labels)
    predictions = []
    for row in nearest:
        votes = labels[row]
        values, counts = np.unique(votes, return_counts=True)
        winners = set(values[counts == counts.max()])
        predictions.append(next(v for v in votes if v in winners))
    return np.asarray(predictions)


def knn_accuracy(
    train_features: torch.Tensor,
    train_labels: np.ndarray,
    query_features: torch.Tensor,
    query_labels: np.ndarray,
    k: int = 5,
) -> float:
    """Fraction of queries whose k-NN vote equals their label."""
    predicted = knn_predict(train_features, train_labels, query_features, k)
    return float(np.mean(predicted == np.asarray(query_labels)))
