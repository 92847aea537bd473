"""`elspeth keygen`, `export`, `verify-export` and `verify` end to end: real runs of the demo pipeline and
of an LLM pipeline against the testkit's Azure OpenAI emulator, a real SQLite Landscape, real files that are
then tampered with."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from elspeth.landscape.recorder import INLINE_LIMIT

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def only_these_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command loads only the plugins these tests use: others installed here are not their business."""
    monkeypatch.setenv("ELSPETH_LOAD_PLUGINS", "builtin,azure")


@pytest.fixture
def demo(elspeth, tmp_path, monkeypatch):
    """The demo run `demo` in tmp_path/audit, its outputs in tmp_path/demo, and a key pair in tmp_path."""
    monkeypatch.chdir(REPO)  # the demo's paths are relative to the repository root
    monkeypatch.setenv("DEMO_OUT", str(tmp_path / "demo"))
    url = f"sqlite:///{tmp_path / 'audit' / 'landscape.db'}"
    result = elspeth("run", "examples/demo/settings.yaml", "--landscape", url, "--run-id", "demo", "-q")
    assert result.exit_code == 0, result.output
    assert elspeth("keygen", str(tmp_path / "key.pem")).exit_code == 0
    return url


def export(elspeth, tmp_path, url, run_id="demo"):
    out = tmp_path / f"{run_id}.jsonl"
    result = elspeth("export", run_id, "-o", str(out), "--key", str(tmp_path / "key.pem"), "--landscape", url)
    assert result.exit_code == 0, result.output
    return out


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def check(elspeth, path, key):
    return elspeth("verify-export", str(path), "--key", str(key))


def flip_byte(data: bytes, at: int) -> bytes:
    """`data` with the character at `at` replaced by another digit or letter (the JSON stays valid)."""
    old = data[at : at + 1]
    new = b"1" if old != b"1" else b"2"
    return data[:at] + new + data[at + 1 :]


# ---------------------------------------------------------------- export and verify-export


def test_export_holds_every_record_and_verifies(elspeth, demo, tmp_path):
    out = export(elspeth, tmp_path, demo)
    found = records(out)
    header, end, signature = found[0], found[-2], found[-1]
    assert header["type"] == "header" and header["run_id"] == "demo" and header["grade"] == "reproducible"
    assert header["format"] == "elspeth-export" and header["version"] == 1 and header["bodies_purged"] == 0
    assert end["type"] == "end" and signature["type"] == "signature"
    kinds = [r["type"] for r in found[1:-2]]
    assert end["counts"] == {k: kinds.count(k) for k in dict.fromkeys(kinds)}
    assert end["counts"]["row"] == 30 and end["counts"]["run"] == 1 and end["counts"]["node"] == 6
    assert {"token", "state", "artifact", "outcome", "checkpoint"} <= set(end["counts"])
    # Every line after the first carries the hash of the line before it.
    lines = out.read_bytes().splitlines(keepends=True)
    for before, line in itertools.pairwise(lines):
        assert json.loads(line)["prev"] == hashlib.sha256(before).hexdigest()

    result = check(elspeth, out, tmp_path / "key.pub.pem")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"OK {out}: run demo, {len(found) - 3} records, grade reproducible")


def test_signature_checks_by_hand_with_openssl(elspeth, demo, tmp_path):
    """docs/evidence.md's recipe: the signature is over the SHA-256 of every byte before the last line."""
    out = export(elspeth, tmp_path, demo)
    *body, last = out.read_bytes().splitlines(keepends=True)
    (tmp_path / "digest").write_bytes(hashlib.sha256(b"".join(body)).digest())
    (tmp_path / "sig").write_bytes(base64.b64decode(json.loads(last)["signature"]))
    command = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "key.pub.pem", "-rawin", "-in", "digest"]
    done = subprocess.run([*command, "-sigfile", "sig"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0 and "Signature Verified Successfully" in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize("which", ["row payload", "outcome", "header", "last record", "broken JSON"])
def test_one_changed_byte_fails_and_names_the_line(elspeth, demo, tmp_path, which):
    out = export(elspeth, tmp_path, demo)
    lines = out.read_bytes().splitlines(keepends=True)
    if which == "row payload":
        number = next(i for i, line in enumerate(lines, 1) if b'"type":"row"' in line and b"Harbour" in line)
        at = lines[number - 1].index(b"Harbour")
    elif which == "outcome":
        number = next(i for i, line in enumerate(lines, 1) if b'"type":"outcome"' in line)
        at = lines[number - 1].index(b'"recorded_at":') + len(b'"recorded_at":') + 2
    elif which == "header":
        number, at = 1, lines[0].index(b"reproducible")
    elif which == "last record":
        number = len(lines) - 1  # the end record, just before the signature
        at = lines[number - 1].index(b'"row":') + len(b'"row":')
    else:
        number = next(i for i, line in enumerate(lines, 1) if b'"type":"state"' in line)
        at = lines[number - 1].index(b'"type"')  # its opening quote: the line is no JSON any more
    lines[number - 1] = flip_byte(lines[number - 1], at)
    out.write_bytes(b"".join(lines))

    result = check(elspeth, out, tmp_path / "key.pub.pem")
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith(f"FAILED {out}")
    assert f"line {number}: this line was changed" in result.stdout
    assert "the lines above are not the ones that were signed" in result.stdout
    if which == "row payload":
        assert f"line {number}: the payload of row" in result.stdout
    if which == "broken JSON":
        assert f"line {number}: not a JSON record" in result.stdout


def test_rechained_and_rehashed_without_the_key_still_fails(elspeth, demo, tmp_path):
    """Someone without the private key changes a row, fixes its hash, the chain and the signed digest: only
    the signature is left to catch it, and it does."""
    from elspeth import canonical

    out = export(elspeth, tmp_path, demo)
    found = records(out)
    row = next(r for r in found if r["type"] == "row" and r["payload_hash"])
    payload = json.loads(row["payload_json"])
    payload["qty"] = 999
    row["payload_json"], row["payload_hash"] = canonical.dumps(payload), canonical.stable_hash(payload)
    rewritten, prev, digest = [], None, hashlib.sha256()
    for record in found:
        if prev is not None:
            record["prev"] = prev
        if record["type"] == "signature":
            record["sha256"] = digest.hexdigest()
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        rewritten.append(line)
        digest.update(line)
        prev = hashlib.sha256(line).hexdigest()
    out.write_bytes(b"".join(rewritten))

    result = check(elspeth, out, tmp_path / "key.pub.pem")
    assert result.exit_code == 1, result.output
    assert result.stdout.count("\n  ") == 1, result.stdout
    assert f"line {len(found)}: the signature does not verify with the key given" in result.stdout


def test_signed_by_another_key(elspeth, demo, tmp_path):
    out = export(elspeth, tmp_path, demo)
    assert elspeth("keygen", str(tmp_path / "other.pem")).exit_code == 0
    result = check(elspeth, out, tmp_path / "other.pub.pem")
    assert result.exit_code == 1, result.output
    assert "not with the key given" in result.stdout


def test_cut_short_export(elspeth, demo, tmp_path):
    out = export(elspeth, tmp_path, demo)
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:-3]))
    result = check(elspeth, out, tmp_path / "key.pub.pem")
    assert result.exit_code == 1, result.output
    assert "no end record" in result.stdout and "no signature line" in result.stdout


def test_key_and_file_errors(elspeth, demo, tmp_path, user_error):
    out = export(elspeth, tmp_path, demo)
    key, public = str(tmp_path / "key.pem"), str(tmp_path / "key.pub.pem")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_pem = tmp_path / "rsa.pub.pem"
    rsa_pem.write_bytes(
        rsa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    target = str(tmp_path / "x.jsonl")
    user_error(elspeth("export", "nope", "-o", target, "--key", key, "--landscape", demo), "no run 'nope'")
    user_error(elspeth("export", "demo", "-o", target, "--key", "missing.pem", "--landscape", demo), "missing.pem")
    user_error(elspeth("export", "demo", "-o", target, "--key", public, "--landscape", demo), "is a public key")
    assert not Path(target).exists()
    user_error(elspeth("verify-export", str(out), "--key", key), "is a private key", ".pub.pem")
    user_error(elspeth("verify-export", str(out), "--key", str(rsa_pem)), "an RSA key, not Ed25519")
    user_error(elspeth("verify-export", str(tmp_path / "none.jsonl"), "--key", public), "no such file")
    user_error(elspeth("verify-export", public, "--key", public), "is not an elspeth export")
    user_error(elspeth("keygen", key), "already exists")


def test_an_encrypted_key_signs_with_its_passphrase(elspeth, demo, tmp_path, monkeypatch, user_error):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    encrypted = serialization.BestAvailableEncryption(b"s3cret")
    (tmp_path / "enc.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encrypted)
    )
    (tmp_path / "enc.pub.pem").write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    args = ("export", "demo", "-o", str(tmp_path / "e.jsonl"), "--key", str(tmp_path / "enc.pem"), "--landscape", demo)
    user_error(elspeth(*args), "is encrypted", "$ELSPETH_KEY_PASSPHRASE")
    monkeypatch.setenv("ELSPETH_KEY_PASSPHRASE", "wrong")
    user_error(elspeth(*args), "passphrase in $ELSPETH_KEY_PASSPHRASE is wrong")
    monkeypatch.setenv("ELSPETH_KEY_PASSPHRASE", "s3cret")
    assert elspeth(*args).exit_code == 0
    assert check(elspeth, tmp_path / "e.jsonl", tmp_path / "enc.pub.pem").exit_code == 0


def test_keygen_makes_a_private_file(elspeth, tmp_path):
    assert elspeth("keygen", str(tmp_path / "keys" / "signing.pem")).exit_code == 0
    assert (tmp_path / "keys" / "signing.pem").stat().st_mode & 0o777 == 0o600
    assert b"BEGIN PUBLIC KEY" in (tmp_path / "keys" / "signing.pub.pem").read_bytes()


# ---------------------------------------------------------------- verify


def test_verify_matches_then_names_a_changed_output_file(elspeth, demo, tmp_path):
    ok = elspeth("verify", "demo", "--landscape", demo)
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.count("    matches ") == 3 and "payloads   56 match" in ok.stdout

    orders = tmp_path / "demo" / "orders.csv"
    orders.write_bytes(flip_byte(orders.read_bytes(), 100))
    bad = elspeth("verify", "demo", "--landscape", demo)
    assert bad.exit_code == 1, bad.output
    [line] = [line for line in bad.stdout.splitlines() if line.strip().startswith("MISMATCH")]
    assert f"sink:orders file://{orders}" in line and "1,770 bytes" in line
    assert bad.stdout.rstrip().endswith("1 mismatch")


def test_verify_names_a_changed_row_payload(elspeth, demo, tmp_path):
    with sqlite3.connect(tmp_path / "audit" / "landscape.db") as db:
        db.execute("UPDATE rows SET payload_json = replace(payload_json, 'Harbour', 'Harbxur') WHERE row_id = 0")
    result = elspeth("verify", "demo", "--landscape", demo, "--json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert [(p["status"], p["subject"]) for p in report["payloads"]] == [("mismatch", "row 0 payload")]
    assert report["payloads_matching"] == 55


def test_verify_unknown_run(elspeth, demo, user_error):
    user_error(elspeth("verify", "nope", "--landscape", demo), "no run 'nope'")


# ---------------------------------------------------------------- an LLM run: call bodies inline and stored


@pytest.fixture
def llm_run(elspeth, write, tmp_path, azure_openai_emulator):
    """An azure_llm run against the emulator: one ticket so long that its prompt goes to the payload store."""
    for extra in ("jinja2", "openai"):  # elspeth[azure]: absent where only the core is installed
        pytest.importorskip(extra)
    azure_openai_emulator.reset()
    long_body = "x" * (INLINE_LIMIT + 100)
    write("tickets.csv", f"id,subject,body\n1,Refund,I was charged twice\n2,Essay,{long_body}\n")
    settings = write(
        "settings.yaml",
        f"""\
        source: {{plugin: csv, options: {{path: tickets.csv}}}}
        transforms:
          - name: classify
            plugin: azure_llm
            options:
              endpoint: {azure_openai_emulator.url}
              api_key: emulator-key
              deployment: gpt-4o-mini
              prompt: "Classify: {{{{ subject }}}} {{{{ body }}}}"
              output_field: category
        sinks:
          out: {{plugin: jsonl, options: {{path: out.jsonl, if_exists: overwrite}}}}
        """,
    )
    url = f"sqlite:///{tmp_path / 'landscape.db'}"
    result = elspeth("run", str(settings), "--landscape", url, "--run-id", "llm", "-q")
    assert result.exit_code == 0, result.output
    assert elspeth("keygen", str(tmp_path / "key.pem")).exit_code == 0
    with sqlite3.connect(tmp_path / "landscape.db") as db:
        [(ref,)] = db.execute("SELECT request_ref FROM calls WHERE request_ref IS NOT NULL").fetchall()
    return url, tmp_path / "payloads" / ref[:2] / ref[2:]


def test_llm_run_exports_its_call_bodies(elspeth, llm_run, tmp_path):
    url, stored = llm_run
    out = export(elspeth, tmp_path, url, "llm")
    found = records(out)
    assert found[0]["grade"] == "replayable"
    calls = [r for r in found if r["type"] == "call"]
    assert len(calls) == 2
    by_ref = next(c for c in calls if c["request_ref"])
    assert by_ref["request_json"] is None and by_ref["request_ref"] == stored.parent.name + stored.name
    assert hashlib.sha256(by_ref["request_body"].encode()).hexdigest() == by_ref["request_ref"]
    assert "x" * INLINE_LIMIT in by_ref["request_body"]
    assert all(c["response_json"] or c["response_body"] for c in calls)
    assert check(elspeth, out, tmp_path / "key.pub.pem").exit_code == 0

    # A stored body changed inside the export (and its line rechained): named by its line.
    lines = out.read_bytes().splitlines(keepends=True)
    number = next(i for i, line in enumerate(lines, 1) if b'"request_body":' in line)
    lines[number - 1] = lines[number - 1].replace(b"xxxx", b"xxxy", 1)
    out.write_bytes(b"".join(lines))
    result = check(elspeth, out, tmp_path / "key.pub.pem")
    assert result.exit_code == 1
    assert f"line {number}: the request body of call" in result.stdout and "is not the payload" in result.stdout


def test_verify_names_a_changed_stored_body(elspeth, llm_run):
    url, stored = llm_run
    ok = elspeth("verify", "llm", "--landscape", url)
    assert ok.exit_code == 0, ok.output
    # Two rows, the two outputs the classify step changed, two calls of a request and a response each.
    assert "payloads   8 match" in ok.stdout

    stored.write_bytes(stored.read_bytes().replace(b"xxxx", b"xxxy", 1))
    bad = elspeth("verify", "llm", "--landscape", url)
    assert bad.exit_code == 1, bad.output
    [line] = [line for line in bad.stdout.splitlines() if line.strip().startswith("MISMATCH")]
    assert "request (payload " in line and "is corrupt" in line


def test_a_body_gone_from_a_run_never_purged_is_a_mismatch(elspeth, llm_run):
    url, stored = llm_run
    stored.unlink()
    result = elspeth("verify", "llm", "--landscape", url)
    assert result.exit_code == 1, result.output
    [line] = [line for line in result.stdout.splitlines() if line.strip().startswith("MISMATCH")]
    assert "request (payload " in line and "never purged" in line


def test_a_purged_run_verifies_its_hashes_and_reports_its_bodies_purged(elspeth, llm_run, tmp_path):
    url, stored = llm_run
    purged = elspeth("purge", "--run", "llm", "--landscape", url)
    assert purged.exit_code == 0, purged.output
    assert not stored.exists(), "no other run refers to the stored prompt: its file goes"
    result = elspeth("verify", "llm", "--landscape", url)
    assert result.exit_code == 0, result.output
    assert "MISMATCH" not in result.stdout and "purged" in result.stdout
    assert elspeth("verify", "llm", "--landscape", url, "--strict").exit_code == 1

    runs = json.loads(elspeth("runs", "--landscape", url, "--json").stdout)
    assert [(r["run_id"], r["grade"]) for r in runs] == [("llm", "attributable")]
    out = export(elspeth, tmp_path, url, "llm")
    found = records(out)
    assert found[0]["bodies_purged"] > 0 and found[0]["grade"] == "attributable"
    assert next(r for r in found if r["type"] == "call" and r["request_ref"])["request_body"] is None
    checked = check(elspeth, out, tmp_path / "key.pub.pem")
    assert checked.exit_code == 0, checked.output


def test_runs_and_explain_show_the_grade(elspeth, llm_run):
    url, _ = llm_run
    runs = elspeth("runs", "--landscape", url)
    assert runs.stdout.splitlines()[0].split()[-1] == "GRADE" and runs.stdout.splitlines()[1].endswith("replayable")
    explained = elspeth("explain", "llm", "--landscape", url)
    assert "  grade      replayable\n" in explained.stdout
    assert "external calls, every body recorded: transform:classify" in explained.stdout
    overview = json.loads(elspeth("explain", "llm", "--landscape", url, "--json").stdout)
    assert overview["grade"]["level"] == "replayable"
