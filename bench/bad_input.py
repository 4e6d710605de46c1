"""Bad-input campaign: everything a careless or hostile client might send, against a real server.

    .venv/bin/python bench/bad_input.py                       # the run in docs/en/reliability.md
    .venv/bin/python bench/bad_input.py --examples 50 --fuzz-examples 100 --sse 250   # quicker

Against one `ilji serve` on a throwaway PostgreSQL (or a fresh database on ILJI_DATABASE_URL):

a. schemathesis against /openapi.json, all phases (examples, coverage, fuzzing, and stateful
   sequences that follow the document's links), every check but positive_data_acceptance
   (see tests/e2e/test_server_schemathesis.py for why);
b. the hand-written catalogue of tests/e2e/test_server_abuse.py (oversized and lying bodies,
   deep nesting, huge numbers, invalid UTF-8, odd stream names, wrong content types,
   duplicate keys, broken HTTP), then heavier abuse: 100 MB bodies (with and without a
   length), slow-loris clients trickling headers and bodies while normal clients keep
   appending, floods of headers, and hundreds of SSE connections;
c. hypothesis fuzzing of the library's validation and the in-memory store
   (tests/unit/test_validation_fuzz.py) with many more examples than the tests use.

It prints the cases per kind and the answers by status class, and checks afterwards: no 5xx
(the server's own counters), no crash or traceback, every refused request stored nothing
(counted before and after), the database holds exactly the events the server reports as
appended, and every stream's versions run 1..n. A Markdown report goes to `--report`.
Exit status 1 when any of that fails.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e import test_server_abuse as abuse  # noqa: E402
from tests.e2e.server_helpers import Server, running_server  # noqa: E402
from tests.unit import test_validation_fuzz as fuzzing  # noqa: E402

from _common import machine_info, markdown_table, percentile  # noqa: E402
from soak import database  # noqa: E402

# Shorter than the defaults (10 s for a head, 30 s for a body) so the slow-client part takes
# seconds, not minutes; the mechanism is the same. Everything else keeps its default.
TIMEOUTS = {"ILJI_HEADER_TIMEOUT": "3", "ILJI_BODY_TIMEOUT": "3"}
SERVER_ENV = {"ILJI_ACCESS_LOG": "false", **TIMEOUTS}
MB = 1024 * 1024
SERVER_ERRORS = "server errors: 5xx answers other than the SSE cap's 503"


def log(message: str) -> None:
    """Progress on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Tally:
    """Counts of the campaign."""

    cases: Counter[str] = field(default_factory=Counter)  # per kind
    classes: Counter[str] = field(default_factory=Counter)  # client-side status classes
    statuses: Counter[str] = field(default_factory=Counter)  # per kind and status
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def answer(self, kind: str, status: int) -> None:
        """Count one answer seen by a client."""
        self.cases[kind] += 1
        self.classes["no answer (closed)" if status == 0 else f"{status // 100}xx"] += 1
        self.statuses[f"{kind}|{status}"] += 1

    def fail(self, what: str) -> None:
        """Record a failed expectation."""
        self.failures.append(what)
        log(f"FAILED: {what}")


# -- the server's own counts -----------------------------------------------------------------------


def server_counts(server: Server) -> dict[str, Any]:
    """Answers by status class and events appended, from /metrics."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    classes: Counter[str] = Counter()
    appended = 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "ilji_http_requests_total":
                classes[f"{sample.labels['status'][0]}xx"] += int(sample.value)
            elif sample.name == "ilji_events_appended_total":
                appended = int(sample.value)
    return {"classes": classes, "appended": appended}


# -- a. schemathesis -----------------------------------------------------------------------------


def run_schemathesis(server: Server, examples: int, tally: Tally) -> dict[str, Any]:
    """`st run` with all phases; the generated cases and the failures it reports."""
    st = str(Path(sys.executable).parent / "st")
    command = [
        st,
        "--config-file",
        str(ROOT / "tests" / "e2e" / "schemathesis.toml"),
        "run",
        f"{server.url}/openapi.json",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--checks",
        "all",
        "--exclude-checks",
        "positive_data_acceptance",
        "--max-examples",
        str(examples),
        "--seed",
        "20261127",
        "--request-timeout",
        "20",
        "--header",
        "Accept: application/json",
        "--no-color",
    ]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    out = done.stdout
    generated = re.search(r"(\d+) generated", out)
    scenarios = re.search(r"Scenarios:\s+(\d+)", out)
    links = re.search(r"API Links:\s+(\d+) covered / (\d+) selected", out)
    failures = re.findall(r"^_+ (.+?) _+$", out, re.M)
    checks = sorted(set(re.findall(r"^- (ST\d+ .+|[A-Z][^\n]+?)$", out, re.M)))
    result = {
        "seconds": round(time.monotonic() - started),
        "generated": int(generated[1]) if generated else 0,
        "stateful_scenarios": int(scenarios[1]) if scenarios else 0,
        "links_covered": f"{links[1]} of {links[2]}" if links else "–",
        "failing_operations": failures,
        "failed_checks": checks,
        "server_errors_reported": bool(re.search(r"Server error|not_a_server_error", out)),
        "exit_status": done.returncode,
    }
    tally.cases["schemathesis"] += result["generated"]
    if result["server_errors_reported"]:
        tally.fail("schemathesis found a server error")
    if not result["generated"]:
        tally.fail("schemathesis generated nothing: " + (out[-500:] + done.stderr[-500:]))
    return result


# -- b. the catalogue and heavier abuse ----------------------------------------------------------


def run_catalogue(server: Server, url: str, tally: Tally) -> None:
    """Every case of the hand-written catalogue; refused ones must store nothing."""
    for case in abuse.cases(f"camp{int(time.time())}-"):
        before = abuse.total_events(url)
        answer = abuse.send(server.port, case.raw)
        tally.answer(case.kind, answer.status)
        after = abuse.total_events(url)
        what = f"{case.kind}: {case.name}"
        if answer.status not in case.expect:
            tally.fail(f"{what}: {answer.status}, expected {sorted(case.expect)}")
        if answer.status != 201 and after != before:
            tally.fail(f"{what}: refused, yet {after - before} events were stored")
        if answer.status == 201 and after != before + 1:
            tally.fail(f"{what}: stored {after - before} events instead of 1")
        if answer.status not in (0, 201) and answer.headers.get("content-type") != abuse.PROBLEM:
            tally.fail(f"{what}: answer is not problem+json")


def send_huge(port: int, *, chunked: bool, size: int) -> tuple[abuse.Answer, int]:
    """Stream `size` bytes of body; (the answer, bytes the server let us send)."""
    head = b"POST /v1/streams/huge-1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += b"Transfer-Encoding: chunked\r\n\r\n" if chunked else b"Content-Length: %d\r\n\r\n" % size
    start = b'{"events": [{"type": "T", "data": {"x": "'
    block = b"y" * 65536
    sent = 0
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(head + (b"%x\r\n%s\r\n" % (len(start), start) if chunked else start))
            while sent < size:
                sock.sendall(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
                sent += len(block)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed: what the case wants
        return abuse.read_answer(sock, started, timeout=30), sent


def run_huge_bodies(server: Server, url: str, tally: Tally, results: dict[str, Any]) -> None:
    """100 MB with a Content-Length and 100 MB chunked: 413, memory stays put, nothing stored."""
    before_events = abuse.total_events(url)
    rss_before = abuse.rss_mb(server.proc.pid)
    for chunked in (False, True):
        label = "100 MB chunked, no length" if chunked else "100 MB with Content-Length"
        answer, sent = send_huge(server.port, chunked=chunked, size=100 * MB)
        tally.answer("huge bodies", answer.status)
        results[label] = (
            f"{answer.status} after {answer.seconds:.2f} s; {sent / MB:.1f} MB sent before the close"
        )
        if answer.status != 413:
            tally.fail(f"{label}: {answer.status}, expected 413")
    grew = abuse.rss_mb(server.proc.pid) - rss_before
    results["server RSS change"] = f"{grew:+.1f} MiB"
    if grew > 20:
        tally.fail(f"huge bodies: server memory grew {grew:.1f} MiB")
    if abuse.total_events(url) != before_events:
        tally.fail("huge bodies: events were stored")


def trickle(port: int, raw: bytes, split: int, answers: list[abuse.Answer]) -> None:
    """A slow client (a byte every 50 ms after `raw[:split]`); its answer goes to `answers`."""
    answers.append(abuse.trickle(port, raw, split, 0.05))


def run_slow_clients(server: Server, url: str, tally: Tally, results: dict[str, Any], clients: int) -> None:
    """Slow-loris: `clients` trickle headers and as many trickle bodies, while appends go on."""
    before_events = abuse.total_events(url)
    answers: list[abuse.Answer] = []
    heads = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 400
    body = abuse.event_body('{"x": "' + "z" * 400 + '"}')
    slow_append = abuse.append_request("slowbody-1", body)
    split = slow_append.index(b"\r\n\r\n") + 4
    threads = [
        threading.Thread(target=trickle, args=(server.port, heads, 0, answers)) for _ in range(clients)
    ]
    threads += [
        threading.Thread(target=trickle, args=(server.port, slow_append, split, answers))
        for _ in range(clients)
    ]
    for thread in threads:
        thread.start()
    latencies: list[float] = []
    normal_ok = 0
    with httpx.Client(base_url=server.url, timeout=10) as client:
        while any(t.is_alive() for t in threads):
            started = time.perf_counter()
            response = client.post(
                f"/v1/streams/normal-{normal_ok % 10}", json={"events": [{"type": "Normal"}]}
            )
            latencies.append(time.perf_counter() - started)
            normal_ok += response.status_code == 201
            time.sleep(0.02)
    for thread in threads:
        thread.join()
    timeout = float(TIMEOUTS["ILJI_HEADER_TIMEOUT"])
    for answer in answers:
        tally.answer("slow clients", answer.status)
        if answer.status != 408:
            tally.fail(f"slow client: {answer.status}, expected 408")
        elif answer.seconds > timeout + 5:
            tally.fail(f"slow client answered after {answer.seconds:.1f} s")
    ordered = sorted(latencies)
    results["slow clients"] = f"{len(answers)} (half trickling headers, half bodies), all answered 408"
    results["slowest 408"] = f"{max(a.seconds for a in answers):.1f} s (timeout {timeout:g} s)"
    results["normal appends meanwhile"] = (
        f"{normal_ok} of {len(latencies)} stored; p50 {percentile(ordered, 0.5) * 1000:.1f} ms,"
        f" p99 {percentile(ordered, 0.99) * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms"
    )
    if normal_ok != len(latencies):
        tally.fail("normal appends failed while slow clients were connected")
    if abuse.total_events(url) != before_events + normal_ok:
        tally.fail("slow bodies stored events")


def run_header_flood(server: Server, tally: Tally, results: dict[str, Any]) -> None:
    """Headers without end: refused with 431 long before they stop."""
    rss_before = abuse.rss_mb(server.proc.pid)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        started = time.monotonic()
        sent = 0
        with contextlib.suppress(OSError):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            for _ in range(4000):  # up to 32 MB
                sock.sendall(b"X-Flood: " + b"f" * 8000 + b"\r\n")
                sent += 8000
        answer = abuse.read_answer(sock, started, timeout=10)
    tally.answer("header flood", answer.status)
    results["header flood"] = f"{answer.status}; {sent / MB:.1f} MB sent before the close"
    results["header flood RSS change"] = f"{abuse.rss_mb(server.proc.pid) - rss_before:+.1f} MiB"
    if answer.status != 431:
        tally.fail(f"header flood: {answer.status}, expected 431")


def run_many_sse(server: Server, tally: Tally, results: dict[str, Any], count: int) -> None:
    """Open `count` SSE streams at once: up to the cap 200, the rest 503; all close cleanly."""
    rss_before = abuse.rss_mb(server.proc.pid)
    crowd = abuse.SseCrowd(server.port)
    try:
        answers = crowd.open(count)
        opened = sum(1 for a in answers if a.status == 200)
        for answer in answers:
            tally.answer("many SSE", answer.status)
        rss_open = abuse.rss_mb(server.proc.pid)
        latencies = []
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for i in range(30):
                started = time.perf_counter()
                client.post(f"/v1/streams/ssecrowd-{i % 3}", json={"events": [{"type": "Crowd"}]})
                latencies.append(time.perf_counter() - started)
        open_now = abuse.open_streams(server)
    finally:
        crowd.close()
    closed_in = time.monotonic()
    abuse.wait_for(lambda: abuse.open_streams(server) == 0, 30)
    ordered = sorted(latencies)
    statuses = Counter(a.status for a in answers)
    results["SSE connections"] = ", ".join(f"{n} × {s}" for s, n in sorted(statuses.items()))
    results["SSE memory"] = f"{rss_before:.1f} → {rss_open:.1f} MiB with {opened} open"
    results["appends with them open"] = (
        f"p50 {percentile(ordered, 0.5) * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms"
        " (each append wakes every stream)"
    )
    results["streams closed after the clients left"] = (
        f"all {int(open_now)} within {time.monotonic() - closed_in:.1f} s"
    )
    if set(statuses) - {200, 503}:
        tally.fail(f"many SSE: unexpected answers {dict(statuses)}")
    if rss_open - rss_before > 100:
        tally.fail(f"many SSE: memory grew {rss_open - rss_before:.0f} MiB")


# -- c. hypothesis -------------------------------------------------------------------------------


def run_fuzzing(examples: int, tally: Tally) -> dict[str, int]:
    """Every property of the fuzz tests with `examples` examples."""
    fuzzing.GENERATED.clear()
    for name in fuzzing.PROPERTIES:
        started = time.monotonic()
        try:
            fuzzing.fuzz(name, examples)()
        except Exception as exc:  # a falsified property: report it, run the others
            tally.fail(f"fuzzing {name}: {type(exc).__name__}: {str(exc)[:300]}")
            traceback.print_exc()
        log(f"fuzzing {name}: {fuzzing.GENERATED[name]} examples in {time.monotonic() - started:.0f} s")
    counts = dict(fuzzing.GENERATED)
    tally.cases["hypothesis (library)"] += sum(counts.values())
    return counts


# -- the campaign --------------------------------------------------------------------------------


def final_checks(server: Server, url: str, tally: Tally) -> dict[str, Any]:
    """What the store and the server say after everything."""
    counts = server_counts(server)
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM ilji.events WHERE stream NOT LIKE '$%%'").fetchone()
        events = int(row[0]) if row else -1
        gaps_row = conn.execute(
            "SELECT count(*) FROM (SELECT stream FROM ilji.events GROUP BY stream"
            " HAVING count(*) <> max(version) OR min(version) <> 1) s"
        ).fetchone()
        gaps = int(gaps_row[0]) if gaps_row else -1
    alive = server.proc.poll() is None
    # The SSE cap answers 503 on purpose (the server is at capacity: retry later, or elsewhere);
    # every other 5xx is a server error.
    capped = tally.statuses["many SSE|503"]
    errors = counts["classes"].get("5xx", 0) - capped
    checks = {
        SERVER_ERRORS: errors,
        "503 answers of the SSE cap (deliberate)": capped,
        "events stored = events the server reported appended": f"{events} = {counts['appended']}",
        "streams whose versions are not 1..n": gaps,
        "server still running": alive,
        "tracebacks in the server log": server.log().count("Traceback"),
    }
    if errors:
        tally.fail(f"the server answered 5xx {errors} times (besides the SSE cap's 503)")
    if events != counts["appended"]:
        tally.fail(f"{events} events stored, the server reported {counts['appended']} appended")
    if gaps:
        tally.fail(f"{gaps} streams have gaps in their versions")
    if not alive:
        tally.fail("the server exited")
    if checks["tracebacks in the server log"]:
        tally.fail("traceback in the server log")
    return {"checks": checks, "server_classes": dict(counts["classes"])}


def campaign(args: argparse.Namespace) -> tuple[Tally, dict[str, Any]]:
    """Run all parts; the tally and the numbers for the report."""
    tally = Tally()
    report: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
    }
    with database(args.database_url) as (url, where), running_server(url, env=SERVER_ENV) as server:
        report["database"] = where
        log(f"server {server.url} (pid {server.proc.pid}); {where}")
        if not args.skip_schemathesis:
            log(f"a. schemathesis, {args.examples} examples per operation and phase")
            report["schemathesis"] = run_schemathesis(server, args.examples, tally)
            log(f"   {report['schemathesis']['generated']} cases in {report['schemathesis']['seconds']} s")
        log("b. the hand-written catalogue")
        run_catalogue(server, url, tally)
        heavy: dict[str, Any] = {}
        log("b. 100 MB bodies")
        run_huge_bodies(server, url, tally, heavy)
        log(f"b. slow clients ({args.slow} trickling heads, {args.slow} trickling bodies)")
        run_slow_clients(server, url, tally, heavy, args.slow)
        log("b. header flood")
        run_header_flood(server, tally, heavy)
        log(f"b. {args.sse} SSE connections")
        run_many_sse(server, tally, heavy, args.sse)
        report["heavy"] = heavy
        log(f"c. hypothesis, {args.fuzz_examples} examples per property")
        report["fuzzing"] = run_fuzzing(args.fuzz_examples, tally)
        report.update(final_checks(server, url, tally))
    report["machine"]["Load average at the end"] = machine_info()["Load average"]
    return tally, report


def markdown(tally: Tally, report: dict[str, Any], command: str) -> str:
    """The report as Markdown."""
    st = report.get("schemathesis")
    lines = [
        "# Bad-input campaign",
        "",
        f"`{command}`, started {report['started']}; {report['database']}; one `ilji serve` with its"
        f" default limits except {', '.join(f'{k}={v}' for k, v in TIMEOUTS.items())}"
        " (so slow clients take seconds).",
        "",
        f"**Verdict: {'PASS' if not tally.failures else 'FAIL'}** —"
        f" {sum(tally.cases.values()):,} generated cases,"
        f" {report['checks'][SERVER_ERRORS]} server errors (5xx other than the SSE cap's deliberate 503),"
        f" {report['checks']['tracebacks in the server log']} tracebacks.",
        "",
        "## Cases by kind",
        "",
        markdown_table(["kind", "cases"], [[k, f"{n:,}"] for k, n in tally.cases.items()], [False, True]),
        "",
        "## Answers",
        "",
        "As the server counted them (/metrics, every HTTP answer of the campaign, schemathesis included):",
        "",
        markdown_table(
            ["status class", "answers"],
            [[k, f"{n:,}"] for k, n in sorted(report["server_classes"].items())],
            [False, True],
        ),
        "",
        "As the hand-written and heavy cases saw them (refusals made before a request reaches the"
        " application, such as 408 and 431 for request heads, are only seen here):",
        "",
        markdown_table(
            ["kind", "status", "answers"],
            [[*key.split("|"), str(n)] for key, n in sorted(tally.statuses.items())],
            [False, True, True],
        ),
        "",
    ]
    if st:
        lines += [
            "## schemathesis",
            "",
            markdown_table(
                ["", ""],
                [
                    ["generated cases", f"{st['generated']:,}"],
                    ["stateful scenarios", str(st["stateful_scenarios"])],
                    ["API links covered", st["links_covered"]],
                    ["time", f"{st['seconds']} s"],
                    ["failing operations", "; ".join(st["failing_operations"]) or "none"],
                    ["failed checks", "; ".join(st["failed_checks"]) or "none"],
                ],
                [False, False],
            ),
            "",
        ]
    lines += [
        "## Heavy abuse",
        "",
        markdown_table(["", ""], list(report["heavy"].items()), [False, False]),
        "",
        "## Hypothesis (library validation and the in-memory store)",
        "",
        markdown_table(
            ["property", "examples"], [[k, f"{n:,}"] for k, n in report["fuzzing"].items()], [False, True]
        ),
        "",
        "## After the campaign",
        "",
        markdown_table(["check", "value"], [[k, str(v)] for k, v in report["checks"].items()], [False, True]),
        "",
        "## Machine",
        "",
        markdown_table(["", ""], list(report["machine"].items()), [False, False]),
        "",
    ]
    if tally.failures:
        lines += ["## Failures", "", *(f"- {f}" for f in tally.failures), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the campaign, print and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--examples", type=int, default=300, help="schemathesis examples per operation (default 300)"
    )
    parser.add_argument("--fuzz-examples", type=int, default=3000, help="hypothesis examples per property")
    parser.add_argument("--slow", type=int, default=25, help="slow-loris clients of each kind (default 25)")
    parser.add_argument("--sse", type=int, default=500, help="SSE connections opened at once (default 500)")
    parser.add_argument("--skip-schemathesis", action="store_true", help="leave out part a")
    parser.add_argument("--database-url", default=None, help="a PostgreSQL server (default: embedded)")
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "assets" / "abuse" / "report.md")
    args = parser.parse_args(argv)
    from ilji.settings import load_settings

    args.database_url = args.database_url or load_settings().database_url
    started = time.monotonic()
    tally, report = campaign(args)
    command = "python bench/bad_input.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(tally, report, command.strip())
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text)
    print(text)
    log(f"done in {time.monotonic() - started:.0f} s; report written to {args.report}")
    return 0 if not tally.failures else 1


if __name__ == "__main__":
    sys.exit(main())
