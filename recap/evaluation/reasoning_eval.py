"""`recap eval-reasoning`: a captioner answers open-ended questions in InfiMM-Eval's format (issue 28).

    report = evaluate_reasoning(ReasoningEvalConfig(model=..., questions="core-mm-wo-answer.json", out=...))

Each question goes to the captioner with the "reasoning" prompt preset (numbered steps, then a last "Answer:"
line); a multi-image question goes to the single-image model as one grid image, and its output row says so. The
run writes OUT/submission.json (`{key: response}`, the whole response: InfiMM-Eval credits the steps) and
OUT/responses.jsonl. Where the questions carry answers (the world's set: `recap world --reasoning N`) it scores them
with the deterministic scorer, aggregates as the leaderboard does, and adds two baselines that see no image: a
random answer of the right kind and one answer always the same. Those numbers are a "world reasoning score,
InfiMM-Eval rules", never an InfiMM-Eval score (that needs the authors' GPT-4 judge).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from recap.console import progress_bar
from recap.evaluation.reasoning_format import aggregate, question_image, read_questions, write_submission
from recap.evaluation.reasoning_score import SCORE_NAME, score_response, terms
from recap.world.vocabulary import BRAND_PATTERNS, COLOURS, SHAPES, SIZES

CONSTANT_ANSWER = "1"  # the always-same baseline: the commonest count, and nothing else
_RANDOM_TERMS = {
    "colour": tuple(COLOURS),
    "shape": SHAPES,
    "size": SIZES,
    "brand": tuple(name.capitalize() for name in BRAND_PATTERNS),
    "number": ("0", "1", "2", "3"),
}
_RELATIONS = ("above", "below", "to the left of", "to the right of")


@dataclass(kw_only=True)
class ReasoningEvalConfig:
    """What `recap eval-reasoning` runs: a captioner folder on a question file (images under `images`, by default
    the question file's folder)."""

    model: str
    questions: str
    out: str
    images: str | None = None
    backend: str = "transformers"
    batch_size: int = 8
    max_new_tokens: int = 256
    limit: int | None = None
    device: str = "auto"
    dtype: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise ValueError("max_new_tokens and batch_size must be >= 1")


def random_answer(answer: str, rng: np.random.Generator) -> str:
    """A guess of the same kind as `answer`, drawn without looking at anything: each world term of the answer
    replaced by a random one of its kind (a relation by a random relation)."""
    found = terms(answer)
    if any(kind == "relation" for kind, _ in found):
        return str(rng.choice(_RELATIONS))
    parts = [
        str(rng.choice(_RANDOM_TERMS[kind]))
        for kind in ("number", "size", "colour", "shape", "brand")
        if any(k == kind for k, _ in found)
    ]
    return " ".join(parts)


def evaluate_reasoning(config: ReasoningEvalConfig, *, progress: bool = True) -> dict:
    """Answer every question, write the submission and responses, and score where answers are known."""
    from recap.models.captioner import load_captioner
    from recap.models.captioning import CaptionerConfig

    images_folder = Path(config.images or Path(config.questions).parent)
    questions = read_questions(config.questions, images=images_folder)
    questions = questions[: config.limit] if config.limit else questions
    captioner = load_captioner(
        CaptionerConfig(
            model=config.model,
            backend=config.backend,
            prompt="reasoning",
            batch_size=config.batch_size,
            max_new_tokens=config.max_new_tokens,
            device=config.device,
            dtype=config.dtype,
            seed=config.seed,
        )
    )
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    bar = progress_bar(total=len(questions), desc="reasoning", unit="q", disable=not progress)
    for start in range(0, len(questions), config.batch_size):
        batch = questions[start : start + config.batch_size]
        shown = [question_image(question, images_folder) for question in batch]
        results = captioner.caption([image for image, _ in shown], questions=[q.question for q in batch])
        for question, (_, note), result in zip(batch, shown, results, strict=True):
            rows.append(
                {
                    "key": question.key,
                    "response": result.text,
                    "finish_reason": result.finish_reason,
                    "output_tokens": result.output_tokens,
                    "images": len(question.image_paths),
                    "grid_note": note,
                }
            )
        bar.update(len(batch))
    bar.close()
    submission = write_submission(out / "submission.json", {row["key"]: row["response"] for row in rows}, questions)
    report = {
        "config": asdict(config),
        "questions": len(questions),
        "multi_image_questions_as_grids": sum(row["grid_note"] is not None for row in rows),
        "submission": str(submission),
        "truncated": sum(row["finish_reason"] == "length" for row in rows),
    }
    if all(question.answer is not None for question in questions):
        report["score_name"] = SCORE_NAME
        report["models"] = score_all(questions, [row["response"] for row in rows], seed=config.seed)
        for row, scored in zip(rows, report["models"].pop("_rows"), strict=True):
            row.update(scored)
    with open(out / "responses.jsonl", "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    (out / "reasoning.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "reasoning.md").write_text(markdown_reasoning(report))
    return report


def score_all(questions, responses: list[str], *, seed: int = 0) -> dict:
    """{model label: aggregate} for the responses and the two image-blind baselines (plus "_rows": the model's
    per-question scores)."""
    rng = np.random.default_rng(seed)
    answers = {
        "captioner": responses,
        "random answer": [f"Answer: {random_answer(q.answer, rng)}" for q in questions],
        "always the same answer": [f"Answer: {CONSTANT_ANSWER}"] * len(questions),
    }
    result, model_rows = {}, []
    for label, texts in answers.items():
        scored = [score_response(text, q.answer, q.steps) for text, q in zip(texts, questions, strict=True)]
        result[label] = aggregate({q.key: s["score"] for q, s in zip(questions, scored, strict=True)}, questions)
        result[label]["answers_right"] = 100 * sum(s["answer_right"] for s in scored) / len(scored)
        if label == "captioner":
            model_rows = scored
    result["_rows"] = model_rows
    return result


def markdown_reasoning(report: dict) -> str:
    """The report's table: Overall, Moderate, High and each category, per model and baseline."""
    lines = [f"# Reasoning ({report['questions']} questions)", ""]
    if report["multi_image_questions_as_grids"]:
        lines.append(f"{report['multi_image_questions_as_grids']} multi-image questions were shown as one grid image.")
    if "models" not in report:
        lines.append(
            f"No answers in the question file: submission written to {report['submission']} (to be scored "
            "by InfiMM-Eval's authors)."
        )
        return "\n".join(lines) + "\n"
    lines += [f"{report['score_name']} (0-100; High counts twice):", ""]
    lines += [
        "| answers from | Overall | Moderate | High | Deductive | Abductive | Analogical | final answer right |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def cell(value) -> str:
        return "-" if value is None else f"{value:.1f}"

    for label, scores in report["models"].items():
        categories = scores["categories"]
        lines.append(
            f"| {label} | {cell(scores['overall'])} | {cell(scores['moderate'])} | {cell(scores['high'])} | "
            f"{cell(categories['Deductive'])} | {cell(categories['Abductive'])} | {cell(categories['Analogical'])} | "
            f"{scores['answers_right']:.1f}% |"
        )
    return "\n".join(lines) + "\n"
