#!/usr/bin/env python3
"""Writes all_types.schema.json and all_types.jsonl: 3000 deterministic rows using every type.

Run from anywhere: python3 examples/generate.py [ROWS]
"""
import json
import random
import sys
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
COLUMNS = [
    ("id", "bigint"),
    ("active", "boolean"),
    ("qty", "smallint"),
    ("region_code", "integer"),
    ("score", "real"),
    ("ratio", "double precision"),
    ("price", "numeric"),
    ("name", "varchar"),
    ("born", "date"),
    ("opens_at", "time"),
    ("created", "timestamp"),
    ("updated", "timestamptz"),
    ("ttl", "interval"),
    ("blob", "bytea"),
    ("attrs", "jsonb"),
    ("seq", "serial"),
    ("uid", "uuid"),
    ("tags", "varchar[]"),
    ("matrix", "integer[][]"),
    ("address", "struct<street varchar, zip integer, geo struct<lat double precision, lon double precision>>"),
    ("events", "struct<at timestamptz, kind varchar>[]"),
]
NAMES = ["Ada", "Grace", "Linus", "Zoë", "Łukasz", "山田", "O'Brien", 'say "hi"', "tab\tand\nnewline"]


def row(i, rnd):
    r = {"id": i}
    maybe = lambda v: None if rnd.random() < 0.05 else v  # about 5% NULLs per column
    r["active"] = maybe(i % 3 == 0)
    r["qty"] = maybe(rnd.randint(-32768, 32767))
    r["region_code"] = maybe(rnd.randint(-2**31, 2**31 - 1))
    r["score"] = maybe(rnd.choice([round(rnd.uniform(-1000, 1000), 3), "NaN", "Infinity", 0.1]))
    r["ratio"] = maybe(rnd.choice([rnd.uniform(-1, 1), 1e300, -5e-324, "-Infinity"]))
    r["price"] = maybe(rnd.choice([f"{rnd.randint(0, 10**9)}.{rnd.randint(0, 99):02d}", "NaN", "-Infinity", rnd.randint(-100, 100)]))
    r["name"] = maybe(f"{rnd.choice(NAMES)} #{i}")
    r["born"] = maybe((date(1900, 1, 1) + timedelta(days=rnd.randint(0, 60000))).isoformat())
    r["opens_at"] = maybe(f"{rnd.randint(0, 23):02d}:{rnd.randint(0, 59):02d}:{rnd.randint(0, 59):02d}.{rnd.randint(0, 999999):06d}")
    base = datetime(2000, 1, 1) + timedelta(seconds=rnd.randint(0, 900_000_000), microseconds=rnd.randint(0, 999_999))
    r["created"] = maybe(base.strftime("%Y-%m-%d %H:%M:%S.%f"))
    tz = timezone(timedelta(minutes=rnd.choice([-480, -330, 0, 60, 345, 600])))
    r["updated"] = maybe(base.replace(tzinfo=tz).isoformat())
    r["ttl"] = maybe(rnd.choice([
        f"{rnd.randint(0, 3)} years {rnd.randint(0, 11)} mons {rnd.randint(0, 30)} days {rnd.randint(0, 23):02d}:{rnd.randint(0, 59):02d}:{rnd.randint(0, 59):02d}",
        f"P{rnd.randint(0, 2)}Y{rnd.randint(0, 11)}M{rnd.randint(-5, 5)}DT{rnd.randint(0, 23)}H{rnd.randint(0, 59)}M{rnd.randint(0, 59)}.{rnd.randint(1, 999):03d}S",
        "1 day 02:00:00",
    ]))
    r["blob"] = maybe("\\x" + bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 12))).hex())
    r["attrs"] = maybe({"k": i, "nested": {"list": [1, 2.5, None, True, "x"]}, "tag": rnd.choice(NAMES)})
    r["seq"] = maybe(i * 65537)
    r["uid"] = maybe(str(uuid.UUID(int=rnd.getrandbits(128))))
    r["tags"] = maybe([rnd.choice(["red", "green", "blue", None]) for _ in range(rnd.randint(0, 4))])
    r["matrix"] = maybe([[rnd.randint(-9, 9) for _ in range(2)] for _ in range(rnd.randint(0, 3))])
    r["address"] = maybe({
        "street": f"{rnd.randint(1, 999)} Main St",
        "zip": rnd.randint(10000, 99999),
        "geo": maybe({"lat": rnd.uniform(-90, 90), "lon": rnd.uniform(-180, 180)}),
    })
    r["events"] = maybe([
        {"at": (base + timedelta(minutes=k)).replace(tzinfo=timezone.utc).isoformat(), "kind": rnd.choice(["open", "close"])}
        for k in range(rnd.randint(0, 3))
    ])
    # A missing key is NULL too: drop one column now and then.
    if i % 17 == 0:
        r.pop("name")
    return r


def main():
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    rnd = random.Random(20261124)
    (HERE / "all_types.schema.json").write_text(
        json.dumps({"columns": [{"name": n, "type": t} for n, t in COLUMNS]}, indent=2) + "\n"
    )
    with open(HERE / "all_types.jsonl", "w") as out:
        for i in range(rows):
            out.write(json.dumps(row(i, rnd), ensure_ascii=False, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
