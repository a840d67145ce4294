"""Prompt presets for the captioner. A preset's id and full text go into every run manifest."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class PromptPreset:
    """A named instruction. `{alt_text}` in `text` is filled with the sample's original caption, `{question}` with
    a question asked about the image (`recap eval-reasoning`)."""

    id: str
    text: str
    description: str

    @property
    def uses_alt_text(self) -> bool:
        return "{alt_text}" in self.text

    @property
    def uses_question(self) -> bool:
        return "{question}" in self.text

    def render(self, alt_text: str | None = None, question: str | None = None) -> str:
        """The user instruction for one image; alt-text presets need the sample's alt-text, question presets the
        question."""
        text = self.text
        if self.uses_alt_text:
            if alt_text is None:
                raise ValueError(f"prompt preset {self.id!r} needs each sample's alt-text; pass alt_texts")
            text = text.replace("{alt_text}", " ".join(alt_text.split()) or "(none)")
        if self.uses_question:
            if not question:
                raise ValueError(f"prompt preset {self.id!r} needs a question per image; pass questions")
            text = text.replace("{question}", question.strip())
        return text


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
# `recap eval-reasoning`'s: InfiMM-Eval asks open-ended questions and credits the reasoning steps, so the prompt
# asks for numbered steps and a last line with the final answer (what the world's scorer reads).
REASONING_PROMPT = PromptPreset(
    id="reasoning",
    text="{question}\nThink step by step. Write your reasoning as numbered steps, then give your final answer on a "
    'last line that starts with "Answer:".',
    description="A question about the image, answered with numbered reasoning steps and a final 'Answer:' line "
    "(recap eval-reasoning; InfiMM-Eval-style open-ended reasoning).",
)
PROMPT_PRESETS[REASONING_PROMPT.id] = REASONING_PROMPT


def get_prompt(preset_id: str) -> PromptPreset:
    try:
        return PROMPT_PRESETS[preset_id]
    except KeyError:
        raise ValueError(f"unknown prompt preset {preset_id!r}; choose one of {sorted(PROMPT_PRESETS)}") from None
