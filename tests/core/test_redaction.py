from elspeth.landscape.redaction import REDACTED, Redactor, looks_secret


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
