"""`tpr ask` (issue 26, item 1): retrieval, numbered sources in the prompt, the answer streamed
from an OpenAI-compatible endpoint, and the sources printed as path:lines. The endpoint is a
fake server on 127.0.0.1 (streamed as server-sent events, or plain JSON); the index is real,
built with the tiny local model."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from retriever.embed.embedder import TPEmbedder
from retriever.index.indexer import Indexer, IndexOptions

from .faults.helpers import folder, run

ANSWER = ["The cat ", "sat on the mat ", "[1]", ". Dogs chase cars [2][7]."]


class FakeLLM(BaseHTTPRequestHandler):
    mode = "stream"
    seen: ClassVar[list[dict]] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeLLM.seen.append({"path": self.path, "body": body,
                             "auth": self.headers.get("Authorization")})  # fmt: skip
        if self.mode == "refuse":
            self.send_response(401)
            self.end_headers()
            self.wfile.write(b'{"error": "bad key"}')
            return
        if self.mode == "slow":
            time.sleep(3)
        if self.mode == "stream" and body.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for piece in ANSWER:
                event = {"choices": [{"delta": {"content": piece}}]}
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        reply = {"choices": [{"message": {"role": "assistant", "content": "".join(ANSWER)}}]}
        self.wfile.write(json.dumps(reply).encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def llm():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeLLM)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeLLM.seen, FakeLLM.mode = [], "stream"
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


@pytest.fixture(scope="module")
def index(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("ask")
    docs = folder(tmp / "docs", {"cats.md": "# Pets\n\nThe cat sat on the mat.\nCats purr.\n",
                                 "dogs.txt": "Dogs chase cars down the road."})  # fmt: skip
    emb = TPEmbedder.load(model=str(tiny_model_dir), tp_exit=3)
    Indexer(emb, IndexOptions(chunk_size=48)).sync(docs, tmp / "idx")
    return tmp / "idx"


def ask(index, url, *more):
    return run("ask", "where did the cat sit", "--index", index, "--llm", url,
               "--llm-model", "fake-7b", "--mode", "bm25", *more)  # fmt: skip


@pytest.mark.parametrize("mode", ["stream", "plain"])
def test_the_answer_comes_from_the_sources_and_cites_them(index, llm, mode, monkeypatch):
    FakeLLM.mode = mode
    monkeypatch.setenv("TPR_LLM_API_KEY", "sk-local-test")
    r = ask(index, llm)
    assert r.exit_code == 0, r.output
    sent = FakeLLM.seen[0]
    assert sent["path"] == "/v1/chat/completions" and sent["body"]["model"] == "fake-7b"
    assert sent["body"]["stream"] is True and sent["auth"] == "Bearer sk-local-test"
    prompt = sent["body"]["messages"][1]["content"]
    assert "The cat sat on the mat." in prompt and "[1] cats.md:1-4 § Pets" in prompt
    assert "Question: where did the cat sit" in prompt
    assert "".join(ANSWER) in r.stdout  # streamed pieces, or the plain body, in full
    assert "[1] cats.md:1-4 § Pets" in r.stdout.split("Sources:")[1]
    assert "cites [7], which is not among the sources" in r.output  # flagged, never hidden
    assert "sk-local-test" not in r.output


def test_json_gives_the_answer_sources_and_timings(index, llm):
    r = ask(index, llm, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["answer"] == "".join(ANSWER) and out["unknown_citations"] == [7]
    assert out["sources"][0]["citation"] == "cats.md:1-4"
    assert {"retrieve_ms", "prompt_ms", "llm_ms"} <= set(out["timings"])


def test_a_bad_endpoint_a_refusal_a_timeout_and_no_sources_are_one_line_each(index, llm):
    from .ui_server import free_port

    closed = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    cases = [
        (ask(index, closed), "cannot reach the LLM at"),
        (ask(index, "ollama"), "give an OpenAI-compatible URL"),
    ]
    FakeLLM.mode = "refuse"
    cases.append((ask(index, llm), "refused the request (HTTP 401"))
    FakeLLM.mode = "slow"
    cases.append((ask(index, llm, "--llm-timeout", "1"), "did not answer within 1 s"))
    FakeLLM.mode = "stream"
    nothing = run("ask", "zebra quantum", "--index", index, "--llm", llm, "--mode", "bm25")
    cases.append((nothing, "nothing to answer from"))
    for r, message in cases:
        assert r.exit_code == 1 and message in r.output, r.output
        assert "Traceback" not in r.output and len(r.output.strip().splitlines()) <= 2
    for spec, message in (
        ("/nonexistent/model", "give an OpenAI-compatible URL"),
        ("ftp-ish-name", "give an OpenAI-compatible URL"),
    ):
        r = run("ask", "cat", "--index", index, "--llm", spec, "--mode", "bm25")
        assert r.exit_code == 1 and message in r.output, r.output


def test_without_llm_the_index_s_own_model_answers_and_says_it_is_weak(index):
    r = run("ask", "where did the cat sit", "--index", index, "--llm-max-tokens", "8")
    assert r.exit_code == 0, r.output
    assert "note: answering with the index's own" in r.output and "--llm" in r.output
    assert "Sources:\n[1] " in r.output


def test_a_local_model_directory_answers(index, tiny_model_dir):
    r = run("ask", "where did the cat sit", "--index", index, "--llm", str(tiny_model_dir),
            "--llm-max-tokens", "8", "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.output[r.output.index('{"answer"') :].splitlines()[0])  # after stderr
    assert out["answer"] and out["sources"][0]["citation"].startswith("cats.md:")
    assert "note:" not in r.output


def test_a_gguf_file_without_llama_cpp_names_the_extra(index, tmp_path):
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        gguf = tmp_path / "model.gguf"
        gguf.write_bytes(b"GGUF")
        r = run("ask", "cat", "--index", index, "--llm", str(gguf), "--mode", "bm25")
        assert r.exit_code == 1 and "llama-cpp-python" in r.output, r.output
    else:
        pytest.skip("llama-cpp-python is installed")


def test_ask_takes_every_search_option(index, llm):
    r = ask(index, llm, "--type", ".txt", "-k", "1", "--json")
    assert r.exit_code == 0, r.output
    assert [s["citation"].split(":")[0] for s in json.loads(r.stdout)["sources"]] == ["dogs.txt"]


def test_the_langchain_answer_function_returns_the_answer_and_its_documents(index, llm):
    from retriever.integrations.answer import answer
    from retriever.integrations.retriever import TPRetriever

    retriever = TPRetriever.from_index(index, k=2, mode="bm25")
    out = answer(retriever, "where did the cat sit", llm, model="fake-7b", k=1)
    assert out["answer"] == "".join(ANSWER) and out["unknown_citations"] == [2, 7]
    assert [d.metadata["citation"] for d in out["sources"]] == ["cats.md:1-4"]
    assert "[1] cats.md:1-4 § Pets" in FakeLLM.seen[-1]["body"]["messages"][1]["content"]
    retriever.searcher.close()


def test_post_ask_on_the_server_plain_and_streamed(index, llm):
    import os
    import urllib.request

    from .test_server import call, start_serve

    with start_serve(dict(os.environ), "--index", str(index), "--llm", llm,
                     "--llm-model", "fake-7b") as (url, _):  # fmt: skip
        status, body = call(url + "/ask", {"query": "where did the cat sit", "mode": "bm25"})
        assert status == 200, body
        assert body["answer"] == "".join(ANSWER) and body["unknown_citations"] == [7]
        assert body["sources"][0]["citation"] == "cats.md:1-4"
        req = urllib.request.Request(
            url + "/ask",
            json.dumps({"query": "where did the cat sit", "mode": "bm25", "stream": True}).encode(),
            {"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            assert "text/event-stream" in r.headers["Content-Type"]
            events = [json.loads(line[5:]) for line in r.read().decode().splitlines()
                      if line.startswith("data:")]  # fmt: skip
        assert events[0]["sources"][0]["citation"] == "cats.md:1-4"
        assert "".join(e["delta"] for e in events if "delta" in e) == "".join(ANSWER)
        assert events[-1] == {"done": True, "unknown_citations": [7]}
        assert call(url + "/ask", {"query": "zebra quantum", "mode": "bm25"})[0] == 404
    with start_serve(dict(os.environ), "--index", str(index)) as (url, _):
        status, body = call(url + "/ask", {"query": "cat", "mode": "bm25"})
        assert status == 503 and "--llm URL" in body["detail"]
