"""What a human writer scores on the E2E test set: one reference held out, judged like a model.

    .venv/bin/python -m bench.e2e_reference_ceiling [--prompts 400] [--json] [--crosswoz]

For every sampled test meaning representation with at least two references, the first
reference is taken as the output and scored against the others with the gate's own functions
(multi-reference BLEU with sacrebleu, ROUGE-L with rouge-score, the E2E fact checker). The
held-out text competes with one reference fewer than a model gets, so this is a slightly low
estimate of the ceiling, but it shows what the cleaned test set allows: its meaning
representations have 2.5 references each on average (the original challenge's had about 7.5,
which is where the published BLEU points of 0.66-0.70 were measured). ``--crosswoz`` does the
same on the Chinese CrossWOZ test split (BLEU ``zh``, ROUGE-L over characters, the
dialogue-act checker).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from conveyor.recipe.generation import Language
from gates.chat.metrics import score_texts
from gates.chat.test_set import PromptGroup, read_prompt_groups
from gates.plugins import CHECKERS, TaskChecker
from gates.plugins.e2e_facts import E2E_FACTS

DATA = Path(__file__).resolve().parent.parent / "data"
TEST = DATA / "e2e_nlg" / "test.jsonl"


def held_out_reference_scores(
    groups: list[PromptGroup],
    language: Language = Language.EN,
    checker: TaskChecker[Any] = E2E_FACTS,
) -> dict[str, Any]:
    """Score each group's first reference against its other references."""
    multi = [g for g in groups if len(g.references) >= 2]
    outputs = [g.references[0] for g in multi]
    scores = score_texts(outputs, [list(g.references[1:]) for g in multi], language)
    rates = checker.rates(
        [checker.check(g.last_user_text, o) for g, o in zip(multi, outputs, strict=True)]
    )
    return {
        "prompts_sampled": len(groups),
        "prompts_with_two_or_more_references": len(multi),
        "references_per_prompt": float(np.mean([len(g.references) for g in groups])),
        "bleu": scores.bleu(),
        "rouge_l": scores.mean_rouge_l(),
        "chrf": scores.chrf(),
        **rates,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=400, help="0: every test prompt")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--crosswoz", action="store_true", help="the Chinese CrossWOZ test split instead"
    )
    args = parser.parse_args()
    test, language = TEST, Language.EN
    checker: TaskChecker[Any] = E2E_FACTS
    if args.crosswoz:
        test, language = DATA / "crosswoz_nlg" / "test.jsonl", Language.ZH
        checker = CHECKERS["crosswoz-acts"]
    everything = read_prompt_groups(test, 10**9, 0)
    rows = {"all": held_out_reference_scores(everything, language, checker)}
    if args.prompts:
        rows[f"sample of {args.prompts}, seed 0"] = held_out_reference_scores(
            read_prompt_groups(test, args.prompts, 0), language, checker
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for name, row in rows.items():
        print(
            name
            + ": "
            + ", ".join(
                f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()
            )
        )


if __name__ == "__main__":
    main()
