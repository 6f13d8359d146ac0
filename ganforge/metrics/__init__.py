"""Evaluation: metrics on feature and label tensors, evaluators that produce them, and the glue
that scores a generator against a data set's reference split."""

from .classes import conditional_accuracy, confusion_matrix, mode_coverage, per_class, share_standard_error
from .distances import frechet_distance, kernel_inception_distance
from .manifold import precision_recall

__all__ = [
    "conditional_accuracy", "confusion_matrix", "frechet_distance", "kernel_inception_distance", "mode_coverage",
    "per_class", "precision_recall", "share_standard_error",
]
