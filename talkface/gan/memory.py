"""The identity memory of the memory GAN (docs/method.md, "Memory-augmented GAN"; the original's Memory_Network).

Each slot holds a key (the L2-normalised feature of a rendered input, from `KeyEncoder`), a value
(the L2-normalised identity feature of the matching real frame) and an age. At test time the
generator's identity vector is the value of the key nearest to the render's query, so a person's
identity comes from what the memory saw during fine-tuning, not from an encoder on real frames.

Keys, values and ages are buffers: they are written by `update`, never by an optimiser, and are
saved and restored with the state dict. `triplet_loss` trains the key encoder (through the query).

Differences from the original code, all deliberate:
- empty slots hold zero values (the original: tiny random values) so that no target matches them;
- the triplet loss is zero for a query whose top-k slots hold no positive or no negative; the
  original multiplied the scores by the 0/1 mask, so a missing positive scored 0 and still
  produced the hinge max(0, best score + margin);
- a batch whose queries refresh the same slot sums them before normalising, and a slot refreshed
  in a step is never also chosen for replacement in that step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

READ_EVERY = 25  # test time: one memory read per second of 25 fps video, interpolated between


class Memory(nn.Module):
    """Key-value memory: `size` slots of keys [S, key_dim], values [S, value_dim], ages [S]."""

    def __init__(
        self,
        size: int = 30000,
        key_dim: int = 512,
        value_dim: int = 512,
        top_k: int = 256,
        margin: float = 0.3,
        threshold: float = 0.98,
        age_noise: float = 4.0,
    ):
        super().__init__()
        self.top_k = min(top_k, size)
        self.margin = margin
        self.threshold = threshold  # value . target above this: the slot holds this identity
        self.age_noise = age_noise  # uniform noise on ages breaks ties among equally old slots
        self.register_buffer("keys", F.normalize(torch.randn(size, key_dim), dim=1))  # [S, key_dim]
        self.register_buffer("values", torch.zeros(size, value_dim))  # [S, value_dim]; 0 = empty
        self.register_buffer("ages", torch.zeros(size))  # [S] steps since last written

    def _nearest(self, query: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Cosine scores and slot indices of the k nearest keys: [B, k] each (query is unit-norm)."""
        return torch.topk(query @ self.keys.T, k, dim=1)

    def read(self, query: torch.Tensor) -> torch.Tensor:
        """Query [B, key_dim] -> the value of the most similar key [B, value_dim]."""
        _, index = self._nearest(query, 1)  # [B, 1]
        return self.values[index[:, 0]]

    def triplet_loss(self, query: torch.Tensor, target_value: torch.Tensor) -> torch.Tensor:
        """Threshold triplet loss over the top-k keys, mean over the batch (gradient to query only).

        Positive: the best-scoring slot whose value . target > threshold; negative: the best of
        the others; loss max(0, negative - positive + margin). Zero for a query that has no
        positive or no negative among its top-k slots.
        """
        scores, index = self._nearest(query, self.top_k)  # [B, k]
        similarity = (self.values[index] * target_value[:, None, :]).sum(-1)  # [B, k]
        positive_mask = similarity > self.threshold
        no_score = torch.finfo(scores.dtype).min
        positive = scores.masked_fill(~positive_mask, no_score).max(dim=1).values  # [B]
        negative = scores.masked_fill(positive_mask, no_score).max(dim=1).values  # [B]
        has_pair = positive_mask.any(dim=1) & ~positive_mask.all(dim=1)
        hinge = F.relu(negative - positive + self.margin)
        return torch.where(has_pair, hinge, torch.zeros_like(hinge)).mean()

    @torch.no_grad()
    def update(self, query: torch.Tensor, target_value: torch.Tensor, generator: torch.Generator | None = None) -> int:
        """Write a batch of (query [B, key_dim], target value [B, value_dim]); returns slots replaced.

        If the nearest key's value matches the target (> threshold) that key moves towards the
        query (key <- normalise(key + query)) and its age resets; otherwise the oldest slot
        (age + uniform noise in +-age_noise) takes the pair. Every other slot ages by one.
        """
        query = F.normalize(query.to(self.keys.dtype), dim=1)  # autocast may hand in bf16
        target_value = target_value.to(self.values.dtype)
        _, nearest = self._nearest(query, 1)
        nearest = nearest[:, 0]  # [B]
        matched = (self.values[nearest] * target_value).sum(-1) > self.threshold  # [B]
        self.ages += 1.0
        refreshed = nearest[matched]
        self.keys.index_add_(0, refreshed, query[matched])
        self.keys[refreshed] = F.normalize(self.keys[refreshed], dim=1)
        self.ages[refreshed] = 0.0
        n_new = int((~matched).sum())
        if n_new:
            noise = torch.rand(self.ages.shape, generator=generator, device=self.ages.device)
            noisy_age = self.ages + (2.0 * noise - 1.0) * self.age_noise
            noisy_age[refreshed] = -float("inf")
            oldest = torch.topk(noisy_age, n_new).indices  # [n_new]
            self.keys[oldest] = query[~matched]
            self.values[oldest] = target_value[~matched]
            self.ages[oldest] = 0.0
        return n_new

    @torch.no_grad()
    def read_sequence(self, queries: torch.Tensor, every: int = READ_EVERY) -> torch.Tensor:
        """Test time: queries [T, key_dim] -> identity values [T, value_dim] that vary smoothly.

        The memory is read at frames 0, every, 2*every, ... and at the last frame; frames in
        between take the linear interpolation of their two anchors, renormalised to unit length.
        """
        frames = queries.shape[0]
        if frames == 0 or every < 1:
            raise ValueError(f"need at least one query and every >= 1, got {frames} queries, every={every}")
        anchors = sorted(set(range(0, frames, every)) | {frames - 1})
        anchor_values = self.read(queries[anchors])  # [A, value_dim]
        t = torch.arange(frames, device=queries.device)
        left = torch.div(t, every, rounding_mode="floor")  # anchor slot on the left: [T]
        right = torch.clamp(left + 1, max=len(anchors) - 1)
        left_frame = left * every
        right_frame = torch.tensor(anchors, device=queries.device)[right]
        span = (right_frame - left_frame).clamp(min=1)
        weight = ((t - left_frame) / span).to(anchor_values.dtype)[:, None]  # [T, 1]
        mixed = (1.0 - weight) * anchor_values[left] + weight * anchor_values[right]
        return F.normalize(mixed, dim=1)
