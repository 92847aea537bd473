"""The Azure OpenAI emulator, through the real `openai` SDK: paths, auth, shapes, determinism, batch scripts."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import openai
import pytest

from elspeth_testkit.azure_openai_emulator import (
    AzureOpenAIEmulator,
    BatchScript,
    EmulatedError,
    labels_in,
)

from .conftest import API_KEY

API_VERSION = "2024-10-21"


def client(emulator, **kwargs):
    options = {"api_key": API_KEY, **kwargs}
    return openai.AzureOpenAI(azure_endpoint=emulator.url, api_version=API_VERSION, max_retries=0, **options)


def ask(emulator, content, **kwargs):
    return client(emulator).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": content}], **kwargs
    )


def raw(emulator, method, path, headers=None, body=None):
    request = urllib.request.Request(emulator.url + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_prompt_listing_labels_gets_one_of_them_always_the_same(emulator):
    prompt = "Classify the sentiment.\nLabels: positive, negative, neutral\nText: I loved it"
    first = ask(emulator, prompt)
    assert first.choices[0].message.content in ("positive", "negative", "neutral")
    assert ask(emulator, prompt).choices[0].message.content == first.choices[0].message.content
    answers = {ask(emulator, prompt + f" #{i}").choices[0].message.content for i in range(30)}
    assert answers == {"positive", "negative", "neutral"}, "the label depends on the prompt"


def test_completion_has_the_shape_azure_returns(emulator):
    completion = ask(emulator, "Say hello", max_tokens=50)
    assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-4o-mini" and completion.created > 0
    choice = completion.choices[0]
    assert (choice.index, choice.finish_reason, choice.message.role) == (0, "stop", "assistant")
    assert choice.message.content == "Echo: Say hello"
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    dumped = completion.model_dump()
    assert dumped["prompt_filter_results"][0]["content_filter_results"]["hate"]["filtered"] is False


def test_json_mode_max_tokens_and_rules(emulator):
    answer = ask(emulator, "Pick one of: red, green", response_format={"type": "json_object"})
    assert json.loads(answer.choices[0].message.content)["label"] in ("red", "green")
    truncated = ask(emulator, "one two three four five", max_tokens=2)
    assert (truncated.choices[0].message.content, truncated.choices[0].finish_reason) == ("Echo: one", "length")

    emulator.rule(r"capital of (\w+)", lambda match, body: f"The capital of {match.group(1)} is somewhere.")
    emulator.rule(r"forbidden", EmulatedError(400, "content_filter", "filtered"))
    emulator.rule(r"weather", "sunny")
    assert ask(emulator, "the capital of France?").choices[0].message.content == "The capital of France is somewhere."
    assert ask(emulator, "weather today").choices[0].message.content == "sunny"
    with pytest.raises(openai.BadRequestError) as raised:
        ask(emulator, "something forbidden")
    assert raised.value.body["code"] == "content_filter"


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("Labels: a, b, c", ["a", "b", "c"]),
        ("Answer with one of: yes or no.", ["yes", "no"]),
        ("categories = [spam | ham]", ["spam", "ham"]),
        ("no list here", []),
    ],
)
def test_labels_are_found_in_the_usual_phrasings(text, labels):
    assert labels_in(text) == labels


def test_auth_and_api_version_are_required_as_azure_requires_them(emulator):
    path = "/openai/deployments/d/chat/completions"
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode()
    assert raw(emulator, "POST", f"{path}?api-version={API_VERSION}", body=body)[0] == 401
    assert raw(emulator, "POST", path, headers={"api-key": API_KEY}, body=body)[0] == 404
    with pytest.raises(openai.AuthenticationError):
        client(emulator, api_key="sk-not-the-key").chat.completions.create(model="d", messages=[])
    bearer = client(emulator, api_key=None, azure_ad_token="an-entra-token")
    assert bearer.chat.completions.create(model="d", messages=[{"role": "user", "content": "x"}]).choices
    with AzureOpenAIEmulator(deployments=["known"]) as strict, pytest.raises(openai.NotFoundError):
        client(strict).chat.completions.create(model="unknown", messages=[{"role": "user", "content": "x"}])


def test_files_upload_read_list_and_delete(emulator):
    c = client(emulator)
    data = b'{"custom_id": "a", "method": "POST", "url": "/chat/completions", "body": {}}\n'
    uploaded = c.files.create(file=("in.jsonl", data, "application/jsonl"), purpose="batch")
    assert (uploaded.object, uploaded.purpose, uploaded.bytes, uploaded.filename) == (
        "file",
        "batch",
        len(data),
        "in.jsonl",
    )
    assert c.files.retrieve(uploaded.id).id == uploaded.id
    assert c.files.content(uploaded.id).content == data
    assert [f.id for f in c.files.list()] == [uploaded.id]
    assert c.files.delete(uploaded.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        c.files.retrieve(uploaded.id)


def submit(emulator, n=4):
    lines = [
        {
            "custom_id": f"row-{i}",
            "method": "POST",
            "url": "/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"hello {i}"}]},
        }
        for i in range(n)
    ]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    c = client(emulator)
    uploaded = c.files.create(file=("in.jsonl", data, "application/jsonl"), purpose="batch")
    return c, c.batches.create(input_file_id=uploaded.id, endpoint="/chat/completions", completion_window="24h")


def statuses_until_final(c, batch_id):
    seen = []
    while not seen or seen[-1] not in ("completed", "failed", "expired", "cancelled"):
        seen.append(c.batches.retrieve(batch_id).status)
    return seen


def test_a_batch_goes_through_its_scripted_states_to_an_output_in_the_real_format(emulator):
    emulator.script_batches(BatchScript(polls=3, drop_lines={1}, malformed_lines={2}, error_lines={3}))
    c, batch = submit(emulator)
    assert batch.status == "validating" and batch.endpoint == "/chat/completions"
    assert statuses_until_final(c, batch.id) == ["validating", "in_progress", "finalizing", "completed"]
    done = c.batches.retrieve(batch.id)
    assert done.request_counts.model_dump() == {"total": 4, "completed": 2, "failed": 1}
    output = c.files.content(done.output_file_id).content.decode().splitlines()
    parsed, malformed = [], []
    for line in output:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            malformed.append(line)
    assert len(parsed) == 1 and len(malformed) == 1 and '"custom_id": "row-2"' in malformed[0]
    good = parsed[0]
    assert good["custom_id"] == "row-0" and good["error"] is None and good["id"].startswith("batch_req_")
    assert good["response"]["status_code"] == 200 and good["response"]["request_id"]
    assert good["response"]["body"]["choices"][0]["message"]["content"] == "Echo: hello 0"
    errors = [json.loads(line) for line in c.files.content(done.error_file_id).content.decode().splitlines()]
    assert errors[0]["custom_id"] == "row-3" and errors[0]["response"]["status_code"] == 400


@pytest.mark.parametrize("final", ["failed", "expired", "cancelled"])
def test_a_batch_can_end_failed_expired_or_cancelled(emulator, final):
    emulator.script_batches(BatchScript(polls=1, final=final))
    c, batch = submit(emulator)
    assert statuses_until_final(c, batch.id) == ["validating", final]
    done = c.batches.retrieve(batch.id)
    assert done.output_file_id is None
    if final == "failed":
        assert done.errors.data[0].code == "server_error"


def test_cancel_and_validation(emulator):
    c, batch = submit(emulator)
    assert c.batches.cancel(batch.id).status == "cancelling"
    assert c.batches.retrieve(batch.id).status == "cancelled"
    bad = b'{"custom_id": "a", "method": "GET", "url": "/chat/completions", "body": {}}\n'
    uploaded = c.files.create(file=("bad.jsonl", bad, "application/jsonl"), purpose="batch")
    invalid = c.batches.create(input_file_id=uploaded.id, endpoint="/chat/completions", completion_window="24h")
    failed = c.batches.retrieve(invalid.id)
    assert failed.status == "failed" and failed.errors.data[0].line == 1


def test_batches_keep_their_metadata_and_list_newest_first_page_by_page(emulator):
    c, _ = submit(emulator)
    uploaded = c.files.create(file=("in.jsonl", b"", "application/jsonl"), purpose="batch")
    created = [
        c.batches.create(
            input_file_id=uploaded.id,
            endpoint="/chat/completions",
            completion_window="24h",
            metadata={"tag": f"t{i}"},
        )
        for i in range(4)
    ]
    assert created[2].metadata == {"tag": "t2"}
    first = c.batches.list(limit=2)
    assert [b.metadata for b in first.data] == [{"tag": "t3"}, {"tag": "t2"}] and first.has_more
    rest = c.batches.list(limit=2, after=first.data[-1].id)
    assert [b.metadata for b in rest.data] == [{"tag": "t1"}, {"tag": "t0"}] and rest.has_more
    last = c.batches.list(limit=2, after=rest.data[-1].id)
    assert [b.metadata for b in last.data] == [None] and not last.has_more
    assert len(list(c.batches.list(limit=1))) == 5, "the SDK's auto-paging follows `after`"
    with pytest.raises(openai.BadRequestError, match="at most 16"):
        c.batches.create(
            input_file_id=uploaded.id,
            endpoint="/chat/completions",
            completion_window="24h",
            metadata={f"k{i}": "v" for i in range(17)},
        )


class FakeClock:
    """The emulator's clock, moved by hand: rate windows open and close exactly when a test says."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def attempt(emulator, content="hi", **kwargs):
    """(status, headers, body) of one chat completion, 429s included (the SDK does not retry them)."""
    try:
        raw_response = client(emulator).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": content}], **kwargs
        )
    except openai.RateLimitError as exc:
        return 429, exc.response.headers, exc.body
    return raw_response.status_code, raw_response.headers, raw_response.parse()


def test_without_latency_an_answer_does_not_wait_on_a_delayed_ack(emulator):
    c = client(emulator)
    times = []
    for _ in range(11):
        started = time.perf_counter()
        c.chat.completions.create(model="d", messages=[{"role": "user", "content": "quick"}])
        times.append(time.perf_counter() - started)
    # With Nagle's algorithm on, the body waited for the ACK of the headers: 40 ms or more every call.
    assert sorted(times)[5] < 0.03, f"median {sorted(times)[5] * 1000:.0f} ms"


def test_latency_and_jitter_delay_each_answer(emulator):
    emulator.latency_ms, emulator.jitter_ms = 150, 100
    for _ in range(3):
        started = time.perf_counter()
        assert ask(emulator, "slow").choices[0].message.content == "Echo: slow"
        # The lower bound is the emulator's; above latency plus jitter only a loaded machine adds time.
        assert 0.15 <= time.perf_counter() - started < 0.25 + 1.0, "latency plus at most the jitter"


def test_concurrent_requests_are_answered_side_by_side():
    n, latency = 64, 0.5
    with AzureOpenAIEmulator(api_keys=[API_KEY], latency_ms=latency * 1000) as emulator:
        shared = client(emulator)
        ready = threading.Barrier(n)
        answers: list[str] = []

        def one(i: int) -> None:
            ready.wait()
            completion = shared.chat.completions.create(model="d", messages=[{"role": "user", "content": f"{i}"}])
            answers.append(completion.choices[0].message.content)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        assert sorted(answers) == sorted(f"Echo: {i}" for i in range(n))
        assert (emulator.peak_in_flight, emulator.in_flight, emulator.completed) == (n, 0, n)
        # One at a time they would take n * latency (32 s).
        assert elapsed < 16 * latency, f"{n} answers of {latency}s took {elapsed:.2f}s: they did not overlap"
        emulator.reset()
        assert (emulator.peak_in_flight, emulator.completed, emulator.throttled) == (0, 0, 0)


def test_a_spent_request_budget_is_answered_429_as_azure_does_until_its_window_ends():
    clock = FakeClock(1000.0)  # a window of 10 s starts here
    with AzureOpenAIEmulator(api_keys=[API_KEY], clock=clock, requests_per_minute=60) as emulator:
        statuses = []
        for _ in range(10):  # 60 a minute is 10 per 10 s window
            status, headers, _ = attempt(emulator)
            statuses.append((status, headers["x-ratelimit-remaining-requests"]))
        assert statuses == [(200, str(9 - i)) for i in range(10)]
        clock.now = 1004.2
        status, headers, body = attempt(emulator)
        assert status == 429 and (headers["retry-after"], headers["retry-after-ms"]) == ("6", "5800")
        assert headers["x-ratelimit-remaining-requests"] == "0" and "x-ratelimit-remaining-tokens" not in headers
        assert body["code"] == "429"
        assert body["message"].startswith(
            f"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version {API_VERSION} have "
            "exceeded call rate limit of your current OpenAI S0 pricing tier. Please retry after 6 seconds."
        )
        assert attempt(emulator)[0] == 429
        clock.now = 1010.0
        assert [attempt(emulator)[0] for _ in range(11)] == [200] * 10 + [429], "the 429s spent nothing"
        assert (emulator.completed, emulator.throttled) == (20, 3)

        emulator.requests_per_minute = 2  # a window too short for one request widens to 60/RPM s
        clock.now = 1020.0
        assert [attempt(emulator)[0] for _ in range(2)] == [200, 429]
        clock.now = 1049.9
        assert attempt(emulator)[0] == 429
        clock.now = 1050.0
        assert attempt(emulator)[0] == 200


def test_tokens_are_charged_on_arrival_from_the_prompt_s_characters_and_max_tokens():
    clock = FakeClock(600.0)  # a minute starts here
    prompt = "x" * 39  # 10 tokens: 4 characters a token, rounded up
    limits = {"requests_per_minute": 600, "tokens_per_minute": 100}
    with AzureOpenAIEmulator(api_keys=[API_KEY], clock=clock, **limits) as emulator:
        assert attempt(emulator, prompt, max_tokens=5000)[0] == 429, "more than the minute's budget"
        answers = [attempt(emulator, prompt, max_tokens=20) for _ in range(4)]
        assert [(s, h["x-ratelimit-remaining-tokens"]) for s, h, _ in answers] == [
            (200, "70"),
            (200, "40"),
            (200, "10"),
            (429, "10"),
        ]
        _, headers, body = answers[-1]
        assert "exceeded token rate limit" in body["message"] and headers["retry-after"] == "60"
        assert headers["x-ratelimit-remaining-requests"] == "97", "the refused requests spent no request budget"
        assert attempt(emulator, "y" * 40)[0] == 200, "without max_tokens only the prompt is charged"
        clock.now = 660.0
        assert attempt(emulator, prompt, max_tokens=20)[0] == 200


def test_the_session_fixture_serves(azure_openai_emulator):
    azure_openai_emulator.reset()
    assert ask(azure_openai_emulator, "ping").choices[0].message.content == "Echo: ping"


def test_the_command_line_serves_until_stopped():
    proc = subprocess.Popen(
        [sys.executable, "-m", "elspeth_testkit.azure_openai_emulator", "--api-key", API_KEY, "--rpm", "1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[4]
        completion = openai.AzureOpenAI(
            azure_endpoint=url, api_key=API_KEY, api_version=API_VERSION, max_retries=0
        ).chat.completions.create(model="m", messages=[{"role": "user", "content": "cli"}])
        assert completion.choices[0].message.content == "Echo: cli"
        with pytest.raises(openai.RateLimitError):  # one a minute: the next two cannot both fit
            for _ in range(2):
                openai.AzureOpenAI(
                    azure_endpoint=url, api_key=API_KEY, api_version=API_VERSION, max_retries=0
                ).chat.completions.create(model="m", messages=[{"role": "user", "content": "cli"}])
    finally:
        proc.terminate()
        proc.wait(timeout=10)
