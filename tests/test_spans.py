"""Automatic sensitive spans: grouping a hand-made log-probability sequence, word boundaries, the capitalised
heuristic, token- and span-level precision / recall by hand, the span file round trip, the rule tuning,
`paperlib spans` on the smoke models, and PALU on an automatic span file (smoke, seconds)."""

from __future__ import annotations

import json

import pytest

from paperlib.benchmarks import spans as S
from paperlib.benchmarks.tofu import data as tofu
from paperlib.cli import main as cli_main
from paperlib.engine.config import get_profile
from paperlib.engine.errors import PaperlibError
from paperlib.engine.unlearn import RunOptions

TEXT = "Ada Quill-Rae wrote 12 books."
#       0123456789012345678901234567
OFFSETS = [(0, 3), (3, 6), (6, 9), (9, 10), (10, 13), (13, 19), (19, 21), (21, 22), (22, 28), (28, 29)]
#           Ada    " Qu"   ill     -        Rae       " wrote"  " 1"      2         " books"  .
GAPS = [3.0, 2.5, 0.2, 0.1, 2.0, 0.0, 1.5, 0.3, 0.0, 0.0]  # log p_orig - log p_retain per token


def test_group_spans_hand_made_sequence():
    # threshold 1: tokens 0, 1, 4, 6 flagged; gap 0: groups [0,1], [4], [6]; "Qu" widens to "Quill-Rae",
    # "Rae" widens to the same word (merged), " 1" loses its space and widens to "12"
    assert S.group_spans(GAPS, OFFSETS, TEXT, 1.0, gap=0) == [(0, 13), (20, 22)]
    # gap 1: token 6 is one unflagged token after token 4, so "Rae wrote 12" joins: one span
    assert S.group_spans(GAPS, OFFSETS, TEXT, 1.0, gap=1) == [(0, 22)]
    assert S.group_spans(GAPS, OFFSETS, TEXT, 2.2, gap=0) == [(0, 13)]  # only Ada, Qu
    assert S.group_spans(GAPS, OFFSETS, TEXT, 5.0, gap=3) == []
    # an empty character range (e.g. BOS) is never flagged, a lone punctuation token gives no span
    assert S.group_spans([9.0, 9.0], [(0, 0), (28, 29)], TEXT, 1.0) == []


def test_snap_keeps_whole_words():
    assert S.snap(TEXT, 5, 7) == (4, 13)  # inside "Quill-Rae"
    assert S.snap(TEXT, 13, 14) is None  # a space only
    assert S.snap("author's name", 2, 3) == (0, 8)
    assert S.merge([(5, 9), (0, 3), (3, 4), (8, 12)]) == [(0, 4), (5, 12)]


def test_capitalised_spans():
    text = "The author's full name is Hsiao Yun-Hwa, born on 05/11/1991 in Taipei."
    got = [text[s:e] for s, e in S.capitalised_spans(text)]
    assert got == ["Hsiao Yun-Hwa", "05/11/1991", "Taipei"]  # "The" opens the sentence and is followed by "author"
    assert [TEXT[s:e] for s, e in S.capitalised_spans(TEXT)] == ["Ada Quill-Rae", "12"]


def test_score_spans_by_hand():
    gold = [[(0, 13), (20, 22)]]  # tokens 0-4 and 6-7: 7 sensitive tokens
    pred = [[(0, 3)]]  # token 0 only
    s = S.score_spans(gold, pred, [OFFSETS])
    assert s["token P"] == 1.0 and s["token R"] == pytest.approx(1 / 7)
    assert s["token F1"] == pytest.approx(2 * (1 / 7) / (1 + 1 / 7))
    assert (s["span P"], s["span R"], s["span exact"]) == (1.0, 0.5, 0.0)
    s = S.score_spans(gold, [[(0, 13), (23, 28)]], [OFFSETS])  # one exact, one wrong span ("books")
    assert s["token P"] == pytest.approx(5 / 6) and s["token R"] == pytest.approx(5 / 7)
    assert (s["span P"], s["span R"], s["span exact"]) == (0.5, 0.5, 0.5)


def test_tune_rule_picks_the_best_grid_point():
    gold = [[(0, 13), (20, 22)]]
    rule, f1 = S.tune_rule([GAPS], [OFFSETS], [TEXT], gold, thresholds=(-1.0, 1.0, 2.2), gaps=(0, 1))
    assert rule == S.SpanRule(1.0, 0) and f1 == 1.0  # threshold 1, gap 0 reproduces gold exactly
    with pytest.raises(PaperlibError, match="gap=-1"):
        S.SpanRule(1.0, -1)


def test_span_file_round_trip(tmp_path):
    rows = [{"question": "Who?", "answer": TEXT}]
    S.write_span_file(rows, [[(0, 13), (20, 22)]], tmp_path / "f")
    back = tofu.load_spans(tmp_path / "f")
    assert back["Who?"]["spans"] == [(0, 13), (20, 22)]
    assert [TEXT[s:e] for s, e in back["Who?"]["common"]] == ["wrote", "books"]


def test_answer_tokens_cover_the_answer():
    from paperlib.benchmarks.tofu import pipeline
    from paperlib.engine.models import load_tokenizer

    profile = get_profile("smoke")
    tok = load_tokenizer(pipeline.tokenizer_path(profile))
    sample, offsets = S.answer_tokens(tok, "tiny", "Who wrote it?", TEXT, 128)
    n_answer = sum(1 for y in sample["labels"] if y != -100) - 1  # EOS
    assert len(offsets) == n_answer and offsets[0][0] == 0 and offsets[-1][1] == len(TEXT)
    assert all(a[1] <= b[0] for a, b in zip(offsets, offsets[1:]))  # in order, never overlapping
    assert "".join(TEXT[s:e] for s, e in offsets) == TEXT.replace(" ", "")  # every character but spaces once


def test_spans_command_and_palu_on_automatic_spans(tmp_path, capsys):
    from paperlib.engine.unlearn import read_run, unlearn

    out = tmp_path / "auto"
    # the smoke models are trained 3 epochs from a 3-epoch base: they differ by less than the default 1 nat
    cli_main(["spans", "--profile", "smoke", "--forget", "forget10", "--threshold", "0.1", "--out", str(out)])
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    start, end = lines.index("{"), len(lines) - lines[::-1].index("}")  # the summary (after any training log)
    summary = json.loads("\n".join(lines[start:end]))
    assert summary["rows"] > 0 and "token P" in summary["against the benchmark's span file"]
    spans = tofu.load_spans(out)
    assert len(spans) == summary["rows"]
    run = read_run(unlearn(get_profile("smoke"), "PALU", overrides={"epochs": 1, "spans": str(out)},
                           options=RunOptions(force=True, save_model=False, progress=False)))
    assert run["status"]["status"] == "completed" and len(run["config"]["spans"]) == 64
    with pytest.raises(SystemExit) as err:  # a non-empty --out is refused before any compute
        cli_main(["spans", "--profile", "smoke", "--out", str(out)])
    assert err.value.code == 2 and "not empty" in capsys.readouterr().err


def test_capitalised_spans_join_commas_only_between_numbers():
    text = "Born in Lostiford, Drikremuia, on 22 January 1930, Faini Bisti wrote 3, 4 books."
    got = [text[s:e] for s, e in S.capitalised_spans(text)]
    assert got == ["Lostiford", "Drikremuia", "22 January 1930", "Faini Bisti", "3, 4"]
