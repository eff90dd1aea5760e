"""Table test for the scrape sample size (docs/autoscaling.md, "Scraping")."""

from __future__ import annotations

import pytest

from autoscaler.sampling import sample_size

TABLE = [
    (0, 0),
    (1, 1),
    (2, 2),
    (3, 3),
    (4, 4),
    (5, 4),
    (6, 5),
    (8, 6),
    (10, 7),
    (15, 8),
    (20, 9),
    (30, 11),
    (50, 12),
    (100, 14),
    (200, 15),
    (500, 15),
    (1000, 16),
]


@pytest.mark.parametrize(("pods", "expected"), TABLE, ids=[f"{pods}-pods" for pods, _ in TABLE])
def test_sample_size(pods: int, expected: int) -> None:
    assert sample_size(pods) == expected


def test_negative_pod_count_rejected() -> None:
    with pytest.raises(ValueError, match="n_pods"):
        sample_size(-1)
