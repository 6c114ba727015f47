"""The int8 rule (lightnets.deploy.reference.judge_int8): agreement where fp32 is confident.

Synthetic logits with known margins and a known int8 error stand in for models: a trained one
(large margins), an undertrained one (near ties) and a broken kernel (a few confident images
flipped, or the logits turned).
"""

from __future__ import annotations

import numpy as np
import pytest

from lightnets.deploy.reference import (
    MIN_CONFIDENT,
    TIE_FACTOR,
    Reference,
    check_reference,
    compare,
    judge_int8,
)

RULE = {"min_agreement": 0.9, "min_cosine": 0.9}


def logits(n: int, margin: float, classes: int = 10, seed: int = 0) -> np.ndarray:
    """n rows of a common offset plus small spread, the top class `margin` above the next."""
    rng = np.random.default_rng(seed)
    rows = 5.0 + 0.1 * rng.standard_normal((n, classes))
    top = rng.integers(0, classes, n)
    rows[np.arange(n), top] = rows.max(1) + margin
    return rows


def noisy(rows: np.ndarray, scale: float, seed: int = 1) -> np.ndarray:
    return rows + scale * np.random.default_rng(seed).uniform(-1, 1, rows.shape)


def test_a_confident_model_is_judged_by_plain_agreement():
    expected = logits(64, margin=2.0)
    check = judge_int8(noisy(expected, 0.05), expected, **RULE)
    assert check.passed and check.agreement == 1.0 and check.note is None
    assert check.confident == 64


def test_near_ties_flipped_by_int8_noise_do_not_refuse_an_undertrained_model():
    """Margins of 0.01 under an int8 error of 0.2: top-1 flips on many images although int8
    computes the same function; with too few confident images the cosine decides and says so."""
    expected = logits(64, margin=0.01)
    actual = noisy(expected, 0.2)
    check = judge_int8(actual, expected, **RULE)
    assert check.agreement < 0.9  # the old rule refused this
    assert check.confident < MIN_CONFIDENT
    assert check.passed and "too undertrained" in check.note
    assert check.cosine > 0.99


def test_flips_of_confident_images_still_refuse_a_mostly_tied_model():
    """A mostly tied model with 16 confident images, 4 of which int8 flips: a real error."""
    tied, sure = logits(48, margin=0.01), logits(16, margin=3.0, seed=2)
    expected = np.concatenate([tied, sure])
    actual = noisy(expected, 0.2)
    flipped = actual[48:52].copy()
    flipped[np.arange(4), flipped.argmax(1)] -= 10.0  # the confident class loses, clearly
    actual[48:52] = flipped
    check = judge_int8(actual, expected, **RULE)
    assert check.confident >= MIN_CONFIDENT and check.confident < 32
    assert check.confident_agreement <= 12 / 16
    assert not check.passed and "confident" in check.note


def test_a_broken_kernel_fails_on_the_cosine_even_when_undertrained():
    expected = logits(64, margin=0.01)
    actual = -expected  # turned logits: ties flip and the vectors point away
    check = judge_int8(actual, expected, **RULE)
    assert not check.passed and check.cosine < 0


def test_confident_means_a_margin_above_the_typical_error():
    expected = logits(40, margin=1.0)
    actual = noisy(expected, 0.3)
    noise = np.median(np.abs(actual - expected).max(1))
    margins = np.sort(expected, 1)[:, -1] - np.sort(expected, 1)[:, -2]
    assert judge_int8(actual, expected, **RULE).confident == int(
        (margins > TIE_FACTOR * noise).sum()
    )


def test_an_embedding_model_is_judged_by_the_cosine_alone():
    expected = logits(64, margin=0.01)
    check = judge_int8(noisy(expected, 0.2), expected, **RULE, classifier=False)
    assert check.passed and check.note is None


# ---------------------------------------------------------------- `lightnets verify`'s rule


def _flip(rows: np.ndarray, images) -> np.ndarray:
    """Swap the top two logits of the given rows: their top-1 changes, little else does."""
    rows = rows.copy()
    for i in images:
        order = np.argsort(rows[i])
        rows[i, order[-1]], rows[i, order[-2]] = rows[i, order[-2]], rows[i, order[-1]]
    return rows


def test_verify_passes_an_int8_file_that_reproduces_its_export_outputs():
    """16 reference images with two flipped at export (87.5%, under 90%): the same outputs here
    mean the export's verdict, made on every calibration image, holds; the plain rule alone
    would refuse the file on the machine that exported it."""
    expected = logits(16, margin=1.0)
    exported = _flip(noisy(expected, 0.02), [3, 7])
    stored = Reference(expected, expected, exported)
    here = exported + 1e-4
    assert not compare(here, expected, "int8", RULE).passed
    check = check_reference(here, stored, "int8", RULE)
    assert check.passed and check.same_as_export == 1.0 and "exporting machine" in check.note
    assert check.export_agreement == 0.875


def test_verify_passes_a_reproduced_file_whose_cosine_on_the_16_is_low():
    """Export judged the cosine on every calibration image; on these 16 it may be lower (a
    model at chance level: 0.875 on x86 and ARM alike). Reproduced here, the verdict holds."""
    expected = logits(16, margin=1.0)
    exported = noisy(expected, 5.0)
    assert compare(exported, expected, "int8", RULE).cosine < RULE["min_cosine"]
    check = check_reference(exported.copy(), Reference(expected, expected, exported), "int8", RULE)
    assert check.passed and check.cosine_vs_export == pytest.approx(1.0)


def test_verify_fails_an_int8_file_that_computes_differently_here():
    """Other kernels flipping other images (top-1 as at export on 13 of 16): not reproduced."""
    expected = logits(16, margin=1.0)
    exported = _flip(noisy(expected, 0.02), [3, 7])
    here = _flip(exported, [0, 1, 2])
    check = check_reference(here, Reference(expected, expected, exported), "int8", RULE)
    assert not check.passed and check.same_as_export == 13 / 16


def test_verify_without_export_outputs_keeps_the_export_rule():
    """A reference set written before the artifact's outputs were stored: the plain rule."""
    expected = logits(16, margin=1.0)
    here = _flip(noisy(expected, 0.02), [3, 7])
    check = check_reference(here, Reference(expected, expected, None), "int8", RULE)
    assert not check.passed and check.same_as_export is None
