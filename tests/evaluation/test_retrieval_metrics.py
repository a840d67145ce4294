"""Retrieval and zero-shot metrics on hand-made similarity matrices with known answers, ties included, and
against clip_benchmark's own code and scikit-learn on the same matrices."""

import numpy as np
import pytest

from recap.evaluation.retrieval_metrics import (
    class_text_embeddings,
    image_to_text_ranks,
    retrieval_metrics,
    text_to_image_ranks,
    zero_shot_metrics,
)

# 3 images, 5 texts: texts 0, 1 describe image 0; text 2 image 1; texts 3, 4 image 2.
TEXT_TO_IMAGE = [0, 0, 1, 2, 2]
SCORES = np.array(
    [
        [0.9, 0.1, 0.0],  # text 0: own image first
        [0.2, 0.8, 0.1],  # text 1: own image second
        [0.3, 0.5, 0.4],  # text 2: own image first
        [0.7, 0.6, 0.5],  # text 3: own image third
        [0.1, 0.2, 0.3],  # text 4: own image first
    ]
)


def test_known_ranks_and_recalls():
    assert text_to_image_ranks(SCORES, TEXT_TO_IMAGE).tolist() == [0, 1, 0, 2, 0]
    # image 0: best own 0.9 (text 0), nothing else higher -> 0. image 1: own 0.5 (text 2), texts 1 (0.8) and
    # 3 (0.6) higher -> 2. image 2: best own 0.5 (text 3), text 2 (0.4) and text 1 (0.1) lower -> 0.
    assert image_to_text_ranks(SCORES, TEXT_TO_IMAGE).tolist() == [0, 2, 0]
    metrics = retrieval_metrics(SCORES, TEXT_TO_IMAGE, ks=(1, 2, 3))
    assert metrics["text_to_image_R@1"] == pytest.approx(3 / 5)
    assert metrics["text_to_image_R@2"] == pytest.approx(4 / 5)
    assert metrics["text_to_image_R@3"] == 1.0
    assert metrics["image_to_text_R@1"] == pytest.approx(2 / 3)
    assert metrics["image_to_text_R@2"] == pytest.approx(2 / 3)
    assert metrics["image_to_text_R@3"] == 1.0
    assert metrics["mean_recall@1"] == pytest.approx((3 / 5 + 2 / 3) / 2)


def test_ties_count_against_the_query():
    flat = np.zeros((4, 4))  # a model that scores every pair the same retrieves nothing at R@1
    metrics = retrieval_metrics(flat, [0, 1, 2, 3], ks=(1, 4))
    assert metrics["text_to_image_R@1"] == metrics["image_to_text_R@1"] == 0.0
    assert metrics["text_to_image_R@4"] == metrics["image_to_text_R@4"] == 1.0
    tied = np.array([[1.0, 1.0], [0.0, 1.0]])  # text 0 ties its own image with image 1
    assert text_to_image_ranks(tied, [0, 1]).tolist() == [1, 0]
    # image 1: its own text 1 scores 1.0, tied by text 0 -> rank 1
    assert image_to_text_ranks(tied, [0, 1]).tolist() == [0, 1]


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="have no caption"):
        retrieval_metrics(np.zeros((2, 3)), [0, 1])
    with pytest.raises(ValueError, match="outside"):
        retrieval_metrics(np.zeros((2, 2)), [0, 2])
    with pytest.raises(ValueError, match="3 texts"):
        retrieval_metrics(np.zeros((3, 2)), [0, 1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_numbers_as_clip_benchmark_without_ties(seed):
    torch = pytest.importorskip("torch")
    from clip_benchmark.metrics.zeroshot_retrieval import recall_at_k

    rng = np.random.default_rng(seed)
    images, per_image = 40, 5
    text_to_image = np.repeat(np.arange(images), per_image)
    scores = rng.normal(size=(images * per_image, images)) + 2.0 * (text_to_image[:, None] == np.arange(images))
    positive = torch.from_numpy(text_to_image[:, None] == np.arange(images))
    tensor = torch.from_numpy(scores)
    ours = retrieval_metrics(scores, text_to_image)
    for k in (1, 5, 10):
        theirs_t2i = (recall_at_k(tensor, positive, k) > 0).float().mean().item()
        theirs_i2t = (recall_at_k(tensor.T, positive.T, k) > 0).float().mean().item()
        assert ours[f"text_to_image_R@{k}"] == pytest.approx(theirs_t2i)
        assert ours[f"image_to_text_R@{k}"] == pytest.approx(theirs_i2t)
    assert 0.0 < ours["text_to_image_R@1"] < ours["text_to_image_R@10"] < 1.0  # the test matrices discriminate


def test_zero_shot_known_answers_and_ties():
    logits = np.array([[0.9, 0.1, 0.0], [0.2, 0.3, 0.1], [0.5, 0.5, 0.0], [0.0, 0.1, 0.8]])
    labels = [0, 0, 1, 2]  # right, wrong, tie (wrong), right
    metrics = zero_shot_metrics(logits, labels)
    assert metrics["top1"] == pytest.approx(2 / 4)
    assert metrics["mean_per_class_recall"] == pytest.approx((1 / 2 + 0 + 1) / 3)


def test_zero_shot_matches_scikit_learn_without_ties():
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 6, size=300)
    logits = rng.normal(size=(300, 6)) + 1.5 * (labels[:, None] == np.arange(6))
    metrics = zero_shot_metrics(logits, labels)
    assert metrics["top1"] == pytest.approx(accuracy_score(labels, logits.argmax(axis=1)))
    assert metrics["mean_per_class_recall"] == pytest.approx(balanced_accuracy_score(labels, logits.argmax(axis=1)))


def test_prompt_ensembling_normalises_then_averages():
    features = np.array([[2.0, 0.0], [0.0, 1.0], [0.0, 3.0], [0.0, 3.0]])  # class 0: x and y; class 1: y twice
    classes = class_text_embeddings(features, classes=2)
    assert np.allclose(classes[0], [2**-0.5, 2**-0.5]) and np.allclose(classes[1], [0.0, 1.0])
    with pytest.raises(ValueError, match="do not split"):
        class_text_embeddings(features[:3], classes=2)
