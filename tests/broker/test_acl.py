"""``placewatch broker acl`` without a broker: the hash format (checked against
``mosquitto_passwd``), user names, the ACL text, keeping and rotating passwords, file modes."""

from __future__ import annotations

import csv
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from placewatch.brokeracl import (
    AclError,
    AclOptions,
    DeviceRow,
    Generated,
    accounts,
    device_username,
    generate,
    hash_password,
    read_passwd,
    verify_password,
    write_files,
)

DEVICES = [
    DeviceRow("camden", "bin-001", "bin_fill"),
    DeviceRow("camden", "gauge:7", "flood_level"),
    DeviceRow("leeds", "aq-1", "air_quality"),
]


def make(
    existing: dict[str, str] | None = None, rotate: tuple[str, ...] = (), rotate_all: bool = False
) -> Generated:
    return generate(
        accounts(DEVICES, AclOptions(prefix="pw")),
        existing or {},
        generated_at="now",
        rotate=rotate,
        rotate_all=rotate_all,
    )


@pytest.mark.skipif(not shutil.which("mosquitto_passwd"), reason="mosquitto_passwd not installed")
def test_hash_format_matches_mosquitto_passwd(tmp_path: Path) -> None:
    # A hash made by mosquitto_passwd verifies with our code, and ours has the same shape.
    path = tmp_path / "passwd"
    path.touch()
    subprocess.run(["mosquitto_passwd", "-b", str(path), "camden/bin-001", "s3cret"], check=True)
    theirs = read_passwd(path)["camden/bin-001"]
    assert verify_password("s3cret", theirs)
    assert not verify_password("s3creT", theirs)
    ours = hash_password("s3cret")
    assert verify_password("s3cret", ours)
    t, o = theirs.split("$"), ours.split("$")
    assert [len(x) for x in t] == [len(x) for x in o]  # "", "7", "101", 16-char salt, 88-char key
    assert o[1:3] == ["7", "101"]
    # Same salt and password → byte-identical to mosquitto_passwd's line.
    import base64

    assert hash_password("s3cret", salt=base64.b64decode(t[3])) == theirs


def test_user_names_and_acl() -> None:
    assert device_username("camden", "gauge:7") == "camden/gauge%3A7"
    gen = make()
    assert [a.username for a in gen.accounts] == [
        "placewatch-ingest",
        "camden/bin-001",
        "camden/gauge%3A7",
        "leeds/aq-1",
    ]
    blocks = gen.acl.split("\n\n")[1:]
    assert blocks[0].splitlines() == [
        "user placewatch-ingest",
        "topic read pw/#",
        "topic read v3/+/devices/+/up",
        "topic read application/+/device/+/event/up",
    ]
    assert blocks[2].splitlines() == [
        "user camden/gauge%3A7",
        "topic write pw/camden/flood_level/gauge:7",
        "topic write pw/camden/senml/gauge:7",
    ]
    # Devices only write, and only their own topics; nobody but ingest reads.
    assert gen.acl.count("topic read") == 3
    assert gen.acl.count("topic write") == 6
    for line in gen.passwd.splitlines():
        assert line.count(":") == 1  # the user name ends at the first ':' in Mosquitto's parser


def test_service_users_optional() -> None:
    opts = AclOptions(
        prefix="pw",
        network_topics=("v3/+/devices/+/up",),
        simulator=True,
        health=True,
        bridge=True,
        ingest_user="ingest-a",
    )
    accts = {a.username: a for a in accounts([], opts)}
    assert accts["ingest-a"].write == ()
    assert accts["placewatch-simulator"].write == ("pw/#", "v3/+/devices/+/up")
    assert accts["placewatch-health"].read == ("$SYS/broker/uptime",)
    assert accts["placewatch-bridge"].write == ("v3/+/devices/+/up",)
    with pytest.raises(AclError):
        accounts([], AclOptions(prefix="pw/#"))
    # A trailing newline would split a line of the ACL or the password file.
    for bad in (AclOptions(prefix="pw\n"), AclOptions(prefix="pw", network_topics=("x\n",))):
        with pytest.raises(AclError):
            accounts([], bad)
    with pytest.raises(AclError):
        accounts([], AclOptions(prefix="pw", ingest_user="ingest\n"))


def test_rerun_keeps_passwords_and_rotates_on_request() -> None:
    first = make()
    assert len(first.new) == 4 and first.kept == 0
    existing = {**dict(line.split(":", 1) for line in first.passwd.splitlines()), "gone/x": "$7$"}
    again = make(existing)
    assert again.new == [] and again.kept == 4 and again.passwd == first.passwd
    assert again.removed == ["gone/x"]
    rotated = make(existing, rotate=("leeds/aq-1",))
    assert [c.account.username for c in rotated.new] == ["leeds/aq-1"]
    new_hash = read_line(rotated.passwd, "leeds/aq-1")
    assert new_hash != existing["leeds/aq-1"]
    assert verify_password(rotated.new[0].password, new_hash)
    assert len(make(existing, rotate_all=True).new) == 4
    with pytest.raises(AclError):
        make(existing, rotate=("nobody",))


def read_line(passwd: str, user: str) -> str:
    return dict(line.split(":", 1) for line in passwd.splitlines())[user]


def test_files_private_and_credentials_once(tmp_path: Path) -> None:
    gen = make()
    out = tmp_path / "auth"
    written = write_files(out, gen, "pw", stamp="T1")
    assert written.credentials is not None
    for path in (written.passwd, written.acl, written.credentials):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with written.credentials.open() as f:
        rows = list(csv.DictReader(f))
    by_user = {r["username"]: r for r in rows}
    assert by_user["camden/gauge%3A7"]["topic"] == "pw/camden/flood_level/gauge:7"
    stored = read_passwd(written.passwd)
    assert all(verify_password(r["password"], stored[r["username"]]) for r in rows)
    # A second run with nothing new writes no credentials file and changes no hash.
    again = generate(gen.accounts, stored, generated_at="later")
    second = write_files(out, again, "pw", stamp="T2")
    assert second.credentials is None
    assert read_passwd(written.passwd) == stored
    assert sorted(p.name for p in out.iterdir()) == ["acl", "credentials-T1.csv", "passwd"]
