"""Segment planning, splitting and the journal, synchronously and without media."""

from fractions import Fraction

import pytest

from lipstream.pipeline.jobs.segments import DoneSegment, Journal, SegmentPlan, SegmentSplitter, file_identity, run_key
from lipstream.stream.frames import Frame

TB = Fraction(1, 1000)


def frames(times_ms):
    return [Frame(i, t, TB, i) for i, t in enumerate(times_ms)]


def drain(splitter):
    """Every segment as (index, [(frame index, own?)]), consuming each segment's frames in order."""
    out = []
    while (segment := splitter.next_segment()) is not None:
        seen = [(f.index, segment.owns(f, splitter.plan)) for f in segment.frames]
        out.append((segment.index, seen, segment.own, segment.next_time))
    return out


def test_segments_follow_output_time_with_warmup_and_lookahead():
    plan = SegmentPlan(Fraction(1), warmup=2, lookahead=1)
    got = drain(SegmentSplitter(iter(frames(range(0, 3000, 250))), plan))  # 12 frames, 4 per second
    assert [index for index, *_ in got] == [0, 1, 2]
    index, seen, own, following = got[1]
    assert seen == [(2, False), (3, False), (4, True), (5, True), (6, True), (7, True), (8, False)]
    assert own == 4 and following == Fraction(2)
    assert got[0][1] == [(0, True), (1, True), (2, True), (3, True), (4, False)]  # nothing before the first
    assert got[2][1][-1] == (11, True) and got[2][3] is None  # nothing after the last


def test_variable_rate_and_gaps_longer_than_a_segment():
    plan = SegmentPlan(Fraction(1), warmup=1, lookahead=0)
    got = drain(SegmentSplitter(iter(frames([0, 400, 900, 3500, 3600])), plan))
    assert [(index, own) for index, _, own, _ in got] == [(0, 3), (3, 2)]  # segments 1 and 2 have no frames
    assert got[1][1] == [(2, False), (3, True), (4, True)]
    assert got[0][3] == Fraction(35, 10)


def test_finished_segments_are_decoded_through_and_warm_up_is_the_same():
    plan = SegmentPlan(Fraction(1), warmup=3, lookahead=2)
    clip = frames(range(0, 4000, 200))
    whole = drain(SegmentSplitter(iter(clip), plan))
    splitter = SegmentSplitter(iter(clip), plan, skip=lambda index: index in (0, 1))
    resumed = drain(splitter)
    assert resumed == whole[2:]
    assert splitter.skipped == [(0, 5), (1, 5)] and splitter.skipped_segments == 2
    assert splitter.last_time == Fraction(38, 10)


def test_memory_is_bounded_whatever_the_length():
    plan = SegmentPlan(Fraction(1), warmup=4, lookahead=3)
    splitter = SegmentSplitter((Frame(i, i * 40, TB, i) for i in range(100_000)), plan, skip=lambda index: index % 2 == 0)
    largest = 0
    while (segment := splitter.next_segment()) is not None:
        for _ in segment.frames:
            largest = max(largest, len(splitter._ahead) + len(splitter._history))
    assert largest <= 4 + 3 + 1


def test_plan_rejects_nonsense():
    with pytest.raises(ValueError):
        SegmentPlan(Fraction(0))
    assert SegmentPlan(Fraction(10)).index_of(Fraction(-1, 100)) == -1  # before the start: never a real frame


def test_journal_round_trip_and_what_counts_as_done(tmp_path):
    journal = Journal("k1", "1/30000", notes=("the output is 270x480 yuv420p",))
    (tmp_path / "seg-000000.mp4").write_bytes(b"x" * 10)
    (tmp_path / "seg-000001.mp4").write_bytes(b"x" * 5)  # shorter than recorded: written halfway
    journal.segments[0] = DoneSegment(0, "seg-000000.mp4", 25, 0, 24_024, 10, faces=20, edited=19)
    journal.segments[1] = DoneSegment(1, "seg-000001.mp4", 25, 25_025, 49_049, 10)
    journal.segments[2] = DoneSegment(2, "seg-000002.mp4", 25, 50_050, 74_074, 10)  # its file is gone
    path = tmp_path / "journal.json"
    journal.save(path)
    loaded = Journal.load(path, "k1")
    assert loaded == journal
    assert [loaded.done(i, tmp_path) for i in range(4)] == [True, False, False, False]
    assert Journal.load(path, "another run") is None
    path.write_text("{ not json")
    assert Journal.load(path, "k1") is None
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left behind


def test_the_run_key_changes_with_what_the_output_depends_on(tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"1234")
    first = run_key({"video": file_identity(video), "crf": 20})
    assert run_key({"crf": 20, "video": file_identity(video)}) == first  # order does not matter
    assert run_key({"video": file_identity(video), "crf": 21}) != first
    video.write_bytes(b"12345")
    assert run_key({"video": file_identity(video), "crf": 20}) != first


def test_a_cancel_stops_decoding_through_finished_segments():
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 3

    splitter = SegmentSplitter(iter(frames(range(0, 10_000, 100))), SegmentPlan(Fraction(1)), skip=lambda index: True, stop=stop)
    assert splitter.next_segment() is None and splitter.last_time == Fraction(2, 10)  # gave up after three frames


def test_stage_reports_combine_over_segments():
    from lipstream.pipeline.jobs.segmented import combine_reports

    reports = [(100, {"coverage": 1.0, "bank": 30, "mode": "a"}), (300, {"coverage": 0.5, "bank": 36, "mode": "b"}), (50, {})]
    assert combine_reports(reports) == {"coverage": 0.625, "bank": 36, "mode": "b"}
    assert combine_reports([]) == {}
