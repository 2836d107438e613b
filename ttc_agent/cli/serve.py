"""`ttc-agent serve` and `ttc-agent model`: the OpenAI-compatible server and the shipped models."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ttc_agent.errors import InvalidRequestError, TTCError

if TYPE_CHECKING:
    from ttc_agent.budgets import BudgetStore

from ttc_agent.cli.common import Dtype, LogLevel, _check_backend, app, cli_backend, console, fail, workload_hooks
from ttc_agent.extras import needs_extra


def _store(spec: str) -> BudgetStore:
    """A budget store from ``--store``: ``memory``, ``sqlite:PATH`` or a ``postgresql://`` URL."""
    from ttc_agent.budgets import PostgresStore, ReservationPool, SQLiteStore

    if spec == "memory":
        return ReservationPool()
    if spec.startswith("sqlite:"):
        return SQLiteStore(spec.removeprefix("sqlite:"))
    if spec.startswith(("postgresql://", "postgres://")):
        return PostgresStore(spec)
    raise InvalidRequestError(f"--store must be memory, sqlite:PATH or a postgresql:// URL, got {spec!r}")


def _api_keys(keys_file: Path | None) -> list[str]:
    """API keys from ``$TTC_AGENT_API_KEYS`` (comma-separated) and ``--api-keys-file`` (one a line)."""
    import os

    keys = [k.strip() for k in os.environ.get("TTC_AGENT_API_KEYS", "").split(",") if k.strip()]
    if keys_file is not None:
        try:
            keys += [line.strip() for line in keys_file.read_text().splitlines() if line.strip()]
        except OSError as exc:
            raise InvalidRequestError(f"cannot read --api-keys-file {str(keys_file)!r}: {exc}") from None
    return keys


@app.command(rich_help_panel="Serve")
def serve(
    backend: Annotated[
        str,
        typer.Option(
            envvar="TTC_AGENT_BACKEND",
            callback=_check_backend,
            help="transformers, vllm, or the /v1 URL of an OpenAI-compatible server.",
        ),
    ] = "transformers",
    model: Annotated[
        str | None,
        typer.Option(envvar="TTC_AGENT_MODEL", help="Model name or folder (local backends), or the served model."),
    ] = None,
    probes: Annotated[
        Path | None,
        typer.Option(
            envvar="TTC_AGENT_PROBES",
            help="Probe bundle folder, or the name of a model a bundle is shipped for (qwen2.5-coder-0.5b, "
            "smollm2-135m). Default: the one shipped for the model: --model, or the served model --tokenizer names.",
        ),
    ] = None,
    store: Annotated[
        str,
        typer.Option(
            envvar="TTC_AGENT_STORE",
            help="Session budgets: memory, sqlite:PATH or postgresql://... (shared by replicas).",
        ),
    ] = "memory",
    host: Annotated[str, typer.Option(envvar="TTC_AGENT_HOST", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="TTC_AGENT_PORT", help="Port to listen on.")] = 8080,
    model_name: Annotated[
        str, typer.Option(envvar="TTC_AGENT_MODEL_NAME", help="The model name clients send.")
    ] = "ttc",
    api_keys_file: Annotated[
        Path | None,
        typer.Option(
            envvar="TTC_AGENT_API_KEYS_FILE",
            help="File of API keys, one a line (also: $TTC_AGENT_API_KEYS, comma-separated).",
        ),
    ] = None,
    session_tokens: Annotated[
        int | None,
        typer.Option(
            envvar="TTC_AGENT_SESSION_TOKENS",
            help="Token budget of sessions made on first use (default: sessions must be created).",
        ),
    ] = None,
    session_seconds: Annotated[
        float | None,
        typer.Option(envvar="TTC_AGENT_SESSION_SECONDS", help="Seconds budget of sessions made on first use."),
    ] = None,
    max_tokens: Annotated[
        int, typer.Option(envvar="TTC_AGENT_MAX_TOKENS", help="Largest max_tokens a request may ask for.")
    ] = 4096,
    backend_timeout: Annotated[
        float | None,
        typer.Option(
            envvar="TTC_AGENT_BACKEND_TIMEOUT",
            help="Seconds a server backend may take to answer one generation request before it is retried (default: "
            "60); a round of long samples on a slow machine needs more.",
            show_default=False,
        ),
    ] = None,
    max_request_bytes: Annotated[
        int, typer.Option(envvar="TTC_AGENT_MAX_REQUEST_BYTES", help="Largest request body, in bytes.")
    ] = 1_000_000,
    trace: Annotated[
        Path | None,
        typer.Option(envvar="TTC_AGENT_TRACE", help="A JSONL decision log: every call's decision record is appended."),
    ] = None,
    record_prompts: Annotated[
        bool,
        typer.Option(
            envvar="TTC_AGENT_RECORD_PROMPTS",
            help="Keep each call's messages in its decision record (--trace), so `ttc-agent collect --dataset LOG` "
            "can trace the menu on your traffic's prompts. Off: prompts may hold what users typed.",
        ),
    ] = False,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="TTC_AGENT_API_KEY", help="Bearer token for the backend server (default: $OPENAI_API_KEY)."
        ),
    ] = None,
    tokenizer: Annotated[
        str | None,
        typer.Option(
            envvar="TTC_AGENT_TOKENIZER",
            help="The served model's name or folder: count prompt tokens here instead of asking the server.",
        ),
    ] = None,
    dtype: Annotated[
        Dtype | None,
        typer.Option(
            envvar="TTC_AGENT_DTYPE",
            help="The vllm backend's compute dtype (default: bfloat16 where the CPU has avx512_bf16 or AMX, else float32).",
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            envvar="TTC_AGENT_STRICT",
            help="Refuse the OpenAI request fields the engine decides (top_p, seed, a temperature other than 0...) instead of ignoring them and naming them in x-ttc-ignored.",
        ),
    ] = False,
    keep_alive_seconds: Annotated[
        float,
        typer.Option(
            envvar="TTC_AGENT_KEEP_ALIVE_SECONDS",
            help="Seconds between SSE comments while a streamed request's strategy runs.",
        ),
    ] = 15.0,
    log_level: Annotated[
        LogLevel,
        typer.Option(
            envvar="TTC_AGENT_LOG_LEVEL", help="Server log level; info and debug also log every request (access log)."
        ),
    ] = LogLevel.warning,
    extract: Annotated[
        str | None,
        typer.Option(envvar="TTC_AGENT_EXTRACT", help="Your workload's answer reader as module:function, for votes."),
    ] = None,
) -> None:
    """Serve an OpenAI-compatible endpoint (/v1/chat/completions, /v1/models, /v1/sessions,
    /health): each request gets the strategy the probes pick, and requests naming a session
    (header X-TTC-Session, or the user field) share its budget across every replica using the
    same --store. Every option is also read from the environment (TTC_AGENT_ and the option's
    name, e.g. TTC_AGENT_PORT). A request's max_tokens is each sample's cap (up to --max-tokens); the shipped
    bundles are fitted at 512 (reference model: GSM8K and arithmetic pools) or 64 (smollm2-135m:
    arithmetic) tokens a sample, and a response says in its x-ttc-warning header when a
    request's cap is beyond that."""
    with needs_extra("serve", "ttc-agent serve"):
        import uvicorn

    from ttc_agent.demo import SHIPPED_BUNDLES, SHIPPED_PROBES, shipped_probes
    from ttc_agent.nodes import TTCEngine
    from ttc_agent.probes import ProbeBundle
    from ttc_agent.server import ChatService, SessionDefaults, create_app

    try:
        keys = _api_keys(api_keys_file)
        budgets = _store(store)
        local = not backend.startswith(("http://", "https://"))
        if tokenizer is not None and local:
            raise InvalidRequestError(f"--tokenizer is for server backends, not {backend!r}")
        if backend_timeout is not None and local:
            raise InvalidRequestError(f"--backend-timeout is for server backends, not {backend!r}")
        options: dict[str, str | float] = {"tokenizer": tokenizer} if tokenizer else {}
        if backend_timeout is not None:
            options["timeout"] = backend_timeout
        chosen = cli_backend(backend, model, api_key, dtype, **options)
        # A local model gets the bundle shipped for it; a server's model is known by --tokenizer
        # when that names a model a bundle is shipped for (else the embedded model's, unchecked).
        shipped_for = SHIPPED_BUNDLES.get(tokenizer or "")
        if probes is not None and not probes.exists() and str(probes) in SHIPPED_BUNDLES:
            shipped_for, probes = SHIPPED_BUNDLES[str(probes)], None  # a shipped bundle, by its model's name
        named = shipped_for is not None
        if probes is not None:
            bundle = ProbeBundle.load(probes, fingerprint=chosen.fingerprint() if local else None)
        elif local and named and shipped_for is not None:
            bundle = ProbeBundle.load(shipped_for, fingerprint=chosen.fingerprint())
        elif local:
            bundle = shipped_probes(chosen)
        else:
            bundle = ProbeBundle.load(shipped_for or SHIPPED_PROBES)
        engine = TTCEngine(chosen, bundle, pool=budgets, extract=workload_hooks(extract, None)[0], trace=trace,
                           record_prompts=record_prompts)  # fmt: skip
        given = session_tokens is not None or session_seconds is not None
        defaults = SessionDefaults(session_tokens, session_seconds) if given else None
        service = ChatService(
            engine, budgets, model_name=model_name, max_tokens=max_tokens, defaults=defaults, strict=strict
        )
    except TTCError as exc:
        raise fail(exc) from exc
    if not keys:
        console.print("[yellow]no API keys: anyone who can reach the port may call it[/yellow]")
    if probes is None and not local and not named:
        console.print(
            "[yellow]the shipped probes were fitted on smollm2-135m and are not checked against a server's model: "
            "pass --tokenizer with the served model's name if a bundle is shipped for it "
            f"({', '.join(SHIPPED_BUNDLES)}), or fit a bundle on your model's traces and pass --probes[/yellow]"
        )
    where = type(budgets).__name__
    console.print(
        f"serving {model_name!r} ({chosen.model_name}) on http://{host}:{port}/v1, session budgets in {where}"
    )
    app_ = create_app(service, keys, max_request_bytes=max_request_bytes, keep_alive_seconds=keep_alive_seconds)
    level = log_level.value
    uvicorn.run(app_, host=host, port=port, log_level=level, access_log=level in ("info", "debug"))


@app.command(rich_help_panel="Serve")
def model(
    name: Annotated[str, typer.Argument(help="A registered model name.")] = "smollm2-135m",
) -> None:
    """Print a named model's safetensors folder (converting it from its wheels on first use), e.g.
    for ``python -m vllm.entrypoints.openai.api_server --model $(ttc-agent model qwen2.5-coder-0.5b)``."""
    from ttc_agent.backends.models import model_dir

    try:
        print(model_dir(name))
    except TTCError as exc:
        raise fail(exc) from exc
