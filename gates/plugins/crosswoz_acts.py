"""Slot values of CrossWOZ dialogue acts in a Chinese reply: a deterministic checker.

A prompt of the ``crosswoz_nlg`` set ends with acts joined by ``；``, each written
``意图(领域.槽=值)`` (intents 告知 inform, 推荐 recommend, 无结果 no result); several values of
one slot are joined by ``、``; general acts (问候, 不客气, ...) carry no value. For each reply:

- every value of every act must be *stated*: found in the reply after NFKC (full-width forms
  become ASCII), case folding and removing whitespace. Where the data spells one fact several
  ways, the checker accepts what the references write: a number with a unit (``131元``,
  ``4.5分``) is stated by its number; ``无`` (none) by a word of absence (没有, 无, 暂无, 没);
  a yes/no hotel facility (``酒店设施-租车=否``) by the facility's name; a phone slot with several
  numbers by any one of them; ``无结果`` (no result) by a word of absence or apology.
  A value not stated is *omitted*.
- a number in the reply (a price, a phone number, a rating, an hour) that occurs in no act of
  the prompt is *added*: the facts a customer-service reply must not invent.
- a reply that writes act notation (``告知(景点.电话=…)``) *echoes* the prompt instead of
  answering it: it states every value, so omission alone would reward it (two thirds of
  Qwen2.5-Coder's zero-shot answers did, BENCHMARKS.md), and it is an error of its own.

It is lenient where the data is loose (its errors are meant to be errors); its rates on the
human references of the shipped test split are measured in its tests. :data:`CROSSWOZ_ACTS` is
the checker as a task plug-in (``gates.generation.task_check: crosswoz-acts``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from conveyor.recipe.schema import GenerationTaskCheck

__all__ = [
    "CROSSWOZ_ACTS",
    "Act",
    "ActCheck",
    "CrossWozActs",
    "act_rates",
    "check_acts",
    "parse_acts",
]

_INTENTS = ("告知", "推荐", "无结果")  # inform, recommend, no result: the acts with values
_ACT = re.compile(rf"^({'|'.join(_INTENTS)})\((.*)\)$")
# an intent followed by its bracket, as the prompt writes acts (folding makes full-width
# brackets ASCII); brackets alone are not enough: names such as 密云印象(农家院.渔家美食) have them
_ECHO = re.compile(rf"(?:{'|'.join(_INTENTS)})\(")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_ABSENT = ("没有", "暂无", "无", "没", "不")
_SORRY = (*_ABSENT, "抱歉", "对不起", "不好意思", "遗憾")
_FACILITY = "酒店设施-"
# facility names the references shorten (the part that identifies the facility)
_FACILITY_WORDS = {"wifi": "wifi", "早餐": "早餐", "停车": "停车", "电话": "电话"}


@dataclass(frozen=True)
class Act:
    """One value of one act: ``intent`` 告知 / 推荐 / 无结果, ``slot`` ``领域.槽`` (or the
    domain alone for 无结果), ``value`` ('' when the act has none)."""

    intent: str
    slot: str
    value: str

    @property
    def label(self) -> str:
        return f"{self.slot}={self.value}" if self.value else f"{self.intent}({self.slot})"


@dataclass(frozen=True)
class ActCheck:
    """What one reply did with one prompt's acts."""

    acts: tuple[Act, ...]
    omitted: tuple[Act, ...] = ()
    added: tuple[str, ...] = ()  # numbers said that no act holds
    echoed: bool = False  # the reply writes act notation instead of a sentence

    @property
    def hallucinated(self) -> bool:
        return bool(self.added)

    @property
    def correct(self) -> bool:
        return not (self.omitted or self.added or self.echoed)


def _folded(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).casefold().split())


def parse_acts(prompt: str) -> tuple[Act, ...]:
    """The valued acts of a prompt (its last line), one :class:`Act` per value, in order."""
    found: list[Act] = []
    for part in prompt.strip().splitlines()[-1].split("；") if prompt.strip() else []:
        match = _ACT.match(part.strip())
        if match is None:
            continue  # a general act (问候, 不客气, ...): nothing to state
        intent, body = match.groups()
        if "=" not in body:
            found.append(Act(intent, body, ""))
            continue
        slot, values = body.split("=", 1)
        found.extend(Act(intent, slot, value) for value in values.split("、") if value)
    return tuple(found)


def _forms(act: Act) -> tuple[str, ...]:
    """The strings any one of which states the act in a reply (already folded)."""
    value = _folded(act.value)
    slot_name = act.slot.split(".", 1)[-1]
    if not act.value:
        return _SORRY
    if value == "无":
        return _ABSENT
    if slot_name.startswith(_FACILITY) and value in ("是", "否"):
        facility = _folded(slot_name.removeprefix(_FACILITY))
        short = [word for key, word in _FACILITY_WORDS.items() if key in facility]
        return (facility, *short)
    if slot_name == "电话":
        return tuple(_folded(n) for n in act.value.split() if any(c.isdigit() for c in n))
    number = _NUMBER.fullmatch(value.rstrip("元分小时以上左右"))
    return (value, number.group()) if number else (value,)


def check_acts(acts: Sequence[Act], reply: str) -> ActCheck:
    """Omitted act values and added numbers of ``reply`` against the prompt's acts."""
    said = _folded(reply)
    omitted = tuple(a for a in acts if not any(form and form in said for form in _forms(a)))
    allowed = "".join(_folded(a.value) for a in acts)
    added = tuple(n for n in _NUMBER.findall(said) if n not in allowed)
    echoed = _ECHO.search(said) is not None
    return ActCheck(tuple(acts), omitted, tuple(dict.fromkeys(added)), echoed)


@dataclass(frozen=True)
class ActRates:
    outputs: int
    omission_rate: float
    hallucination_rate: float
    echo_rate: float  # share of replies writing act notation instead of answering
    error_rate: float  # share of replies with any omitted value, added number or echo
    slot_error_rate: float  # (omitted values + added numbers) / act values


def act_rates(found: Sequence[ActCheck]) -> ActRates:
    """Shares of replies omitting a value, adding a number, echoing the acts, any of these;
    and errors per value."""
    count = len(found)
    if count == 0:
        return ActRates(0, 0.0, 0.0, 0.0, 0.0, 0.0)
    values = sum(len(c.acts) for c in found)
    errors = sum(len(c.omitted) + len(c.added) for c in found)
    return ActRates(
        outputs=count,
        omission_rate=sum(bool(c.omitted) for c in found) / count,
        hallucination_rate=sum(c.hallucinated for c in found) / count,
        echo_rate=sum(c.echoed for c in found) / count,
        error_rate=sum(not c.correct for c in found) / count,
        slot_error_rate=errors / max(values, 1),
    )


class CrossWozActs:
    """The checker as a :class:`gates.plugins.TaskChecker` of ``crosswoz_nlg`` prompts."""

    name = GenerationTaskCheck.CROSSWOZ_ACTS.value

    def check(self, prompt_text: str, answer: str) -> ActCheck:
        return check_acts(parse_acts(prompt_text), answer)

    def rates(self, results: Sequence[ActCheck]) -> dict[str, float]:
        found = act_rates(results)
        return {
            "omission_rate": found.omission_rate,
            "hallucination_rate": found.hallucination_rate,
            "echo_rate": found.echo_rate,
            "fact_error_rate": found.error_rate,
            "slot_error_rate": found.slot_error_rate,
        }


CROSSWOZ_ACTS = CrossWozActs()
