"""A seeded synthetic population: the same profiles for the same seed, on every machine.

Attributes are the ones the example segments and templates read: cart value and age, days since
the last order, member tier, channel addresses (made-up, in reserved example ranges).
"""

from __future__ import annotations

import random

from engine.domain import Profile

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
_GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛"]
_TIMEZONES = [
    ("Asia/Shanghai", 0.85),
    ("Asia/Singapore", 0.07),
    ("America/New_York", 0.05),
    ("Europe/London", 0.03),
]
TIERS = ("bronze", "silver", "gold", "diamond")


def population(size: int = 3000, seed: int = 7) -> list[Profile]:
    """``size`` profiles ``p00001``...; about 8% carted yesterday and did not pay, about 11%
    last ordered 60-120 days ago, and 5% registered today (new members)."""
    rng = random.Random(seed)
    zones, weights = zip(*_TIMEZONES, strict=True)
    profiles = []
    for i in range(1, size + 1):
        attributes: dict[str, object] = {
            "first_name": rng.choice(_SURNAMES) + rng.choice(_GIVEN),
            "email": f"member{i}@example.com",
            "phone": f"+8613800{i:06d}",
            "wecom_external_userid": f"wm{seed:02d}{i:08d}",
            "tier": rng.choices(TIERS, weights=(60, 25, 12, 3))[0],
            "registered_days_ago": 0 if rng.random() < 0.05 else rng.randint(1, 900),
        }
        tags: set[str] = set()
        if rng.random() < 0.3:
            attributes["cart_value"] = rng.choice((59, 99, 129, 199, 259, 399, 699))
            attributes["carted_days_ago"] = rng.randint(1, 3)
            if rng.random() < 0.2:
                tags.add("paid_since_cart")
        if attributes["registered_days_ago"] != 0 and rng.random() < 0.8:
            attributes["days_since_last_order"] = rng.randint(1, 400)
        if rng.random() < 0.3:
            tags.add("fruit_lover")
        profiles.append(
            Profile(
                id=f"p{i:05d}",
                attributes=attributes,
                tags=frozenset(tags),
                timezone=rng.choices(zones, weights=weights)[0],
            )
        )
    return profiles
