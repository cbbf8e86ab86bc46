"""Fact coverage of data-to-text output on E2E meaning representations: a deterministic checker.

An MR is ``name[The Mill], eatType[pub], food[English], ...`` over 8 slots. For each text:

- ``name`` and ``near`` are stated when their value occurs (case and accents ignored, a leading
  "The" optional); both are then masked, so "Raja Indian Cuisine" says nothing about food.
- The other six slots have closed value sets. Each value has patterns (synonyms and
  paraphrases seen in the E2E references); values that mean the same are one class
  ("cheap" = "less than £20", "1 out of 5" = "low"). A slot of the MR is *omitted* when no
  pattern of its class matches, *contradicted* when only another class of the slot matches.
  A slot not in the MR that the text states anyway is *added* (``near``: "near X" with a
  capitalised X). Contradicted and added are hallucinations.

The checker is deliberately lenient where wording is ambiguous (a text matching both its own
class and another counts as stated): its errors are meant to be errors. Its rates on the human
references of the cleaned test set are measured in its tests.

:data:`E2E_FACTS` is the checker as a task plug-in (``gates.generation.task_check:
e2e-facts``): the MR is read from the prompt.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from conveyor.recipe.schema import GenerationTaskCheck

__all__ = [
    "E2E_FACTS",
    "SLOTS",
    "E2EFacts",
    "FactCheck",
    "FactRates",
    "check_facts",
    "fact_rates",
    "parse_mr",
]

SLOTS = (
    "name",
    "eatType",
    "food",
    "priceRange",
    "customer rating",
    "area",
    "familyFriendly",
    "near",
)
_MR_SLOT = re.compile(r"(" + "|".join(re.escape(s) for s in SLOTS) + r")\[([^\]]*)\]")

_STAR = r"(?:[ -]?stars?| (?:out )?of (?:5|five)|/5)"
_RATED = r"(?:rat(?:ed|ing|ings)|reviews?|scores?)"
_PRICE = r"(?:prices?|priced|pricing|cost|costs|price range|menu)"

# slot -> class -> patterns (searched in the lower-cased text with name and near masked)
_CLASSES: dict[str, dict[str, tuple[str, ...]]] = {
    "eatType": {
        "coffee shop": (r"coffee[ -]?(?:shop|house)s?", r"\bcaf[eé]s?\b", r"\bcoffee\b"),
        "pub": (r"\bpubs?\b",),
        "restaurant": (r"\brestaurants?\b",),
    },
    "food": {
        "Chinese": (r"\bchinese\b",),
        "English": (r"\benglish\b", r"\bbritish\b"),
        "Japanese": (r"\bjapanese\b", r"\bsushi\b"),
        "French": (r"\bfrench\b",),
        "Italian": (r"\bitalian\b", r"\bpizzas?\b", r"\bpasta\b"),
        "Fast food": (r"\bfast[ -]?foods?\b",),
        "Indian": (r"\bindian\b", r"\bcurr(?:y|ies)\b"),
    },
    "priceRange": {
        "low": (
            r"\bcheap",
            r"\binexpensive",
            r"\blow[ -]?(?:cost|price|priced|prices|budget)",
            rf"{_PRICE}(?: range)?(?: is| are)?(?: very| quite)? (?:low|cheap)",
            r"\bbudget",
            r"\baffordabl",
            r"(?:less than|under|below|lower than) (?:£ ?20|20 ?(?:£|pounds))",
            r"£ ?20 or (?:less|under)",
        ),
        "mid": (
            r"\bmoderate",
            r"\baverage[ -]?(?:price|priced|prices|cost)",
            rf"{_PRICE}(?: range)?(?: is| are)?(?: an)? average",
            r"\bmid[ -]?(?:range|priced|price)",
            r"\breasonabl",
            r"£ ?20 ?(?:-|–|to|and) ?£? ?25",
            r"\b20 ?(?:-|–|to) ?25\b",
        ),
        "high": (
            r"(?<!in)expensive",
            r"\bhigh[ -]?(?:end|cost|price|priced|prices)",
            rf"{_PRICE}(?: range)?(?: is| are)?(?: very| quite)? high",
            r"\bpricey",
            r"\bpricy",
            r"\bcostly",
            r"\bupscale",
            r"\bluxur",
            r"(?:more than|over|above|higher than|upwards of) (?:£ ?30|30 ?(?:£|pounds))",
            r"£ ?30 (?:or more|plus)",
            r"£ ?30\+",
        ),
    },
    "customer rating": {
        "low": (
            rf"\b(?:1|one){_STAR}",
            rf"\blow(?:ly)?[ -](?:customer[ -])?(?:{_RATED}|rated)",
            rf"{_RATED}(?: is| are| of)?(?: a)?(?: very| quite)? (?:low|poor|bad)",
            rf"\bpoor(?:ly)?[ -](?:customer[ -])?(?:{_RATED}|rated)",
            r"\bbad(?:ly)?[ -](?:customer[ -])?(?:rated|reviews?|ratings?)",
            r"\blow customer",
            rf"(?:n't|not|never)(?: have| got| get| receive)?(?: a| very| many)? "
            rf"(?:good|great|high) (?:customer )?{_RATED}",
        ),
        "average": (
            rf"\b(?:3|three){_STAR}",
            rf"\baverage(?:ly)?[ -](?:customer[ -])?(?:{_RATED}|rated)",
            rf"{_RATED}(?: is| are| of)?(?: an)? average",
            r"\baverage customer",
            r"\bmid[ -]?rated",
        ),
        "high": (
            rf"\b(?:5|five){_STAR}",
            rf"\bhigh(?:ly)?[ -](?:customer[ -])?(?:{_RATED}|rated)",
            rf"{_RATED}(?: is| are| of)?(?: a)?(?: very)? (?:high|excellent|great|good)",
            r"\bwell[ -]rated",
            r"\btop[ -]rated",
            rf"\b(?:excellent|great|good) (?:customer )?{_RATED}",
            r"\bhigh customer",
        ),
    },
    "area": {
        "city centre": (r"\bcent(?:re|er)\b", r"\bdowntown\b", r"\bheart of the city\b"),
        "riverside": (r"\briver",),
    },
}
_NEGATED_FAMILY = (
    r"\b(?:not|n't|non|no|never)[ -](?:a |very |really |so |particularly )*"
    r"(?:family|kid|kids|child|children)[ -]?(?:friendly|oriented|welcoming)",
    r"n't (?:a |very |really |so |particularly )*(?:family|kid|child)",
    r"(?:family|kid|child|children)[ -]?unfriendly",
    r"\badults?[ -](?:only|establishment|venue|place|pub|restaurant|atmosphere)",
    r"\bnot (?:suitable|good|ideal|recommended|great|meant|intended|appropriate|for|"
    r"welcoming|open|friendly)(?: to| for)? (?:the )?(?:famil|kid|child)",
    r"\badults?[ -]only\b",
    r"\bno (?:kids|children|families)\b",
    r"\b(?:kids|children|families) (?:are )?not (?:welcome|allowed|permitted)",
    r"\bnot (?:welcom|allow|permit)\w* (?:to )?(?:famil|kid|child)",
    r"\b(?:un|non)[ -]*(?:family|kid|child)[ -]?friendly",
)
_FAMILY = (
    r"(?:family|kid|kids|child|children)[ -]?(?:friendly|oriented|welcoming)",
    r"\b(?:famil(?:y|ies)|kids|children) (?:are |is )?welcome",
    r"\b(?:welcomes?|for|allows?|accommodates?|caters? (?:to|for)|suitable for|good for|"
    r"ideal for|great for|perfect for|open to)(?: the)?(?: whole)? (?:famil|kid|child)",
)
_NEAR = re.compile(r"\b(?:near|close to|next to|beside|by|nearby)\s+(?:the\s+)?[A-Z]")
_VALUE_CLASS = {
    "priceRange": {
        "cheap": "low",
        "less than £20": "low",
        "moderate": "mid",
        "£20-25": "mid",
        "high": "high",
        "more than £30": "high",
    },
    "customer rating": {
        "low": "low",
        "1 out of 5": "low",
        "average": "average",
        "3 out of 5": "average",
        "high": "high",
        "5 out of 5": "high",
    },
}


@dataclass(frozen=True)
class FactCheck:
    """What one text did with one MR's slots."""

    slots: tuple[str, ...]
    omitted: tuple[str, ...] = ()
    contradicted: tuple[tuple[str, str], ...] = ()  # (slot, the class the text states)
    added: tuple[str, ...] = ()

    @property
    def hallucinated(self) -> bool:
        return bool(self.contradicted or self.added)

    @property
    def correct(self) -> bool:
        return not (self.omitted or self.hallucinated)

    @property
    def errors(self) -> int:
        return len(self.omitted) + len(self.contradicted) + len(self.added)


@dataclass(frozen=True)
class FactRates:
    outputs: int
    omission_rate: float
    hallucination_rate: float
    error_rate: float  # share of outputs with any omitted, contradicted or added fact
    slot_error_rate: float  # (omitted + contradicted + added) / MR slots
    by_slot: dict[str, int] = field(default_factory=dict)


def parse_mr(text: str) -> dict[str, str]:
    """The slots of the MR found in ``text`` (e.g. a prompt), in order."""
    return {slot: value.strip() for slot, value in _MR_SLOT.findall(text)}


def _value_pattern(value: str) -> re.Pattern[str]:
    folded = " ".join(_strip_accents(value).casefold().split())
    optional_the = folded.removeprefix("the ")
    body = re.escape(optional_the).replace(r"\ ", r"[\s-]+")
    return re.compile(r"(?:\bthe\s+)?" + body + r"(?:'s)?", re.IGNORECASE)


def _classes_found(slot: str, text: str) -> set[str]:
    if slot == "familyFriendly":
        if any(re.search(p, text) for p in _NEGATED_FAMILY):
            return {"no"}
        return {"yes"} if any(re.search(p, text) for p in _FAMILY) else set()
    return {
        name
        for name, patterns in _CLASSES[slot].items()
        if any(re.search(p, text) for p in patterns)
    }


def _class_of(slot: str, value: str) -> str:
    if slot in _VALUE_CLASS:
        return _VALUE_CLASS[slot].get(value, value)
    return value


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def check_facts(mr: Mapping[str, str], text: str) -> FactCheck:
    """Omitted, contradicted and added slots of ``text`` against the MR."""
    plain = _strip_accents(text)
    omitted: list[str] = []
    for slot in ("name", "near"):
        if slot in mr:
            pattern = _value_pattern(mr[slot])
            if not pattern.search(plain):
                omitted.append(slot)
            plain = pattern.sub(" maskedvalue ", plain)
    folded = " ".join(plain.casefold().split())
    contradicted: list[tuple[str, str]] = []
    added: list[str] = []
    for slot in SLOTS[1:-1]:
        found = _classes_found(slot, folded)
        if slot in mr:
            wanted = _class_of(slot, mr[slot])
            if slot == "eatType" and wanted != "restaurant":
                found.discard("restaurant")  # "restaurant" is also said of any place to eat
            if wanted in found:
                continue
            if found:
                contradicted.append((slot, sorted(found)[0]))
            else:
                omitted.append(slot)
        elif found and not (slot == "eatType" and found == {"restaurant"}):
            added.append(slot)
    if "near" not in mr and _NEAR.search(plain):
        added.append("near")
    order = {slot: i for i, slot in enumerate(SLOTS)}
    return FactCheck(
        tuple(mr),
        tuple(sorted(omitted, key=order.__getitem__)),
        tuple(contradicted),
        tuple(added),
    )


def fact_rates(found: Sequence[FactCheck]) -> FactRates:
    """Shares of outputs with an omission, a hallucination, any error; slot error rate."""
    count = len(found)
    if count == 0:
        return FactRates(0, 0.0, 0.0, 0.0, 0.0)
    by_slot: dict[str, int] = {}
    for check in found:
        for slot in (*check.omitted, *(s for s, _ in check.contradicted), *check.added):
            by_slot[slot] = by_slot.get(slot, 0) + 1
    slots = sum(len(check.slots) for check in found)
    return FactRates(
        outputs=count,
        omission_rate=sum(bool(c.omitted) for c in found) / count,
        hallucination_rate=sum(c.hallucinated for c in found) / count,
        error_rate=sum(not c.correct for c in found) / count,
        slot_error_rate=sum(c.errors for c in found) / max(slots, 1),
        by_slot=dict(sorted(by_slot.items())),
    )


class E2EFacts:
    """The fact checker as a :class:`gates.plugins.TaskChecker` of E2E prompts."""

    name = GenerationTaskCheck.E2E_FACTS.value

    def check(self, prompt_text: str, answer: str) -> FactCheck:
        return check_facts(parse_mr(prompt_text), answer)

    def rates(self, results: Sequence[FactCheck]) -> dict[str, float]:
        found = fact_rates(results)
        return {
            "omission_rate": found.omission_rate,
            "hallucination_rate": found.hallucination_rate,
            "fact_error_rate": found.error_rate,
            "slot_error_rate": found.slot_error_rate,
        }


E2E_FACTS = E2EFacts()
