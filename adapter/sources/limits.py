"""Bounds on what one input may hold, so a hostile or broken file costs bounded time and memory.

The readers take a `ReadLimits` (the service builds one from its settings); the defaults sit far above
anything real (a TID 1500 tree is about six levels deep, the largest real SR in the corpus has 16,000
content items, FHIR resources nest about a dozen levels) and far below what exhausts a process.
Walks here are iterative: a tree deep enough to break recursion is measured, not recursed into.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from itertools import repeat

from ..errors import InputError


@dataclass(frozen=True)
class ReadLimits:
    max_tree_depth: int = 64  # SR content tree: levels of ContentSequence below the root
    max_content_items: int = 200_000  # SR content tree: content items in all
    max_json_depth: int = 64  # FHIR JSON: nesting of objects and arrays
    max_json_array_items: int = 100_000  # FHIR JSON: items in any one array (Bundle.entry included)


DEFAULT_LIMITS = ReadLimits()
# For documents already accepted once (the store reads them again): a later, tighter setting must not
# make stored documents unreadable.
NO_LIMITS = ReadLimits(*(2**62,) * 4)


# Larger than any size in any unit (10^15 mm is a million kilometres): a broken number, not a measurement.
# Below it every value keeps its digits through the assessment's arithmetic (28-digit decimal context).
LARGEST_VALUE = Decimal("1e15")


def usable_number(number: Decimal | None) -> bool:
    """A finite number of plausible magnitude; the readers skip others with a warning."""
    return number is not None and number.is_finite() and abs(number) < LARGEST_VALUE


def check_content_tree(root, label: str, limits: ReadLimits, children) -> None:
    """InputError when the content tree under `root` is deeper or larger than the limits.
    `children(item)` gives an item's ContentSequence (or None). The checks run once per item's
    children, with the outcome of counting them one by one."""
    stack = [(root, 0)]
    count = 0
    while stack:
        item, depth = stack.pop()
        items = children(item)
        if not items:
            continue
        depth += 1
        pushed = zip(items, repeat(depth))  # first: a value that is not a sequence fails here, as iterating it would
        if count >= limits.max_content_items:
            raise _too_many_items(label, limits)
        if depth > limits.max_tree_depth:
            raise InputError(label, f"has a content tree deeper than {limits.max_tree_depth} levels (the "
                                    "limit max_tree_depth)")
        count += len(items)
        if count > limits.max_content_items:
            raise _too_many_items(label, limits)
        stack += pushed


def _too_many_items(label: str, limits: ReadLimits) -> InputError:
    return InputError(label, f"has more than {limits.max_content_items} content items (the limit max_content_items)")


def check_json(value: object, label: str, limits: ReadLimits) -> None:
    """InputError when parsed JSON nests deeper, or holds a longer array, than the limits."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            members = node.values()
        elif isinstance(node, list):
            if len(node) > limits.max_json_array_items:
                raise InputError(label, f"has a JSON array of {len(node)} items; the limit max_json_array_items "
                                        f"is {limits.max_json_array_items}")
            members = node
        else:
            continue
        if depth > limits.max_json_depth:
            raise InputError(label, f"is JSON nested deeper than {limits.max_json_depth} levels (the limit "
                                    "max_json_depth)")
        stack.extend((member, depth + 1) for member in members if isinstance(member, (dict, list)))


def too_deep_to_parse(label: str, what: str) -> InputError:
    """The error for input that breaks the parser's own recursion bound before any limit is checked."""
    return InputError(label, f"is {what} nested too deeply to parse (thousands of levels)")
