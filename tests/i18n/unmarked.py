"""Finders of user-visible text that is not marked for translation.

Templates: Django's own Lexer splits a template into tokens; text outside
`{% translate %}`/`{% blocktranslate %}` that still has words once the HTML tags,
entities and `{{ variables }}` are gone is unmarked, and so are the words in the
attributes people read (title, aria-label, placeholder, alt).

Python: the places a string reaches a user (a message, a refusal, a step's label, a
form field's label...) must get a call to gettext (or gettext_lazy, ngettext,
gettext_noop...) or a name, never a plain or f-string literal.
"""

from __future__ import annotations

import ast
import html
import re
from collections.abc import Iterator

from django.template.base import Lexer, TokenType

# Words that read the same in every language the portal speaks, each with why.
ALLOWED_WORDS = {
    "OpenStack": "a product name",
    "Nova": "a product name (OpenStack's compute service)",
    "de.NBI": "the network's name",
    "SSH": "a protocol's name",
    "ssh": "a command",
    "CSV": "a file format",
    "QR": "QR code, a name",
    "ID": "identifier, the same in German",
    "IP": "Internet Protocol address, the same in German",
    "RAM": "the same in German",
    "vCPUs": "the same in German",
    "GB": "a unit",
    "GiB": "a unit",
    "MiB": "a unit",
    "s": "the unit seconds",
    "min": "the unit minutes",
    "ERROR": "OpenStack's status word, shown as the cloud says it",
}

# Whole texts that are examples of input, not prose.
ALLOWED_TEXTS = {
    "ssh-ed25519 AAAA… you@laptop": "an example public key (profile_keys.html)",
    "https://{ip}:8787/": "an example access link (workshop_detail.html)",
}

VISIBLE_ATTRIBUTES = ("title", "aria-label", "placeholder", "alt")

_TAG = re.compile(r"<[^>]*>", re.S)
_ATTRIBUTE = re.compile(
    r"""\b(""" + "|".join(VISIBLE_ATTRIBUTES) + r""")\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.I
)
_WORD = re.compile(r"[^\W\d_][\w.\-']*", re.U)
# Inside these the text is code or data, not prose.
_RAW_ELEMENTS = re.compile(r"<(script|style|code)\b[^>]*>.*?</\1>", re.S | re.I)


def _words(text: str) -> list[str]:
    text = html.unescape(text)
    return [w for w in _WORD.findall(text) if w.strip(".-'") not in ALLOWED_WORDS]


def template_unmarked(source: str) -> list[str]:
    """The pieces of visible text in a template that no translate tag covers."""
    found: list[str] = []
    # Text and attributes are judged per TEXT token; a tag's attribute written with
    # a translate tag inside it shows up as "title=" + a BLOCK token, which is marked.
    plain: list[str] = []
    depth = 0  # inside {% blocktranslate %} or {% comment %}
    for token in Lexer(source).tokenize():
        if token.token_type == TokenType.BLOCK:
            name = token.contents.split()[0] if token.contents else ""
            if name in ("blocktranslate", "blocktrans", "comment"):
                depth += 1
            elif name in ("endblocktranslate", "endblocktrans", "endcomment"):
                depth -= 1
            plain.append("\x00")  # a tag separates text
        elif token.token_type == TokenType.VAR:
            plain.append("\x01")  # a variable stands in for a value
        elif token.token_type == TokenType.TEXT and depth == 0:
            plain.append(token.contents)
        else:
            plain.append("\x00")
    text = "".join(plain)
    text = _RAW_ELEMENTS.sub(" ", text)
    for match in _ATTRIBUTE.finditer(text):
        value = match.group(2) if match.group(2) is not None else match.group(3)
        if value.strip() in ALLOWED_TEXTS:
            continue
        if _words(value.replace("\x00", " ").replace("\x01", " ")):
            found.append(f'{match.group(1)}="{value.strip()}"')
    for chunk in _TAG.split(text):
        chunk = chunk.replace("\x01", " ")
        for piece in chunk.split("\x00"):
            if _words(piece):
                found.append(" ".join(piece.split()))
    return found


# Calls whose first argument (or the keyword named) is shown to a user.
MESSAGE_CALLS = {
    "ActionRefused": ("message",),
    "StepFailed": ("message",),
    "KeyRefused": ("message",),
    "ValidationError": ("message",),
    "Http404": (),
    "Done": ("detail",),
    "Wait": ("progress",),
    "Skipped": ("reason",),
    # portal.texts: a text a worker stores, and a word inside one
    "say": (),
    "word": (),
}
MESSAGES_FUNCTIONS = {"info", "success", "warning", "error"}
VISIBLE_KEYWORDS = {"label", "help_text", "verbose_name", "empty_label", "over_budget"}
# Keys of a widget's attrs={...} that people read.
VISIBLE_ATTRIBUTE_KEYS = {"placeholder", "title", "aria-label", "alt"}
TRANSLATORS = {
    "_",
    "gettext",
    "gettext_lazy",
    "ngettext",
    "ngettext_lazy",
    "pgettext",
    "pgettext_lazy",
    "npgettext",
    "gettext_noop",
    "format_lazy",
}


def _call_name(node: ast.Call) -> str:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return ""


def _is_unmarked(node: ast.AST) -> bool:
    """A literal with words, an f-string, or a literal formatted with % or .format()."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return bool(_WORD.search(node.value))
    if isinstance(node, ast.JoinedStr):
        return any(
            isinstance(part, ast.Constant) and _WORD.search(str(part.value)) for part in node.values
        )
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)):
        return _is_unmarked(node.left) or (
            isinstance(node.op, ast.Add) and _is_unmarked(node.right)
        )
    if isinstance(node, ast.Call) and _call_name(node) == "format":
        return isinstance(node.func, ast.Attribute) and _is_unmarked(node.func.value)
    if isinstance(node, ast.IfExp):
        return _is_unmarked(node.body) or _is_unmarked(node.orelse)
    return False


def _visible_arguments(node: ast.Call) -> Iterator[ast.AST]:
    name = _call_name(node)
    if name in TRANSLATORS:
        return
    owner = node.func.value if isinstance(node.func, ast.Attribute) else None
    if name in MESSAGES_FUNCTIONS and isinstance(owner, ast.Name) and owner.id == "messages":
        if len(node.args) > 1:
            yield node.args[1]
        yield from (k.value for k in node.keywords if k.arg == "message")
        return
    if name in MESSAGE_CALLS:
        if node.args:
            yield node.args[0]
        yield from (k.value for k in node.keywords if k.arg in MESSAGE_CALLS[name])
    if name == "Step" and len(node.args) > 1:
        yield node.args[1]
    yield from (k.value for k in node.keywords if k.arg in VISIBLE_KEYWORDS)


def python_unmarked(source: str) -> list[tuple[int, str]]:
    """(line, text) of each unmarked string a user would read."""
    found = []
    for node in ast.walk(ast.parse(source)):
        for argument in _visible_values(node):
            if _is_unmarked(argument):
                found.append((argument.lineno, ast.get_source_segment(source, argument) or ""))
    return sorted(found, key=lambda item: item[0])


def _visible_values(node: ast.AST) -> Iterator[ast.AST]:
    if isinstance(node, ast.Call):
        yield from _visible_arguments(node)
    elif isinstance(node, ast.Dict):
        # attrs={"placeholder": "..."}
        for key, value in zip(node.keys, node.values, strict=True):
            if isinstance(key, ast.Constant) and key.value in VISIBLE_ATTRIBUTE_KEYS:
                yield value
    elif _is_choices_class(node):
        # class Status(models.TextChoices): PENDING = "pending", "Pending": the label.
        for statement in node.body:  # type: ignore[attr-defined]
            value = getattr(statement, "value", None)
            pair = isinstance(value, ast.Tuple) and len(value.elts) == 2
            if isinstance(statement, ast.Assign) and pair and not _same(*value.elts):
                yield value.elts[1]
    elif _is_labels(node):
        # TASK_STATE_LABELS = {"powering-off": "stopping", ...}: the values are shown.
        yield from node.value.values  # type: ignore[attr-defined]
    elif _is_choices(node):
        # STATUS_CHOICES = [("ACTIVE", "Active"), ...]: the second of each pair is a label.
        for pair in node.value.elts:  # type: ignore[attr-defined]
            if isinstance(pair, ast.Tuple) and len(pair.elts) == 2 and not _same(*pair.elts):
                yield pair.elts[1]


def _same(value: ast.AST, label: ast.AST) -> bool:
    """("active", "active"): Glance's own status word, shown as the cloud says it."""
    return (
        isinstance(value, ast.Constant)
        and isinstance(label, ast.Constant)
        and (value.value == label.value)
    )


CHOICES_BASES = {"TextChoices", "IntegerChoices", "Choices"}


def _is_choices_class(node: ast.AST) -> bool:
    """A model's choices enum (its members' labels are shown: get_FOO_display)."""
    return isinstance(node, ast.ClassDef) and any(
        (base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")) in CHOICES_BASES
        for base in node.bases
    )


def _is_labels(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Dict)
        and any(isinstance(t, ast.Name) and t.id.endswith("LABELS") for t in node.targets)
    )


def _is_choices(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Assign)
        and isinstance(node.value, (ast.List, ast.Tuple))
        and any(isinstance(t, ast.Name) and t.id.endswith("CHOICES") for t in node.targets)
    )
