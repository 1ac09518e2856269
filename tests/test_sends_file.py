"""The sends file: what is accepted, and the clear errors for what is not (nothing half-read)."""

from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from braze_sends.errors import SendsFileError
from braze_sends.sends_file import SendPair, pairs_from_config, parse_sends, read_sends_file

UTC = ZoneInfo("UTC")


def parse(text, tz=UTC):
    return parse_sends(text, tz=tz)


def test_reads_pairs_with_and_without_sent_at():
    pairs = parse(
        "campaign_id,send_id,sent_at\nc1,s1,2026-11-20T10:00:00+01:00\nc2,s2,\nc3,s3,2026-11-19\n"
    )
    assert pairs == [
        SendPair("c1", "s1", datetime(2026, 11, 20, 9, tzinfo=timezone.utc)),
        SendPair("c2", "s2", None),
        SendPair("c3", "s3", date(2026, 11, 19)),
    ]


def test_bom_blank_lines_spaces_extra_columns_and_header_case_are_fine():
    text = "\ufeff\n Campaign_ID , send_id ,note\n\n  c1 , s1 ,hello\n\n"
    assert parse(text) == [SendPair("c1", "s1")]


def test_duplicates_collapse_and_a_later_sent_at_fills_in():
    pairs = parse("campaign_id,send_id,sent_at\nc,s,\nc,s,2026-11-20\nc,s,2026-11-20\n")
    assert pairs == [SendPair("c", "s", date(2026, 11, 20))]


def test_naive_sent_at_is_read_in_the_workspace_zone():
    ny = ZoneInfo("America/New_York")
    (pair,) = parse("campaign_id,send_id,sent_at\nc,s,2026-11-20T08:00:00\n", tz=ny)
    assert pair.sent_at == datetime(2026, 11, 20, 8, tzinfo=ny)


def test_ids_with_url_characters_are_accepted_as_is():
    (pair,) = parse('campaign_id,send_id\n"a&b?c","d/e#f g"\n')
    assert pair == SendPair("a&b?c", "d/e#f g")


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "is empty"),
        ("\n\n", "is empty"),
        ("campaign,send\nc,s\n", "lacks campaign_id, send_id"),
        ("campaign_id\nc\n", "lacks send_id"),
        ("campaign_id,send_id\nc,\n", "line 2: send_id is empty"),
        ("campaign_id,send_id\nc," + "x" * 65 + "\n", "65 characters; Braze ids have at most 64"),
        ("campaign_id,send_id\nc,envío\n", "not ASCII"),
        ("campaign_id,send_id\nc,a\tb\n", "control characters"),
        (
            "campaign_id,send_id,sent_at\nc,s,yesterday\n",
            "line 2: sent_at 'yesterday' is not an ISO-8601",
        ),
        (
            "campaign_id,send_id,sent_at\nc,s,2026-11-20\nc,s,2026-11-21\n",
            "repeats with another sent_at",
        ),
    ],
)
def test_invalid_files_are_rejected_whole_with_the_line(text, fragment):
    with pytest.raises(SendsFileError) as caught:
        parse(text)
    assert fragment in str(caught.value)


def test_one_bad_row_rejects_the_good_rows_too():
    with pytest.raises(SendsFileError, match="line 3: send_id is empty"):
        parse("campaign_id,send_id\ngood,pair\nc,\n")


def test_every_problem_is_listed_not_only_the_first():
    text = "campaign_id,send_id\n" + "".join(f"c,{'x' * 70}{i}\n" for i in range(30))
    with pytest.raises(SendsFileError) as caught:
        parse(text)
    message = str(caught.value)
    assert "30 invalid row(s)" in message and "nothing was registered" in message
    assert "... and 10 more" in message


def test_unreadable_files_say_why(tmp_path):
    with pytest.raises(SendsFileError, match="does not exist"):
        read_sends_file(tmp_path / "missing.csv", tz=UTC)
    binary = tmp_path / "sends.xlsx"
    binary.write_bytes(b"PK\x03\x04\xff\xfe\x00")
    with pytest.raises(SendsFileError, match="not UTF-8"):
        read_sends_file(binary, tz=UTC)
    with pytest.raises(SendsFileError, match="cannot be read"):
        read_sends_file(tmp_path, tz=UTC)  # a directory


def test_pairs_from_config_accept_strings_and_tables():
    pairs = pairs_from_config(
        ["c1/s1", {"campaign_id": "c2", "send_id": "s2", "sent_at": "2026-11-20"}], tz=UTC
    )
    assert pairs == [SendPair("c1", "s1"), SendPair("c2", "s2", date(2026, 11, 20))]
