"""Measuring a diffusion model: sample quality (MNIST-FID, confident share, class entropy)
judged by a shipped MNIST classifier, the variational bound in bits/dim, a memorisation check
and loss-per-t diagnostics."""

from .classifier import (ClassifierConfig, MNISTClassifier, accuracy, default_classifier_path,
                         load_classifier, predict, save_classifier, train_classifier)
from .diagnostics import loss_per_t
from .likelihood import (VLBReport, bits_per_dim, discretized_gaussian_log_likelihood, normal_kl,
                         prior_kl, vlb_term)
from .memorisation import MemorisationReport, memorisation_check, nearest_neighbours
from .sample_quality import (QualityReport, SampleEvaluator, class_entropy_bits, frechet_distance,
                             gaussian_stats)

__all__ = [
    "ClassifierConfig", "MNISTClassifier", "accuracy", "default_classifier_path", "load_classifier",
    "predict", "save_classifier", "train_classifier", "loss_per_t", "VLBReport", "bits_per_dim",
    "discretized_gaussian_log_likelihood", "normal_kl", "prior_kl", "vlb_term",
    "MemorisationReport", "memorisation_check", "nearest_neighbours", "QualityReport",
    "SampleEvaluator", "class_entropy_bits", "frechet_distance", "gaussian_stats",
]
