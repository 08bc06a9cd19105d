"""The supervised contrastive loss (Khosla et al., 2020) over a batch of sentence embeddings.

For each anchor i with at least one other row of its class in the batch (its positives P(i)):

    loss_i = -1/|P(i)| * sum_{p in P(i)} log( exp(z_i.z_p / t) / sum_{a != i} exp(z_i.z_a / t) )

on L2-normalised embeddings z and temperature t, averaged over the anchors that have positives
(an anchor alone with its class in the batch has nothing to be pulled towards). Beside
cross-entropy it pulls each class's embeddings together and pushes other classes away in the
embedding itself, the space a distance-based OOD score (``ClassDistance``) measures in (Zeng et
al., 2021, "Modeling discriminative representations for out-of-domain detection with supervised
contrastive learning"). Written with ``keras.ops``, so it runs under every backend.
"""

from __future__ import annotations

from keras import ops

from modelgate.models.pooling import l2_normalize

# Added to an anchor's similarity with itself: exp() of it is 0 in float32 at any temperature.
_SELF = -1e9


def supervised_contrastive_loss(embeddings, labels, temperature: float = 0.1):
    """Scalar loss for embeddings [B, dim] and integer labels [B] (0 when no anchor has a positive)."""
    if not temperature > 0:
        raise ValueError(f"supervised_contrastive_loss: temperature must be > 0, got {temperature}")
    z = l2_normalize(ops.cast(embeddings, "float32"))
    labels = ops.reshape(labels, (-1,))
    count = ops.shape(z)[0]
    self_mask = ops.eye(count, dtype="float32")
    similarity = ops.matmul(z, ops.transpose(z)) / temperature + _SELF * self_mask
    log_probability = similarity - ops.logsumexp(similarity, axis=1, keepdims=True)
    positives = ops.cast(ops.equal(labels[:, None], labels[None, :]), "float32") * (1.0 - self_mask)
    positives_count = ops.sum(positives, axis=1)
    per_anchor = ops.sum(positives * log_probability, axis=1) / ops.maximum(positives_count, 1.0)
    has_positive = ops.cast(positives_count > 0, "float32")
    return -ops.sum(has_positive * per_anchor) / ops.maximum(ops.sum(has_positive), 1.0)
