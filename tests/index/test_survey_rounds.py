"""The index survey asks for every listing it may read at once: one round trip, not one per batch
of candidates or one per target (issue 21). Checked on the loopback index with every answer held
back STALL seconds: listings asked for in one round all come back within one STALL of each
other, while a second round could only come back at least one STALL after the first."""

from __future__ import annotations

import pytest

from resolver.host.hostfile import host_from_mapping
from resolver.index.availability import survey_indexes
from resolver.index.client import HttpPolicy, IndexClient
from resolver.matrix.load import load_matrix
from resolver.solve.request import Request
from resolver.sources import Indexes
from resolver.team.lock import survey_team
from resolver.team.targets import Target
from tests.fixtures.cli import HOSTS
from tests.fixtures.pyindex import Fault, FixtureIndex

STALL = 0.5
LISTINGS = ("project", "not-found")


def _indexes(index: FixtureIndex) -> Indexes:
    return Indexes(pytorch=f"{index.base_url}/whl/{{variant}}/simple", general=index.url())


def _listing_times(index: FixtureIndex) -> list[float]:
    return sorted(r.time for r in index.requests if r.kind in LISTINGS)


@pytest.fixture
def stalled(fixture_index: FixtureIndex) -> FixtureIndex:
    fixture_index.clear_log()
    fixture_index.faults.add("*", Fault.stalled(STALL), times=10_000)
    return fixture_index


def test_one_hosts_survey_reads_its_listings_in_one_round(stalled: FixtureIndex) -> None:
    # The H100 host's candidates span several CUDA variants, each with torch and torchvision.
    host = host_from_mapping(HOSTS["h100"])
    client = IndexClient(policy=HttpPolicy(retries=0))
    survey_indexes(host, load_matrix(), Request(packages=("torchvision",)), _indexes(stalled), client)
    times = _listing_times(stalled)
    assert len(times) >= 5, times
    assert times[-1] - times[0] < STALL, times


def test_a_teams_survey_reads_every_targets_listings_in_one_round(stalled: FixtureIndex) -> None:
    targets = [Target(name, host_from_mapping(HOSTS[name])) for name in ("h100", "cpu")]
    client = IndexClient(policy=HttpPolicy(retries=0))
    request = Request(packages=("torchvision",))
    survey_team(targets, load_matrix(), request, ["poetry"], _indexes(stalled), client, None)
    times = _listing_times(stalled)
    assert {r.index for r in stalled.requests if r.kind in LISTINGS} >= {"general", "cpu"}
    assert times[-1] - times[0] < STALL, times
