import os
import pathlib

import pytest

import modelwatch

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures"
# One window per test: 7 days (the longest allowed), aligned to UTC, so that a test never
# straddles two windows.
WEEK = 7 * 86400


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def agent(data_dir):
    """A configured agent (k = 1: every value ships) writing to a fresh folder."""
    modelwatch.configure(api_key="test", data_dir=data_dir, window_seconds=WEEK, min_values_per_window=1)
    yield data_dir
    modelwatch.shutdown()
    # Sessions keep their metadata for the next agent: each test starts with new ones.
    modelwatch._sessions.clear()


def by_deployment(data_dir):
    """The summaries in a folder as lists per deployment (not merged)."""
    out = {}
    for s in modelwatch.read_summaries(data_dir):
        out.setdefault(s["deployment"], []).append(s)
    return out


def one(data_dir, deployment):
    """The single summary of a deployment (after one flush)."""
    got = by_deployment(data_dir)[deployment]
    assert len(got) == 1, got
    return got[0]
