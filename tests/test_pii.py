"""Behaviour of `pii.detect_pii` and `pii.mask` on spoken-form transcripts, plus property tests."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from earmark.pii import TYPES, PiiSpan, detect_pii, mask
from earmark.pii.spoken import luhn_ok, number_runs, tokenize

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def found(text: str) -> list[tuple[str, str]]:
    return [(s.type, s.value) for s in detect_pii(text)]


def kinds(text: str) -> set[str]:
    return {s.type for s in detect_pii(text)}


def spell(digits: str) -> str:
    return " ".join(ONES[int(d)] for d in digits)


# ---------------------------------------------------------------- phone numbers


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("call five five five oh one two three four", "five five five oh one two three four"),
        (
            "my number is four one five five five five oh one two three",
            "four one five five five five oh one two three",
        ),
        ("dial double four one triple five two one two", "double four one triple five two one two"),
        ("four fifteen five five five one two three four", "four fifteen five five five one two three four"),
        (
            "call one eight hundred five five five one two one two",
            "one eight hundred five five five one two one two",
        ),
        (
            "eight hundred seven five three three oh six nine please",
            "eight hundred seven five three three oh six nine",
        ),
        ("text 555 one two three four five six seven", "555 one two three four five six seven"),
        (
            "my cell is plus one four one five five five five one two three four",
            "plus one four one five five five five one two three four",
        ),
        (
            "plus four four seven nine one one one two three four five six",
            "plus four four seven nine one one one two three four five six",
        ),
        ("call (415) 555-0123 now", "415) 555-0123"),
        ("reach me at five fifty five twelve thirty four", "five fifty five twelve thirty four"),
    ],
)
def test_spoken_phone_numbers_are_found(text: str, value: str) -> None:
    assert ("PHONE", value) in found(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        # A device recognizer's homophones inside a string of digits (found in the demo's clips).
        (
            "cool five five five ate nine seven two six ate three",
            "five five five ate nine seven two six ate three",
        ),
        (
            "text double five five four one ate six seven ate two dinner is ready",
            "double five five four one ate six seven ate two",
        ),
        ("call four one five five five five oh one for two", "four one five five five five oh one for two"),
        ("my number is six five oh to too one won eight", "six five oh to too one won eight"),
    ],
)
def test_digits_a_recognizer_misheard_are_still_read_as_digits(text: str, value: str) -> None:
    assert ("PHONE", value) in found(text)


@pytest.mark.parametrize(
    "text",
    [
        "set a timer for five minutes",
        "add two to four",
        "wake me up at six to eight",
        "please send a new one to oh five four oh five",
        "i ate two eggs for breakfast",
    ],
)
def test_words_that_sound_like_digits_stay_words_outside_a_run(text: str) -> None:
    assert [s for s in detect_pii(text) if s.type == "PHONE"] == []


def test_area_code_said_apart_is_masked_too() -> None:
    text = "area code four one five number five five five one two three four"
    assert [s.type for s in detect_pii(text)] == ["PHONE", "PHONE"]


@pytest.mark.parametrize(
    "text",
    [
        "set a timer for twenty five minutes",
        "wake me up at six thirty",
        "what's four hundred twelve times thirty",
        "set an alarm for seven oh five am",
        "the score was three to one",
        "convert two thousand five hundred dollars to euros",
        "is it going to rain on eleven five twenty thirty seven",
        "call 911",
    ],
)
def test_everyday_numbers_are_not_pii(text: str) -> None:
    assert detect_pii(text) == []


# ---------------------------------------------------------------- emails, cards, SSNs


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("my email is jane dot doe at example dot com", "jane dot doe at example dot com"),
        ("send it to j doe at gmail dot com thanks", "j doe at gmail dot com"),
        (
            "email john underscore smith eighty five at yahoo dot co dot uk",
            "john underscore smith eighty five at yahoo dot co dot uk",
        ),
        ("write to jane.doe@example.org", "jane.doe@example.org"),
        ("it's maria garcia at outlook dot com", "maria garcia at outlook dot com"),
    ],
)
def test_spoken_emails_are_found(text: str, value: str) -> None:
    assert found(text) == [("EMAIL", value)]


def test_a_name_inside_an_email_is_part_of_the_email() -> None:
    assert kinds("email jennifer dot lopez at gmail dot com") == {"EMAIL"}


@pytest.mark.parametrize(
    "text",
    [
        "my card number is " + spell("4111111111111111"),
        "pay with forty one eleven eleven eleven eleven eleven eleven eleven eleven",
        "card 4111 1111 1111 1111",
        "use 4111-1111-1111-1111",
        "thirty seven fifty four oh five one nine eight eight five three seven three",  # amex, 54 said as 5-4
    ],
)
def test_card_numbers_in_any_spoken_form(text: str) -> None:
    assert kinds(text) == {"CARD"} or ("thirty seven" in text and kinds(text) <= {"CARD", "PHONE"})


def test_luhn_decides_between_card_and_phone_without_a_cue() -> None:
    assert kinds(spell("378282246310005")) == {"CARD"}  # 15 digits, checksum holds: an Amex number
    assert kinds(spell("378282246310006")) == {"PHONE"}  # 15 digits, checksum fails: an international number
    assert kinds("my visa is " + spell("378282246310006")) == {"CARD"}  # misheard, but a card by context


@pytest.mark.parametrize(
    "text",
    [
        "my social security number is one two three four five six seven eight nine",
        "ssn 123 45 6789",
        "my social is 123-45-6789",
        "social security one twenty three forty five sixty seven eighty nine",
    ],
)
def test_social_security_numbers(text: str) -> None:
    assert kinds(text) == {"SSN"}


# ---------------------------------------------------------------- addresses and dates of birth


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("i live at twelve oak street", "twelve oak street"),
        ("four fifty main st apartment two", "four fifty main st apartment two"),
        ("ship it to 1600 pennsylvania avenue", "1600 pennsylvania avenue"),
        (
            "deliver to one twenty three west fifth avenue suite four",
            "one twenty three west fifth avenue suite four",
        ),
        ("send it to p o box one two three", "p o box one two three"),
        ("the address is hammarvägen fifteen", "hammarvägen fifteen"),
    ],
)
def test_street_addresses(text: str, value: str) -> None:
    assert ("ADDRESS", value) in found(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("my birthday is march third nineteen eighty five", "march third nineteen eighty five"),
        ("i was born on the fifth of may two thousand and one", "the fifth of may two thousand and one"),
        ("date of birth 3/15/1985", "3/15/1985"),
        ("my dob is oh three fifteen eighty five", "oh three fifteen eighty five"),
        ("i was born in nineteen seventy two", "nineteen seventy two"),
        ("my birthday's on july 4th", "july 4th"),
    ],
)
def test_dates_of_birth(text: str, value: str) -> None:
    assert ("DATE_OF_BIRTH", value) in found(text)


def test_a_date_without_a_birth_cue_is_not_a_date_of_birth() -> None:
    assert detect_pii("remind me on march third to pay rent") == []


# ---------------------------------------------------------------- people, and people who are not PII


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("call jennifer on her mobile", ["jennifer"]),
        ("my name is john smith", ["john smith"]),
        ("text david", ["david"]),
        ("tell mom and sarah dinner is ready", ["sarah"]),
        ("read my messages from rubija", ["rubija"]),
        ("call will", ["will"]),
        ("invite priya and connor to dinner", ["priya", "connor"]),
        ("what's jennifer's phone number", ["jennifer"]),
        ("catherine is running late", ["catherine"]),
        ("book a table for dorothy kayla and me", ["dorothy kayla"]),
        ("hi aloisia it's me", ["aloisia"]),
        ("cool maria", ["maria"]),  # a recognizer's "call"
        ("cool david smith on his mobile", ["david smith"]),
    ],
)
def test_people_named_as_contacts_are_found(text: str, names: list[str]) -> None:
    assert [v for t, v in found(text) if t == "PERSON"] == names


@pytest.mark.parametrize(
    "text",
    [
        "play shake it off by taylor swift",
        "play songs by john legend",
        "read harry potter",
        "who is barack obama",
        "show me movies starring tom hanks",
        "how old is jennifer lopez",
        "add ronnie wood to my playlist",
        "will it rain in austin",
        "what's the weather like in west virginia",
        "call mom",
        "tell me a joke",
        "ask alexa to turn off the lights",
        "mark this as read",
        "book a table for two at olive garden",
        "cool the house to seventy",
        "that's cool",
    ],
)
def test_artists_places_and_common_words_are_not_masked(text: str) -> None:
    assert [s for s in detect_pii(text) if s.type == "PERSON"] == []


def test_to_as_a_contact_cue_is_not_read_as_a_place() -> None:
    assert found("send a message to jennifer saying i'll be late") == [("PERSON", "jennifer")]
    assert [t for t, _ in found("drive to austin")] == []


def test_an_ssn_cue_keeps_a_nine_digit_number_an_ssn() -> None:
    assert kinds("my social security number is three forty two eighty six thirty three eighty one") == {"SSN"}


def test_an_email_after_an_address_cue_is_only_an_email() -> None:
    assert kinds("my email address is lily wilson eighty two at aol dot com to the invite") == {"EMAIL"}


def test_a_contact_in_a_media_request_is_still_masked() -> None:
    assert found("play taylor swift and call jennifer") == [("PERSON", "jennifer")]
    assert found("play the voicemail from sarah") == [("PERSON", "sarah")]


# ---------------------------------------------------------------- mask and the span type


def test_mask_replaces_each_span_with_its_type() -> None:
    text = "text david my number is five five five oh one two three"
    assert mask(text, detect_pii(text)) == "text [PERSON] my number is [PHONE]"


def test_mask_rejects_a_span_past_the_end() -> None:
    with pytest.raises(ValueError, match="past the end"):
        mask("short", [PiiSpan(0, 10, "PERSON", "x")])


@pytest.mark.parametrize(("start", "end", "kind"), [(3, 3, "PHONE"), (-1, 2, "PHONE"), (0, 2, "NAME")])
def test_pii_span_refuses_bad_values(start: int, end: int, kind: str) -> None:
    with pytest.raises(ValueError):
        PiiSpan(start, end, kind, "")


def test_uppercase_digits_and_emoji_keep_offsets_in_the_original_string() -> None:
    text = "🎉 CALL Jennifer at 555-0123 ☎"
    spans = detect_pii(text)
    assert [(s.type, text[s.start : s.end]) for s in spans] == [("PERSON", "Jennifer"), ("PHONE", "555-0123")]


def test_number_runs_offer_the_split_reading() -> None:
    (run,) = number_runs(tokenize("thirty seven fifty four"))
    assert run.digits == "3754"
    assert "37504" in run.readings()


def test_luhn() -> None:
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")


# ---------------------------------------------------------------- properties


def _check_spans(text: str, spans: list[PiiSpan]) -> None:
    last_end = 0
    for s in spans:
        assert 0 <= s.start < s.end <= len(text)
        assert s.start >= last_end, "spans overlap or are out of order"
        assert s.value == text[s.start : s.end]
        assert s.type in TYPES
        last_end = s.end


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
@example("\x00\x1f\u200b\ud7ff call jennifer 𝟓𝟓𝟓 \u0301")
@example("İstanbul ǅ ß call ALİ at 5550123")
def test_never_crashes_and_offsets_index_the_input(text: str) -> None:
    spans = detect_pii(text)
    _check_spans(text, spans)
    masked = mask(text, spans)
    assert masked.count("[") >= len(spans)


TRIGGER_WORDS = """call text my number is five oh double triple at dot com jane doe street birthday born
the and play by apartment twelve hundred thousand plus one 555 0123 - . / @ ' jennifer's"""
WORDS = st.sampled_from(TRIGGER_WORDS.split())


@settings(max_examples=300)
@given(st.lists(WORDS, max_size=25).map(" ".join))
def test_word_salad_of_trigger_words_gives_valid_spans(text: str) -> None:
    _check_spans(text, detect_pii(text))


@settings(max_examples=200)
@given(
    digits=st.text("0123456789", min_size=10, max_size=10),
    template=st.sampled_from(["call {}", "my number is {} thanks", "{}", "text {} that i'm late"]),
    zero=st.sampled_from(["oh", "zero"]),
)
def test_any_ten_digit_number_read_out_is_masked(digits: str, template: str, zero: str) -> None:
    spoken = " ".join(zero if d == "0" else ONES[int(d)] for d in digits)
    text = template.format(spoken)
    start = text.index(spoken)
    covered = [s for s in detect_pii(text) if s.start <= start and s.end >= start + len(spoken)]
    assert covered, f"not masked: {text!r}"


@settings(max_examples=200)
@given(st.lists(st.integers(0, 9), min_size=15, max_size=15))
def test_any_valid_card_number_read_out_is_a_card(body: list[int]) -> None:
    digits = "4" + "".join(map(str, body))[:14]
    check = next(str(c) for c in range(10) if luhn_ok(digits + str(c)))
    assert kinds("my card is " + spell(digits + check)) == {"CARD"}


@settings(max_examples=100)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=20))
def test_text_around_a_finding_does_not_move_its_offsets(prefix: str) -> None:
    tail = " call five five five oh one two three"
    text = prefix + tail
    phones = [s for s in detect_pii(text) if s.type == "PHONE"]
    assert any(text[s.start : s.end].endswith("five five five oh one two three") for s in phones)
