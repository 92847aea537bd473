import base64
from urllib.parse import quote, quote_plus

from elspeth.landscape.redaction import REDACTED, Redactor, encoded_forms, looks_secret
from elspeth.settings import environment_secrets, secret_values


def test_secret_names_are_whole_names():
    assert looks_secret("Authorization") and looks_secret("api-key") and looks_secret("AZURE_OPENAI_API_KEY")
    assert looks_secret("AZURE_STORAGE_KEY") and looks_secret("GITHUB_TOKEN") and looks_secret("connection_string")
    assert looks_secret("aws_access_key_id") and looks_secret("aws_secret_access_key")
    assert not looks_secret("max_tokens") and not looks_secret("prompt_tokens")
    assert not looks_secret("key") and not looks_secret("partition_key"), "an S3 object key is data"


def test_values_headers_and_sas_signatures_are_removed():
    redact = Redactor.of(["s3cr3t-value-123"])
    stored = redact(
        {
            "url": "https://acct.blob.core.windows.net/c/b?sv=2023-11-03&sig=abc%2Fdef&se=2030",
            "headers": {"api-key": "k", "Content-Type": "application/json"},
            "body": "prompt mentioning s3cr3t-value-123 by accident",
            "usage": {"total_tokens": 12},
        }
    )
    assert "abc%2Fdef" not in stored["url"] and "sv=2023-11-03" in stored["url"]
    assert stored["headers"] == {"api-key": REDACTED, "Content-Type": "application/json"}
    assert "s3cr3t-value-123" not in stored["body"]
    assert stored["usage"] == {"total_tokens": 12}


def test_one_rule_for_query_parameters_headers_and_connection_strings():
    redact = Redactor()
    url = "https://h/p?apikey=AAA111&key=BBB222&token=CCC333&X-Amz-Security-Token=DDD444&code=EEE555&max_tokens=5"
    assert redact.text(url) == (
        "https://h/p?apikey=***&key=***&token=***&X-Amz-Security-Token=***&code=***&max_tokens=5"
    )
    assert redact.text("AccountName=acct;AccountKey=Zm9vYmFy==;EndpointSuffix=core") == (
        "AccountName=acct;AccountKey=***;EndpointSuffix=core"
    )
    assert redact.text("failed\nAuthorization: Bearer abc def\nContent-Type: text/plain") == (
        "failed\nAuthorization: ***\nContent-Type: text/plain"
    )
    assert (
        redact.text("headers {'X-Api-Key': 'k1', 'Accept': '*/*'}") == "headers {'X-Api-Key': '***', 'Accept': '*/*'}"
    )
    assert redact.text('{"client_secret": "s\\"x", "key": "exports/rows.jsonl"}') == (
        '{"client_secret": "***", "key": "exports/rows.jsonl"}'
    ), "a bare `key` field is data; only on the wire is it a credential"
    assert redact.text("Code: NoSuchKey") == "Code: NoSuchKey"
    assert redact.text("s3://b/year=2024/key=k1/rows.jsonl") == "s3://b/year=2024/key=k1/rows.jsonl", "a partition"
    stored = redact({"Key": "exports/rows.jsonl", "headers": {"Key": "k-123456"}, "query": {"code": "c-123456"}})
    assert stored == {"Key": "exports/rows.jsonl", "headers": {"Key": REDACTED}, "query": {"code": REDACTED}}


def test_the_credentials_inside_a_secret_are_secrets_of_their_own():
    redact = Redactor.of(
        [
            "Bearer tok-5f0c2d9e",
            "Basic " + base64.b64encode(b"user:pa55word-9").decode(),
            "DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=a2V5LWJ5dGVz==",
            "sv=2024-01-01&sig=abc%2Fdef%2Bghi&se=2030",
            "postgresql://u:db-pass-77@host/db",
        ]
    )
    echoed = "token tok-5f0c2d9e, password pa55word-9, key a2V5LWJ5dGVz==, sig abc/def+ghi, db db-pass-77"
    assert redact.text(echoed) == "token ***, password ***, key ***, sig ***, db ***"


def test_known_secrets_are_redacted_in_every_encoding():
    secret = "s3cr3t/value+with=specials"
    redact = Redactor.of([secret])
    for encoded in (
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        secret.encode().hex(),
        base64.b64encode(b"prefix-" + secret.encode()).decode(),
    ):
        assert not any(form in redact.text(f"x {encoded} y") for form in encoded_forms(secret)), encoded
    assert secret.encode() not in redact.data(b"\xff\xfe binary " + secret.encode())


def test_the_run_knows_credentials_written_into_settings_and_read_from_the_environment():
    raw = {
        "transforms": [
            {"options": {"url": "https://me:pw-1234567@api.example/v1?key=${LOOKUP}&lang=en", "timeout": 5}}
        ],
    }
    assert secret_values(raw, environ={"LOOKUP": "lookup-key-7e1d"}) == {"pw-1234567", "lookup-key-7e1d"}
    environ = {
        "AWS_SESSION_TOKEN": "session-token-0123456789",
        "DB_PASSWORD": "postgres",  # too short to be an issued credential: a local default
        "PWD": "/home/someone/project",
        "HOME": "/home/someone",
    }
    assert environment_secrets(environ) == {"session-token-0123456789"}
