"""Property tests: pattern matching and argument binding against independent references."""

from __future__ import annotations

import functools
import inspect
import json
import re
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus._core._binding import Binder, binding_problems
from bus._core._patterns import (
    MAX_NAME,
    MAX_PATTERN,
    pattern_matches,
    validate_name,
    validate_pattern,
)
from bus._core._router import Handler, Router
from bus._observe._jsonval import encode

# -- patterns -------------------------------------------------------------------------

# A small alphabet so that generated patterns and names often match.
_FIRST = st.sampled_from("ab_")
_CHARS = st.text(alphabet="ab1_-", min_size=0, max_size=3)
_SEGMENT = st.text(alphabet="ab1_-", min_size=1, max_size=4)
_PATTERN_SEGMENT = st.text(alphabet="ab1-*", min_size=1, max_size=4)


@st.composite
def names(draw: st.DrawFn) -> str:
    first = draw(_FIRST) + draw(_CHARS)
    rest = draw(st.lists(_SEGMENT, max_size=3))
    return ".".join([first, *rest])


patterns = st.lists(_PATTERN_SEGMENT, min_size=1, max_size=4).map(".".join)


def reference_match(pattern: str, name: str) -> bool:
    """A glob where ``*`` is any run of characters (dots too), written without regexes."""

    @functools.cache
    def match(i: int, j: int) -> bool:
        if i == len(pattern):
            return j == len(name)
        if pattern[i] == "*":
            return match(i + 1, j) or (j < len(name) and match(i, j + 1))
        return j < len(name) and pattern[i] == name[j] and match(i + 1, j + 1)

    return match(0, 0)


@settings(deadline=None)  # timings on a shared, loaded machine mean nothing
@given(patterns, names())
def test_pattern_matches_agrees_with_the_reference(pattern: str, name: str) -> None:
    assert validate_pattern(pattern) == pattern
    assert validate_name(name) == name
    assert pattern_matches(pattern, name) == reference_match(pattern, name)


@settings(deadline=None)  # timings on a shared, loaded machine mean nothing
@given(names())
def test_a_name_matches_itself_star_and_its_prefix_glob(name: str) -> None:
    assert pattern_matches(name, name)
    assert pattern_matches("*", name)
    head, _, tail = name.partition(".")
    if tail:
        assert pattern_matches(f"{head}.*", name)
        assert not pattern_matches(f"{head}.*", head)


@settings(deadline=None)  # timings on a shared, loaded machine mean nothing
@given(names(), names())
def test_a_pattern_without_star_matches_only_equal_names(a: str, b: str) -> None:
    assert pattern_matches(a, b) == (a == b)


_LONG_PATTERN_SEGMENT = st.text(alphabet="ab*", min_size=1, max_size=12)


@settings(deadline=None)  # timings on a shared, loaded machine mean nothing
@given(
    st.lists(_LONG_PATTERN_SEGMENT, min_size=1, max_size=3).map(".".join),
    st.text(alphabet="ab", min_size=1, max_size=40),
)
def test_many_stars_agree_with_the_reference(pattern: str, name: str) -> None:
    """Patterns with many stars and names with many repeats: where backtracking would show."""
    assert pattern_matches(pattern, name) == reference_match(pattern, name)


@pytest.mark.timeout(10)
def test_a_hostile_pattern_against_the_longest_name_is_answered_at_once() -> None:
    # As a backtracking regex, this pair took 4 s at 34 letters, and doubles
    # with every letter more; the linear matcher answers each in microseconds.
    hostile = "*a" * 11 + "*b"
    name = "a" * MAX_NAME
    assert validate_pattern(hostile) == hostile
    assert validate_name(name) == name
    for _ in range(100):
        assert not pattern_matches(hostile, name)
    assert pattern_matches(hostile, name[:-1] + "b")
    longest = "*a" * (MAX_PATTERN // 2) + "*"
    assert len(validate_pattern(longest)) == MAX_PATTERN
    assert not pattern_matches(longest, "a" * 100)
    assert pattern_matches(longest, "a" * (MAX_PATTERN // 2))


def test_names_and_patterns_over_the_cap_are_refused_with_a_short_message() -> None:
    assert validate_name("a" * MAX_NAME) == "a" * MAX_NAME
    with pytest.raises(ValueError, match=f"longer than {MAX_NAME} characters") as name_error:
        validate_name("a" * 1_000_000, "event name")
    assert len(str(name_error.value)) < 200  # it does not echo a megabyte back
    assert "invalid event name 'aaa" in str(name_error.value)
    with pytest.raises(ValueError, match=f"longer than {MAX_PATTERN} characters") as pattern_error:
        validate_pattern("*a" * MAX_PATTERN)
    assert len(str(pattern_error.value)) < 200
    with pytest.raises(ValueError, match="use letters, digits") as bad:
        validate_name("a b" * 80)
    assert len(str(bad.value)) < 200


class _Runtime:
    """Enough of a Runtime for Handler."""

    name = "svc"
    shared = False


@settings(max_examples=50, deadline=None)
@given(st.lists(patterns, min_size=1, max_size=6), st.lists(names(), min_size=1, max_size=6))
def test_router_returns_every_matching_listener_in_order(
    listener_patterns: list[str], events: list[str]
) -> None:
    router = Router()
    handlers = [
        Handler("listener", p, lambda: None, _Runtime(), router.next_seq())  # type: ignore[arg-type]
        for p in listener_patterns
    ]
    for handler in handlers:
        router.add(handler)
    for event in [*events, *events]:  # the second round comes from the route cache
        expected = [h for h in handlers if reference_match(h.name, event)]
        assert list(router.listeners_for(event)) == expected


def test_route_cache_overflow_never_hides_a_new_listener() -> None:
    """Readers filling the route cache while listeners are added must not keep a stale route."""
    for _ in range(10):
        router = Router()
        stop = threading.Event()

        def reader(router: Router = router, stop: threading.Event = stop) -> None:
            i = 0
            while not stop.is_set():
                router.listeners_for(f"e{i % 5000}")
                i += 1

        threads = [threading.Thread(target=reader) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            for n in range(300):
                router.add(Handler("listener", "*", lambda: None, _Runtime(), n))  # type: ignore[arg-type]
        finally:
            stop.set()
            for t in threads:
                t.join(10)
        stale = [n for n in range(5000) if len(router.listeners_for(f"e{n}")) != 300]
        assert stale == []


# -- argument binding -------------------------------------------------------------------

_KINDS = ["posonly", "normal", "kwonly"]


@st.composite
def signatures(draw: st.DrawFn) -> str:
    """Source of a function with a random, valid signature."""
    count = draw(st.integers(0, 5))
    kinds = sorted(
        draw(st.lists(st.sampled_from(_KINDS), min_size=count, max_size=count)), key=_KINDS.index
    )
    parts: list[str] = []
    defaulted = False
    slash_done = False
    star_done = False
    for index, kind in enumerate(kinds):
        name = f"p{index}"
        if kind != "posonly" and not slash_done and any(k == "posonly" for k in kinds):
            parts.append("/")
            slash_done = True
        if kind == "kwonly" and not star_done:
            parts.append("*args" if draw(st.booleans()) else "*")
            star_done = True
        if kind == "kwonly":
            parts.append(f"{name}=0" if draw(st.booleans()) else name)
            continue
        defaulted = defaulted or draw(st.booleans())
        parts.append(f"{name}=0" if defaulted else name)
    if kinds and kinds[-1] == "posonly":
        parts.append("/")
    if not star_done and draw(st.booleans()):
        parts.append("*args")
    if draw(st.booleans()):
        parts.append("**kwargs")
    return f"def handler({', '.join(parts)}): pass"


@settings(max_examples=300, deadline=None)
@given(
    signatures(),
    st.integers(0, 6),
    st.lists(st.sampled_from(["p0", "p1", "p2", "p3", "p4", "args", "kwargs", "zz"]), unique=True),
)
def test_binder_agrees_with_calling_the_handler(
    source: str, positional: int, keywords: list[str]
) -> None:
    namespace: dict[str, Any] = {}
    exec(source, namespace)
    fn = namespace["handler"]
    args = tuple(range(positional))
    kwargs = dict.fromkeys(keywords, 1)

    try:
        fn(*args, **kwargs)  # the truth: the handler's body does nothing
        expected = None
    except TypeError as exc:
        expected = exc
    binder = Binder("cmd.name", fn)
    problems = binding_problems(inspect.signature(fn), len(args), kwargs)
    if expected is None:
        binder.check(args, kwargs)
        assert problems == []
    else:
        with pytest.raises(TypeError) as info:
            binder.check(args, kwargs)
        message = str(info.value)
        assert message.startswith("cmd.name(")
        assert problems, "every refusal is explained"
        assert message.endswith("; ".join(problems))
        # What the call names first is among everything the binder names.
        # (Not inspect's bind: before Python 3.13 it refuses a positional-only
        # name given as a keyword to a handler with **kwargs, which the call
        # takes; 3.13.0's takes some that the call refuses.)
        said = str(expected).split(". Did you mean")[0]  # 3.13's own hint: the binder has its own
        for name in re.findall(r"'(\w+)'", said):
            assert repr(name) in message
        if re.search(r"positional arguments? but \d+ (was|were) given", said):
            assert "too many positional" in message


@settings(deadline=None)  # timings on a shared, loaded machine mean nothing
@given(st.integers(0, 4), st.integers(0, 4), st.integers(0, 6))
def test_binder_fast_path_matches_bind_for_plain_positional(
    required: int, optional: int, given_count: int
) -> None:
    params = [f"r{i}" for i in range(required)] + [f"o{i}=None" for i in range(optional)]
    namespace: dict[str, Any] = {}
    exec(f"def handler({', '.join(params)}): pass", namespace)
    binder = Binder("x", namespace["handler"])
    ok = required <= given_count <= required + optional
    if ok:
        binder.check(tuple(range(given_count)), {})
    else:
        with pytest.raises(TypeError, match=r"^x\("):
            binder.check(tuple(range(given_count)), {})


# -- bounded JSON ---------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(deadline=None)  # timings on a shared, loaded machine mean nothing
@given(json_values, st.integers(1, 200))
def test_encode_is_bounded_and_valid_json_unless_cut(value: Any, limit: int) -> None:
    encoded = encode(value, limit, None)
    assert len(encoded.text) <= limit
    if not encoded.truncated:
        decoded = json.loads(encoded.text)
        if not encoded.lossy:
            assert decoded == value or value != value  # NaN never equals itself


# -- latency percentiles ---------------------------------------------------------------------


@settings(deadline=None)  # timings on a shared, loaded machine mean nothing
@given(
    st.lists(st.floats(0, 10, allow_nan=False), min_size=1, max_size=300),
    st.sampled_from(["0.5", "0.9", "0.99", "0.999", "0.25", "0.29", "0.57", "1"]),
)
def test_percentile_is_the_nearest_rank(values: list[float], text: str) -> None:
    from fractions import Fraction

    from bus._core._stats import percentile

    ordered = sorted(values)
    fraction = Fraction(text)
    # Nearest rank: the smallest value with at least that fraction of values at or below it.
    expected = next(v for k, v in enumerate(ordered, 1) if Fraction(k, len(ordered)) >= fraction)
    assert percentile(ordered, float(text)) == expected


def test_percentile_examples() -> None:
    from bus._core._stats import percentile

    assert percentile([], 0.5) is None
    assert percentile(list(range(1, 11)), 0.5) == 5
    assert percentile(list(range(1, 101)), 0.99) == 99
    assert percentile(list(range(1, 101)), 0.5) == 50
    assert percentile([7.0], 0.99) == 7.0
