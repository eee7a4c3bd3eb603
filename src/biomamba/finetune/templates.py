"""Prompt templates: each task's example becomes a (prompt, completion) pair, TRL's prompt-completion format.

The loss is taken on the completion only, so the template decides exactly what the model is taught to emit:
an answer word for yes/no/maybe questions, an option letter for lettered multiple choice (BioMistral's SFT),
free text for consumer-health answers and clinical notes. Every completion starts with a space so that a
byte-level BPE tokenizes the answer the same way in training and in scoring.

`style="chat"` wraps the prompt in the tokenizer's chat template (instruction-tuned bases such as Mistral
Instruct) when it has one; `"plain"` is the base-model format the published recipes used; `"auto"` picks chat
exactly when the tokenizer defines a chat template.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from biomamba.finetune.clinical import GenerationExample
from biomamba.finetune.records import QAExample

TemplateStyle = Literal["auto", "plain", "chat"]

INSTRUCTIONS = {
    "yes-no-maybe": "Answer the biomedical research question with yes, no or maybe.",
    "lettered": "Answer the medical question with the letter of the correct option.",
    "free-text": "Answer the health question.",
    "discharge-summary": (
        "Write the hospital course and discharge sections of the discharge summary for this admission."
    ),
    "note-completion": "Continue the clinical note.",
}


@dataclass(frozen=True)
class PromptCompletion:
    prompt: str
    completion: str
    choices: tuple[str, ...] = ()  # candidate completions, gold one at `label`, for scoring
    label: int | None = None


def qa_kind(example: QAExample) -> str:
    if not example.options:
        return "free-text"
    if example.option_labels == tuple(example.options):
        return "yes-no-maybe"
    return "lettered"


def _plain_qa(example: QAExample, kind: str) -> str:
    parts = []
    if example.context:
        parts.append(f"Context: {example.context}")
    parts.append(f"Question: {example.question}")
    if kind == "lettered":
        parts.extend(
            f"({letter}) {text}" for letter, text in zip(example.option_labels, example.options, strict=True)
        )
    return "\n".join(parts) + "\nAnswer:"


def format_qa(example: QAExample) -> PromptCompletion:
    """The plain-text prompt and answer of one QA example, with its scoring choices."""
    kind = qa_kind(example)
    prompt = _plain_qa(example, kind)
    if kind == "free-text":
        return PromptCompletion(prompt, " " + example.answer)
    choices = tuple(" " + label for label in example.option_labels)
    assert example.label is not None
    return PromptCompletion(prompt, choices[example.label], choices, example.label)


def format_generation(example: GenerationExample) -> PromptCompletion:
    """Clinical generation: the note side the model sees, and the reference it must write."""
    if example.task == "note-completion":
        return PromptCompletion(example.prompt, " " + example.reference)
    prompt = f"{INSTRUCTIONS['discharge-summary']}\n\n{example.prompt}\n\nDischarge summary:"
    return PromptCompletion(prompt, " " + example.reference)


def uses_chat(tokenizer: Any, style: TemplateStyle) -> bool:
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if style == "chat" and not has_template:
        from biomamba.errors import BiomambaError

        raise BiomambaError(
            "finetune.template: 'chat' needs a tokenizer with a chat_template; use 'plain' or 'auto'"
        )
    return style == "chat" or (style == "auto" and has_template)


def apply_style(
    pair: PromptCompletion, tokenizer: Any, style: TemplateStyle, instruction: str
) -> PromptCompletion:
    """Wrap the prompt in the tokenizer's chat template when the style asks for it (TRL's convention)."""
    if not uses_chat(tokenizer, style):
        return pair
    messages = [{"role": "user", "content": f"{instruction}\n\n{pair.prompt}"}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    strip = [c.lstrip() for c in pair.choices]
    return PromptCompletion(prompt, pair.completion.lstrip(), tuple(strip), pair.label)


def render(
    example: QAExample | GenerationExample, tokenizer: Any, style: TemplateStyle = "plain"
) -> PromptCompletion:
    """Example -> (prompt, completion) in the chosen style."""
    if isinstance(example, QAExample):
        pair, instruction = format_qa(example), INSTRUCTIONS[qa_kind(example)]
    else:
        pair, instruction = format_generation(example), INSTRUCTIONS[example.task]
    return apply_style(pair, tokenizer, style, instruction)
