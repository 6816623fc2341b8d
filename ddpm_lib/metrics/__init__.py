"""Measuring a diffusion model: sample quality (MNIST-FID from two judges, precision and
recall, confident and rejected shares, class entropy) judged by shipped MNIST classifiers; a
validation bench of graded corruptions showing the judges react to what they must catch; the
variational bound in bits/dim; a memorisation check; loss-per-t diagnostics."""

from . import corruptions
from .classifier import (NOT_A_DIGIT, ClassifierConfig, Judge, MLPClassifier, MNISTClassifier, accuracy,
                         build_classifier, default_classifier_path, load_classifier, predict,
                         save_classifier, train_classifier)
from .diagnostics import loss_per_t
from .likelihood import (VLBReport, bits_per_dim, discretized_gaussian_log_likelihood, normal_kl,
                         prior_kl, vlb_term)
from .memorisation import MemorisationReport, memorisation_check, nearest_neighbours
from .precision_recall import knn_radii, manifold_share, precision_recall
from .sample_quality import (QualityReport, SampleEvaluator, class_entropy_bits, frechet_distance,
                             gaussian_stats)
from .validation import FloorSpread, ValidationRow, corruption_table, floor_spread

__all__ = [
    "corruptions", "NOT_A_DIGIT", "ClassifierConfig", "Judge", "MLPClassifier", "MNISTClassifier", "build_classifier",
    "accuracy", "default_classifier_path", "load_classifier",
    "predict", "save_classifier", "train_classifier", "loss_per_t", "VLBReport", "bits_per_dim",
    "discretized_gaussian_log_likelihood", "normal_kl", "prior_kl", "vlb_term",
    "MemorisationReport", "memorisation_check", "nearest_neighbours", "QualityReport",
    "SampleEvaluator", "class_entropy_bits", "frechet_distance", "gaussian_stats",
    "knn_radii", "manifold_share", "precision_recall",
    "FloorSpread", "ValidationRow", "corruption_table", "floor_spread",
]
