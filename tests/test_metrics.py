"""Metrics: the classifier, MNIST-FID and its floor, bits/dim (Eq. 5, 13) and memorisation."""

import math
import re

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch

from ddpm_lib import load_mnist, load_model, make_schedule
from ddpm_lib import UNetConfig, pretrained_path
from ddpm_lib.diffusion import gather
from ddpm_lib.metrics import (accuracy, bits_per_dim, class_entropy_bits,
                              discretized_gaussian_log_likelihood, frechet_distance, gaussian_stats,
                              load_classifier, loss_per_t, memorisation_check, nearest_neighbours,
                              normal_kl, prior_kl, vlb_term)
from ddpm_lib.checkpoints import CheckpointError


@pytest.fixture(scope="module")
def classifier():
    return load_classifier(device="cpu")


@pytest.fixture(scope="module")
def evaluator(shipped_evaluator):
    return shipped_evaluator


@pytest.fixture(scope="module")
def test_set():
    return load_mnist(train=False)


# ------------------------------------------------------------------ classifier
def test_shipped_classifier_reaches_99_percent(classifier, test_set):
    acc = accuracy(classifier, test_set)
    assert acc >= 0.99, acc
    assert abs(acc - classifier.test_accuracy) < 1e-3  # the number stored with the weights is real


def test_second_judge_is_a_different_kind_of_network_and_both_reject_noise(test_set):
    from ddpm_lib.metrics import NOT_A_DIGIT, MLPClassifier, default_classifier_path, predict
    from ddpm_lib.metrics.classifier import MIN_ACCURACY

    mlp = load_classifier(default_classifier_path("mlp"), device="cpu")
    assert isinstance(mlp, MLPClassifier) and mlp.arch == "mlp" and mlp.num_classes == 11
    assert not any(isinstance(m, torch.nn.Conv2d) for m in mlp.modules())  # no convolutional prior
    acc = accuracy(mlp, test_set)
    assert acc >= MIN_ACCURACY["mlp"] and abs(acc - mlp.test_accuracy) < 1e-3, acc
    noise = torch.rand(200, 1, 28, 28, generator=torch.Generator().manual_seed(4)) * 2 - 1
    for judge in (mlp, load_classifier(device="cpu")):
        _, probs = predict(judge, noise)
        assert (probs.argmax(1) == NOT_A_DIGIT).float().mean() > 0.95


def test_classifier_config_defaults_per_kind_and_refuses_bad_values():
    from ddpm_lib.metrics import ClassifierConfig
    from ddpm_lib.metrics.classifier import DEFAULT_EPOCHS

    assert ClassifierConfig().epochs == DEFAULT_EPOCHS["cnn"] and ClassifierConfig(arch="mlp").epochs == DEFAULT_EPOCHS["mlp"]
    assert ClassifierConfig(arch="mlp", epochs=2).epochs == 2
    for bad in ({"arch": "vit"}, {"epochs": 0}, {"lr": 0.0}, {"reject_share": -0.1}):
        with pytest.raises(ValueError):
            ClassifierConfig(**bad)


def test_a_ten_class_judge_of_the_first_format_still_loads(tmp_path):
    """Weights written before the rejection class existed load as a 10-class CNN; the evaluator
    then reports nothing as rejected."""
    from ddpm_lib.checkpoints import save_checkpoint
    from ddpm_lib.metrics import MNISTClassifier

    old = MNISTClassifier(num_classes=10)
    save_checkpoint({"format": "ddpm_lib.classifier/1", "test_accuracy": 0.5, "note": "", "config": {},
                     "model": old.state_dict()}, tmp_path / "old.pt")
    judge = load_classifier(tmp_path / "old.pt", device="cpu")
    assert judge.num_classes == 10 and judge.arch == "cnn"
    for a, b in zip(judge.state_dict().values(), old.state_dict().values()):
        assert torch.equal(a, b)


def test_missing_or_foreign_classifier_file_is_explained(tmp_path):
    with pytest.raises(CheckpointError, match="not found.*train_classifier and save_classifier"):
        load_classifier(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable classifier"):
        load_classifier(tmp_path / "junk.pt")


def test_a_judge_below_min_accuracy_is_refused_when_loaded_for_evaluation(tmp_path):
    """Audit: a 13.7%-accurate judge gave MNIST-FID 0.005 with no warning. Loaded for evaluation
    (check_accuracy=True), a judge is scored on held-out MNIST test images, whatever accuracy its file
    claims, and one below MIN_ACCURACY is refused in one line."""
    from ddpm_lib.metrics.classifier import MIN_ACCURACY, build_classifier, save_classifier

    torch.manual_seed(0)
    path = save_classifier(build_classifier("mlp"), tmp_path / "bad.pt", test_accuracy=0.99)  # untrained, lying
    judge = load_classifier(path, device="cpu")  # not for evaluation: loaded as it is, nothing measured
    assert judge.test_accuracy == pytest.approx(0.99) and judge.measured_accuracy is None
    with pytest.raises(CheckpointError, match=rf"bad.pt .*judge.* (\d+\.\d)% right on \d+ held-out MNIST test images.*"
                                              rf"claims 99\.0%.*below the {MIN_ACCURACY['mlp']:.1%}") as err:
        load_classifier(path, device="cpu", check_accuracy=True)
    measured = float(re.search(r"(\d+\.\d)% right", str(err.value)).group(1)) / 100
    assert measured < 0.5 and "\n" not in str(err.value)


@pytest.mark.parametrize("arch", ["cnn", "mlp"])
def test_the_shipped_judges_pass_the_accuracy_check_and_report_what_was_measured(arch, test_set):
    from ddpm_lib.metrics import default_classifier_path
    from ddpm_lib.metrics.classifier import ACCURACY_CHECK_IMAGES, MIN_ACCURACY, held_out_digits

    judge = load_classifier(default_classifier_path(arch), device="cpu", check_accuracy=True)
    held_out = held_out_digits()
    assert len(held_out) == ACCURACY_CHECK_IMAGES < len(test_set)  # a subset, the same every time
    assert torch.equal(held_out.tensors[0], held_out_digits().tensors[0])
    test_images = {image.numpy().tobytes() for image in test_set.tensors[0]}
    assert all(image.numpy().tobytes() in test_images for image in held_out.tensors[0])  # never trained on
    assert judge.measured_accuracy == accuracy(judge, held_out) >= MIN_ACCURACY[arch]
    assert abs(judge.measured_accuracy - judge.test_accuracy) < 0.005


def test_a_judge_file_carries_the_checksum_of_its_weights_and_a_changed_weight_is_refused(tmp_path):
    from ddpm_lib.files import CHECKSUM_KEY, read_weights_file, weights_checksum
    from ddpm_lib.metrics.classifier import build_classifier, save_classifier

    path = save_classifier(build_classifier("mlp"), tmp_path / "judge.pt", test_accuracy=0.5)
    state = read_weights_file(path)
    assert state[CHECKSUM_KEY] == {"model": weights_checksum(state["model"])}
    state["model"]["head.1.bias"][3] += 1
    torch.save(state, tmp_path / "changed.pt")
    with pytest.raises(CheckpointError, match=r"^classifier file .*changed.pt is damaged.*use another copy"):
        load_classifier(tmp_path / "changed.pt", device="cpu")


# ------------------------------------------------------------------ Fréchet distance
def test_frechet_distance_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 6)), rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) + 0.5
    mu1, s1 = gaussian_stats(torch.from_numpy(a))
    mu2, s2 = gaussian_stats(torch.from_numpy(b))
    covmean = scipy.linalg.sqrtm(s1.numpy() @ s2.numpy()).real
    ref = ((mu1 - mu2) ** 2).sum().item() + np.trace(s1.numpy() + s2.numpy() - 2 * covmean)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-8)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)
    shift = torch.arange(6.0, dtype=torch.float64)
    assert frechet_distance(mu1, s1, mu1 + shift, s1) == pytest.approx(shift.square().sum().item(), rel=1e-8)


@pytest.mark.slow
def test_real_digits_score_at_the_floor_and_noise_far_from_it(evaluator, test_set):
    n = 500
    real = evaluator.train_images[torch.randperm(60_000, generator=torch.Generator().manual_seed(7))[:n]]
    rep_real = evaluator.evaluate(real)
    assert rep_real.n == n and rep_real.fid_floor > 0
    assert rep_real.fid_ratio < 1.5, rep_real
    assert rep_real.confident_share > 0.95 and rep_real.entropy_bits > 3.2, rep_real
    noise = torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    rep_noise = evaluator.evaluate(noise)
    assert rep_noise.fid > 20 * rep_real.fid, (rep_real, rep_noise)
    blurred = torch.nn.functional.avg_pool2d(real, 3, 1, 1)  # a mild defect lands in between
    assert rep_real.fid < evaluator.fid(blurred) < rep_noise.fid
    # the floor shrinks with n: the reason numbers are only comparable at equal n
    assert evaluator.fid_floor(2000) < evaluator.fid_floor(200)


@pytest.mark.slow
def test_requested_digit_accuracy_and_entropy(evaluator, test_set):
    images, labels = test_set.tensors
    sevens = images[labels == 7][:200]
    rep = evaluator.evaluate(sevens, digits=7)
    assert rep.accuracy > 0.98 and rep.entropy_bits < 0.3 and rep.histogram[7] == max(rep.histogram)
    assert class_entropy_bits(torch.tensor([5, 5, 5, 5])) == pytest.approx(2.0)
    assert class_entropy_bits(torch.tensor([0, 9, 0])) == 0.0
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        evaluator.evaluate(sevens * 127.5 + 127.5)
    with pytest.raises(ValueError, match="NaN"):
        evaluator.evaluate(torch.full((4, 1, 28, 28), float("nan")))


# ------------------------------------------------------------------ memorisation
def test_nearest_neighbours_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    q, r = torch.randn(30, 1, 28, 28, generator=g), torch.randn(200, 1, 28, 28, generator=g)
    d, i = nearest_neighbours(q, r, batch_size=7)
    full = torch.cdist(q.flatten(1).double(), r.flatten(1).double())
    assert torch.equal(i, full.argmin(1))
    assert torch.allclose(d.double(), full.min(1).values, atol=1e-4)


def test_copies_of_training_images_are_flagged(test_set):
    train = load_mnist(subset=5000).tensors[0]
    test = test_set.tensors[0][:200]
    copied = memorisation_check(train[:200], train, test)
    assert copied.copy_share == 1.0 and copied.ratio < 0.01
    fresh = memorisation_check(test_set.tensors[0][200:400], train, test)
    assert 0.8 < fresh.ratio < 1.25 and fresh.copy_share <= 0.05


# ------------------------------------------------------------------ bits/dim pieces
def test_normal_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    m1, m2, lv1, lv2 = (torch.randn(100, generator=g, dtype=torch.float64) for _ in range(4))
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(m1, (0.5 * lv1).exp()),
                                            torch.distributions.Normal(m2, (0.5 * lv2).exp()))
    assert torch.allclose(normal_kl(m1, lv1, m2, lv2), ref, atol=1e-12)


def test_discretized_decoder_is_a_distribution_over_256_levels():
    """Eq. 13: the probabilities of all 256 pixel values sum to 1 and match Phi differences."""
    x = torch.arange(256, dtype=torch.float64) / 127.5 - 1
    for mean, log_scale in ((0.3, math.log(0.05)), (-1.0, math.log(0.004)), (0.99, math.log(2.0))):
        logp = discretized_gaussian_log_likelihood(x, torch.full_like(x, mean), torch.full_like(x, log_scale))
        assert logp.exp().sum().item() == pytest.approx(1.0, abs=1e-9)
        s = math.exp(log_scale)
        up, lo = ((x[1:-1] + 1 / 255 - mean) / s).numpy(), ((x[1:-1] - 1 / 255 - mean) / s).numpy()
        norm = scipy.stats.norm
        mid = np.where(lo > 0, norm.sf(lo) - norm.sf(up), norm.cdf(up) - norm.cdf(lo))  # tail-side differences
        ok = mid > 1e-300
        assert np.allclose(logp[1:-1].numpy()[ok], np.log(mid[ok]), rtol=1e-6)
    # far out in a tail the stable formula stays finite where Phi differences underflow
    far = discretized_gaussian_log_likelihood(torch.tensor([0.0]), torch.tensor([-0.9]), torch.tensor([math.log(0.01)]))
    assert torch.isfinite(far).all() and far.item() < -3000


class _Oracle(torch.nn.Module):
    """The exact eps for a data set of one image x0*, plus a constant error ``c``."""

    def __init__(self, schedule, x_star, c=0.0):
        super().__init__()
        self.schedule, self.c = schedule, c
        self.register_buffer("x_star", x_star)

    def forward(self, x, t):
        s = self.schedule
        return (x - gather(s.sqrt_alpha_bars, t, x) * self.x_star) / gather(s.sqrt_one_minus_alpha_bars, t, x) + self.c


def test_bits_per_dim_of_a_known_model_matches_the_closed_form(test_set):
    """With eps_theta = true eps + c, x0_hat = x0* - c sqrt(1/alpha_bar - 1), so each KL term is
    D (coef_x0_t c sqrt(1/alpha_bar_t - 1))^2 / (2 beta_tilde_t): Eq. 5 summed by hand."""
    schedule = make_schedule(T=1000)
    x_star = test_set.tensors[0][:1]
    c = 0.01
    model = _Oracle(schedule, x_star, c)
    x0 = x_star.expand(6, -1, -1, -1).contiguous()
    exact = bits_per_dim(model, schedule, x0, t_samples=None, clip_x0=False, progress=False)
    d = x_star.numel()
    s = {k: getattr(schedule, k).double() for k in ("posterior_mean_coef_x0", "alpha_bars", "beta_tilde")}
    kl = d * (s["posterior_mean_coef_x0"] * c * (1 / s["alpha_bars"] - 1).sqrt()).square() / (2 * s["beta_tilde"].clamp_min(1e-30))
    kl_bpd = kl[1:].sum().item() / (d * math.log(2))
    assert exact.terms["L_t q1"] + exact.terms["L_t q2"] + exact.terms["L_t q3"] + exact.terms["L_t q4"] \
        == pytest.approx(kl_bpd, rel=1e-4)  # the model runs in float32
    assert exact.terms["L_T"] == pytest.approx(prior_kl(schedule, x_star).item() / (d * math.log(2)), rel=1e-9)
    # with sigma_t^2 = beta_t each KL adds the variance mismatch 0.5 (r - 1 - log r), r = beta_tilde / beta
    large = bits_per_dim(model, schedule, x0, t_samples=None, variance="beta", clip_x0=False, progress=False)
    beta, bt = schedule.betas.double(), s["beta_tilde"]
    r = bt[1:] / beta[1:]
    kl_large = d * (0.5 * (r - 1 - r.log()) + (s["posterior_mean_coef_x0"][1:] * c * (1 / s["alpha_bars"][1:] - 1).sqrt()).square() / (2 * beta[1:]))
    assert sum(v for k, v in large.terms.items() if k.startswith("L_t")) == pytest.approx(
        kl_large.sum().item() / (d * math.log(2)), rel=1e-4)
    assert large.terms["L_0"] == pytest.approx(exact.terms["L_0"], rel=1e-9)  # both decode with beta_tilde_1
    assert exact.total == pytest.approx(sum(exact.terms.values()), rel=1e-9)
    # stratified sampling over t is unbiased: within 4 standard errors of the exact sum
    est = bits_per_dim(model, schedule, x0.repeat(20, 1, 1, 1), t_samples=40, clip_x0=False, progress=False)
    assert abs(est.total - exact.total) < 4 * est.stderr + 1e-9, (est, exact)
    # the perfect model pays only for L_T and the 8-bit decoder
    perfect = bits_per_dim(_Oracle(schedule, x_star), schedule, x0, t_samples=8, progress=False)
    assert sum(v for k, v in perfect.terms.items() if k.startswith("L_t")) == pytest.approx(0, abs=1e-6)
    # ... and its L_0 is the 8-bit bin mass of N(x0*, beta_tilde_1) around each pixel (scipy)
    x = x_star.double().flatten().numpy()
    sd = math.sqrt(schedule.beta_tilde[1].item())
    up = np.where(x > 0.999, np.inf, x + 1 / 255)
    lo = np.where(x < -0.999, -np.inf, x - 1 / 255)
    p = scipy.stats.norm.cdf(up, loc=x, scale=sd) - scipy.stats.norm.cdf(lo, loc=x, scale=sd)
    assert perfect.terms["L_0"] == pytest.approx(-np.log(p).sum() / (d * math.log(2)), rel=1e-5)


@pytest.mark.parametrize("T", [2, 7, 10])
def test_bits_per_dim_works_for_small_T(T, test_set):
    """Quarters of t = 1..T-1 may be empty or smaller than the strata asked for."""
    schedule = make_schedule(T=T)
    x_star = test_set.tensors[0][:1]
    model = _Oracle(schedule, x_star, 0.01)
    exact = bits_per_dim(model, schedule, x_star, t_samples=None, clip_x0=False, progress=False)
    for k in (4, 8, 100):  # with at most one t per stratum here, sampling is exact
        est = bits_per_dim(model, schedule, x_star, t_samples=k, clip_x0=False, progress=False)
        assert math.isfinite(est.total)
        if k >= T:
            assert est.total == pytest.approx(exact.total, rel=1e-6)


def test_vlb_term_rejects_bad_input(test_set):
    schedule = make_schedule(T=10)
    model = _Oracle(schedule, test_set.tensors[0][:1])
    with pytest.raises(ValueError, match="8-bit"):
        bits_per_dim(model, schedule, torch.rand(2, 1, 28, 28) * 2 - 1, progress=False)
    with pytest.raises(ValueError, match=r"\[0, T\)"):
        vlb_term(model, schedule, test_set.tensors[0][:2], torch.tensor([0, 10]))
    with pytest.raises(ValueError, match="variance"):
        vlb_term(model, schedule, test_set.tensors[0][:2], torch.tensor([0, 1]), variance="learned")


class _Zero(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, t):
        return torch.zeros_like(x)


def test_trained_model_has_a_lower_bound_and_a_falling_loss_per_t(test_set):
    """The shipped U-Net (the small preset) loads with its own width and models the test images
    far better than a network that predicts eps = 0."""
    path = pretrained_path("unet_mnist")
    if not path.exists():
        pytest.skip(f"{path} not checked out")
    model, schedule = load_model(path, device="cpu")
    assert model.config.base_channels == UNetConfig.small().base_channels
    x0 = test_set.tensors[0][:24]
    trained = bits_per_dim(model, schedule, x0, t_samples=8, progress=False)
    untrained = bits_per_dim(_Zero(), schedule, x0, t_samples=8, progress=False)  # eps_theta = 0
    assert math.isfinite(trained.total) and 0.3 < trained.total < 4.0, trained
    assert trained.total < 0.5 * untrained.total, (trained, untrained)
    ts, losses = loss_per_t(model, schedule, x0, timesteps=[0, 100, 500, 999])
    assert ts.tolist() == [0, 100, 500, 999] and losses[0] > losses[2] > losses[3]
