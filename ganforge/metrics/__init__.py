"""Evaluation: evaluators that map images to features, metrics on those features (distances from
torch-fidelity, class figures of ganforge's own), protocols, and the glue that scores a generator
against a data set's reference images."""

from .classes import conditional_accuracy, confusion_matrix, mode_coverage, per_class, share_standard_error

__all__ = ["conditional_accuracy", "confusion_matrix", "mode_coverage", "per_class", "share_standard_error"]
