"""One fresh process of `make bench` (run by pipeshare_local.bench with the same interpreter; never imports moto).

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
    "cost_gateway": lambda deps: deps.get_cost_gateway(),
}


def _maxrss_mb() -> float:
    import resource

    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB
    return kib / (1024 * 1024) if sys.platform == "darwin" else kib / 1024


def _moto_loaded() -> bool:
    return any(name == "moto" or name.startswith("moto.") for name in sys.modules)


def _baseline(services: list[str]) -> dict:
    start = time.perf_counter()
    import boto3

    clients = [boto3.client(service) for service in services]
    elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "clients": len(clients)}


def _handler_init(code_dir: str, module: str, adapters: list[str]) -> dict:
    start = time.perf_counter()
    import importlib

    sys.path.insert(0, code_dir)  # LAMBDA_TASK_ROOT comes first on Lambda's sys.path
    importlib.import_module(module)
    from pipeshare import dependencies

    built = [ADAPTERS[name](dependencies) for name in adapters]
    elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "clients": len(built)}


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


def _invoke(code_dir: str, handler: str, arn: str, event_path: str) -> dict:
    import importlib
    import json
    import traceback

    import boto3

    calls: list[str] = []

    def record(model: object, **_: object) -> None:
        service = model.service_model.service_name  # type: ignore[attr-defined]
        calls.append(f"{service}:{model.name}")  # type: ignore[attr-defined]

    # the handler's clients come from boto3's default session: hook it before they are created
    boto3.setup_default_session()
    boto3.DEFAULT_SESSION.events.register("before-call", record)  # type: ignore[union-attr]
    with open(event_path) as fh:
        event = json.load(fh)
    module_name, function_name = handler.rsplit(".", 1)
    sys.path.insert(0, code_dir)
    function = getattr(importlib.import_module(module_name), function_name)
    rss_after_import = _maxrss_mb()
    result, error = None, None
    try:
        result = function(event, _Context(arn))
    except Exception as exc:  # reported to the parent, which decides what it means
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"
    return {
        "peak_rss_mb": _maxrss_mb(),
        "rss_after_import_mb": rss_after_import,
        "result": result,
        "error": error,
        "client_calls": calls,
    }


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
    elif mode == "invoke":
        outcome = _invoke(*args[:4])
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
