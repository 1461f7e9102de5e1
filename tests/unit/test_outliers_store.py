"""Reading one element of an array over every step (a few bytes per row), and its downsampling."""

from __future__ import annotations

import numpy as np
import pytest

from server.db import get_engine, get_sessionmaker
from server.store import results
from server.store.outliers import downsample
from server.store.results import ArrayRecord, element_series, write_arrays


def test_element_series_reads_the_element_of_every_row(
    db_url: str, run_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(0)
    stored = {step: rng.random(300, dtype=np.float32) for step in range(0, 2000, 10)}
    stored[50][7] = np.nan
    records = [ArrayRecord("opposing", s, {"losses": v}, {}) for s, v in stored.items()]
    # two rows laid out otherwise: another array before it, and another dtype
    records[3] = ArrayRecord("opposing", 30, {"extra": np.arange(5), "losses": stored[30]}, {})
    records[4] = ArrayRecord("opposing", 40, {"losses": stored[40].astype(np.float64)}, {})
    records.append(ArrayRecord("other", 0, {"losses": np.zeros(300, np.float32)}, {}))
    with get_engine(db_url).begin() as connection:
        write_arrays(connection, run_id=run_id, records=records)

    decoded = []
    unpack = results.unpack_arrays
    monkeypatch.setattr(results, "unpack_arrays", lambda blob: decoded.append(1) or unpack(blob))
    with get_sessionmaker(db_url)() as session:
        for position in (0, 7, 299):
            decoded.clear()
            steps, values = element_series(
                session, run_id=run_id, probe="opposing", name="losses", position=position
            )
            assert steps.tolist() == sorted(stored)
            expected = np.array([stored[s][position] for s in steps], dtype=np.float32)
            np.testing.assert_array_equal(values, expected)  # NaN included
            assert len(decoded) == 2  # only the two odd rows were decoded in full
        with pytest.raises(IndexError):
            element_series(session, run_id=run_id, probe="opposing", name="losses", position=300)
        with pytest.raises(KeyError):
            element_series(session, run_id=run_id, probe="opposing", name="nope", position=0)
        steps, values = element_series(
            session, run_id=run_id, probe="missing", name="losses", position=0
        )
        assert len(steps) == len(values) == 0


def test_downsample_keeps_first_last_and_extremes() -> None:
    steps = np.arange(0, 2000, 10)
    values = np.sin(steps / 100.0).astype(np.float32)
    values[57], values[140], values[20] = 9.0, -9.0, np.nan
    out = downsample(steps, values, 12)
    assert out.downsampled and out.total_points == 200 and len(out.steps) <= 12
    kept = dict(zip(out.steps.tolist(), out.values.tolist(), strict=True))
    assert out.steps[0] == 0 and out.steps[-1] == 1990
    assert kept[570] == 9.0 and kept[1400] == -9.0
    assert all(kept[s] == values[s // 10] for s in kept)  # real points only
    assert not downsample(steps, values, 200).downsampled
