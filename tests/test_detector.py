"""The detector of generated pictures (minidiff.detector): its measures, what pictures go through,
its training in the scaffold and its files."""

import itertools

import numpy as np
import pytest
import torch

from minidiff import detector, gan, world
from minidiff.checkpoint import CheckpointError, load_model
from minidiff.judge import DEFAULT_JUDGE, load_judge
from minidiff.scaffold import Watch

QUIET = Watch(progress=False)


def pair_count_auc(real, fake) -> float:
    """The definition: over every (real, generated) pair, 1 if the generated one scores higher,
    1/2 if they tie."""
    pairs = list(itertools.product(real, fake))
    return sum(1.0 if f > r else 0.5 if f == r else 0.0 for r, f in pairs) / len(pairs)


def test_auc_is_the_share_of_pairs_ranked_right_with_ties_counting_half():
    rng = np.random.default_rng(0)
    for n_real, n_fake, levels in [(1, 1, 2), (7, 3, 3), (40, 25, 5), (30, 60, 1000)]:
        real = rng.integers(0, levels, n_real)  # few levels: many ties
        fake = rng.integers(0, levels, n_fake) + rng.integers(0, 2, n_fake)
        assert detector.roc_auc(real, fake) == pytest.approx(pair_count_auc(real, fake), abs=1e-12)
    scores = rng.normal(size=50)
    assert detector.roc_auc(scores, scores) == 0.5
    assert detector.roc_auc([0, 1], [2, 3]) == 1 and detector.roc_auc([2, 3], [0, 1]) == 0


def test_the_best_threshold_is_the_best_of_every_possible_threshold():
    rng = np.random.default_rng(1)
    real, fake = rng.integers(0, 8, 30).astype(float), rng.integers(3, 12, 20).astype(float)
    best = detector.best_threshold(real, fake)
    every = np.concatenate([np.unique(np.concatenate([real, fake])), [np.inf]])
    top = max(detector.at_threshold(real, fake, t)["accuracy"] for t in every)
    assert detector.at_threshold(real, fake, best)["accuracy"] == top
    rates = detector.at_threshold([0, 1, 2, 3], [2, 5], 2)
    assert rates == {"accuracy": (1 + 1 - 0.5) / 2, "caught": 1.0, "false_alarms": 0.5}


def palette_distance(images: np.ndarray) -> np.ndarray:
    """For every pixel, the largest channel difference to the nearest world colour it may take:
    the background exactly, a palette colour within the world's colour jitter. 0 = on palette."""
    x = images.astype(int)[..., None, :]  # (N, H, W, 1, 3)
    palette = np.array([world.BACKGROUND, *world.PALETTE.values()])  # (7, 3)
    reach = np.array([0] + [world.COLOUR_JITTER] * len(world.PALETTE))[:, None]  # (7, 1)
    return np.clip(np.abs(x - palette) - reach, 0, None).max(-1).min(-1)  # (N, H, W)


def interior(images: np.ndarray) -> np.ndarray:
    """Pixels whose 3 x 3 neighbourhood is one colour (the flat inside of a shape, or its
    background): (N, H, W) booleans, the border excluded."""
    x = images.astype(int)
    same = np.ones(images.shape[:3], dtype=bool)
    for dy, dx in itertools.product((-1, 0, 1), repeat=2):
        same &= (np.roll(x, (dy, dx), axis=(1, 2)) == x).all(-1)
    same[:, [0, -1]], same[:, :, [0, -1]] = False, False
    return same


def test_snapping_keeps_a_render_flat_and_puts_every_pixel_on_the_palette():
    real, _, _ = world.batch("test", 0, 40)
    snapped = detector.snap_to_palette(real)
    inside = interior(real)
    assert inside.mean() > 0.7 and (snapped[inside] == real[inside]).all()
    assert (snapped != real).any()  # the anti-aliased edges are snapped
    rng = np.random.default_rng(0)
    noisy = np.clip(real + rng.normal(0, 1.5, real.shape).round(), 0, 255).astype(np.uint8)
    back = detector.snap_to_palette(noisy)  # a render with a generator's noise: flat again
    assert np.abs(back.astype(int) - real)[inside].max() <= 1  # a median of noisy pixels
    background = inside & (real == world.BACKGROUND).all(-1)
    assert (back[background] == world.BACKGROUND).all()
    wild = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    for pictures in (snapped, back, detector.snap_to_palette(wild)):
        assert (palette_distance(pictures) == 0).all()
        assert all(len(np.unique(p.reshape(-1, 3), axis=0)) <= 7 for p in pictures)


def test_what_pictures_go_through_keeps_their_shape_and_type():
    real, _, _ = world.batch("test", 0, 12)
    changed = [
        detector.blur(real, 1.0),
        detector.resize(real, 0.5),
        detector.jpeg(real, 30),
        detector.augment(real, torch.Generator().manual_seed(0)),
    ]
    for pictures in changed:
        assert pictures.shape == real.shape and pictures.dtype == np.uint8
        assert (pictures != real).any()
    again = detector.augment(real, torch.Generator().manual_seed(0))
    assert (again == changed[-1]).all()  # the step's generator decides everything
    flat = np.full((2, 32, 32, 3), 200, dtype=np.uint8)
    for f in (lambda x: detector.blur(x, 2.0), lambda x: detector.resize(x, 0.3)):
        assert (f(flat) == flat).all()  # weights summing to one keep a flat picture flat
    spread = [detector.blur(real, s).astype(float).std() for s in (0.5, 1.0, 2.0)]
    assert real.astype(float).std() > spread[0] > spread[1] > spread[2]


def test_the_network_is_small_and_scores_every_picture():
    net = detector.Detector()
    assert 10_000 < sum(p.numel() for p in net.parameters()) < 100_000
    scores = net.score(world.batch("test", 0, 5)[0])
    assert scores.shape == (5,) and scores.dtype == np.float64 and net.training


def test_a_few_steps_learn_and_a_resumed_run_equals_a_straight_one(tmp_path, tiny_model_file):
    """An untrained model's pictures are noise: a few steps of training tell them from renders."""
    cfg = detector.DetectorTraining(
        steps=40,
        batch_size=8,
        pool=16,
        generator=str(tiny_model_file),
        checkpoint_every=20,
        log_every=1,
    )
    records = []
    straight = detector.train_detector(
        tmp_path / "straight", cfg, watch=Watch(progress=False, on_log=records.append)
    )
    assert records[-1]["loss"] < 0.5 * records[0]["loss"]
    real, fake = world.batch("train", 0, 16)[0], np.load(tmp_path / "straight" / "pool.npz")["fake"]
    assert detector.roc_auc(straight.score(real), straight.score(fake)) > 0.9
    detector.train_detector(tmp_path / "halves", cfg, watch=Watch(progress=False, stop_at=20))
    assert not (tmp_path / "halves" / "detector.safetensors").exists()
    resumed = detector.train_detector(tmp_path / "halves", cfg, resume=True, watch=QUIET)
    for name, value in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], value), name
    loaded = detector.load_detector(tmp_path / "halves" / "detector.safetensors")
    assert loaded.info["pool_seconds"] >= 0 and loaded.info["train_config"]["pool"] == 16
    assert np.array_equal(loaded.score(real), straight.score(real))


def test_only_augmented_training_augments_and_both_classes_alike(
    tmp_path, tiny_model_file, monkeypatch
):
    seen = []
    augment = detector.augment
    monkeypatch.setattr(detector, "augment", lambda x, g: seen.append(len(x)) or augment(x, g))
    for on in (False, True):
        cfg = detector.DetectorTraining(
            steps=2, batch_size=4, pool=4, generator=str(tiny_model_file), augment=on
        )
        made = detector.train_detector(tmp_path / str(on), cfg, watch=QUIET)
        assert made.info["train_config"]["augment"] is on
        assert seen == ([8, 8] if on else [])  # each step's 4 real and 4 generated pictures


def one_sentence(match: str):
    return pytest.raises(ValueError, match=match)


@pytest.mark.parametrize(
    "call, says",
    [
        (lambda: detector.check_pictures(np.zeros((2, 32, 32, 3))), "must be a uint8 numpy array"),
        (lambda: detector.check_pictures([[1, 2]]), "must be a uint8 numpy array"),
        (lambda: detector.check_pictures(np.zeros((32, 32, 3), np.uint8)), "must have shape"),
        (lambda: detector.check_pictures(np.zeros((1, 28, 28, 3), np.uint8)), "must have shape"),
        (lambda: detector.Detector().score(np.zeros((0, 32, 32, 3), np.uint8)), "N >= 1"),
        (lambda: detector.snap_to_palette(np.zeros((1, 32, 32, 4), np.uint8)), "must have shape"),
        (lambda: detector.blur(np.zeros((1, 32, 32, 3), np.uint8), float("nan")), "sigma must"),
        (lambda: detector.blur(np.zeros((1, 32, 32, 3), np.uint8), 0), "sigma must"),
        (lambda: detector.resize(np.zeros((1, 32, 32, 3), np.uint8), -0.5), "scale must"),
        (lambda: detector.resize(np.zeros((1, 32, 32, 3), np.uint8), float("inf")), "scale must"),
        (lambda: detector.jpeg(np.zeros((1, 32, 32, 3), np.uint8), 0), "quality must"),
        (lambda: detector.jpeg(np.zeros((1, 32, 32, 3), np.uint8), 50.5), "quality must"),
        (lambda: detector.roc_auc([0.1, float("nan")], [1.0]), "real_scores must"),
        (lambda: detector.roc_auc([0.1], []), "fake_scores must"),
        (lambda: detector.best_threshold([float("inf")], [1.0]), "real_scores must"),
    ],
)
def test_bad_input_is_refused_in_one_sentence(call, says):
    with one_sentence(says) as e:
        call()
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "settings, says",
    [
        ({"lr": float("nan")}, "lr must be a positive number"),
        ({"lr": -1.0}, "lr must be a positive number"),
        ({"minutes": float("inf")}, "minutes must be a positive number"),
        ({"batch_size": 0}, "batch_size must be a whole number"),
        ({"pool": -3}, "pool must be a whole number"),
        ({"generator": ""}, "generator must name"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_drawn(tmp_path, settings, says):
    with one_sentence(says) as e:
        detector.train_detector(tmp_path, detector.DetectorTraining(steps=1, **settings))
    assert "\n" not in str(e.value) and not any(tmp_path.iterdir())


def test_each_loader_refuses_the_others_files(tmp_path):
    path = tmp_path / "detector.safetensors"
    detector.save_detector(detector.Detector(), path, {"note": "untrained"})
    assert detector.load_detector(path).info == {"note": "untrained"}
    with pytest.raises(CheckpointError, match="holds judge weights, not a detector") as e:
        detector.load_detector(DEFAULT_JUDGE)
    assert "\n" not in str(e.value)
    with pytest.raises(CheckpointError, match="holds detector weights, not a text-to-image model"):
        load_model(path)
    with pytest.raises(CheckpointError, match="holds detector weights, not a GAN generator"):
        gan.load_gan(path)
    with pytest.raises(CheckpointError, match="not a judge"):
        load_judge(path)
