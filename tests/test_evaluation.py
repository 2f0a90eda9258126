"""Known-answer tests of the alignment and every metric (values computed by hand)."""

import numpy as np
import pytest
import torch

from midas_diffusion.evaluation.protocol import (
    PROTOCOLS,
    Protocol,
    absrel,
    align_scale_shift,
    delta_accuracy,
    delta_bad,
    disparity_to_capped_depth,
    evaluate_sample,
    improvement,
    protocol_for,
    rmse,
    whdr,
)

PRED = np.array([[1.0, 2.0], [3.0, 4.0]])
GT = np.array([[1.0, 1.0], [4.0, 4.0]])
# ratios max(p/g, g/p): 1, 2, 4/3, 1;  |p-g|/g: 0, 1, 1/4, 0;  (p-g)^2: 0, 1, 1, 0


def test_metrics_by_hand():
    assert absrel(PRED, GT) == pytest.approx(1.25 / 4)
    assert delta_bad(PRED, GT) == pytest.approx(0.5)
    assert delta_bad(PRED, GT, threshold=1.5) == pytest.approx(0.25)
    assert delta_accuracy(PRED, GT) == pytest.approx((0.5, 0.75, 0.75))  # 1.25, 1.5625, 1.953125
    assert rmse(PRED, GT) == pytest.approx(np.sqrt(0.5))


def test_metrics_respect_the_mask_and_accept_tensors():
    mask = np.array([[True, False], [True, True]])
    assert absrel(PRED, GT, mask) == pytest.approx(0.25 / 3)
    assert delta_bad(torch.tensor(PRED), torch.tensor(GT), torch.tensor(mask)) == pytest.approx(1 / 3)
    assert rmse(PRED, GT, mask) == pytest.approx(np.sqrt(1 / 3))
    gt = GT.copy()
    gt[0, 1] = 0  # without a mask, gt <= 0 is "no measurement"
    assert absrel(PRED, gt) == pytest.approx(0.25 / 3)


def test_metrics_refuse_bad_depths():
    with pytest.raises(ValueError, match="pred_depth must be finite and positive"):
        absrel(-PRED, GT)
    with pytest.raises(ValueError, match="no valid pixels"):
        delta_bad(PRED, GT, np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match="pred_depth is 1x2 but gt_depth is 2x2"):
        rmse(PRED[:1], GT)


def test_alignment_closed_form_by_hand():
    # p = 0, 1, 2 and d = 0, 1, 3: mean p = 1, mean d = 4/3, cov = 1, var = 2/3
    a = align_scale_shift(np.array([[0.0, 1.0, 2.0]]), np.array([[0.0, 1.0, 3.0]]))
    assert a.scale == pytest.approx(1.5) and a.shift == pytest.approx(-1 / 6)
    np.testing.assert_allclose(a.aligned, [[-1 / 6, 4 / 3, 17 / 6]])


def test_alignment_uses_only_the_mask():
    pred = np.array([[0.0, 1.0, 2.0, 3.0]])
    target = np.array([[1.0, 3.0, 5.0, 100.0]])  # the last pixel is an outlier, masked out
    a = align_scale_shift(torch.tensor(pred), target, np.array([[1, 1, 1, 0]], bool))
    assert (a.scale, a.shift) == (pytest.approx(2.0), pytest.approx(1.0))
    assert a.aligned[0, 3] == pytest.approx(7.0)


@pytest.mark.parametrize(
    "pred, mask, message",
    [
        (np.ones((2, 2)), None, "constant over the mask"),
        (PRED, np.zeros((2, 2), bool), "selects 0 pixel"),
        (np.array([[1.0, np.nan], [3.0, 4.0]]), None, "pred contains NaN"),
        (np.array([[1.0, np.inf], [3.0, 4.0]]), None, "pred contains NaN or infinite"),
    ],
)
def test_alignment_refuses_degenerate_inputs(pred, mask, message):
    with pytest.raises(ValueError, match=message):
        align_scale_shift(pred, GT, mask)


def test_nan_outside_the_mask_is_fine():
    pred = np.array([[1.0, np.nan], [3.0, 4.0]])
    a = align_scale_shift(pred, 2 * pred + 1, np.array([[1, 0], [1, 1]], bool))
    assert (a.scale, a.shift) == (pytest.approx(2.0), pytest.approx(1.0))


def test_cap_turns_far_and_negative_disparity_into_the_cap():
    np.testing.assert_allclose(disparity_to_capped_depth(np.array([[-1.0, 0.0, 0.05, 0.5]]), 10.0),
                               [[10.0, 10.0, 10.0, 2.0]])


@pytest.mark.parametrize("dataset", ["nyu", "kitti", "tum", "eth3d", "sintel", "folder"])
def test_exact_affine_prediction_scores_zero(dataset):
    rng = np.random.default_rng(0)
    protocol = PROTOCOLS[dataset]
    top = protocol.depth_cap or 20.0
    gt = rng.uniform(0.5, top, (30, 40))
    pred = 37.0 / gt + 5.0  # an affine function of the true disparity (any positive scale and shift)
    gt[:2], pred[:2] = 0, rng.uniform(0, 1, (2, 40))  # no measurement there: anything goes
    result = evaluate_sample(pred, gt, None, protocol)
    assert result["metric"] == protocol.metric
    assert result["value"] == pytest.approx(0.0, abs=1e-9)
    assert result["absrel"] == pytest.approx(0.0, abs=1e-9) and result["delta_bad"] == 0.0
    assert result["delta1"] == 1.0 and result["rmse"] == pytest.approx(0.0, abs=1e-7)
    assert result["scale"] == pytest.approx(1 / 37) and result["valid_pixels"] == 28 * 40


def test_evaluate_sample_applies_the_protocol_range_and_cap():
    gt = np.array([[1.0, 2.0, 4.0, 50.0]])
    pred = np.array([[1.0, 0.5, 0.25, 0.0]])  # perfect disparity for the first three pixels
    nyu = Protocol("t", "absrel", depth_cap=10.0, max_depth=10.0)
    result = evaluate_sample(pred, gt, None, nyu)
    assert result["valid_pixels"] == 3 and result["absrel"] == pytest.approx(0.0, abs=1e-12)
    # with the far pixel valid, the fit cannot be exact; its depth is capped at depth_cap
    far = Protocol("t", "delta_bad", depth_cap=10.0, max_depth=100.0)
    result = evaluate_sample(pred, gt, None, far)
    assert result["valid_pixels"] == 4 and 0 < result["delta_bad"] <= 0.5
    with pytest.raises(ValueError, match="1 valid ground-truth pixel"):
        evaluate_sample(pred, np.array([[1.0, 0, 0, 0]]), None, nyu)


def test_whdr_on_hand_made_pairs():
    disparity = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    pairs = [
        (0, 0, 1, 2, +1),  # A: 1, B: 6 -> A has less disparity, is farther: agrees
        (1, 2, 0, 0, -1),  # A: 6, B: 1 -> A is closer: agrees
        (0, 1, 0, 2, -1),  # A: 2, B: 3 -> predicted farther, labelled closer: disagrees
        (1, 0, 1, 1, +1),  # A: 4, B: 5 -> farther: agrees
    ]
    assert whdr(disparity, pairs) == pytest.approx(0.25)
    assert whdr(torch.tensor(disparity), pairs, weights=[1, 1, 3, 1]) == pytest.approx(0.5)
    assert whdr(np.ones((2, 3)), pairs[:1]) == 1.0  # a tie is a disagreement
    result = evaluate_sample(disparity, None, None, PROTOCOLS["diw"], pairs=pairs)
    assert result == {"metric": "whdr", "value": 0.25, "whdr": 0.25, "pairs": 4}


def test_whdr_refuses_bad_pairs():
    with pytest.raises(ValueError, match="outside the 3x2 prediction"):
        whdr(np.ones((2, 3)), [(0, 0, 2, 0, 1)])
    with pytest.raises(ValueError, match=r"\+1 \(A farther than B\) or -1"):
        whdr(np.ones((2, 3)), [(0, 0, 1, 0, 0)])
    with pytest.raises(ValueError, match="pass pairs="):
        evaluate_sample(np.ones((2, 3)), None, None, PROTOCOLS["diw"])


def test_protocols_follow_the_paper():
    metrics = {name: p.metric for name, p in PROTOCOLS.items()}
    assert metrics == {"diw": "whdr", "eth3d": "absrel", "sintel": "absrel", "tum": "delta_bad",
                       "kitti": "delta_bad", "nyu": "delta_bad", "folder": "absrel"}
    caps = {name: p.depth_cap for name, p in PROTOCOLS.items()}
    assert caps == {"diw": None, "eth3d": 72.0, "sintel": 72.0, "tum": 10.0, "kitti": 80.0, "nyu": 10.0, "folder": None}
    changed = protocol_for("nyu", depth_cap=20.0, metric="absrel")
    assert (changed.depth_cap, changed.max_depth, changed.metric) == (20.0, 20.0, "absrel")
    with pytest.raises(ValueError, match="its only metric is whdr"):
        protocol_for("diw", metric="absrel")
    with pytest.raises(ValueError, match="metric must be one of"):
        Protocol("x", "silog")


def test_improvement_is_the_papers_imp():
    # 100 * (1 - mean(0.5/1.0, 0.2/0.4)) = 50; datasets the reference lacks are ignored
    assert improvement({"a": 0.5, "b": 0.2, "c": 9.0}, {"a": 1.0, "b": 0.4}) == pytest.approx(50.0)
    assert improvement({"a": 2.0}, {"a": 1.0}) == pytest.approx(-100.0)
    assert improvement({"a": 1.0}, {"b": 1.0}) is None
