"""Prompt presets for the captioner. A preset's id and full text go into every run manifest."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class PromptPreset:
    """A named instruction. `{alt_text}` in `text` is filled with the sample's original caption."""

    id: str
    text: str
    description: str

    @property
    def uses_alt_text(self) -> bool:
        return "{alt_text}" in self.text

    def render(self, alt_text: str | None = None) -> str:
        """The user instruction for one image; alt-text presets need the sample's alt-text."""
        if not self.uses_alt_text:
            return self.text
        if alt_text is None:
            raise ValueError(f"prompt preset {self.id!r} needs each sample's alt-text; pass alt_texts")
        return self.text.replace("{alt_text}", " ".join(alt_text.split()) or "(none)")


PROMPT_PRESETS: dict[str, PromptPreset] = {
    preset.id: preset
    for preset in (
        PromptPreset(
            id="recap-datacomp-1b",
            text="Please generate a detailed caption of this image. Please be as descriptive as possible.",
            description="The Recap-DataComp-1B paper's prompt (Li et al., 2024).",
        ),
        PromptPreset(
            id="alt-text-conditioned",
            text=(
                'The original web caption of this image is: "{alt_text}". Please generate a detailed caption '
                "of this image, keeping the true information of the original caption. Please be as descriptive "
                "as possible."
            ),
            description="Shows the model the original alt-text, as in Recap-DataComp-1B's later version and "
            "CapsFusion, so true names in the alt-text can survive recaptioning.",
        ),
        PromptPreset(
            id="short",
            text="Please generate a short caption of this image in one sentence.",
            description="A one-sentence caption, for short-text training mixes.",
        ),
    )
}
DEFAULT_PROMPT = "recap-datacomp-1b"


def get_prompt(preset_id: str) -> PromptPreset:
    try:
        return PROMPT_PRESETS[preset_id]
    except KeyError:
        raise ValueError(f"unknown prompt preset {preset_id!r}; choose one of {sorted(PROMPT_PRESETS)}") from None
