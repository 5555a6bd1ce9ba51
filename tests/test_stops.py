"""Stop strings matched on decoded text (also across token boundaries) and UTF-8-safe piece decoding."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from overtonlite.backends.llamacpp.stops import SampleText, StopMatcher


def test_match_within_one_chunk() -> None:
    m = StopMatcher(["\n\n"])
    assert m.push("Hello") is None
    assert m.push(" world\n\nmore") == 11
    assert m.safe_text() == "Hello world"


def test_match_split_across_chunks() -> None:
    m = StopMatcher(["</s>", "User:"])
    for chunk in ["Sure. U", "se", "r", ":", " hi"]:
        hit = m.push(chunk)
        if hit is not None:
            break
    assert hit == 6
    assert m.text[:hit] == "Sure. "


def test_earliest_match_wins() -> None:
    m = StopMatcher(["cd", "bcde"])
    assert m.push("abcdef") == 1


def test_hold_back_partial_stop() -> None:
    m = StopMatcher(["User:"])
    m.push("Answer. Us")
    assert m.held_back() == 2
    assert m.safe_text() == "Answer. "
    m.push("ually fine")
    assert m.held_back() == 0
    assert m.safe_text() == "Answer. Usually fine"


def test_no_stops() -> None:
    m = StopMatcher([])
    assert m.push("anything") is None
    assert m.safe_text() == "anything"


def test_sample_text_counts_tokens_before_stop() -> None:
    st_ = SampleText(["END"])
    pieces = [b"one", b" two", b" E", b"N", b"D", b" three"]
    done = False
    for p in pieces:
        done = st_.add(p)
        if done:
            break
    assert done and st_.n_generated == 5
    assert st_.result() == ("one two ", 3)


def test_sample_text_utf8_split_across_tokens() -> None:
    data = "café ☕ naïve".encode()
    st_ = SampleText([])
    for b in data:  # one byte per "token"
        st_.add(bytes([b]))
    assert st_.result() == ("café ☕ naïve", len(data))


def test_sample_text_stop_on_multibyte() -> None:
    st_ = SampleText(["☕"])
    stopped = False
    for b in "ok ☕ no".encode():
        stopped = st_.add(bytes([b]))
        if stopped:
            break
    text, n = st_.result()
    assert stopped and text == "ok "
    assert n == 3  # the three bytes of the cup emitted nothing before the match


def test_invalid_bytes_replaced_and_trailing_partial_dropped() -> None:
    st_ = SampleText([])
    st_.add(b"a\xff")
    st_.add(b"b\xe2\x98")  # first two bytes of a 3-byte character, never completed
    assert st_.result() == ("a\ufffdb", 2)


@given(
    st.text(alphabet="ab\nXY é", max_size=40),
    st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=40),
    st.sampled_from(["\n\n", "XY", "a b", "é"]),
)
def test_chunking_never_changes_the_result(text: str, sizes: list[int], stop: str) -> None:
    data = text.encode()
    expected_cut = text.find(stop)
    expected = text if expected_cut < 0 else text[:expected_cut]
    st_ = SampleText([stop])
    pos, i = 0, 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        i += 1
        if st_.add(data[pos : pos + size]):
            break
        pos += size
    assert st_.result()[0] == expected
