"""One fresh process of `make bench` (run by pipeshare_local.bench as a script, with the same interpreter; it never
imports pipeshare_local or moto).

    bench_child.py baseline RESULT SERVICE[,SERVICE...]
                                        time `import boto3` + boto3.client(SERVICE) for each service
    bench_child.py handler RESULT CODE_DIR MODULE ADAPTER[,...]
                                        time importing CODE_DIR/MODULE.py as module MODULE (as Lambda does, the
                                        task root first on sys.path) + building its adapters' boto3 clients
                                        (ADAPTER: a name of ADAPTERS below, e.g. executions,grants,execution_gateway,
                                        executions,grants,trail,costs or costs,cost_gateway)
    bench_child.py invoke RESULT CODE_DIR HANDLER ARN EVENT
                                        import HANDLER (module.function), run ONE real invocation with the event in
                                        the JSON file EVENT and a context for the function ARN; report the peak RSS
                                        and the AWS calls the handler's clients made
    child.py invoke RESULT CODE_DIR HANDLER ARN EVENT RUNS
                                        the same, then the warm per-event overhead: the answers of that invocation
                                        are replayed instantly (a botocore before-send hook: no network), the handler
                                        is invoked RUNS times warm on the same event, and the same boto3 calls (same
                                        parameters, same instant answers) are made RUNS times bare; medians of each

The environment (function variables, credentials, AWS_ENDPOINT_URL, PYTHONPATH with the layer) is set by the parent.
The result is one JSON object written to RESULT (stdout belongs to the handler's logs and metrics).
Only sys, os and time are imported before the timed section; everything else is imported inside or after it.
"""

import os
import sys
import time

# adapter name -> how the function builds it (pipeshare.dependencies factories, arguments from the environment)
ADAPTERS = {
    # consumer side
    "ram": lambda deps: deps.get_ram_gateway(),
    "shares": lambda deps: deps.get_share_repository(os.environ["SHARE_TABLE_NAME"]),
    "notifier": lambda deps: deps.get_notifier(os.environ["CONSUMER_TOPIC_ARN"]),
    # owner side
    "executions": lambda deps: deps.get_execution_repository(os.environ["OWNER_TABLE_NAME"]),
    "grants": lambda deps: deps.get_grant_repository(os.environ["OWNER_TABLE_NAME"]),
    "execution_gateway": lambda deps: deps.get_execution_gateway(),
    "settle_scheduler": lambda deps: deps.get_settle_scheduler(os.environ["SETTLE_QUEUE_URL"]),
    "trail": lambda deps: deps.get_trail_status(int(os.environ["TRAIL_CACHE_SECONDS"])),
    "owner_ram": lambda deps: deps.get_owner_gateway(),
    "costs": lambda deps: deps.get_cost_repository(os.environ["OWNER_TABLE_NAME"]),
    # the estimator describes jobs on nearly every invocation: its SageMaker client counts as built at init (the
    # gateway builds it on first use); the tracker's status events and the watcher's non-enforcing runs build none
    "cost_gateway": lambda deps: _with_client(deps.get_cost_gateway()),
    "publish_once_consumer": lambda deps: deps.get_publish_once(
        os.environ["CONSUMER_TOPIC_ARN"], os.environ["SHARE_TABLE_NAME"]
    ),
    "publish_once_owner": lambda deps: deps.get_publish_once(
        os.environ["OWNER_TOPIC_ARN"], os.environ["OWNER_TABLE_NAME"]
    ),
    "budget_ledger": lambda deps: deps.get_budget_ledger(os.environ["OWNER_TABLE_NAME"]),
    "enforcer": lambda deps: deps.get_enforcer(),
}
WARMUP_INVOCATIONS = 3  # warm invocations on the instant answers before the timed ones (discarded)


def _maxrss_mb() -> float:
    import resource

    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB
    return kib / (1024 * 1024) if sys.platform == "darwin" else kib / 1024


def _with_client(gateway: object) -> object:
    gateway._sagemaker  # noqa: B018 - the property builds the client
    return gateway


def _moto_loaded() -> bool:
    return any(name == "moto" or name.startswith("moto.") for name in sys.modules)


def _baseline(services: list[str]) -> dict:
    start, cpu = time.perf_counter(), time.process_time()
    import boto3

    clients = [boto3.client(service) for service in services]
    return {**_elapsed(start, cpu), "clients": len(clients)}


def _elapsed(start: float, cpu: float) -> dict:
    """Wall and CPU seconds since (start, cpu): an import on page-cached files is CPU-bound, so its CPU time is its
    cost without the time other processes of a shared machine took the core."""
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu}


def _handler_init(code_dir: str, module: str, adapters: list[str]) -> dict:
    start, cpu = time.perf_counter(), time.process_time()
    import importlib

    sys.path.insert(0, code_dir)  # LAMBDA_TASK_ROOT comes first on Lambda's sys.path
    importlib.import_module(module)
    from pipeshare import dependencies

    built = [ADAPTERS[name](dependencies) for name in adapters]
    return {**_elapsed(start, cpu), "clients": len(built), "libraries": _libraries()}


def _libraries() -> list[str]:
    """Every module the handler's import loaded that is not pipeshare's own code (pydantic, Powertools and the
    standard library modules they pull in), in the order they were loaded."""
    own = ("pipeshare", "functions", "app")
    return [name for name in sys.modules if name.split(".", 1)[0] not in own and not name.startswith("__")]


def _floor(services: list[str], libraries: list[str]) -> dict:
    """The baseline plus every module a handler loaded but pipeshare's own: its cold init without pipeshare's code."""
    start, cpu = time.perf_counter(), time.process_time()
    import importlib

    import boto3

    clients = [boto3.client(service) for service in services]
    for name in libraries:
        try:
            importlib.import_module(name)
        except ImportError:  # a name some package put in sys.modules that cannot be imported by itself
            continue
    return {**_elapsed(start, cpu), "clients": len(clients)}


class _Context:
    """The attributes of a Lambda context object that Powertools reads."""

    def __init__(self, arn: str) -> None:
        name = arn.rsplit(":", 1)[1]
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = arn
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"))
        self.aws_request_id = "00000000-0000-4000-8000-00000000bench"
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "bench"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 60_000


class _Raw:
    """The raw body of a replayed answer, as botocore's AWSResponse reads it."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: object):  # type: ignore[no-untyped-def]
        yield self._body


class _Replay:
    """Records the answers of one real invocation, then serves them instantly (before-send: nothing is sent)."""

    def __init__(self) -> None:
        self.answers: dict[str, list[dict]] = {}
        self.served: dict[str, int] = {}
        self.calls: list[tuple[str, str, dict]] = []  # (service, operation, parameters) of the calls made
        self.replaying = False
        self.pending = ""  # the operation of the call being sent (before-call; before-send carries no model)

    @staticmethod
    def key(model: object) -> str:
        return f"{model.service_model.service_name}:{model.name}"  # type: ignore[attr-defined]

    def params(self, params: dict, model: object, **_: object) -> None:
        import copy

        self.calls.append((model.service_model.service_name, model.name, copy.deepcopy(params)))  # type: ignore[attr-defined]

    def parsed(self, operation_model: object, response_dict: dict, **_: object) -> None:
        if not self.replaying:
            answer = {k: response_dict[k] for k in ("status_code", "headers", "body")}
            answer["headers"] = dict(answer["headers"])
            self.answers.setdefault(self.key(operation_model), []).append(answer)

    def send(self, request: object, **kwargs: object) -> object:
        if not self.replaying:
            return None
        from botocore.awsrequest import AWSResponse

        key = self.pending
        answers = self.answers.get(key)
        if not answers:
            raise RuntimeError(f"no recorded answer for {key}")
        index = self.served.get(key, 0)
        self.served[key] = index + 1
        answer = answers[index % len(answers)]
        return AWSResponse(request.url, answer["status_code"], answer["headers"], _Raw(answer["body"]))  # type: ignore[attr-defined]

    def call(self, model: object, **_: object) -> None:
        self.pending = self.key(model)

    def reset(self) -> None:
        self.served.clear()
        self.calls.clear()


def _overhead(function, event: dict, context: object, replay: _Replay, runs: int) -> dict:  # type: ignore[no-untyped-def]
    """Warm handler invocations on instant answers versus the same boto3 calls made bare (same answers)."""
    import io
    import statistics
    from contextlib import redirect_stdout

    import boto3
    from botocore import xform_name

    replay.replaying = True
    sink = io.StringIO()  # the handler's logs and metrics: written (their cost counts), not kept

    def invoke() -> float:
        replay.reset()
        started = time.perf_counter()
        function(event, context)
        elapsed = time.perf_counter() - started
        sink.seek(0)
        sink.truncate()
        return elapsed

    def bare_calls() -> float:
        replay.reset()
        started = time.perf_counter()
        for service, operation, params in calls:
            getattr(clients[service], xform_name(operation))(**params)
        return time.perf_counter() - started

    with redirect_stdout(sink):
        for _ in range(WARMUP_INVOCATIONS):
            invoke()
        calls = list(replay.calls)  # what the warm handler calls: the bare replay makes the same calls
        # the Price List API answers in us-east-1 (adapters/price_list.py pins it); every other client: the function's
        services = {service for service, _, _ in calls}
        clients = {s: boto3.client(s, region_name="us-east-1" if s == "pricing" else None) for s in services}
        for _ in range(WARMUP_INVOCATIONS):
            bare_calls()
        handler: list[float] = []
        bare: list[float] = []
        for index in range(runs):  # interleaved, who goes first alternating: a change of load hits both alike
            if index % 2:
                bare.append(bare_calls())
                handler.append(invoke())
            else:
                handler.append(invoke())
                bare.append(bare_calls())
    replay.replaying = False
    handler_median = statistics.median(handler)
    bare_median = statistics.median(bare)
    return {
        "runs": runs,
        "warm_calls": [f"{service}:{operation}" for service, operation, _ in calls],
        "handler_median_ms": handler_median * 1000,
        "bare_median_ms": bare_median * 1000,
        "ratio": handler_median / bare_median if calls and bare_median > 0 else None,  # None: no AWS call made warm
    }


def _invoke(code_dir: str, handler: str, arn: str, event_path: str, runs: str = "0") -> dict:
    import importlib
    import json
    import traceback

    import boto3

    calls: list[str] = []
    replay = _Replay()

    def record(model: object, **_: object) -> None:
        service = model.service_model.service_name  # type: ignore[attr-defined]
        calls.append(f"{service}:{model.name}")  # type: ignore[attr-defined]
        replay.call(model)

    # the handler's clients come from boto3's default session: hook it before they are created
    boto3.setup_default_session()
    events = boto3.DEFAULT_SESSION.events  # type: ignore[union-attr]
    events.register("before-call", record)
    events.register("provide-client-params", replay.params)
    events.register("before-parse", replay.parsed)
    events.register("before-send", replay.send)
    with open(event_path) as fh:
        event = json.load(fh)
    module_name, function_name = handler.rsplit(".", 1)
    sys.path.insert(0, code_dir)
    function = getattr(importlib.import_module(module_name), function_name)
    rss_after_import = _maxrss_mb()
    result, error = None, None
    context = _Context(arn)
    try:
        result = function(event, context)
    except Exception as exc:  # reported to the parent, which decides what it means
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"
    outcome = {
        "peak_rss_mb": _maxrss_mb(),
        "rss_after_import_mb": rss_after_import,
        "result": result,
        "error": error,
        "client_calls": list(calls),
    }
    if int(runs) and error is None:
        try:
            outcome["overhead"] = _overhead(function, event, context, replay, int(runs))
        except Exception as exc:  # reported: the overhead row says why it is missing
            outcome["overhead"] = {"error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"}
    return outcome


def _fresh_rusage() -> int | None:
    """Fork once, before anything is measured: the parent waits and passes the exit status on (returned), the child
    (None) does the work. Linux carries ru_maxrss across exec: a process spawned by the bench (hundreds of MB with
    moto) would report the bench's peak, not its own. A forked process starts a new count from this small one."""
    if not hasattr(os, "fork"):
        return None
    pid = os.fork()
    if pid == 0:
        return None
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def main(argv: list[str]) -> int:
    mode, result_path, *args = argv
    exit_code = _fresh_rusage()
    if exit_code is not None:
        return exit_code
    if mode == "baseline":
        outcome = _baseline(args[0].split(","))
    elif mode == "handler":
        outcome = _handler_init(args[0], args[1], args[2].split(","))
    elif mode == "floor":
        outcome = _floor(args[0].split(","), args[1].split(","))
    elif mode == "invoke":
        outcome = _invoke(*args[:5])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    import json

    outcome.setdefault("peak_rss_mb", _maxrss_mb())
    outcome["moto_imported"] = _moto_loaded()
    with open(result_path, "w") as fh:
        json.dump(outcome, fh, default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
