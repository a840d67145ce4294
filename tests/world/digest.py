"""The digest that pins the default world: its first samples, taken before the long-tail and domain options
existed. Any option must leave it unchanged when it is not used."""

from __future__ import annotations

import hashlib

from recap.world.generate import WorldConfig, make_sample

DEFAULT_WORLD_DIGEST = "92af09e1fc82f04495b4402dc10d5fb39165d0511e0f971bb4c77ce148e037b6"


def world_digest(config: WorldConfig, samples: int = 60) -> str:
    """sha256 over the uid, scene, alt-text and image bytes of each split's first `samples` samples."""
    digest = hashlib.sha256()
    for split in ("web", "sft", "eval"):
        for index in range(samples):
            sample = make_sample(config, split, index)
            for part in (sample.uid, sample.scene.to_json(), sample.alt_text):
                digest.update(part.encode())
            digest.update(sample.image_bytes)
    return digest.hexdigest()
